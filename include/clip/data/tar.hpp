// clip/data/tar.hpp: the member list of a tar archive, and reading one member's bytes, for
// WebDataset shards (clip/data/webdataset.hpp). No dependency beyond POSIX file reads.
//
//   std::vector<clip::tar_member> members = clip::list_tar("shard-000.tar");
//   std::vector<std::uint8_t> bytes = clip::read_tar_member("shard-000.tar", members[0]);
//
// The format (POSIX.1-1988 ustar, GNU and POSIX.1-2001 pax extensions): a sequence of 512-byte
// headers, each followed by its data padded to a multiple of 512 bytes, ended by a zero block.
// Header fields used: name [0, 100), size [124, 136) in octal (or GNU base-256 when its first
// byte has the high bit set), checksum [148, 156), type [156], magic [257, 263), prefix
// [345, 500) (joined as prefix/name for the POSIX magic "ustar\0" only; GNU's "ustar  " keeps
// other fields there). Member types:
//   '0', '\0', '7'   regular file: listed
//   'L'              GNU long name: the data (up to its first NUL) is the next member's path
//   'x'              pax extended header: "path" and "size" records apply to the next member
//   anything else    skipped (directories, links, devices, GNU 'K' long link names, pax 'g'
//                    global headers, GNU sparse files)
// The archive ends at a zero block, or where the file ends exactly on a header boundary (as
// Python's tarfile accepts).
//
// Every problem throws clip::io_error naming the archive and the byte offset of the header
// concerned: a header cut short, a bad header checksum (not a tar file, or corrupt), a size
// field that is not a number, data running past the end of the file (a truncated shard), a
// malformed pax record, a long name over 64 KiB. The reader never reads outside the file, so
// a corrupt shard is an error and never a crash (tests/data/tar_test.cpp fuzzes it).
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clip/core/error.hpp"

namespace clip {

/// A regular file in a tar archive: its path and where its bytes are.
struct tar_member {
    std::string path;
    std::uint64_t header_offset = 0; ///< the member's first header (a GNU 'L' or pax 'x' one if any)
    std::uint64_t data_offset = 0;   ///< its first data byte
    std::uint64_t size = 0;          ///< its data's length
};

namespace detail::tar {

constexpr std::uint64_t block = 512;
constexpr std::uint64_t max_long_name = 64 * 1024;     // a path longer than this is not a path
constexpr std::uint64_t max_pax_header = 1024 * 1024;

/// An open file read by offset (pread: no shared position, so threads can share nothing).
class file {
public:
    file(const std::filesystem::path& path, const char* op) : path_(path.string()) {
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) throw io_error(message(op, ": cannot open \"", path_, "\": ", std::strerror(errno)));
        struct stat status {};
        if (::fstat(fd_, &status) != 0 || !S_ISREG(status.st_mode)) {
            ::close(fd_);
            throw io_error(message(op, ": \"", path_, "\" is not a regular file"));
        }
        size_ = static_cast<std::uint64_t>(status.st_size);
    }
    file(const file&) = delete;
    file& operator=(const file&) = delete;
    ~file() { ::close(fd_); }

    std::uint64_t size() const noexcept { return size_; }
    /// Reads exactly n bytes at `offset` (within the file's size).
    void read(std::uint64_t offset, void* out, std::uint64_t n) const {
        auto* to = static_cast<char*>(out);
        while (n > 0) {
            const ssize_t got = ::pread(fd_, to, static_cast<std::size_t>(n), static_cast<off_t>(offset));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0)
                throw io_error(message("tar \"", path_, "\": cannot read ", n, " bytes at offset ", offset,
                                       got < 0 ? std::string(": ") + std::strerror(errno) : std::string(" (file shrank)")));
            to += got;
            offset += static_cast<std::uint64_t>(got);
            n -= static_cast<std::uint64_t>(got);
        }
    }

private:
    std::string path_;
    int fd_ = -1;
    std::uint64_t size_ = 0;
};

/// Bytes held in memory, read the same way.
class memory {
public:
    explicit memory(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
    std::uint64_t size() const noexcept { return bytes_.size(); }
    void read(std::uint64_t offset, void* out, std::uint64_t n) const { std::memcpy(out, bytes_.data() + offset, n); }

private:
    std::span<const std::uint8_t> bytes_;
};

/// A NUL-terminated field of at most `field.size()` characters.
inline std::string_view text_field(std::span<const std::uint8_t> field) {
    const auto* begin = reinterpret_cast<const char*>(field.data());
    return {begin, static_cast<std::size_t>(std::find(field.begin(), field.end(), 0) - field.begin())};
}

/// A numeric field: octal digits (leading spaces, then digits, ended by NUL or space), or GNU's
/// base-256 when the first byte has its high bit set. nullopt when it is neither.
inline std::optional<std::uint64_t> number_field(std::span<const std::uint8_t> field) {
    if (field[0] & 0x80) {
        if (field[0] != 0x80) return std::nullopt; // 0xff: negative; other values are not GNU's
        std::uint64_t value = 0;
        for (std::size_t i = 1; i < field.size(); ++i) {
            if (value >> 55) return std::nullopt; // would pass 63 bits
            value = (value << 8) | field[i];
        }
        return value;
    }
    std::size_t i = 0;
    while (i < field.size() && field[i] == ' ') ++i;
    std::uint64_t value = 0;
    for (; i < field.size() && field[i] != 0 && field[i] != ' '; ++i) {
        if (field[i] < '0' || field[i] > '7' || (value >> 60)) return std::nullopt;
        value = value * 8 + (field[i] - '0');
    }
    for (; i < field.size(); ++i)
        if (field[i] != 0 && field[i] != ' ') return std::nullopt;
    return value;
}

/// The pax records "<length> <key>=<value>\n" of an extended header.
inline std::vector<std::pair<std::string, std::string>> pax_records(std::string_view data, const std::string& where) {
    std::vector<std::pair<std::string, std::string>> records;
    while (!data.empty() && data.front() != '\0') {
        std::size_t length = 0, digits = 0;
        while (digits < data.size() && data[digits] >= '0' && data[digits] <= '9' && digits < 8)
            length = length * 10 + static_cast<std::size_t>(data[digits++] - '0');
        const bool framed = digits > 0 && digits < data.size() && data[digits] == ' ' && length > digits + 1 &&
                            length <= data.size() && data[length - 1] == '\n';
        check<io_error>(framed, where, ": malformed pax record");
        const std::string_view record = data.substr(digits + 1, length - digits - 2);
        const std::size_t equals = record.find('=');
        check<io_error>(equals != std::string_view::npos && equals > 0, where, ": malformed pax record (no key=value)");
        records.emplace_back(record.substr(0, equals), record.substr(equals + 1));
        data.remove_prefix(length);
    }
    return records;
}

/// The members of the archive read through `source`, named `name` in errors.
template <class Source>
std::vector<tar_member> list(const Source& source, const std::string& name) {
    std::vector<tar_member> members;
    const std::uint64_t end = source.size();
    std::array<std::uint8_t, block> header{};
    std::optional<std::string> next_path;     // from a GNU 'L' or pax 'x' header
    // Plain values with flags rather than std::optional: GCC's -Wmaybe-uninitialized misfires
    // on optional integers here.
    std::uint64_t next_size = 0, first_header = 0; // from a pax 'x' header; of the member being assembled
    bool has_next_size = false, assembling = false;
    const auto metadata = [&](std::uint64_t data_offset, std::uint64_t size, std::uint64_t limit, const std::string& where) {
        check<io_error>(size <= limit, where, ": a ", size, "-byte extension header (more than ", limit, " is not credible)");
        std::string data(static_cast<std::size_t>(size), '\0');
        source.read(data_offset, data.data(), size);
        return data;
    };
    for (std::uint64_t offset = 0;;) {
        if (offset == end) break; // no end-of-archive block: accepted, as tarfile does
        const std::string where = message("tar \"", name, "\": offset ", offset);
        check<io_error>(end - offset >= block, where, ": the archive ends inside a header (", end - offset,
                        " of 512 bytes; truncated)");
        source.read(offset, header.data(), block);
        if (std::all_of(header.begin(), header.end(), [](std::uint8_t b) { return b == 0; })) break;

        const std::span<const std::uint8_t> h(header);
        const std::optional<std::uint64_t> stored = number_field(h.subspan(148, 8));
        std::uint64_t unsigned_sum = 0;
        std::int64_t signed_sum = 0; // old tars summed signed chars
        for (std::size_t i = 0; i < block; ++i) {
            const std::uint8_t b = (i >= 148 && i < 156) ? ' ' : header[i];
            unsigned_sum += b;
            signed_sum += static_cast<std::int8_t>(b);
        }
        check<io_error>(stored && (*stored == unsigned_sum || static_cast<std::int64_t>(*stored) == signed_sum), where,
                        ": bad header checksum (not a tar archive, or a corrupt one)");
        const std::optional<std::uint64_t> size_field = number_field(h.subspan(124, 12));
        check<io_error>(size_field.has_value(), where, ": the size field is not a number");
        const char type = static_cast<char>(header[156]);
        const bool regular = type == '0' || type == '\0' || type == '7';
        const std::uint64_t size = regular && has_next_size ? next_size : *size_field;
        const std::uint64_t data_offset = offset + block;
        check<io_error>(size <= end - data_offset, where, ": the member's ", size, " bytes of data run past the end of the file (",
                        end - data_offset, " bytes left; truncated)");
        if (!assembling) {
            first_header = offset;
            assembling = true;
        }

        if (type == 'L') {
            const std::string data = metadata(data_offset, size, max_long_name, where);
            next_path = data.substr(0, data.find('\0'));
        } else if (type == 'x') {
            for (auto& [key, value] : pax_records(metadata(data_offset, size, max_pax_header, where), where)) {
                if (key == "path") next_path = std::move(value);
                else if (key == "size") {
                    std::uint64_t n = 0;
                    bool digits = !value.empty() && value.size() <= 19;
                    for (const char c : value) {
                        digits = digits && c >= '0' && c <= '9';
                        if (digits) n = n * 10 + static_cast<std::uint64_t>(c - '0');
                    }
                    check<io_error>(digits, where, ": pax size \"", value, "\" is not a number");
                    next_size = n;
                    has_next_size = true;
                }
            }
        } else {
            if (regular) {
                std::string path;
                if (next_path) {
                    path = std::move(*next_path);
                } else {
                    path = std::string(text_field(h.subspan(0, 100)));
                    const bool posix = std::memcmp(header.data() + 257, "ustar\0", 6) == 0;
                    const std::string_view prefix = text_field(h.subspan(345, 155));
                    if (posix && !prefix.empty()) path = std::string(prefix) + "/" + path;
                }
                members.push_back({std::move(path), first_header, data_offset, size});
            }
            // A metadata header applies to the member that follows it, whatever that is.
            next_path.reset();
            has_next_size = assembling = false;
        }
        const std::uint64_t padded = (size + block - 1) / block * block;
        check<io_error>(padded <= end - data_offset, where,
                        ": the archive ends inside the padding after the member's data (truncated)");
        offset = data_offset + padded;
    }
    return members;
}

} // namespace detail::tar

/// The regular files of the tar archive `archive`, in archive order (see the header comment).
inline std::vector<tar_member> list_tar(const std::filesystem::path& archive) {
    const detail::tar::file source(archive, "list_tar");
    return detail::tar::list(source, archive.string());
}

/// The regular files of a tar archive held in memory; `name` appears in errors.
inline std::vector<tar_member> list_tar(std::span<const std::uint8_t> archive, std::string_view name = "<memory>") {
    return detail::tar::list(detail::tar::memory(archive), std::string(name));
}

/// The data of `member` of the archive `archive` (io_error if the file no longer holds it).
inline std::vector<std::uint8_t> read_tar_member(const std::filesystem::path& archive, const tar_member& member) {
    const detail::tar::file source(archive, "read_tar_member");
    detail::check<io_error>(member.data_offset <= source.size() && member.size <= source.size() - member.data_offset,
                            "tar \"", archive.string(), "\": member \"", member.path, "\" at offset ", member.data_offset,
                            " lies past the end of the file");
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(member.size));
    source.read(member.data_offset, bytes.data(), member.size);
    return bytes;
}

} // namespace clip
