// Helpers of the image tests: PNG and JPEG encoders (libpng, libjpeg) that write synthetic images
// into memory, a temporary directory, and an exact comparison of u8 pixels.
#pragma once

#include "../support.hpp"

#include <cstdio> // before jpeglib.h

#include <csetjmp>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>
#include <unistd.h>

namespace clip::test {

/// Raw PNG samples: one byte per sample for depths ≤ 8 (packed by libpng), two big-endian
/// bytes per sample for 16 bits. `palette` is RGB triples, `transparency` a tRNS payload.
struct png_spec {
    int width = 0, height = 0, bit_depth = 8, color_type = PNG_COLOR_TYPE_GRAY;
    bool interlaced = false;
    std::vector<std::uint8_t> samples; // [height, width, channels] (×2 bytes for 16 bits)
    std::vector<std::uint8_t> palette; // RGB triples for PNG_COLOR_TYPE_PALETTE
    std::vector<std::uint8_t> transparency;
};

inline int png_channels(int color_type) {
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    default: return 1;
    }
}

namespace detail_encode {

inline void append(png_structp png, png_bytep data, png_size_t length) {
    auto* out = static_cast<std::vector<std::uint8_t>*>(png_get_io_ptr(png));
    out->insert(out->end(), data, data + length);
}
inline void flush(png_structp) {}
inline void quiet(png_structp, png_const_charp) {} // warnings (palette index past the palette) are expected

inline bool write_png(png_structp png, png_infop info, const png_spec& spec, png_bytepp rows) {
    if (setjmp(png_jmpbuf(png))) return false;
    png_set_IHDR(png, info, static_cast<png_uint_32>(spec.width), static_cast<png_uint_32>(spec.height), spec.bit_depth,
                 spec.color_type, spec.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (!spec.palette.empty())
        png_set_PLTE(png, info, reinterpret_cast<png_const_colorp>(spec.palette.data()),
                     static_cast<int>(spec.palette.size() / 3));
    if (!spec.transparency.empty()) {
        if (spec.color_type == PNG_COLOR_TYPE_PALETTE) {
            png_set_tRNS(png, info, spec.transparency.data(), static_cast<int>(spec.transparency.size()), nullptr);
        } else {
            png_color_16 colour{};
            auto value = [&](std::size_t i) {
                return static_cast<png_uint_16>((spec.transparency[2 * i] << 8) | spec.transparency[2 * i + 1]);
            };
            if (spec.color_type == PNG_COLOR_TYPE_GRAY) colour.gray = value(0);
            else colour.red = value(0), colour.green = value(1), colour.blue = value(2);
            png_set_tRNS(png, info, nullptr, 1, &colour);
        }
    }
    png_write_info(png, info);
    if (spec.bit_depth < 8) png_set_packing(png);
    png_write_image(png, rows);
    png_write_end(png, info);
    return true;
}

} // namespace detail_encode

/// The PNG file of `spec`.
inline std::vector<std::uint8_t> encode_png(const png_spec& spec) {
    std::vector<std::uint8_t> out;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, &detail_encode::quiet);
    REQUIRE(png != nullptr);
    png_infop info = png_create_info_struct(png);
    png_set_benign_errors(png, 1); // palette indices past the palette are what some tests want
    png_set_write_fn(png, &out, &detail_encode::append, &detail_encode::flush);
    const std::size_t row_bytes = static_cast<std::size_t>(spec.width * png_channels(spec.color_type) *
                                                           (spec.bit_depth == 16 ? 2 : 1));
    REQUIRE(spec.samples.size() == row_bytes * static_cast<std::size_t>(spec.height));
    std::vector<std::uint8_t> copy = spec.samples; // libpng wants non-const rows
    std::vector<png_bytep> rows(static_cast<std::size_t>(spec.height));
    for (int y = 0; y < spec.height; ++y) rows[static_cast<std::size_t>(y)] = copy.data() + row_bytes * static_cast<std::size_t>(y);
    const bool ok = detail_encode::write_png(png, info, spec, rows.data());
    png_destroy_write_struct(&png, &info);
    REQUIRE(ok);
    return out;
}

namespace detail_encode {

struct jpeg_writer {
    jpeg_compress_struct info;
    jpeg_error_mgr errors;
    std::jmp_buf jump;
};

inline void on_jpeg_error(j_common_ptr info) { std::longjmp(static_cast<jpeg_writer*>(info->client_data)->jump, 1); }

inline bool write_jpeg(jpeg_writer& w, const std::uint8_t* pixels, int width, int height, int components, int quality,
                       unsigned char** buffer, unsigned long* size) {
    if (setjmp(w.jump)) return false;
    jpeg_create_compress(&w.info);
    jpeg_mem_dest(&w.info, buffer, size);
    w.info.image_width = static_cast<JDIMENSION>(width);
    w.info.image_height = static_cast<JDIMENSION>(height);
    w.info.input_components = components;
    w.info.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&w.info);
    jpeg_set_quality(&w.info, quality, TRUE);
    jpeg_start_compress(&w.info, TRUE);
    while (w.info.next_scanline < w.info.image_height) {
        JSAMPROW row = const_cast<JSAMPROW>(pixels + static_cast<std::size_t>(w.info.next_scanline) *
                                                         static_cast<std::size_t>(width * components));
        jpeg_write_scanlines(&w.info, &row, 1);
    }
    jpeg_finish_compress(&w.info);
    return true;
}

} // namespace detail_encode

/// A baseline JPEG of interleaved pixels with 1 (grey), 3 (RGB) or 4 (CMYK, written as Adobe
/// does) components, libjpeg's default 4:2:0 subsampling for colour.
inline std::vector<std::uint8_t> encode_jpeg(const std::vector<std::uint8_t>& pixels, int width, int height, int components,
                                             int quality = 90) {
    auto w = std::make_unique<detail_encode::jpeg_writer>();
    w->info.err = jpeg_std_error(&w->errors);
    w->errors.error_exit = &detail_encode::on_jpeg_error;
    w->info.client_data = w.get();
    unsigned char* buffer = nullptr;
    unsigned long size = 0;
    const bool ok = detail_encode::write_jpeg(*w, pixels.data(), width, height, components, quality, &buffer, &size);
    jpeg_destroy_compress(&w->info);
    std::vector<std::uint8_t> out(buffer, buffer + (ok ? size : 0));
    std::free(buffer);
    REQUIRE(ok);
    return out;
}

/// Reads a whole file.
inline std::vector<std::uint8_t> file_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// The shared temp_dir (support.hpp), plus writing a file into it.
struct image_temp_dir : temp_dir {
    image_temp_dir() : temp_dir("clip-image-test") {}

    /// Writes `bytes` to a file in the directory and returns its path.
    std::filesystem::path write(const std::string& name, const std::vector<std::uint8_t>& bytes) const {
        const std::filesystem::path path = *this / name;
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        REQUIRE(out.good());
        return path;
    }
};

/// How two u8 tensors of the same shape differ: values that differ and the largest difference.
struct u8_difference {
    std::int64_t count = 0;
    int max = 0;
};

inline u8_difference compare_u8(const tensor& actual, const tensor& expected) {
    REQUIRE(actual.shape() == expected.shape());
    const std::vector<std::uint8_t> a = actual.to_vector<std::uint8_t>(), b = expected.to_vector<std::uint8_t>();
    u8_difference d;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const int delta = std::abs(static_cast<int>(a[i]) - static_cast<int>(b[i]));
        if (delta != 0) ++d.count;
        d.max = std::max(d.max, delta);
    }
    return d;
}

/// An image in `mode` from explicit bytes [height, width, channels].
inline image make_image(std::int64_t width, std::int64_t height, image_mode mode, const std::vector<std::uint8_t>& bytes) {
    return image::from_pixels(tensor::from(bytes, shape{height, width, channels(mode)}), mode);
}

/// The bytes of an image's pixels.
inline std::vector<std::uint8_t> bytes_of(const image& img) { return img.pixels().to_vector<std::uint8_t>(); }

} // namespace clip::test
