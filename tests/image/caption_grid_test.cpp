// Tests for clip/image/caption_grid.hpp: the output size follows the documented formula; images
// land in their cells enlarged with nearest neighbour and converted to RGB; glyphs are drawn
// where the layout puts them, checked against shapes written out here independently of the font
// table; all 95 printable characters are distinct, space is blank, everything else is '?';
// captions wrap at spaces, split long words, honour newlines and end in "..." past max_lines;
// text, per-caption and background colours apply; bad arguments give clear errors.
#include "encode.hpp"

#include <clip/image/caption_grid.hpp>

#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace image_caption_grid_test {

namespace {

using clip::caption_grid_options;
using clip::image;
using clip::image_mode;
using clip::rgb_colour;
using clip::test::bytes_of;
using clip::test::contains;
using clip::test::error_message;
namespace font = clip::detail::caption_font;

constexpr rgb_colour white{255, 255, 255}, black{0, 0, 0};

rgb_colour at(const image& img, std::int64_t x, std::int64_t y) {
    REQUIRE(img.mode() == image_mode::rgb);
    REQUIRE((x >= 0 && x < img.width() && y >= 0 && y < img.height()));
    const std::uint8_t* p = img.row(y) + 3 * x;
    return {p[0], p[1], p[2]};
}

/// An RGB image filled with one colour.
image solid(std::int64_t width, std::int64_t height, rgb_colour colour) {
    image out(width, height, image_mode::rgb);
    for (std::int64_t y = 0; y < height; ++y)
        for (std::int64_t x = 0; x < width; ++x) {
            std::uint8_t* p = out.row(y) + 3 * x;
            p[0] = colour.red, p[1] = colour.green, p[2] = colour.blue;
        }
    return out;
}

/// The documented layout, computed here on its own (see the header comment).
struct layout {
    std::int64_t image_width, image_height, cell_width, cell_height, columns, rows, width, height;
};

layout expected_layout(const std::vector<image>& images, std::int64_t lines, const caption_grid_options& o) {
    layout l{};
    const std::int64_t s = o.scale, t = o.text_scale, n = static_cast<std::int64_t>(images.size());
    for (const image& img : images) {
        l.image_width = std::max(l.image_width, s * img.width());
        l.image_height = std::max(l.image_height, s * img.height());
    }
    l.cell_width = std::max(l.image_width, 5 * t);
    l.cell_height = l.image_height + (lines > 0 ? 3 * t + 10 * t * lines : 0);
    l.columns = std::min<std::int64_t>(o.columns, n);
    l.rows = (n + l.columns - 1) / l.columns;
    l.width = o.margin + l.columns * (l.cell_width + o.margin);
    l.height = o.margin + l.rows * (l.cell_height + o.margin);
    return l;
}

/// The glyphs of 'I', 'A' and 'g' as the header's font draws them, written out by hand.
const std::array<const char*, 8> glyph_I = {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.", "....."};
const std::array<const char*, 8> glyph_A = {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#", "....."};
const std::array<const char*, 8> glyph_g = {".....", ".....", ".####", "#...#", "#...#", ".####", "....#", ".###."};

/// Checks that the text_scale × text_scale blocks at (x0, y0) draw `art` in `ink` on `paper`,
/// including the blank column after the glyph.
void check_glyph(const image& img, std::int64_t x0, std::int64_t y0, std::int64_t t, const std::array<const char*, 8>& art,
                 rgb_colour ink, rgb_colour paper = white) {
    for (std::int64_t gy = 0; gy < 8; ++gy)
        for (std::int64_t gx = 0; gx < 6; ++gx) {
            const bool on = gx < 5 && art[static_cast<std::size_t>(gy)][gx] == '#';
            for (std::int64_t dy = 0; dy < t; ++dy)
                for (std::int64_t dx = 0; dx < t; ++dx) {
                    CAPTURE(gx);
                    CAPTURE(gy);
                    CHECK(at(img, x0 + gx * t + dx, y0 + gy * t + dy) == (on ? ink : paper));
                }
        }
}

/// The pixels of one cell's caption area (below the image), row by row.
std::vector<rgb_colour> caption_area(const image& img, const layout& l, std::int64_t margin, std::int64_t cell) {
    const std::int64_t x = margin + (cell % l.columns) * (l.cell_width + margin);
    const std::int64_t y = margin + (cell / l.columns) * (l.cell_height + margin);
    std::vector<rgb_colour> out;
    for (std::int64_t row = y + l.image_height; row < y + l.cell_height; ++row)
        for (std::int64_t col = x; col < x + l.cell_width; ++col) out.push_back(at(img, col, row));
    return out;
}

std::int64_t count(const std::vector<rgb_colour>& pixels, rgb_colour colour) {
    return std::count(pixels.begin(), pixels.end(), colour);
}

} // namespace

TEST_CASE("the output size follows the documented formula") {
    struct size_case {
        std::vector<image> images;
        std::vector<std::string> captions;
        caption_grid_options options;
        std::int64_t lines;
    };
    auto many = [](int n, std::int64_t w, std::int64_t h) {
        return std::vector<image>(static_cast<std::size_t>(n), solid(w, h, black));
    };
    caption_grid_options defaults;
    caption_grid_options wide;
    wide.columns = 10, wide.scale = 2, wide.margin = 0, wide.text_scale = 2;
    caption_grid_options tiny;
    tiny.scale = 1, tiny.margin = 1;
    caption_grid_options no_captions;
    no_captions.max_lines = 0;
    const std::vector<size_case> cases = {
        {many(1, 32, 32), {"cat"}, defaults, 1},
        {many(4, 32, 32), {"a", "b", "c", "d"}, defaults, 1},
        {many(5, 32, 32), {"a", "", "", "", ""}, defaults, 1},
        {many(9, 64, 48), std::vector<std::string>(9, ""), defaults, 0}, // no text: no caption band
        {many(3, 7, 5), {"x", "a photo of a dog on a sofa", "y"}, defaults, 2}, // 21 px: 3 chars a line
        {many(3, 13, 31), {"ab", "c", "de"}, wide, 1},                         // fewer images than columns
        {many(2, 1, 1), {"W", "long caption"}, tiny, 2},                        // cells one character wide
        {many(6, 32, 32), std::vector<std::string>(6, "a caption"), no_captions, 0},
        {{solid(10, 20, black), solid(30, 5, black), solid(3, 3, black)}, {"p", "q", "r"}, defaults, 1},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
        CAPTURE(i);
        const size_case& c = cases[i];
        const image grid = clip::caption_grid(c.images, c.captions, c.options);
        const layout l = expected_layout(c.images, c.lines, c.options);
        CHECK(grid.mode() == image_mode::rgb);
        CHECK(grid.width() == l.width);
        CHECK(grid.height() == l.height);
    }
    // The numbers for the demo's case, spelled out: 8 images of 32 × 32 at scale 3, 4 columns,
    // one line of caption: cells of 96 × (96 + 3 + 10), margins of 8.
    const image demo = clip::caption_grid(many(8, 32, 32), std::vector<std::string>(8, "cat"));
    CHECK(demo.width() == 8 + 4 * (96 + 8));
    CHECK(demo.height() == 8 + 2 * (109 + 8));
}

TEST_CASE("images are converted to RGB, enlarged with nearest neighbour and centred in their cells") {
    // A 3 × 2 L image, a 2 × 2 RGBA one (alpha dropped), a 4 × 1 P one (palette looked up).
    const image grey = clip::test::make_image(3, 2, image_mode::l, {0, 50, 100, 150, 200, 250});
    const image rgba = clip::test::make_image(2, 2, image_mode::rgba, {1, 2, 3, 0, 4, 5, 6, 9, 7, 8, 9, 99, 10, 11, 12, 255});
    image palette = clip::test::make_image(4, 1, image_mode::p, {0, 1, 2, 3});
    clip::image_palette entries = clip::grey_ramp_palette();
    for (std::size_t k = 0; k < 12; ++k) entries[k] = static_cast<std::uint8_t>(20 * k + 5);
    palette.set_palette(entries);
    const std::vector<image> images = {grey, rgba, palette};

    caption_grid_options options;
    options.columns = 2, options.scale = 3, options.margin = 5;
    options.background = {1, 2, 3};
    const image grid = clip::caption_grid(images, {"", "", ""}, options);
    const layout l = expected_layout(images, 0, options);
    REQUIRE(grid.width() == l.width);
    REQUIRE(grid.height() == l.height);
    CHECK(l.cell_width == 12);
    CHECK(l.image_height == 6);

    std::set<std::pair<std::int64_t, std::int64_t>> covered;
    for (std::size_t i = 0; i < images.size(); ++i) {
        CAPTURE(i);
        const image rgb = images[i].convert_to_rgb();
        const std::int64_t cell_x = options.margin + static_cast<std::int64_t>(i % 2) * (l.cell_width + options.margin);
        const std::int64_t cell_y = options.margin + static_cast<std::int64_t>(i / 2) * (l.cell_height + options.margin);
        const std::int64_t x0 = cell_x + (l.cell_width - 3 * rgb.width()) / 2;
        const std::int64_t y0 = cell_y + (l.image_height - 3 * rgb.height()) / 2;
        for (std::int64_t y = 0; y < 3 * rgb.height(); ++y)
            for (std::int64_t x = 0; x < 3 * rgb.width(); ++x) {
                const std::uint8_t* p = rgb.row(y / 3) + 3 * (x / 3);
                CHECK(at(grid, x0 + x, y0 + y) == rgb_colour{p[0], p[1], p[2]});
                covered.insert({x0 + x, y0 + y});
            }
    }
    // Everything else is background.
    for (std::int64_t y = 0; y < grid.height(); ++y)
        for (std::int64_t x = 0; x < grid.width(); ++x)
            if (!covered.count({x, y})) CHECK(at(grid, x, y) == options.background);
}

TEST_CASE("a caption's glyphs are drawn where the layout puts them") {
    for (const int t : {1, 2, 3}) {
        CAPTURE(t);
        caption_grid_options options;
        options.scale = 2, options.text_scale = t, options.margin = 4;
        const std::vector<image> images = {solid(16, 16, {90, 90, 90})};
        const image grid = clip::caption_grid(images, {"I"}, options);
        const layout l = expected_layout(images, 1, options);
        REQUIRE(grid.width() == l.width);
        REQUIRE(grid.height() == l.height);
        // One character is 5t wide, centred in the 32-pixel cell; the line starts 3t below the image.
        const std::int64_t x0 = options.margin + (32 - 5 * t) / 2, y0 = options.margin + 32 + 3 * t;
        check_glyph(grid, x0, y0, t, glyph_I, black);
        // Nothing else of the caption band is inked: the glyph has 11 pixels.
        CHECK(count(caption_area(grid, l, options.margin, 0), black) == 11 * t * t);
    }
    // Three characters side by side, each 6t apart, and a descender in the glyph's 8th row.
    caption_grid_options options;
    options.scale = 4, options.margin = 0;
    const std::vector<image> images = {solid(10, 10, white)};
    const image grid = clip::caption_grid(images, {"AgI"}, options);
    const std::int64_t x0 = (40 - (3 * 6 - 1)) / 2, y0 = 40 + 3;
    check_glyph(grid, x0, y0, 1, glyph_A, black);
    check_glyph(grid, x0 + 6, y0, 1, glyph_g, black);
    check_glyph(grid, x0 + 12, y0, 1, glyph_I, black);
}

TEST_CASE("every printable character has its own glyph inside the glyph box; space is blank") {
    // A caption of spaces alone is trimmed to nothing, so each character c is drawn as ".c.", three
    // characters (17 px) in a 17-pixel cell, and its box is columns 6..11 of the band (5 of
    // glyph, 1 of spacing) and rows 0..9 (8 of glyph, 2 of spacing).
    caption_grid_options options;
    options.scale = 1, options.margin = 0;
    const std::vector<image> images = {solid(17, 4, white)};
    std::set<std::string> renderings; // each box as '#' (ink) and '.' (paper)
    for (int code = 32; code <= 126; ++code) {
        const std::string text(1, static_cast<char>(code));
        CAPTURE(text);
        const image sheet = clip::caption_grid(images, {"." + text + "."}, options);
        REQUIRE(sheet.width() == 17);
        REQUIRE(sheet.height() == 4 + 3 + 10);
        std::string box;
        std::int64_t ink = 0;
        for (std::int64_t y = 4 + 3; y < sheet.height(); ++y)
            for (std::int64_t x = 6; x < 12; ++x) {
                box += at(sheet, x, y) == black ? '#' : '.';
                ink += at(sheet, x, y) == black;
                if (x == 11 || y >= 4 + 3 + 8) CHECK(at(sheet, x, y) == white); // the spacing
            }
        if (code == ' ') CHECK(ink == 0);
        else CHECK(ink > 0);
        CHECK(renderings.insert(box).second); // differs from every character before it
    }
    CHECK(renderings.size() == 95);
}

TEST_CASE("non-ASCII characters and control characters render as '?'") {
    CHECK(font::printable("caf\xc3\xa9") == "caf?");                      // é: one '?' per character
    CHECK(font::printable("\xe6\x97\xa5\xe6\x9c\xac") == "??");           // 日本
    CHECK(font::printable("a\xf0\x9f\x90\x88" "b") == "a?b");             // 🐈
    CHECK(font::printable("\xff\x80x") == "??x");                         // invalid bytes: one each
    CHECK(font::printable("bell\x07 del\x7f") == "bell? del?");
    CHECK(font::printable("tab\there") == "tab here");
    CHECK(font::printable(" \n  padded \t\n") == "padded");
    CHECK(font::printable("") == "");
    CHECK(&font::glyph('\xe9') == &font::glyph('?'));

    caption_grid_options options;
    options.scale = 8, options.margin = 2;
    const std::vector<image> images = {solid(8, 8, white)};
    CHECK(bytes_of(clip::caption_grid(images, {"\xc3\xa9t\xc3\xa9"}, options)) ==
          bytes_of(clip::caption_grid(images, {"?t?"}, options)));
}

TEST_CASE("captions wrap at spaces, split long words, break at newlines and end in '...' past max_lines") {
    using lines = std::vector<std::string>;
    CHECK(font::wrap("a photo of a cat", 8, 5) == lines{"a photo", "of a cat"});
    CHECK(font::wrap("a photo of a cat", 16, 5) == lines{"a photo of a cat"});
    CHECK(font::wrap("a photo of a cat", 15, 5) == lines{"a photo of a", "cat"});
    CHECK(font::wrap("  many   spaces  here ", 20, 5) == lines{"many spaces here"});
    CHECK(font::wrap("abcdefghij", 4, 5) == lines{"abcd", "efgh", "ij"});
    CHECK(font::wrap("a abcdefgh b", 4, 5) == lines{"a", "abcd", "efgh", "b"});
    CHECK(font::wrap("true: cat\npred: dog", 20, 5) == lines{"true: cat", "pred: dog"});
    CHECK(font::wrap("one\n\ntwo", 20, 5) == lines{"one", "", "two"});
    CHECK(font::wrap("a photo of a cat", 8, 1) == lines{"a pho..."});
    CHECK(font::wrap("one two three four", 9, 2) == lines{"one two", "three..."});
    CHECK(font::wrap("one two three four", 12, 2) == lines{"one two", "three four"});
    CHECK(font::wrap("abcdefghij", 2, 1) == lines{".."});
    CHECK(font::wrap("anything", 8, 0).empty());
    CHECK(font::wrap("", 8, 3).empty());
    CHECK(font::wrap(" \n ", 8, 3).empty());

    // In the grid: a 32 × 32 image at scale 1 takes (32 + 1) / 6 = 5 characters a line.
    caption_grid_options options;
    options.scale = 1, options.margin = 0, options.max_lines = 3;
    const std::vector<image> images = {solid(32, 32, white)};
    const image grid = clip::caption_grid(images, {"I II III"}, options); // "I II", "III"
    REQUIRE(grid.height() == 32 + 3 + 2 * 10);
    const std::int64_t y0 = 32 + 3;
    check_glyph(grid, (32 - 23) / 2, y0, 1, glyph_I, black);     // "I II": 4 characters, 23 px
    check_glyph(grid, (32 - 23) / 2 + 12, y0, 1, glyph_I, black);
    check_glyph(grid, (32 - 17) / 2, y0 + 10, 1, glyph_I, black); // "III": 3 characters, 17 px
    check_glyph(grid, (32 - 17) / 2 + 12, y0 + 10, 1, glyph_I, black);
    // The band is as tall as the longest caption of the sheet, and a shorter one leaves it blank.
    const image two = clip::caption_grid({solid(32, 32, white), solid(32, 32, white)}, {"I", "I II III"}, options);
    CHECK(two.height() == 32 + 3 + 2 * 10);
    // max_lines caps the band.
    options.max_lines = 1;
    CHECK(clip::caption_grid(images, {"I II III IIII"}, options).height() == 32 + 3 + 10);
}

TEST_CASE("text colour, per-caption colours and background colour") {
    caption_grid_options options;
    options.columns = 3, options.scale = 2, options.margin = 3;
    const std::vector<image> images(3, solid(16, 16, {7, 7, 7}));
    const std::vector<std::string> captions = {"right", "wrong", "right"};
    const layout l = expected_layout(images, 1, options);

    SUBCASE("one text colour for all") {
        options.text_colour = {0, 0, 255};
        const image grid = clip::caption_grid(images, captions, options);
        for (std::int64_t cell = 0; cell < 3; ++cell) {
            const std::vector<rgb_colour> band = caption_area(grid, l, options.margin, cell);
            CHECK(count(band, {0, 0, 255}) > 0);
            CHECK(count(band, {0, 0, 255}) + count(band, white) == static_cast<std::int64_t>(band.size()));
        }
    }
    SUBCASE("a colour per caption: right green, wrong red") {
        const rgb_colour green{0, 160, 0}, red{200, 0, 0};
        options.caption_colours = {green, red, green};
        options.background = {250, 250, 240};
        const image grid = clip::caption_grid(images, captions, options);
        for (std::int64_t cell = 0; cell < 3; ++cell) {
            CAPTURE(cell);
            const rgb_colour ink = cell == 1 ? red : green;
            const std::vector<rgb_colour> band = caption_area(grid, l, options.margin, cell);
            CHECK(count(band, ink) > 0);
            CHECK(count(band, ink) + count(band, options.background) == static_cast<std::int64_t>(band.size()));
        }
        CHECK(at(grid, 0, 0) == options.background);
        CHECK(at(grid, grid.width() - 1, grid.height() - 1) == options.background);
        // Same text, same shape: only the colour differs between the first and third cells.
        const std::vector<rgb_colour> first = caption_area(grid, l, options.margin, 0),
                                      third = caption_area(grid, l, options.margin, 2);
        CHECK(first == third);
    }
}

TEST_CASE("bad arguments give clear errors; no images is an error") {
    const std::vector<image> images = {solid(4, 4, white), solid(4, 4, white)};
    const std::vector<std::string> captions = {"a", "b"};
    CHECK_THROWS_AS(clip::caption_grid({}, {}), clip::shape_error);
    CHECK(contains(error_message([] { clip::caption_grid({}, {}); }), "caption_grid: no images"));
    CHECK_THROWS_AS(clip::caption_grid(images, {"a"}), clip::shape_error);
    CHECK(contains(error_message([&] { clip::caption_grid(images, {"a"}); }), "2 images but 1 captions"));
    CHECK(contains(error_message([&] { clip::caption_grid({solid(4, 4, white), image()}, captions); }), "image 1 is empty"));

    caption_grid_options colours;
    colours.caption_colours = {black};
    CHECK_THROWS_AS(clip::caption_grid(images, captions, colours), clip::shape_error);
    CHECK(contains(error_message([&] { clip::caption_grid(images, captions, colours); }), "1 caption colours"));

    auto with = [&](auto change) {
        caption_grid_options options;
        change(options);
        return error_message([&] { clip::caption_grid(images, captions, options); });
    };
    CHECK(contains(with([](caption_grid_options& o) { o.columns = 0; }), "columns must be at least 1, got 0"));
    CHECK(contains(with([](caption_grid_options& o) { o.scale = 0; }), "scale must be in 1..64, got 0"));
    CHECK(contains(with([](caption_grid_options& o) { o.scale = 65; }), "scale must be in 1..64, got 65"));
    CHECK(contains(with([](caption_grid_options& o) { o.text_scale = 0; }), "text_scale must be in 1..64"));
    CHECK(contains(with([](caption_grid_options& o) { o.max_lines = -1; }), "max_lines must not be negative"));
    CHECK(contains(with([](caption_grid_options& o) { o.margin = -1; }), "margin must not be negative"));
    // Sizes: cells over 2^24 pixels a side, or a sheet over 2^31 pixels, are refused before
    // anything is allocated (the images share one small tensor).
    caption_grid_options large;
    large.scale = 64, large.columns = 1;
    const image wide = solid(1 << 19, 1, white), tall = solid(1, 1 << 16, white);
    CHECK_THROWS_AS(clip::caption_grid({wide}, {""}, large), clip::shape_error);
    CHECK(contains(error_message([&] { clip::caption_grid({wide}, {""}, large); }), "too large"));
    const std::vector<image> column(16, tall); // 16 cells of 64 × 2^22 in one column: 5 · 2^30 pixels
    CHECK(contains(error_message([&] { clip::caption_grid(column, std::vector<std::string>(16), large); }),
                   "more than 2^31"));
}

} // namespace image_caption_grid_test
