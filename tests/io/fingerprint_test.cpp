// Tests for clip/io/fingerprint.hpp: equal content, equal fingerprint; any change, another one;
// chunked hashing equals one pass of zlib over the whole file.
#include "../support.hpp"

#include <zlib.h>

#include <cstdio>
#include <random>

namespace io_fingerprint_test {

using clip::test::contains;
using clip::test::error_message;

namespace {

std::string one_pass(const std::string& bytes) {
    const auto* data = reinterpret_cast<const Bytef*>(bytes.data());
    const uLong crc = crc32_z(crc32(0L, Z_NULL, 0), data, bytes.size());
    const uLong adler = adler32_z(adler32(0L, Z_NULL, 0), data, bytes.size());
    char text[64];
    std::snprintf(text, sizeof text, "%08lx-%08lx-%zu", crc, adler, bytes.size());
    return text;
}

} // namespace

TEST_CASE("fingerprints follow the content") {
    clip::test::temp_dir tmp;
    std::mt19937 rng(5);
    std::string bytes(1000, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    clip::test::write_file(tmp / "a", bytes);
    clip::test::write_file(tmp / "b", bytes);
    CHECK(clip::file_fingerprint(tmp / "a") == clip::file_fingerprint(tmp / "b"));
    CHECK(clip::file_fingerprint(tmp / "a") == one_pass(bytes));
    bytes[500] ^= 1;
    clip::test::write_file(tmp / "b", bytes);
    CHECK(clip::file_fingerprint(tmp / "a") != clip::file_fingerprint(tmp / "b"));
    clip::test::write_file(tmp / "empty", "");
    CHECK(clip::file_fingerprint(tmp / "empty") == "00000000-00000001-0");
    CHECK(contains(error_message([&] { (void)clip::file_fingerprint(tmp / "missing"); }), "missing"));
    CHECK_THROWS_AS((void)clip::file_fingerprint(tmp / "missing"), clip::io_error);
}

TEST_CASE("files larger than one chunk hash as in one pass") {
    clip::test::temp_dir tmp;
    std::string bytes((std::size_t{1} << 26) * 2 + 12345, '\0');
    std::mt19937 rng(9);
    for (std::size_t i = 0; i < bytes.size(); i += 97) bytes[i] = static_cast<char>(rng());
    clip::test::write_file(tmp / "big", bytes);
    for (int threads : {1, 2}) {
        clip::set_num_threads(threads);
        CHECK(clip::file_fingerprint(tmp / "big") == one_pass(bytes));
    }
}

} // namespace io_fingerprint_test
