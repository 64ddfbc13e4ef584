// clip/image/decode.hpp: JPEG (libjpeg-turbo) and PNG (libpng) decoding into clip::image, from a
// file (`read_image`) or from memory (`decode_image`), giving the pixels and the mode that
// Pillow 9.4's `Image.open` gives (src/PIL/JpegImagePlugin.py, src/PIL/PngImagePlugin.py,
// src/libImaging/JpegDecode.c), so that CLIP's preprocessing sees what the Python reference sees.
//
// JPEG, as Pillow decodes it by default: the islow DCT, fancy (smooth) chroma upsampling, block
// smoothing for progressive files, no scaling (no `draft`). The mode follows the number of
// components, as Pillow's SOF handler does: 1 → L, 3 → RGB (libjpeg converts from YCbCr, or takes
// RGB as is when the file says so), 4 → CMYK, stored inverted as Pillow's "CMYK;I" raw mode does
// (Adobe's convention). Other component counts and precisions other than 8 bits are rejected.
// libjpeg's corrupt-data warnings are ignored and the image is returned, as Pillow does; running
// out of data ("Premature end of JPEG file") is an error, as Pillow's "image file is truncated".
//
// PNG, with Pillow's mode for each bit depth and colour type (PngImagePlugin `_MODES`):
//   grey 1 bit → "1" (0/255); grey 2, 4 bits → L scaled to 0..255 (v · 0x55, v · 0x11); grey 8 → L
//   RGB 8, 16 → RGB; RGBA 8, 16 → RGBA; grey+alpha 8 → LA; grey+alpha 16 → RGBA (as Pillow)
//   palette 1, 2, 4, 8 bits → P with its palette (entries the file leaves out are Pillow's grey ramp)
// 16-bit channels keep their high byte, as Pillow's "RGB;16B"/"RGBA;16B"/"LA;16B" unpackers do.
// One deliberate difference: a 16-bit greyscale PNG becomes L (high byte) here, while Pillow opens
// it as mode "I" (32-bit integers 0..65535) whose `convert("RGB")` clips every value above 255 to
// white, which makes CLIP's transform of such files nearly all white; clip keeps the picture.
// tRNS transparency is not turned into alpha (Pillow keeps it in `info`, and `convert("RGB")`
// ignores it). Gamma, colour profiles and EXIF orientation are not applied (Pillow's default).
// Animated PNGs give their default image; a PNG that ends after the image data (no IEND) decodes.
//
// Errors: every failure throws clip::io_error naming the file (or the name given to
// `decode_image`) and the problem: unreadable file, a format other than JPEG and PNG (told apart
// by the first bytes; GIF, BMP, WebP, TIFF, ... are named), truncated or corrupt data, more than
// Pillow's decompression-bomb limit of 2 · 89,478,485 pixels. libjpeg and libpng report errors
// through callbacks that must not return; they longjmp back to the decoding step that called the
// library (a C++ exception must not unwind through C frames), and the steps that call setjmp hold
// nothing with a destructor. The decoders are reentrant: images can be decoded on many threads.
#pragma once

#include <cstdio> // before jpeglib.h, which uses FILE and size_t

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "clip/core/error.hpp"
#include "clip/image/image.hpp"

namespace clip {

/// The formats `decode_image` reads.
enum class image_format : std::uint8_t { jpeg, png, unknown };

/// Pillow's decompression-bomb limit: `Image.open` refuses images of more than
/// 2 · MAX_IMAGE_PIXELS = 2 · 89,478,485 pixels.
constexpr std::int64_t max_image_pixels = 2 * std::int64_t{89478485};

namespace detail {

/// The name of a format recognised by its first bytes, for the error message ("" if unknown).
inline std::string_view other_image_format(std::span<const std::uint8_t> b) noexcept {
    auto starts = [&](std::string_view magic, std::size_t at = 0) {
        return b.size() >= at + magic.size() && std::memcmp(b.data() + at, magic.data(), magic.size()) == 0;
    };
    if (starts("GIF87a") || starts("GIF89a")) return "GIF";
    if (starts("BM")) return "BMP";
    if (starts("RIFF") && starts("WEBP", 8)) return "WebP";
    if (starts(std::string_view("II*\0", 4)) || starts(std::string_view("MM\0*", 4))) return "TIFF";
    if (starts(std::string_view("\0\0\0\x0cjP  ", 8)) || starts(std::string_view("\xff\x4f\xff\x51", 4))) return "JPEG 2000";
    if (starts("ftypavif", 4) || starts("ftypavis", 4)) return "AVIF";
    if (starts("ftypheic", 4) || starts("ftypheix", 4) || starts("ftypmif1", 4)) return "HEIF";
    if (starts(std::string_view("\xff\x0a", 2)) || starts(std::string_view("\0\0\0\x0cJXL ", 8))) return "JPEG XL";
    if (starts("8BPS")) return "PSD";
    if (starts("qoif")) return "QOI";
    if (starts(std::string_view("\0\0\1\0", 4))) return "ICO";
    return "";
}

/// What error messages name: the operation ("decode_image", "read_image") and the file.
struct image_source {
    std::string_view operation, name;
};

[[noreturn]] inline void image_failure(const image_source& source, std::string_view problem) {
    throw io_error(message(source.operation, ": \"", source.name, "\": ", problem));
}

inline void check_image_size(const image_source& name, std::int64_t width, std::int64_t height) {
    if (width <= 0 || height <= 0) image_failure(name, message("image size ", width, " x ", height, " is empty"));
    if (width * height > max_image_pixels)
        image_failure(name, message("image size ", width, " x ", height, " (", width * height,
                                    " pixels) exceeds the decompression-bomb limit of ", max_image_pixels,
                                    " pixels (Pillow's)"));
}

// ---- JPEG ---------------------------------------------------------------------------------

namespace jpeg {

/// Everything libjpeg touches, in one block of plain C data (no destructors).
struct decoder {
    jpeg_decompress_struct info;
    jpeg_error_mgr errors;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

/// libjpeg's error_exit: keep the message, jump back to the step that called the library.
[[noreturn]] inline void on_error(j_common_ptr info) {
    decoder* d = static_cast<decoder*>(info->client_data);
    (*info->err->format_message)(info, d->message);
    std::longjmp(d->jump, 1);
}

/// libjpeg's emit_message: warnings about corrupt data are ignored (Pillow ignores them), except
/// running out of input, which is an error here as in Pillow ("image file is truncated").
inline void on_message(j_common_ptr info, int level) {
    if (level == -1 && info->err->msg_code == JWRN_JPEG_EOF) on_error(info);
}

inline void ignore_output(j_common_ptr) {}

/// Step 1: create the decompressor on the bytes and read the header.
inline bool read_header(decoder& d, const std::uint8_t* data, std::size_t size) {
    if (setjmp(d.jump)) return false;
    jpeg_create_decompress(&d.info);
    jpeg_mem_src(&d.info, data, static_cast<unsigned long>(size));
    jpeg_read_header(&d.info, TRUE);
    return true;
}

/// Step 2: Pillow's decoder settings, then start decompressing (a progressive file is read here).
inline bool start(decoder& d, J_COLOR_SPACE out_color_space) {
    if (setjmp(d.jump)) return false;
    d.info.out_color_space = out_color_space;
    d.info.dct_method = JDCT_ISLOW;
    d.info.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&d.info);
    return true;
}

/// Step 3: every scanline into `rows`.
inline bool read_rows(decoder& d, JSAMPROW* rows) {
    if (setjmp(d.jump)) return false;
    while (d.info.output_scanline < d.info.output_height)
        jpeg_read_scanlines(&d.info, rows + d.info.output_scanline, d.info.output_height - d.info.output_scanline);
    return true;
}

inline image decode(std::span<const std::uint8_t> bytes, const image_source& name) {
    auto d = std::make_unique<decoder>(); // value-initialised: all zero
    d->info.err = jpeg_std_error(&d->errors);
    d->errors.error_exit = &on_error;
    d->errors.emit_message = &on_message;
    d->errors.output_message = &ignore_output;
    d->info.client_data = d.get();
    struct destroyer {
        decoder* d;
        ~destroyer() { jpeg_destroy_decompress(&d->info); }
    } destroy{d.get()};
    auto fail = [&] { image_failure(name, message("invalid or truncated JPEG: ", d->message)); };

    if (!read_header(*d, bytes.data(), bytes.size())) fail();
    image_mode mode = image_mode::rgb;
    J_COLOR_SPACE out_color_space = JCS_RGB;
    switch (d->info.num_components) {
    case 1: mode = image_mode::l, out_color_space = JCS_GRAYSCALE; break;
    case 3: mode = image_mode::rgb, out_color_space = JCS_RGB; break;
    case 4: mode = image_mode::cmyk, out_color_space = JCS_CMYK; break;
    default:
        image_failure(name, message("cannot handle ", d->info.num_components, "-component JPEG images (Pillow reads 1, 3 and 4)"));
    }
    check_image_size(name, d->info.image_width, d->info.image_height);
    if (!start(*d, out_color_space)) fail();
    if (static_cast<int>(d->info.output_components) != channels(mode) || d->info.output_width != d->info.image_width ||
        d->info.output_height != d->info.image_height)
        image_failure(name, message("libjpeg produced ", d->info.output_width, " x ", d->info.output_height, " x ",
                                    d->info.output_components, " for a ", mode_name(mode), " image"));

    image out = image::uninitialized(d->info.output_width, d->info.output_height, mode);
    std::vector<JSAMPROW> rows(static_cast<std::size_t>(out.height()));
    for (std::int64_t y = 0; y < out.height(); ++y) rows[static_cast<std::size_t>(y)] = out.row(y);
    if (!read_rows(*d, rows.data())) fail();
    if (mode == image_mode::cmyk) { // Pillow's "CMYK;I": Adobe writes CMYK inverted
        std::uint8_t* p = out.data();
        for (std::int64_t i = 0, n = out.width() * out.height() * 4; i < n; ++i) p[i] = static_cast<std::uint8_t>(255 - p[i]);
    }
    return out;
}

} // namespace jpeg

// ---- PNG ----------------------------------------------------------------------------------

namespace png {

/// Everything libpng's callbacks touch: the input and the last error message.
struct decoder {
    png_structp png = nullptr;
    png_infop info = nullptr;
    const std::uint8_t* data = nullptr;
    std::size_t size = 0, offset = 0;
    char message[256] = {};
};

/// libpng's error callback: keep the message, jump back to the step that called the library.
[[noreturn]] inline void on_error(png_structp png, png_const_charp text) {
    decoder* d = static_cast<decoder*>(png_get_error_ptr(png));
    std::snprintf(d->message, sizeof d->message, "%s", text ? text : "unknown error");
    png_longjmp(png, 1);
}

/// Warnings (bad CRCs of ancillary chunks, colour profile complaints, ...) are ignored.
inline void on_warning(png_structp, png_const_charp) {}

/// libpng's read callback, from memory.
inline void on_read(png_structp png, png_bytep out, png_size_t length) {
    decoder* d = static_cast<decoder*>(png_get_io_ptr(png));
    if (length > d->size - d->offset) png_error(png, "unexpected end of data (file truncated)");
    std::memcpy(out, d->data + d->offset, length);
    d->offset += length;
}

struct header {
    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0;
};

/// Step 1: read the chunks up to the image data.
inline bool read_header(decoder& d, header& h) {
    if (setjmp(png_jmpbuf(d.png))) return false;
    png_set_read_fn(d.png, &d, &on_read);
    png_read_info(d.png, d.info);
    png_get_IHDR(d.png, d.info, &h.width, &h.height, &h.bit_depth, &h.color_type, nullptr, nullptr, nullptr);
    return true;
}

/// Step 2: the transformations that give Pillow's mode (see the header comment).
inline bool configure(decoder& d, const header& h) {
    if (setjmp(png_jmpbuf(d.png))) return false;
    if (h.bit_depth == 16) png_set_strip_16(d.png); // keeps the high byte, as Pillow's unpackers
    if (h.color_type == PNG_COLOR_TYPE_GRAY && h.bit_depth < 8) png_set_expand_gray_1_2_4_to_8(d.png);
    if (h.color_type == PNG_COLOR_TYPE_PALETTE && h.bit_depth < 8) png_set_packing(d.png);
    if (h.color_type == PNG_COLOR_TYPE_GRAY_ALPHA && h.bit_depth == 16) png_set_gray_to_rgb(d.png);
    png_set_interlace_handling(d.png);
    png_read_update_info(d.png, d.info);
    return true;
}

/// Step 3: the whole image into `rows` (the chunks after it are not read: Pillow tolerates their
/// absence).
inline bool read_rows(decoder& d, png_bytepp rows) {
    if (setjmp(png_jmpbuf(d.png))) return false;
    png_read_image(d.png, rows);
    return true;
}

/// libpng allocates and zeroes a chunk's declared length before reading its data (zTXt, iTXt,
/// iCCP, unknown chunks: up to 2 GB), so a 60-byte file declaring a 2 GB chunk took seconds and
/// gigabytes to reject. The chunks before the image data (those png_read_info reads) must lie
/// within the input; the IDAT chunks are streamed and the ones after them are not read.
inline void check_chunk_lengths(std::span<const std::uint8_t> bytes, const image_source& name) {
    for (std::size_t at = 8; bytes.size() - at >= 8;) {
        const std::uint8_t* chunk = bytes.data() + at;
        if (std::memcmp(chunk + 4, "IDAT", 4) == 0) return;
        const std::uint64_t length = std::uint64_t{chunk[0]} << 24 | std::uint64_t{chunk[1]} << 16 |
                                     std::uint64_t{chunk[2]} << 8 | chunk[3];
        if (length + 12 > bytes.size() - at)
            image_failure(name, message("invalid or truncated PNG: the chunk at byte ", at, " declares ", length,
                                        " bytes of data, more than the ", bytes.size() - at, " bytes left"));
        at += static_cast<std::size_t>(length) + 12;
    }
}

inline image decode(std::span<const std::uint8_t> bytes, const image_source& name) {
    auto d = std::make_unique<decoder>();
    d->data = bytes.data();
    d->size = bytes.size();
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d.get(), &on_error, &on_warning);
    if (d->png) d->info = png_create_info_struct(d->png);
    struct destroyer {
        decoder* d;
        ~destroyer() {
            if (d->png) png_destroy_read_struct(&d->png, d->info ? &d->info : nullptr, nullptr);
        }
    } destroy{d.get()};
    if (!d->png || !d->info) image_failure(name, "libpng could not allocate its decoder");
    check_chunk_lengths(bytes, name);
    auto fail = [&] { image_failure(name, message("invalid or truncated PNG: ", d->message)); };

    header h;
    if (!read_header(*d, h)) fail();
    check_image_size(name, h.width, h.height);
    image_mode mode = image_mode::rgb;
    switch (h.color_type) {
    case PNG_COLOR_TYPE_GRAY: mode = h.bit_depth == 1 ? image_mode::bilevel : image_mode::l; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: mode = h.bit_depth == 16 ? image_mode::rgba : image_mode::la; break;
    case PNG_COLOR_TYPE_RGB: mode = image_mode::rgb; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: mode = image_mode::rgba; break;
    case PNG_COLOR_TYPE_PALETTE: mode = image_mode::p; break;
    default: image_failure(name, message("unsupported PNG colour type ", h.color_type));
    }
    if (!configure(*d, h)) fail();
    image out = image::uninitialized(h.width, h.height, mode);
    if (png_get_rowbytes(d->png, d->info) != static_cast<std::size_t>(out.width() * out.channels()))
        image_failure(name, message("libpng rows of ", png_get_rowbytes(d->png, d->info), " bytes for a ", out.width(),
                                    "-pixel ", mode_name(mode), " row"));
    if (mode == image_mode::p) {
        image_palette palette = grey_ramp_palette();
        png_colorp entries = nullptr;
        int count = 0;
        if (png_get_PLTE(d->png, d->info, &entries, &count) & PNG_INFO_PLTE) {
            for (int i = 0; i < count && i < 256; ++i) {
                palette[static_cast<std::size_t>(3 * i + 0)] = entries[i].red;
                palette[static_cast<std::size_t>(3 * i + 1)] = entries[i].green;
                palette[static_cast<std::size_t>(3 * i + 2)] = entries[i].blue;
            }
        }
        out.set_palette(palette);
    }
    std::vector<png_bytep> rows(static_cast<std::size_t>(out.height()));
    for (std::int64_t y = 0; y < out.height(); ++y) rows[static_cast<std::size_t>(y)] = out.row(y);
    if (!read_rows(*d, rows.data())) fail();
    return out;
}

} // namespace png

/// The whole content of a file (io_error naming it when it cannot be read).
inline std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& file, const char* op) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw io_error(message(op, ": cannot open \"", file.string(), "\": ", std::strerror(errno)));
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } close_at_exit{fd};
    struct stat status {};
    if (::fstat(fd, &status) == 0 && S_ISDIR(status.st_mode))
        throw io_error(message(op, ": \"", file.string(), "\" is a directory"));
    std::vector<std::uint8_t> bytes(status.st_size > 0 ? static_cast<std::size_t>(status.st_size) : 0);
    std::size_t filled = 0;
    for (;;) {
        if (filled == bytes.size()) bytes.resize(std::max<std::size_t>(bytes.size() * 2, 1 << 16));
        const ssize_t got = ::read(fd, bytes.data() + filled, bytes.size() - filled);
        if (got < 0) {
            if (errno == EINTR) continue;
            throw io_error(message(op, ": cannot read \"", file.string(), "\": ", std::strerror(errno)));
        }
        if (got == 0) break;
        filled += static_cast<std::size_t>(got);
    }
    bytes.resize(filled);
    return bytes;
}

} // namespace detail

/// The format of encoded image bytes, from their first bytes.
inline image_format detect_image_format(std::span<const std::uint8_t> bytes) noexcept {
    static constexpr std::uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (bytes.size() >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff) return image_format::jpeg;
    if (bytes.size() >= 8 && std::memcmp(bytes.data(), png_signature, 8) == 0) return image_format::png;
    return image_format::unknown;
}

namespace detail {

inline image decode_image(std::span<const std::uint8_t> bytes, const image_source& source) {
    switch (detect_image_format(bytes)) {
    case image_format::jpeg: return jpeg::decode(bytes, source);
    case image_format::png: return png::decode(bytes, source);
    case image_format::unknown: break;
    }
    if (bytes.empty()) image_failure(source, "empty file");
    const std::string_view other = other_image_format(bytes);
    if (!other.empty()) image_failure(source, message("unsupported image format ", other, " (clip reads JPEG and PNG)"));
    image_failure(source, "not a JPEG or PNG file (unrecognised first bytes)");
}

} // namespace detail

/// Decodes a JPEG or PNG held in memory; `name` appears in error messages.
inline image decode_image(std::span<const std::uint8_t> bytes, std::string_view name = "<memory>") {
    return detail::decode_image(bytes, {"decode_image", name});
}

/// Reads and decodes a JPEG or PNG file.
inline image read_image(const std::filesystem::path& file) {
    const std::vector<std::uint8_t> bytes = detail::read_file_bytes(file, "read_image");
    const std::string name = file.string();
    return detail::decode_image(bytes, {"read_image", name});
}

} // namespace clip
