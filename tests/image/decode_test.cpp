// Tests for clip/image/decode.hpp: the JPEG fixture decoded exactly as Pillow/libjpeg-turbo does,
// memory and file decoding agreeing, synthetic PNGs of every colour type and bit depth (plain,
// interlaced, with tRNS) giving Pillow's mode and pixels, synthetic grey/RGB/CMYK JPEGs, and every
// kind of bad input (truncated at many points, corrupted, garbage, other formats, missing files,
// oversized headers) giving a clip::io_error that names the file, never a crash.
#include "encode.hpp"

#include <array>
#include <random>

namespace image_decode_test {

namespace {

namespace fs = std::filesystem;
using clip::image;
using clip::image_mode;
using clip::test::contains;
using clip::test::error_message;

const std::array<std::string, 4> fixture_images = {"chelsea_cat.png", "rocket.jpg", "camera_gray_small.png",
                                                   "astronaut_rgba_portrait.png"};

/// Sample (x, y, c) of the synthetic pattern, `bits` wide: a gradient in x and y, shifted per
/// channel, so that every value and every neighbour relation occurs.
std::uint32_t pattern(int x, int y, int c, int bits) {
    const std::uint32_t v = static_cast<std::uint32_t>(x * 37 + y * 11 + c * 71) * (bits == 16 ? 4099u : 1u) +
                            static_cast<std::uint32_t>(bits == 16 ? y * 257 : 0);
    return v & ((1u << bits) - 1u);
}

/// The PNG spec of the pattern, and the 8-bit bytes Pillow decodes it to.
struct synthetic_png {
    clip::test::png_spec spec;
    image_mode mode;
    std::vector<std::uint8_t> expected; // [H, W, channels(mode)]
    std::vector<std::uint8_t> palette;  // the expected 256-entry palette for P
};

synthetic_png make_png(int color_type, int bit_depth, bool interlaced, bool with_transparency) {
    synthetic_png out;
    auto& s = out.spec;
    s.width = 23;
    s.height = 17;
    s.bit_depth = bit_depth;
    s.color_type = color_type;
    s.interlaced = interlaced;
    const int c = clip::test::png_channels(color_type);
    for (int y = 0; y < s.height; ++y)
        for (int x = 0; x < s.width; ++x)
            for (int ch = 0; ch < c; ++ch) {
                const std::uint32_t v = pattern(x, y, ch, bit_depth);
                if (bit_depth == 16) {
                    s.samples.push_back(static_cast<std::uint8_t>(v >> 8));
                    s.samples.push_back(static_cast<std::uint8_t>(v & 0xff));
                } else {
                    s.samples.push_back(static_cast<std::uint8_t>(v));
                }
            }
    // What Pillow gives: 16-bit samples keep the high byte; grey of 1, 2, 4 bits scales to 0..255.
    auto eight_bit = [&](std::uint32_t v) -> std::uint8_t {
        if (bit_depth == 16) return static_cast<std::uint8_t>(v >> 8);
        if (color_type == PNG_COLOR_TYPE_PALETTE) return static_cast<std::uint8_t>(v);
        return static_cast<std::uint8_t>(v * (255u / ((1u << bit_depth) - 1u)));
    };
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: out.mode = bit_depth == 1 ? image_mode::bilevel : image_mode::l; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: out.mode = bit_depth == 16 ? image_mode::rgba : image_mode::la; break;
    case PNG_COLOR_TYPE_RGB: out.mode = image_mode::rgb; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: out.mode = image_mode::rgba; break;
    default: out.mode = image_mode::p; break;
    }
    for (int y = 0; y < s.height; ++y)
        for (int x = 0; x < s.width; ++x) {
            if (color_type == PNG_COLOR_TYPE_GRAY_ALPHA && bit_depth == 16) { // Pillow: "LA;16B" → RGBA
                const std::uint8_t grey = eight_bit(pattern(x, y, 0, 16)), alpha = eight_bit(pattern(x, y, 1, 16));
                out.expected.insert(out.expected.end(), {grey, grey, grey, alpha});
                continue;
            }
            for (int ch = 0; ch < c; ++ch) out.expected.push_back(eight_bit(pattern(x, y, ch, bit_depth)));
        }
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        // Fewer entries than the indices reach (for 8 bits): the rest must be Pillow's grey ramp.
        const int entries = std::min(1 << bit_depth, 40);
        out.palette = std::vector<std::uint8_t>(256 * 3);
        for (int i = 0; i < 256; ++i)
            for (int ch = 0; ch < 3; ++ch)
                out.palette[static_cast<std::size_t>(3 * i + ch)] =
                    i < entries ? static_cast<std::uint8_t>((i * 53 + ch * 101 + 7) & 0xff) : static_cast<std::uint8_t>(i);
        s.palette.assign(out.palette.begin(), out.palette.begin() + 3 * entries);
    }
    if (with_transparency) {
        if (color_type == PNG_COLOR_TYPE_PALETTE) s.transparency = {0, 128, 255};
        if (color_type == PNG_COLOR_TYPE_GRAY) s.transparency = {0, static_cast<std::uint8_t>(bit_depth == 16 ? 0 : 1)};
        if (color_type == PNG_COLOR_TYPE_RGB) s.transparency = {0, 0, 0, 37, 0, 71};
    }
    return out;
}

/// Replaces the bytes of a chunk's CRC (PNG) with their complement.
std::uint32_t crc32(const std::uint8_t* data, std::size_t n) {
    std::uint32_t crc = 0xffffffffu;
    for (std::size_t i = 0; i < n; ++i) {
        crc ^= data[i];
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return crc ^ 0xffffffffu;
}

void put_chunk(std::vector<std::uint8_t>& out, const char* type, const std::vector<std::uint8_t>& data) {
    auto put32 = [&](std::uint32_t v) {
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
    };
    put32(static_cast<std::uint32_t>(data.size()));
    const std::size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), data.begin(), data.end());
    put32(crc32(out.data() + start, out.size() - start));
}

/// A PNG whose header claims width × height but whose data is empty.
std::vector<std::uint8_t> png_header_only(std::uint32_t width, std::uint32_t height) {
    std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    std::vector<std::uint8_t> ihdr;
    for (std::uint32_t v : {width, height})
        for (int shift = 24; shift >= 0; shift -= 8) ihdr.push_back(static_cast<std::uint8_t>(v >> shift));
    ihdr.insert(ihdr.end(), {8, 0, 0, 0, 0}); // 8-bit grey
    put_chunk(out, "IHDR", ihdr);
    put_chunk(out, "IDAT", {});
    put_chunk(out, "IEND", {});
    return out;
}

/// Calls `f`; it must either succeed or throw clip::io_error whose message names `name`.
template <class F>
void check_fails_cleanly_or_decodes(F&& f, const std::string& name) {
    try {
        f();
    } catch (const clip::io_error& e) {
        INFO(e.what());
        CHECK(contains(e.what(), name));
    }
}

} // namespace

TEST_CASE("rocket.jpg decodes to Pillow's pixels exactly (islow IDCT, fancy upsampling)") {
    const auto dir = clip::test::reference_dir();
    if (!dir) {
        MESSAGE("skipped: no reference fixtures (../shared/reference or CLIP_REFERENCE_DIR)");
        return;
    }
    const image img = clip::read_image(*dir / "images" / "rocket.jpg");
    CHECK(img.mode() == image_mode::rgb);
    CHECK(img.width() == 640);
    CHECK(img.height() == 427);
    const clip::tensor expected = clip::safetensors::open(*dir / "preprocess_expected.safetensors").get("rocket.jpg:decoded");
    REQUIRE(expected.shape() == clip::shape{427, 640, 3});
    const auto difference = clip::test::compare_u8(img.pixels(), expected);
    MESSAGE("rocket.jpg decoded: " << difference.count << " of " << expected.numel() << " values differ, max "
                                   << difference.max);
    CHECK(difference.count == 0);
}

TEST_CASE("the fixtures decode with Pillow's modes and sizes, from a file and from memory alike") {
    const auto dir = clip::test::reference_dir();
    if (!dir) {
        MESSAGE("skipped: no reference fixtures");
        return;
    }
    struct expectation {
        std::string file;
        image_mode mode;
        std::int64_t width, height;
    };
    for (const auto& e : {expectation{"chelsea_cat.png", image_mode::rgb, 451, 300},
                          expectation{"rocket.jpg", image_mode::rgb, 640, 427},
                          expectation{"camera_gray_small.png", image_mode::l, 160, 125},
                          expectation{"astronaut_rgba_portrait.png", image_mode::rgba, 300, 398}}) {
        INFO(e.file);
        const fs::path path = *dir / "images" / e.file;
        const image from_file = clip::read_image(path);
        CHECK(from_file.mode() == e.mode);
        CHECK(from_file.width() == e.width);
        CHECK(from_file.height() == e.height);
        const std::vector<std::uint8_t> bytes = clip::test::file_bytes(path);
        const image from_memory = clip::decode_image(bytes);
        CHECK(from_memory.mode() == from_file.mode());
        CHECK(clip::test::compare_u8(from_memory.pixels(), from_file.pixels()).count == 0);
        CHECK(clip::detect_image_format(bytes) == (e.file.ends_with(".jpg") ? clip::image_format::jpeg : clip::image_format::png));
    }
}

TEST_CASE("synthetic PNGs of every colour type and bit depth decode to Pillow's mode and pixels") {
    struct kind {
        int color_type;
        std::vector<int> depths;
    };
    for (const kind& k : {kind{PNG_COLOR_TYPE_GRAY, {1, 2, 4, 8, 16}}, kind{PNG_COLOR_TYPE_RGB, {8, 16}},
                          kind{PNG_COLOR_TYPE_PALETTE, {1, 2, 4, 8}}, kind{PNG_COLOR_TYPE_GRAY_ALPHA, {8, 16}},
                          kind{PNG_COLOR_TYPE_RGB_ALPHA, {8, 16}}})
        for (int depth : k.depths)
            for (bool interlaced : {false, true})
                for (bool transparency : {false, true}) {
                    const synthetic_png png = make_png(k.color_type, depth, interlaced, transparency);
                    INFO("colour type " << k.color_type << ", " << depth << " bits, interlaced " << interlaced
                                        << ", tRNS " << transparency);
                    const image img = clip::decode_image(clip::test::encode_png(png.spec), "synthetic.png");
                    CHECK(img.mode() == png.mode);
                    CHECK(img.width() == png.spec.width);
                    CHECK(img.height() == png.spec.height);
                    CHECK(clip::test::bytes_of(img) == png.expected);
                    if (png.mode == image_mode::p) {
                        CHECK(std::equal(png.palette.begin(), png.palette.end(), img.palette().begin()));
                        // convert("RGB") looks every index up, including those past the file's palette.
                        const std::vector<std::uint8_t> rgb = clip::test::bytes_of(img.convert_to_rgb());
                        for (std::size_t i = 0; i < png.expected.size(); ++i)
                            for (std::size_t c = 0; c < 3; ++c)
                                REQUIRE(rgb[3 * i + c] == png.palette[3 * png.expected[i] + c]);
                    }
                }
}

TEST_CASE("synthetic JPEGs: grey stays L, colour is RGB, CMYK comes back inverted as Pillow's CMYK;I") {
    const int width = 48, height = 40;
    for (int components : {1, 3, 4}) {
        INFO(components << " components");
        std::vector<std::uint8_t> pixels;
        for (int y = 0; y < height; ++y)
            for (int x = 0; x < width; ++x)
                for (int c = 0; c < components; ++c) pixels.push_back(static_cast<std::uint8_t>(40 + x * 2 + y + c * 20));
        const image img = clip::decode_image(clip::test::encode_jpeg(pixels, width, height, components, 100), "synthetic.jpg");
        CHECK(img.mode() == (components == 1 ? image_mode::l : components == 3 ? image_mode::rgb : image_mode::cmyk));
        CHECK(img.width() == width);
        CHECK(img.height() == height);
        const std::vector<std::uint8_t> decoded = clip::test::bytes_of(img);
        REQUIRE(decoded.size() == pixels.size());
        int worst = 0;
        for (std::size_t i = 0; i < pixels.size(); ++i) {
            const int expected = components == 4 ? 255 - pixels[i] : pixels[i];
            worst = std::max(worst, std::abs(decoded[i] - expected));
        }
        CHECK(worst <= 3); // quality 100 on a smooth gradient: lossy by a level or two
    }
}

TEST_CASE("truncated JPEG and PNG files give an io_error naming the file, at every cut") {
    const auto dir = clip::test::reference_dir();
    if (!dir) {
        MESSAGE("skipped: no reference fixtures");
        return;
    }
    clip::test::image_temp_dir tmp;
    for (const std::string& name : fixture_images) {
        const std::vector<std::uint8_t> bytes = clip::test::file_bytes(*dir / "images" / name);
        const std::size_t n = bytes.size();
        // PNGs decode without their trailing chunks (IEND), as Pillow's do: cut before those.
        const std::size_t last = name.ends_with(".png") ? n - 40 : n - 1;
        for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{8},
                                std::size_t{30}, std::size_t{200}, n / 7, n / 3, n / 2, 2 * n / 3, 9 * n / 10, last}) {
            INFO(name << " cut to " << cut << " of " << n << " bytes");
            const std::vector<std::uint8_t> head(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
            const fs::path file = tmp.write("cut-" + name, head);
            const std::string from_file = error_message([&] { (void)clip::read_image(file); });
            CHECK(contains(from_file, file.string()));
            CHECK(contains(from_file, "read_image"));
            CHECK_THROWS_AS((void)clip::read_image(file), clip::io_error);
            const std::string from_memory = error_message([&] { (void)clip::decode_image(head, "in-memory " + name); });
            CHECK(contains(from_memory, "in-memory " + name));
        }
    }
}

TEST_CASE("corrupted bytes decode or give an io_error, never a crash") {
    const auto dir = clip::test::reference_dir();
    if (!dir) {
        MESSAGE("skipped: no reference fixtures");
        return;
    }
    std::mt19937 random(7);
    for (const std::string& name : fixture_images) {
        const std::vector<std::uint8_t> bytes = clip::test::file_bytes(*dir / "images" / name);
        for (int trial = 0; trial < 24; ++trial) {
            std::vector<std::uint8_t> broken = bytes;
            // A few random bytes anywhere (headers included), every trial at other places.
            for (int k = 0; k < 1 + trial % 4; ++k) {
                const std::size_t at = trial < 8 ? random() % std::min<std::size_t>(broken.size(), 600)
                                                 : random() % broken.size();
                broken[at] = static_cast<std::uint8_t>(random());
            }
            INFO(name << ", trial " << trial);
            check_fails_cleanly_or_decodes(
                [&] {
                    const image img = clip::decode_image(broken, name);
                    CHECK(img.width() > 0);
                },
                name);
        }
    }
}

TEST_CASE("garbage, other formats, empty, missing and oversized inputs give clear io_errors") {
    clip::test::image_temp_dir tmp;
    std::mt19937 random(3);
    std::vector<std::uint8_t> garbage(4096);
    for (auto& b : garbage) b = static_cast<std::uint8_t>(random());
    garbage[0] = 0x42; // not 0xff, 0x89
    CHECK(contains(error_message([&] { (void)clip::decode_image(garbage, "garbage.bin"); }), "not a JPEG or PNG"));

    // The right magic bytes followed by garbage.
    std::vector<std::uint8_t> fake_jpeg = garbage, fake_png = garbage;
    fake_jpeg[0] = 0xff, fake_jpeg[1] = 0xd8, fake_jpeg[2] = 0xff, fake_jpeg[3] = 0xe0;
    const std::uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    std::copy(signature, signature + 8, fake_png.begin());
    for (const auto& [bytes, name] : {std::pair{fake_jpeg, "fake.jpg"}, std::pair{fake_png, "fake.png"}}) {
        const fs::path file = tmp.write(name, bytes);
        const std::string message = error_message([&] { (void)clip::read_image(file); });
        INFO(message);
        CHECK(contains(message, file.string()));
        CHECK_THROWS_AS((void)clip::read_image(file), clip::io_error);
    }

    const std::string gif("GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14);
    const std::string gif_message =
        error_message([&] { (void)clip::read_image(tmp.write("x.gif", std::vector<std::uint8_t>(gif.begin(), gif.end()))); });
    CHECK(contains(gif_message, "unsupported image format GIF"));
    CHECK(contains(gif_message, "x.gif"));
    const std::string webp("RIFF\x10\x00\x00\x00WEBPVP8 ", 16);
    CHECK(contains(error_message([&] { (void)clip::decode_image(std::vector<std::uint8_t>(webp.begin(), webp.end()), "w"); }),
                   "WebP"));

    CHECK(contains(error_message([&] { (void)clip::read_image(tmp.write("empty.png", {})); }), "empty file"));
    const fs::path missing = tmp / "no-such-image.jpg";
    const std::string missing_message = error_message([&] { (void)clip::read_image(missing); });
    CHECK(contains(missing_message, "cannot open"));
    CHECK(contains(missing_message, missing.string()));
    CHECK(contains(error_message([&] { (void)clip::read_image(tmp / ""); }), "is a directory"));

    // Pillow's decompression-bomb limit, checked from the header before any pixel memory.
    const std::string big_png = error_message([&] { (void)clip::decode_image(png_header_only(20000, 20000), "big.png"); });
    CHECK(contains(big_png, "decompression-bomb"));
    CHECK(contains(big_png, "big.png"));
    std::vector<std::uint8_t> big_jpeg = clip::test::encode_jpeg(std::vector<std::uint8_t>(64, 128), 8, 8, 1);
    for (std::size_t i = 0; i + 8 < big_jpeg.size(); ++i)
        if (big_jpeg[i] == 0xff && big_jpeg[i + 1] == 0xc0) { // SOF0: length, precision, height, width
            big_jpeg[i + 5] = big_jpeg[i + 7] = 0xf0; // 61440 x 61440 (libjpeg's own limit is 65500)
            big_jpeg[i + 6] = big_jpeg[i + 8] = 0x00;
            break;
        }
    CHECK(contains(error_message([&] { (void)clip::decode_image(big_jpeg, "big.jpg"); }), "decompression-bomb"));
    const std::string tiny = error_message([&] { (void)clip::decode_image(png_header_only(0, 5), "zero.png"); });
    CHECK(contains(tiny, "zero.png"));
}

TEST_CASE("a PNG chunk declaring more bytes than the file holds fails at once, without allocating them") {
    // libpng allocates and zeroes a chunk's declared length before reading it: a 60-byte file
    // whose zTXt chunk claims 2 GB took seconds and 2 GB of memory to reject (found by fuzzing).
    std::vector<std::uint8_t> bytes = png_header_only(5, 9);
    bytes.resize(33); // the signature and IHDR
    bytes.insert(bytes.end(), {0x7b, 0x00, 0x00, 0x1e, 'z', 'T', 'X', 't', 'C', 'o', 'm', 'm', 'e', 'n', 't', 0, 0});
    const std::string message = error_message([&] { (void)clip::decode_image(bytes, "huge-chunk.png"); });
    CHECK(contains(message, "huge-chunk.png"));
    CHECK(contains(message, "declares 2063597598 bytes"));
    CHECK_THROWS_AS((void)clip::decode_image(bytes, "huge-chunk.png"), clip::io_error);
}

TEST_CASE("decoding is reentrant: many threads decoding at once agree with one") {
    const auto dir = clip::test::reference_dir();
    if (!dir) {
        MESSAGE("skipped: no reference fixtures");
        return;
    }
    std::vector<std::vector<std::uint8_t>> expected;
    for (const std::string& name : fixture_images) expected.push_back(clip::test::bytes_of(clip::read_image(*dir / "images" / name)));
    std::vector<int> mismatches(16, 0);
#pragma omp parallel for num_threads(2) schedule(dynamic, 1)
    for (int i = 0; i < 16; ++i) {
        const std::size_t which = static_cast<std::size_t>(i) % fixture_images.size();
        try {
            // Failures in between: one thread's failing decode must not disturb another's.
            if (i % 3 == 0) (void)clip::read_image(*dir / "images" / "missing.png");
        } catch (const clip::io_error&) {
        }
        mismatches[static_cast<std::size_t>(i)] =
            clip::test::bytes_of(clip::read_image(*dir / "images" / fixture_images[which])) != expected[which];
    }
    CHECK(std::count(mismatches.begin(), mismatches.end(), 1) == 0);
}

} // namespace image_decode_test
