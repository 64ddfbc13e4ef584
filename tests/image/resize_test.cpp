// Tests for clip/image/resize.hpp and clip/image/image.hpp: small resizes whose expected bytes
// come from Pillow 9.4 (`Image.resize`, `Image.convert`, recorded once with Debian's python3-pil
// 9.4.0), the identities and invariants of the resampler (same size, constant images, the
// vertical-only and horizontal-only paths, LA = RGBA on grey), Pillow's mode rules (P and "1"
// always nearest, RGBA and LA premultiplied), convert("RGB") of every mode, and cropping.
#include "encode.hpp"

namespace image_resize_test {

namespace {

using clip::image;
using clip::image_mode;
using clip::resample;
using clip::test::bytes_of;
using clip::test::make_image;

std::vector<std::uint8_t> constant_bytes(std::int64_t n, std::vector<std::uint8_t> pixel) {
    std::vector<std::uint8_t> out;
    for (std::int64_t i = 0; i < n; ++i) out.insert(out.end(), pixel.begin(), pixel.end());
    return out;
}

} // namespace

TEST_CASE("small resizes give Pillow 9.4's bytes") {
    const image row = make_image(5, 1, image_mode::l, {0, 50, 100, 200, 255});
    CHECK(bytes_of(clip::resize(row, 3, 1)) == std::vector<std::uint8_t>{16, 110, 237});             // antialiased down
    CHECK(bytes_of(clip::resize(row, 8, 1)) == std::vector<std::uint8_t>{0, 17, 53, 81, 129, 195, 238, 255}); // up
    CHECK(bytes_of(clip::resize(row, 2, 1, resample::bilinear)) == std::vector<std::uint8_t>{52, 188});
    // Width unchanged: only the vertical pass runs, with the same weights.
    const image column = make_image(1, 5, image_mode::l, {0, 50, 100, 200, 255});
    CHECK(bytes_of(clip::resize(column, 1, 3)) == std::vector<std::uint8_t>{16, 110, 237});

    std::vector<std::uint8_t> grid;
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 6; ++x) grid.push_back(static_cast<std::uint8_t>((x * 37 + y * 91) % 256));
    const image g = make_image(6, 4, image_mode::l, grid);
    CHECK(bytes_of(clip::resize(g, 4, 3)) ==
          std::vector<std::uint8_t>{28, 90, 158, 155, 163, 118, 130, 93, 78, 74, 103, 169});
    CHECK(bytes_of(clip::resize(g, 9, 7)) ==
          std::vector<std::uint8_t>{0,   8,   36,  61,  86,  110, 134, 174, 201, 23,  38,  68,  101, 127, 152, 181,
                                    158, 128, 82,  99,  128, 159, 185, 212, 249, 128, 11,  150, 176, 178, 94,  93,
                                    127, 159, 102, 43,  175, 207, 190, 24,  2,   42,  67,  99,  120, 68,  90,  103,
                                    62,  71,  100, 125, 158, 181, 2,   18,  49,  90,  118, 141, 166, 194, 211});
}

TEST_CASE("RGBA and LA are resized premultiplied, as Pillow does") {
    // Opaque red, transparent green, half-transparent blue, faint orange.
    const image rgba = make_image(4, 1, image_mode::rgba, {255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 255, 128, 200, 100, 50, 30});
    CHECK(bytes_of(clip::resize(rgba, 3, 1)) ==
          std::vector<std::uint8_t>{255, 0, 0, 185, 0, 0, 255, 58, 74, 37, 176, 62}); // no green leaks in
    const image la = make_image(4, 1, image_mode::la, {255, 255, 0, 0, 10, 128, 200, 30});
    CHECK(bytes_of(clip::resize(la, 3, 1)) == std::vector<std::uint8_t>{255, 185, 0, 58, 82, 62});

    // A constant RGBA image comes back as the premultiply round trip of its colour: with alpha 3,
    // (100, 37, 250) → premultiplied (1, 0, 3) → (85, 0, 255), as Pillow gives.
    for (const auto& [alpha, colour] : {std::pair{3, std::vector<std::uint8_t>{85, 0, 255}},
                                        std::pair{200, std::vector<std::uint8_t>{99, 36, 249}},
                                        std::pair{255, std::vector<std::uint8_t>{100, 37, 250}}}) {
        const image constant = make_image(9, 7, image_mode::rgba,
                                          constant_bytes(63, {100, 37, 250, static_cast<std::uint8_t>(alpha)}));
        for (auto [w, h] : {std::pair{4, 5}, std::pair{13, 11}}) {
            INFO("alpha " << alpha << ", " << w << " x " << h);
            std::vector<std::uint8_t> pixel = colour;
            pixel.push_back(static_cast<std::uint8_t>(alpha));
            CHECK(bytes_of(clip::resize(constant, w, h)) == constant_bytes(w * h, pixel));
        }
    }

    // LA on a grey picture = RGBA with the grey in all three channels.
    std::vector<std::uint8_t> la_bytes, rgba_bytes;
    for (int i = 0; i < 31 * 23; ++i) {
        const auto grey = static_cast<std::uint8_t>((i * 97) % 256), alpha = static_cast<std::uint8_t>((i * 13) % 256);
        la_bytes.insert(la_bytes.end(), {grey, alpha});
        rgba_bytes.insert(rgba_bytes.end(), {grey, grey, grey, alpha});
    }
    const std::vector<std::uint8_t> from_la = bytes_of(clip::resize(make_image(31, 23, image_mode::la, la_bytes), 17, 40));
    const std::vector<std::uint8_t> from_rgba = bytes_of(clip::resize(make_image(31, 23, image_mode::rgba, rgba_bytes), 17, 40));
    for (std::size_t i = 0; i < from_la.size() / 2; ++i) {
        REQUIRE(from_la[2 * i] == from_rgba[4 * i]);
        REQUIRE(from_la[2 * i] == from_rgba[4 * i + 2]);
        REQUIRE(from_la[2 * i + 1] == from_rgba[4 * i + 3]);
    }
}

TEST_CASE("P and 1 images are always resized with nearest neighbour, and the palette follows") {
    image p = make_image(7, 1, image_mode::p, {0, 1, 2, 3, 4, 5, 6});
    clip::image_palette palette = clip::grey_ramp_palette();
    palette[3] = 200; // entry 1 is (200, 1, 1)
    p.set_palette(palette);
    const image down = clip::resize(p, 3, 1);
    CHECK(down.mode() == image_mode::p);
    CHECK(bytes_of(down) == std::vector<std::uint8_t>{1, 3, 5}); // Pillow 9.4
    CHECK(bytes_of(clip::resize(p, 10, 1)) == std::vector<std::uint8_t>{0, 1, 1, 2, 3, 3, 4, 5, 5, 6});
    CHECK(down.palette() == palette);
    CHECK(bytes_of(clip::resize(p, 10, 3, resample::bicubic)) == bytes_of(clip::resize(p, 10, 3, resample::nearest)));

    const image bits = make_image(5, 2, image_mode::bilevel, {0, 255, 255, 0, 255, 255, 0, 0, 255, 0});
    const image bigger = clip::resize(bits, 9, 5);
    CHECK(bigger.mode() == image_mode::bilevel);
    for (std::uint8_t v : bytes_of(bigger)) CHECK((v == 0 || v == 255));
}

TEST_CASE("resize identities and invariants") {
    std::vector<std::uint8_t> noise;
    for (int i = 0; i < 40 * 30 * 3; ++i) noise.push_back(static_cast<std::uint8_t>((i * 2654435761u) >> 24));
    const image rgb = make_image(40, 30, image_mode::rgb, noise);

    // Same size: Pillow returns a copy; here the very same pixels.
    const image same = clip::resize(rgb, 40, 30);
    CHECK(same.data() == rgb.data());

    // Every mode: a constant image stays constant, up and down, with both filters.
    for (image_mode mode : {image_mode::l, image_mode::la, image_mode::rgb, image_mode::cmyk, image_mode::p}) {
        std::vector<std::uint8_t> pixel;
        for (int c = 0; c < clip::channels(mode); ++c) pixel.push_back(static_cast<std::uint8_t>(30 + 60 * c));
        if (mode == image_mode::la) pixel.back() = 255;
        const image constant = make_image(23, 19, mode, constant_bytes(23 * 19, pixel));
        for (auto [w, h] : {std::pair{7, 5}, std::pair{50, 61}, std::pair{23, 4}, std::pair{3, 19}, std::pair{1, 1}})
            for (resample filter : {resample::bicubic, resample::bilinear}) {
                INFO(clip::mode_name(mode) << " to " << w << " x " << h);
                const image out = clip::resize(constant, w, h, filter);
                CHECK(out.mode() == mode);
                CHECK(out.width() == w);
                CHECK(out.height() == h);
                CHECK(bytes_of(out) == constant_bytes(w * h, pixel));
            }
    }

    // One pass only when one side keeps its size: resizing height then width in two calls
    // rounds in the same places as one call (Pillow's passes are the same two).
    const image both = clip::resize(rgb, 17, 11);
    const image in_two_calls = clip::resize(clip::resize(rgb, 17, 30), 17, 11);
    CHECK(bytes_of(both) == bytes_of(in_two_calls));

    // The input is never written to (premultiplication works on a copy).
    std::vector<std::uint8_t> rgba_bytes(20 * 20 * 4);
    for (std::size_t i = 0; i < rgba_bytes.size(); ++i) rgba_bytes[i] = static_cast<std::uint8_t>(i * 7);
    const image rgba = make_image(20, 20, image_mode::rgba, rgba_bytes);
    (void)clip::resize(rgba, 9, 9);
    CHECK(bytes_of(rgba) == rgba_bytes);

    CHECK_THROWS_AS((void)clip::resize(rgb, 0, 5), clip::shape_error);
    CHECK_THROWS_AS((void)clip::resize(image(), 5, 5), clip::shape_error);
}

TEST_CASE("convert_to_rgb is Pillow's convert(\"RGB\") for every mode") {
    CHECK(bytes_of(make_image(2, 1, image_mode::l, {7, 200}).convert_to_rgb()) == std::vector<std::uint8_t>{7, 7, 7, 200, 200, 200});
    CHECK(bytes_of(make_image(2, 1, image_mode::bilevel, {0, 255}).convert_to_rgb()) ==
          std::vector<std::uint8_t>{0, 0, 0, 255, 255, 255});
    // Alpha is dropped, not composited: a transparent pixel keeps its colour.
    CHECK(bytes_of(make_image(1, 1, image_mode::la, {90, 0}).convert_to_rgb()) == std::vector<std::uint8_t>{90, 90, 90});
    CHECK(bytes_of(make_image(1, 1, image_mode::rgba, {1, 2, 3, 0}).convert_to_rgb()) == std::vector<std::uint8_t>{1, 2, 3});
    // Pillow 9.4's cmyk2rgb on (0,0,0,0), (255,0,0,0), (10,200,30,40), (255,255,255,255), (100,100,100,100).
    const image cmyk = make_image(5, 1, image_mode::cmyk,
                                  {0, 0, 0, 0, 255, 0, 0, 0, 10, 200, 30, 40, 255, 255, 255, 255, 100, 100, 100, 100});
    CHECK(bytes_of(cmyk.convert_to_rgb()) ==
          std::vector<std::uint8_t>{255, 255, 255, 0, 255, 255, 207, 46, 190, 0, 0, 0, 94, 94, 94});
    image p = make_image(3, 1, image_mode::p, {0, 1, 250});
    clip::image_palette palette = clip::grey_ramp_palette();
    palette[0] = 10, palette[1] = 20, palette[2] = 30;
    p.set_palette(palette);
    CHECK(bytes_of(p.convert_to_rgb()) == std::vector<std::uint8_t>{10, 20, 30, 1, 1, 1, 250, 250, 250});
    const image rgb = make_image(1, 1, image_mode::rgb, {4, 5, 6});
    CHECK(rgb.convert_to_rgb().data() == rgb.data());
}

TEST_CASE("crop is Pillow's Image.crop: zeros outside the image") {
    const image l = make_image(3, 2, image_mode::l, {1, 2, 3, 4, 5, 6});
    CHECK(bytes_of(l.crop(1, 0, 2, 2)) == std::vector<std::uint8_t>{2, 3, 5, 6});
    CHECK(bytes_of(l.crop(-1, -1, 5, 3)) == std::vector<std::uint8_t>{0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 4, 5, 6, 0});
    CHECK(bytes_of(l.crop(10, 10, 2, 1)) == std::vector<std::uint8_t>{0, 0});
    CHECK_THROWS_AS((void)image::from_pixels(clip::tensor::zeros({2, 2, 3}, clip::dtype::u8), image_mode::rgba),
                    clip::shape_error);
    CHECK_THROWS_AS((void)image::from_pixels(clip::tensor::zeros({2, 2, 3}), image_mode::rgb), clip::dtype_error);
}

} // namespace image_resize_test
