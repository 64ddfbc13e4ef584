// clip/image/caption_grid.hpp: a contact sheet of images with a caption under each, for looking at
// what a model does (a training demo's predictions, a search's results):
//
//   clip::caption_grid_options options;
//   options.columns = 8;                                  // cells per row
//   options.scale = 3;                                    // 32 px images become 96 px
//   options.caption_colours = {{0, 150, 0}, {200, 0, 0}}; // per caption: right green, wrong red
//   clip::image sheet = clip::caption_grid(images, {"cat", "dog (true: cat)"}, options);
//   clip::write_png("predictions.png", sheet);            // clip/image/encode.hpp
//
// The result is an RGB image. Each input, in any mode, is converted with `convert_to_rgb()`
// (alpha dropped, as Pillow's convert("RGB")) and enlarged by the integer factor `scale` with
// nearest neighbour (each pixel becomes a scale × scale block, so small images stay sharp). Cells
// are laid out row-major, left to right then top to bottom, on the background colour (white).
//
// Captions are drawn in a built-in 5 × 8 bitmap font (the table below: printable ASCII 32..126,
// capitals 7 rows high, row 8 for descenders), each font pixel a text_scale × text_scale block,
// centred under the image. A character takes an advance of 6 font pixels (one blank column), a
// line 10 (two blank rows). Text is ASCII: each other UTF-8 character (or invalid byte), and each
// control character other than tab and newline, is drawn as '?'. Captions wrap at spaces (a
// newline forces a break; a word longer than a line is split); a caption that needs more than
// `max_lines` lines keeps `max_lines` and ends in "...". Leading and trailing whitespace is dropped.
//
// Layout, in output pixels, for N images with t = text_scale, s = scale:
//
//   image_width    = s · max width_i          image_height = s · max height_i
//   cell_width     = max(image_width, 5t)     (room for at least one character)
//   chars_per_line = (cell_width + t) / 6t    (n characters span 6t·n − t)
//   lines          = the most lines any caption wraps to (0 .. max_lines)
//   cell_height    = image_height + (lines > 0 ? 3t + 10t · lines : 0)
//   C = min(columns, N) cells per row, R = ceil(N / C) rows
//   output         = (margin + C · (cell_width + margin)) × (margin + R · (cell_height + margin))
//
// Cell i has its top-left corner at (margin + (i mod C) · (cell_width + margin),
// margin + (i div C) · (cell_height + margin)); its image is centred in the cell_width ×
// image_height area at the top (offsets rounded down); caption line k (of n characters) starts
// at x = (cell_width − (6t·n − t)) / 2 (rounded down) in the cell, y = image_height + 3t + 10t · k.
//
// Errors: no images is a clip::shape_error (an empty sheet is almost certainly a bug in the
// caller), as are an empty image and caption or colour lists whose length differs from the
// images'; options out of range (columns, scale, text_scale < 1; max_lines, margin < 0; scale or
// text_scale over 64) are a clip::error; a sheet over 2^31 pixels is a clip::shape_error.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "clip/core/error.hpp"
#include "clip/image/image.hpp"

namespace clip {

/// An 8-bit RGB colour.
struct rgb_colour {
    std::uint8_t red = 0, green = 0, blue = 0;
    bool operator==(const rgb_colour&) const = default;
};

struct caption_grid_options {
    int columns = 4;    ///< cells per row (fewer when there are fewer images)
    int scale = 3;      ///< each image pixel becomes scale × scale output pixels (1..64)
    int text_scale = 1; ///< each font pixel becomes text_scale × text_scale output pixels (1..64)
    int max_lines = 2;  ///< caption lines at most; longer captions end in "..." (0: no captions)
    int margin = 8;     ///< space around the grid and between cells, in output pixels
    rgb_colour background{255, 255, 255};
    rgb_colour text_colour{0, 0, 0};
    /// One colour per image for its caption, overriding text_colour; empty: text_colour for all.
    std::vector<rgb_colour> caption_colours;
};

namespace detail::caption_font {

inline constexpr int glyph_width = 5, glyph_height = 8; // font pixels
inline constexpr int advance = 6, line_height = 10;     // font pixels per character and per line
inline constexpr int caption_gap = 3;                   // font pixels between the image and the caption

/// The glyphs of printable ASCII 32..126, 8 rows each, top to bottom; bit 4 of a row is its
/// leftmost column. Drawn for clip (no third-party font data), after the shapes of the classic
/// 5 × 7 LCD character sets.
inline constexpr std::array<std::array<std::uint8_t, glyph_height>, 95> glyphs = {{
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, // ' '
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00}, // '!'
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00}, // '"'
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00}, // '#'
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00}, // '$'
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00}, // '%'
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00}, // '&'
    {0x04, 0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00}, // '\''
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00}, // '('
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00}, // ')'
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00}, // '*'
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00}, // '+'
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}, // ','
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00}, // '-'
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00}, // '.'
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00}, // '/'
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00}, // '0'
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}, // '1'
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00}, // '2'
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00}, // '3'
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00}, // '4'
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00}, // '5'
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00}, // '6'
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00}, // '7'
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00}, // '8'
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00}, // '9'
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00}, // ':'
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08, 0x00}, // ';'
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00}, // '<'
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00}, // '='
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00}, // '>'
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00}, // '?'
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00}, // '@'
    {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00}, // 'A'
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00}, // 'B'
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00}, // 'C'
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00}, // 'D'
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00}, // 'E'
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00}, // 'F'
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00}, // 'G'
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00}, // 'H'
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}, // 'I'
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00}, // 'J'
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00}, // 'K'
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00}, // 'L'
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00}, // 'M'
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00}, // 'N'
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00}, // 'O'
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00}, // 'P'
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00}, // 'Q'
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00}, // 'R'
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00}, // 'S'
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, // 'T'
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00}, // 'U'
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00}, // 'V'
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00}, // 'W'
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00}, // 'X'
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x00}, // 'Y'
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00}, // 'Z'
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00}, // '['
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00}, // '\\'
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00}, // ']'
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00}, // '^'
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}, // '_'
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00}, // '`'
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00}, // 'a'
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00}, // 'b'
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00}, // 'c'
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00}, // 'd'
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00}, // 'e'
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00}, // 'f'
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}, // 'g'
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}, // 'h'
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00}, // 'i'
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0C}, // 'j'
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00}, // 'k'
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}, // 'l'
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00}, // 'm'
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}, // 'n'
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00}, // 'o'
    {0x00, 0x00, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10}, // 'p'
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01}, // 'q'
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00}, // 'r'
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E, 0x00}, // 's'
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00}, // 't'
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00}, // 'u'
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00}, // 'v'
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00}, // 'w'
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00}, // 'x'
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}, // 'y'
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00}, // 'z'
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00}, // '{'
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, // '|'
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00}, // '}'
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00}, // '~'
}};

/// The glyph of a printable ASCII character; anything else gets '?'.
constexpr const std::array<std::uint8_t, glyph_height>& glyph(char c) noexcept {
    const auto code = static_cast<unsigned char>(c);
    return glyphs[code >= 32 && code <= 126 ? code - 32 : '?' - 32];
}

/// Whether the glyph of `c` has its pixel (x, y) set, x in [0, 5), y in [0, 8).
constexpr bool pixel(char c, int x, int y) noexcept { return (glyph(c)[static_cast<std::size_t>(y)] >> (4 - x)) & 1; }

/// The caption as the font draws it: printable ASCII kept, tab as a space, newline kept, every
/// other character '?' (one per UTF-8 sequence: a lead byte and the continuation bytes after it),
/// leading and trailing whitespace dropped.
inline std::string printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte == '\t') out += ' ';
        else if (byte == '\n' || (byte >= 32 && byte <= 126)) out += static_cast<char>(byte);
        else if (byte < 0x80) out += '?'; // the other control characters and DEL
        else {
            // 110xxxxx, 1110xxxx, 11110xxx lead 1, 2, 3 continuation bytes 10xxxxxx.
            const int continuation = byte >= 0xc2 && byte <= 0xdf   ? 1
                                     : byte >= 0xe0 && byte <= 0xef ? 2
                                     : byte >= 0xf0 && byte <= 0xf4 ? 3
                                                                    : 0;
            for (int k = 0; k < continuation && i + 1 < text.size() &&
                            (static_cast<unsigned char>(text[i + 1]) & 0xc0) == 0x80;
                 ++k)
                ++i;
            out += '?';
        }
    }
    const std::size_t first = out.find_first_not_of(" \n");
    if (first == std::string::npos) return {};
    return out.substr(first, out.find_last_not_of(" \n") - first + 1);
}

/// The lines of a caption: `printable(text)` wrapped greedily at spaces into lines of at most
/// `chars_per_line` characters (a newline forces a break, runs of spaces between words become one,
/// a word longer than a line is split); past `max_lines` lines, the last kept line ends in "...".
inline std::vector<std::string> wrap(std::string_view text, std::int64_t chars_per_line, std::int64_t max_lines) {
    const auto width = static_cast<std::size_t>(std::max<std::int64_t>(chars_per_line, 1));
    std::vector<std::string> lines;
    const std::string caption = printable(text);
    if (caption.empty()) return lines;
    std::size_t begin = 0;
    while (begin <= caption.size()) { // one paragraph (up to a newline) per pass
        std::size_t end = caption.find('\n', begin);
        if (end == std::string::npos) end = caption.size();
        std::string line;
        for (std::size_t at = begin; at < end;) {
            if (caption[at] == ' ') {
                ++at;
                continue;
            }
            const std::size_t word_end = std::min(caption.find(' ', at), end);
            std::string_view word(caption.data() + at, word_end - at);
            at = word_end;
            if (!line.empty() && line.size() + 1 + word.size() <= width) {
                line += ' ';
                line += word;
                continue;
            }
            if (!line.empty()) lines.push_back(line);
            for (; word.size() > width; word.remove_prefix(width)) lines.emplace_back(word.substr(0, width));
            line = word;
        }
        lines.push_back(line); // an empty paragraph gives an empty line
        begin = end + 1;
    }
    if (static_cast<std::int64_t>(lines.size()) > max_lines) {
        lines.resize(static_cast<std::size_t>(std::max<std::int64_t>(max_lines, 0)));
        if (!lines.empty()) {
            std::string& last = lines.back();
            const std::size_t dots = std::min<std::size_t>(3, width);
            last.resize(std::min(last.size(), width - dots));
            last.append(dots, '.');
        }
    }
    return lines;
}

} // namespace detail::caption_font

namespace detail {

/// Fills the w × h rectangle at (x, y) of an RGB image with a colour (no clipping: callers stay
/// inside).
inline void fill_rgb(image& out, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h, rgb_colour colour) {
    for (std::int64_t row = y; row < y + h; ++row) {
        std::uint8_t* p = out.row(row) + 3 * x;
        for (std::int64_t i = 0; i < w; ++i, p += 3) p[0] = colour.red, p[1] = colour.green, p[2] = colour.blue;
    }
}

} // namespace detail

/// The images in a grid with their captions underneath (see the header comment for the layout,
/// the font and the errors). `captions` has one entry per image.
inline image caption_grid(const std::vector<image>& images, const std::vector<std::string>& captions,
                          const caption_grid_options& options = {}) {
    namespace font = detail::caption_font;
    detail::check(options.columns >= 1, "caption_grid: columns must be at least 1, got ", options.columns);
    detail::check(options.scale >= 1 && options.scale <= 64, "caption_grid: scale must be in 1..64, got ", options.scale);
    detail::check(options.text_scale >= 1 && options.text_scale <= 64, "caption_grid: text_scale must be in 1..64, got ",
                  options.text_scale);
    detail::check(options.max_lines >= 0, "caption_grid: max_lines must not be negative, got ", options.max_lines);
    detail::check(options.margin >= 0, "caption_grid: margin must not be negative, got ", options.margin);
    const std::size_t n = images.size();
    detail::check<shape_error>(n > 0, "caption_grid: no images to lay out");
    detail::check<shape_error>(captions.size() == n, "caption_grid: ", n, " images but ", captions.size(), " captions");
    detail::check<shape_error>(options.caption_colours.empty() || options.caption_colours.size() == n, "caption_grid: ",
                               n, " images but ", options.caption_colours.size(),
                               " caption colours (give one per image, or none)");

    const std::int64_t s = options.scale, t = options.text_scale, margin = options.margin;
    std::int64_t max_width = 0, max_height = 0;
    for (std::size_t i = 0; i < n; ++i) {
        detail::check<shape_error>(!images[i].empty(), "caption_grid: image ", i, " is empty (", images[i].width(), " x ",
                                   images[i].height(), ")");
        max_width = std::max(max_width, images[i].width());
        max_height = std::max(max_height, images[i].height());
    }
    const std::int64_t image_width = s * max_width, image_height = s * max_height;
    const std::int64_t cell_width = std::max(image_width, font::glyph_width * t);
    const std::int64_t chars_per_line = (cell_width + t) / (font::advance * t);
    std::vector<std::vector<std::string>> lines(n);
    std::int64_t line_count = 0;
    for (std::size_t i = 0; i < n; ++i) {
        lines[i] = font::wrap(captions[i], chars_per_line, options.max_lines);
        line_count = std::max(line_count, static_cast<std::int64_t>(lines[i].size()));
    }
    const std::int64_t caption_top = image_height + font::caption_gap * t;
    const std::int64_t caption_height = line_count > 0 ? font::caption_gap * t + font::line_height * t * line_count : 0;
    const std::int64_t cell_height = image_height + caption_height;
    detail::check<shape_error>(cell_width <= (std::int64_t{1} << 24) && cell_height <= (std::int64_t{1} << 24),
                               "caption_grid: cells of ", cell_width, " x ", cell_height, " pixels are too large");
    const auto count = static_cast<std::int64_t>(n);
    const std::int64_t columns = std::min<std::int64_t>(options.columns, count), rows = (count + columns - 1) / columns;
    const std::int64_t width = margin + columns * (cell_width + margin), height = margin + rows * (cell_height + margin);
    detail::check<shape_error>(width * height <= (std::int64_t{1} << 31), "caption_grid: the grid would be ", width, " x ",
                               height, " pixels, more than 2^31");

    image out = image::uninitialized(width, height, image_mode::rgb);
    detail::fill_rgb(out, 0, 0, width, height, options.background);
    std::vector<std::uint8_t> scaled_row; // one enlarged source row, [s · w, 3]
    for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t cell_x = margin + (static_cast<std::int64_t>(i) % columns) * (cell_width + margin);
        const std::int64_t cell_y = margin + (static_cast<std::int64_t>(i) / columns) * (cell_height + margin);

        const image rgb = images[i].convert_to_rgb();
        const std::int64_t w = rgb.width() * s, h = rgb.height() * s;
        const std::int64_t x0 = cell_x + (cell_width - w) / 2, y0 = cell_y + (image_height - h) / 2;
        scaled_row.resize(static_cast<std::size_t>(3 * w));
        for (std::int64_t y = 0; y < rgb.height(); ++y) {
            const std::uint8_t* in = rgb.row(y);
            for (std::int64_t x = 0; x < w; ++x)
                std::memcpy(&scaled_row[static_cast<std::size_t>(3 * x)], in + 3 * (x / s), 3);
            for (std::int64_t k = 0; k < s; ++k)
                std::memcpy(out.row(y0 + y * s + k) + 3 * x0, scaled_row.data(), scaled_row.size());
        }

        const rgb_colour colour = options.caption_colours.empty() ? options.text_colour : options.caption_colours[i];
        for (std::size_t k = 0; k < lines[i].size(); ++k) {
            const std::string& line = lines[i][k];
            if (line.empty()) continue;
            const auto length = static_cast<std::int64_t>(line.size());
            const std::int64_t line_x = cell_x + (cell_width - (font::advance * t * length - t)) / 2;
            const std::int64_t line_y = cell_y + caption_top + font::line_height * t * static_cast<std::int64_t>(k);
            for (std::int64_t c = 0; c < length; ++c)
                for (int gy = 0; gy < font::glyph_height; ++gy)
                    for (int gx = 0; gx < font::glyph_width; ++gx)
                        if (font::pixel(line[static_cast<std::size_t>(c)], gx, gy))
                            detail::fill_rgb(out, line_x + font::advance * t * c + gx * t, line_y + gy * t, t, t, colour);
        }
    }
    return out;
}

} // namespace clip
