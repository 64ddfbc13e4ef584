// clip/image/encode.hpp: PNG encoding of a clip::image (libpng), into memory (`encode_png`) or
// into a file (`write_png`), so that a program can save what it draws or decodes:
//
//   clip::image grid = clip::caption_grid(images, captions);
//   clip::write_png("predictions.png", grid);               // atomic; io_error naming the file
//   std::vector<std::uint8_t> bytes = clip::encode_png(grid); // the same bytes, in memory
//
// Modes: L, LA, RGB and RGBA, as 8-bit greyscale, greyscale+alpha, RGB and RGBA PNGs, with no
// interlacing, zlib's default compression and libpng's default filters. clip::read_image and
// clip::decode_image (clip/image/decode.hpp) give back the same mode and the same bytes. Modes "1",
// P and CMYK are refused rather than converted behind the caller's back: `convert_to_rgb()` first.
// No gamma, colour profile or text chunks are written.
//
// Errors: every failure throws clip::io_error: an empty image (PNG has no 0-pixel images), a mode
// PNG cannot hold, a size over libpng's limits, an allocation or libpng failure, and for
// `write_png` anything the file system refuses; `write_png`'s messages name the file. The PNG is
// encoded in memory first and only then written through detail::atomic_file (a temporary in the
// same directory, fsync, rename; clip/io/safetensors.hpp), so a failure at any point leaves an
// existing file untouched and no partial file behind. libpng reports errors through a callback
// that must not return; it longjmps back to the one encoding step that called the library, which
// holds nothing with a destructor (a C++ exception must not unwind through libpng's C frames).
// The encoder is reentrant: images can be encoded on many threads.
#pragma once

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <png.h>

#include "clip/core/error.hpp"
#include "clip/image/image.hpp"
#include "clip/io/safetensors.hpp"

namespace clip {

namespace detail::png_write {

/// Everything libpng's callbacks touch: the growing output, the error message and the last
/// warning (libpng explains some errors in a warning just before: "Image width exceeds user limit
/// in IHDR", then "Invalid IHDR data").
struct encoder {
    png_structp png = nullptr;
    png_infop info = nullptr;
    std::vector<std::uint8_t> output;
    char message[256] = {};
    char warning[256] = {};
};

/// libpng's error callback: keep the message, jump back to the step that called the library.
[[noreturn]] inline void on_error(png_structp png, png_const_charp text) {
    encoder* e = static_cast<encoder*>(png_get_error_ptr(png));
    std::snprintf(e->message, sizeof e->message, "%s", text ? text : "unknown error");
    png_longjmp(png, 1);
}

inline void on_warning(png_structp png, png_const_charp text) {
    encoder* e = static_cast<encoder*>(png_get_error_ptr(png));
    std::snprintf(e->warning, sizeof e->warning, "%s", text ? text : "");
}

/// libpng's write callback: append to the output. An allocation failure becomes a libpng error
/// once the exception is over (png_error longjmps, which must not leave a catch block).
inline void on_write(png_structp png, png_bytep data, png_size_t length) {
    encoder* e = static_cast<encoder*>(png_get_io_ptr(png));
    bool appended = false;
    try {
        e->output.insert(e->output.end(), data, data + length);
        appended = true;
    } catch (...) {
    }
    if (!appended) png_error(png, "out of memory for the encoded PNG");
}

inline void on_flush(png_structp) {}

/// The PNG colour type of a mode, or -1 when PNG cannot hold it as 8-bit samples.
inline int color_type(image_mode mode) noexcept {
    switch (mode) {
    case image_mode::l: return PNG_COLOR_TYPE_GRAY;
    case image_mode::la: return PNG_COLOR_TYPE_GRAY_ALPHA;
    case image_mode::rgb: return PNG_COLOR_TYPE_RGB;
    case image_mode::rgba: return PNG_COLOR_TYPE_RGB_ALPHA;
    case image_mode::bilevel:
    case image_mode::p:
    case image_mode::cmyk: break;
    }
    return -1;
}

/// The one step that calls libpng: header, rows, end. Returns false on a libpng error.
inline bool write(encoder& e, png_uint_32 width, png_uint_32 height, int type, png_bytepp rows) {
    if (setjmp(png_jmpbuf(e.png))) return false;
    png_set_write_fn(e.png, &e, &on_write, &on_flush);
    png_set_IHDR(e.png, e.info, width, height, 8, type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(e.png, e.info);
    png_write_image(e.png, rows);
    png_write_end(e.png, e.info);
    return true;
}

/// The PNG bytes of `img`; `context` starts every error message ("encode_png",
/// "write_png \"out.png\"").
inline std::vector<std::uint8_t> encode(const image& img, std::string_view context) {
    auto fail = [&](std::string_view problem) { throw io_error(message(context, ": ", problem)); };
    const int type = color_type(img.mode());
    if (type < 0)
        fail(message("cannot write a mode ", mode_name(img.mode()),
                     " image as PNG (clip writes L, LA, RGB and RGBA; convert_to_rgb() first)"));
    if (img.empty()) fail(message("cannot write an empty image (", img.width(), " x ", img.height(), ") as PNG"));
    if (img.width() > PNG_UINT_31_MAX || img.height() > PNG_UINT_31_MAX)
        fail(message("image size ", img.width(), " x ", img.height(), " exceeds PNG's limit of 2^31 - 1"));

    auto e = std::make_unique<encoder>();
    e->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, e.get(), &on_error, &on_warning);
    if (e->png) e->info = png_create_info_struct(e->png);
    struct destroyer {
        encoder* e;
        ~destroyer() {
            if (e->png) png_destroy_write_struct(&e->png, e->info ? &e->info : nullptr);
        }
    } destroy{e.get()};
    if (!e->png || !e->info) fail("libpng could not allocate its encoder");

    // libpng takes non-const row pointers but only reads the rows when writing.
    std::vector<png_bytep> rows(static_cast<std::size_t>(img.height()));
    for (std::int64_t y = 0; y < img.height(); ++y)
        rows[static_cast<std::size_t>(y)] = const_cast<png_bytep>(img.row(y));
    if (!write(*e, static_cast<png_uint_32>(img.width()), static_cast<png_uint_32>(img.height()), type, rows.data()))
        fail(message("libpng failed: ", e->message, e->warning[0] ? message(" (", e->warning, ")") : std::string()));
    return std::move(e->output);
}

} // namespace detail::png_write

/// The PNG file of an L, LA, RGB or RGBA image, in memory (see the header comment).
inline std::vector<std::uint8_t> encode_png(const image& img) { return detail::png_write::encode(img, "encode_png"); }

/// Writes an L, LA, RGB or RGBA image as a PNG file, atomically: the file is either replaced by
/// the complete PNG or left as it was. Throws io_error naming the file.
inline void write_png(const std::filesystem::path& file, const image& img) {
    const std::vector<std::uint8_t> bytes =
        detail::png_write::encode(img, detail::message("write_png \"", file.string(), "\""));
    detail::atomic_file out(file, "write_png");
    out.write(bytes.data(), bytes.size());
    out.commit();
}

} // namespace clip
