// clip/io/fingerprint.hpp: a content fingerprint of a file, to recognise "the same model" later
// (an embedding index refuses queries from another model). Not a cryptographic hash: CRC-32
// and Adler-32 over every byte (zlib), in parallel chunks combined with zlib's *_combine, plus
// the size. Hashing a 600 MB checkpoint this way costs a fraction of a second.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "clip/core/error.hpp"
#include "clip/core/parallel.hpp"

namespace clip {

/// "crc32-adler32-size" in hex and decimal, e.g. "1c291ca3-5b7e0d2f-354721024".
inline std::string file_fingerprint(const std::filesystem::path& path) {
    const auto fail = [&](const std::string& what, int code) {
        throw io_error(detail::message("fingerprint of \"", path.string(), "\": ", what, ": ", std::strerror(code)));
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open", errno);
    struct stat status {};
    if (::fstat(fd, &status) != 0) {
        const int code = errno;
        ::close(fd);
        fail("cannot stat", code);
    }
    const auto size = static_cast<std::size_t>(status.st_size);
    const unsigned char* data = nullptr;
    void* address = nullptr;
    if (size > 0) {
        address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (address == MAP_FAILED) {
            const int code = errno;
            ::close(fd);
            fail("cannot map", code);
        }
        data = static_cast<const unsigned char*>(address);
    }
    ::close(fd);

    // 64 MiB chunks: both cores get work on a checkpoint, and zlib's uInt lengths are never exceeded.
    constexpr std::size_t chunk = std::size_t{1} << 26;
    const std::size_t chunks = (size + chunk - 1) / chunk;
    std::vector<uLong> crcs(chunks), adlers(chunks);
    detail::parallel_for(static_cast<std::int64_t>(chunks), 1 << 20, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t c = first; c < last; ++c) {
            const std::size_t begin = static_cast<std::size_t>(c) * chunk, n = std::min(chunk, size - begin);
            crcs[static_cast<std::size_t>(c)] = ::crc32(::crc32(0L, Z_NULL, 0), data + begin, static_cast<uInt>(n));
            adlers[static_cast<std::size_t>(c)] = ::adler32(::adler32(0L, Z_NULL, 0), data + begin, static_cast<uInt>(n));
        }
    });
    if (address) ::munmap(address, size);
    uLong crc = ::crc32(0L, Z_NULL, 0), adler = ::adler32(0L, Z_NULL, 0);
    for (std::size_t c = 0; c < chunks; ++c) {
        const auto n = static_cast<z_off_t>(std::min(chunk, size - c * chunk));
        crc = ::crc32_combine(crc, crcs[c], n);
        adler = ::adler32_combine(adler, adlers[c], n);
    }
    char text[64];
    std::snprintf(text, sizeof text, "%08lx-%08lx-%zu", crc & 0xffffffffUL, adler & 0xffffffffUL, size);
    return text;
}

} // namespace clip
