// Tests for clip/image/encode.hpp: L, LA, RGB and RGBA images of many sizes survive encode_png →
// decode_image and write_png → read_image byte for byte, with the mode kept; the header says 8 bits
// and the right colour type; modes PNG cannot hold and empty images are refused; libpng's own
// errors come back as io_errors; write_png replaces a file atomically and, when anything fails
// (missing or read-only directory, a directory in the way, a write failing half-way), names the
// file and leaves the old content and no temporary behind.
#include "encode.hpp"

#include <clip/image/encode.hpp>

#include <array>
#include <csignal>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

namespace image_encode_test {

namespace {

namespace fs = std::filesystem;
using clip::image;
using clip::image_mode;
using clip::test::bytes_of;
using clip::test::contains;
using clip::test::error_message;

constexpr std::array<image_mode, 4> writable_modes = {image_mode::l, image_mode::la, image_mode::rgb, image_mode::rgba};

/// An image whose bytes cover every value and differ between neighbours (and, with `noise`, do
/// not compress, for tests that need a large file).
image pattern_image(std::int64_t width, std::int64_t height, image_mode mode, bool noise = false) {
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(width * height * clip::channels(mode)));
    std::uint32_t state = 12345;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        state = state * 1664525u + 1013904223u;
        bytes[i] = noise ? static_cast<std::uint8_t>(state >> 24) : static_cast<std::uint8_t>(i * 37 + i / 7);
    }
    return clip::test::make_image(width, height, mode, bytes);
}

std::uint32_t big_endian_u32(const std::vector<std::uint8_t>& b, std::size_t at) {
    return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) | (std::uint32_t{b[at + 2]} << 8) | b[at + 3];
}

} // namespace

TEST_CASE("encode_png and write_png round-trip every writable mode and size byte for byte") {
    const clip::test::image_temp_dir dir;
    const std::array<std::array<std::int64_t, 2>, 7> sizes = {{{1, 1}, {1, 7}, {7, 1}, {3, 5}, {17, 13}, {31, 2}, {64, 33}}};
    for (const image_mode mode : writable_modes)
        for (const auto& [width, height] : sizes) {
            CAPTURE(clip::mode_name(mode));
            CAPTURE(width);
            CAPTURE(height);
            const image original = pattern_image(width, height, mode);
            const std::vector<std::uint8_t> png = clip::encode_png(original);
            REQUIRE(clip::detect_image_format(png) == clip::image_format::png);

            const image decoded = clip::decode_image(png);
            CHECK(decoded.mode() == mode);
            CHECK(decoded.width() == width);
            CHECK(decoded.height() == height);
            CHECK(bytes_of(decoded) == bytes_of(original));

            const fs::path path = dir / ("image-" + std::string(clip::mode_name(mode)) + ".png");
            clip::write_png(path, original);
            CHECK(clip::test::file_bytes(path) == png); // the file is exactly encode_png's bytes
            const image read = clip::read_image(path);
            CHECK(read.mode() == mode);
            CHECK(bytes_of(read) == bytes_of(original));
        }
    CHECK(dir.listing() == std::set<std::string>{"image-L.png", "image-LA.png", "image-RGB.png", "image-RGBA.png"});
}

TEST_CASE("the PNG header says 8 bits, the mode's colour type and no interlacing") {
    const std::array<std::pair<image_mode, int>, 4> expected = {
        {{image_mode::l, 0}, {image_mode::la, 4}, {image_mode::rgb, 2}, {image_mode::rgba, 6}}};
    for (const auto& [mode, colour_type] : expected) {
        CAPTURE(clip::mode_name(mode));
        const std::vector<std::uint8_t> png = clip::encode_png(pattern_image(300, 2, mode));
        REQUIRE(png.size() > 33);
        CHECK(std::string(png.begin() + 12, png.begin() + 16) == "IHDR"); // the first chunk
        CHECK(big_endian_u32(png, 16) == 300);
        CHECK(big_endian_u32(png, 20) == 2);
        CHECK(png[24] == 8);           // bit depth
        CHECK(png[25] == colour_type); // PNG colour type
        CHECK(png[28] == 0);           // interlace method: none
    }
}

TEST_CASE("an image that shares a larger tensor's memory, or was cropped, encodes its own pixels") {
    const image big = pattern_image(40, 30, image_mode::rgb);
    const image cropped = big.crop(5, 7, 11, 9);
    CHECK(bytes_of(clip::decode_image(clip::encode_png(cropped))) == bytes_of(cropped));
    const image shared = image::from_pixels(big.pixels(), image_mode::rgb);
    CHECK(clip::encode_png(shared) == clip::encode_png(big));
}

TEST_CASE("modes PNG cannot hold, empty images and libpng's limits give io_errors") {
    for (const image_mode mode : {image_mode::bilevel, image_mode::p, image_mode::cmyk}) {
        CAPTURE(clip::mode_name(mode));
        const image img(4, 3, mode);
        CHECK_THROWS_AS(clip::encode_png(img), clip::io_error);
        const std::string message = error_message([&] { clip::encode_png(img); });
        CHECK(contains(message, "encode_png"));
        CHECK(contains(message, "mode " + std::string(clip::mode_name(mode))));
        CHECK(contains(message, "convert_to_rgb()"));
        // convert_to_rgb() makes it writable.
        CHECK(clip::decode_image(clip::encode_png(img.convert_to_rgb())).mode() == image_mode::rgb);
    }
    CHECK(contains(error_message([] { clip::encode_png(image()); }), "empty image (0 x 0)"));
    CHECK(contains(error_message([] { clip::encode_png(image(0, 5, image_mode::rgb)); }), "empty image (0 x 5)"));
    // libpng refuses rows wider than its default user limit of 1,000,000 pixels; its error
    // callback longjmps out of png_set_IHDR, and the failure arrives as an io_error.
    const image too_wide(1'000'001, 1, image_mode::l);
    CHECK_THROWS_AS(clip::encode_png(too_wide), clip::io_error);
    const std::string message = error_message([&] { clip::encode_png(too_wide); });
    CHECK(contains(message, "encode_png: libpng failed: "));
    CHECK(contains(message, "Image width exceeds user limit"));
}

TEST_CASE("write_png refuses what it cannot encode before touching the file") {
    const clip::test::image_temp_dir dir;
    const fs::path path = dir.write("out.png", {'o', 'l', 'd'});
    const std::string message = error_message([&] { clip::write_png(path, image(2, 2, image_mode::cmyk)); });
    CHECK(contains(message, "write_png \"" + path.string() + "\": cannot write a mode CMYK image"));
    CHECK_THROWS_AS(clip::write_png(path, image()), clip::io_error);
    CHECK(clip::test::file_bytes(path) == std::vector<std::uint8_t>{'o', 'l', 'd'});
    CHECK(dir.listing() == std::set<std::string>{"out.png"});
}

TEST_CASE("write_png replaces an existing file whole") {
    const clip::test::image_temp_dir dir;
    const fs::path path = dir.write("out.png", std::vector<std::uint8_t>(100000, 'x'));
    const image img = pattern_image(5, 4, image_mode::la);
    clip::write_png(path, img);
    CHECK(clip::test::file_bytes(path) == clip::encode_png(img));
    CHECK(dir.listing() == std::set<std::string>{"out.png"});
}

TEST_CASE("write_png failures name the file and leave no partial file behind") {
    const clip::test::image_temp_dir dir;
    const image img = pattern_image(200, 200, image_mode::rgb, true); // ~120 KB that do not compress
    const std::vector<std::uint8_t> previous = {'o', 'l', 'd'};

    SUBCASE("into a directory that does not exist") {
        const fs::path missing = dir / "no-such-dir" / "out.png";
        CHECK_THROWS_AS(clip::write_png(missing, img), clip::io_error);
        const std::string message = error_message([&] { clip::write_png(missing, img); });
        CHECK(contains(message, "write_png \"" + missing.string() + "\""));
        CHECK(contains(message, "No such file or directory"));
        CHECK(dir.listing().empty());
    }
    SUBCASE("in a read-only directory") {
        const fs::path path = dir.write("out.png", previous);
        fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
        // root (and CAP_DAC_OVERRIDE) ignores the permission bits: probe before relying on them.
        if (::access(dir.path().c_str(), W_OK) == 0) {
            MESSAGE("skipped: running with permission to write into a read-only directory (root?)");
        } else {
            const std::string message = error_message([&] { clip::write_png(path, img); });
            CHECK(contains(message, "write_png \"" + path.string() + "\""));
            CHECK(contains(message, "cannot create a temporary file"));
            CHECK(contains(message, "Permission denied"));
            CHECK(clip::test::file_bytes(path) == previous);
            CHECK(dir.listing() == std::set<std::string>{"out.png"});
        }
        fs::permissions(dir.path(), fs::perms::owner_all, fs::perm_options::replace);
    }
    SUBCASE("over a directory") {
        const fs::path path = dir / "out.png";
        fs::create_directory(path);
        const std::string message = error_message([&] { clip::write_png(path, img); });
        CHECK(contains(message, "write_png \"" + path.string() + "\""));
        CHECK(contains(message, "cannot rename"));
        CHECK(fs::is_directory(path));
        CHECK(dir.listing() == std::set<std::string>{"out.png"});
    }
    SUBCASE("a write that fails half-way (file size limit)") {
        // RLIMIT_FSIZE makes write() fail with EFBIG once the temporary passes 64 KiB, even for
        // root: a disk-full failure in the middle of the PNG, on demand.
        const fs::path path = dir.write("out.png", previous);
        REQUIRE(clip::encode_png(img).size() > 64 * 1024);
        rlimit saved{};
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
        const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit small = saved;
        small.rlim_cur = 64 * 1024;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
        const std::string message = error_message([&] { clip::write_png(path, img); });
        ::setrlimit(RLIMIT_FSIZE, &saved);
        std::signal(SIGXFSZ, previous_handler);
        CHECK(contains(message, "write_png \"" + path.string() + "\""));
        CHECK(contains(message, "File too large"));
        CHECK(clip::test::file_bytes(path) == previous);
        CHECK(dir.listing() == std::set<std::string>{"out.png"});
    }
}

TEST_CASE("encoding is reentrant: many threads encoding at once agree with one") {
    std::vector<image> images;
    std::vector<std::vector<std::uint8_t>> expected;
    for (int i = 0; i < 8; ++i) {
        images.push_back(pattern_image(37 + i, 29, writable_modes[static_cast<std::size_t>(i) % 4]));
        expected.push_back(clip::encode_png(images.back()));
    }
    std::vector<std::vector<std::uint8_t>> got(images.size());
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < images.size(); ++i)
        threads.emplace_back([&, i] {
            for (int repeat = 0; repeat < 5; ++repeat) got[i] = clip::encode_png(images[i]);
        });
    for (std::thread& thread : threads) thread.join();
    CHECK(got == expected);
}

} // namespace image_encode_test
