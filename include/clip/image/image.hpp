// clip/image/image.hpp: an 8-bit image in one of Pillow's modes, and the mode conversion and
// cropping that CLIP's preprocessing uses.
//
// An image is width × height pixels of `channels(mode)` bytes each, stored row-major and
// interleaved in a u8 tensor `pixels()` of shape [H, W, C]; a palette image also carries its
// palette. The modes are Pillow's, with their names (`mode_name`), because the preprocessing
// treats each as Pillow does (clip/image/resize.hpp, clip/image/preprocess.hpp):
//
//   mode                 C  Pillow  what the bytes are
//   image_mode::bilevel  1  "1"     0 or 255 (1-bit PNGs); resized with nearest neighbour
//   image_mode::l        1  "L"     grey
//   image_mode::la       2  "LA"    grey, alpha (not premultiplied)
//   image_mode::p        1  "P"     palette index; resized with nearest neighbour
//   image_mode::rgb      3  "RGB"   red, green, blue
//   image_mode::rgba     4  "RGBA"  red, green, blue, alpha (not premultiplied)
//   image_mode::cmyk     4  "CMYK"  cyan, magenta, yellow, black (CMYK JPEGs)
//
// `convert_to_rgb` is Pillow 9.4's `Image.convert("RGB")` (src/libImaging/Convert.c): L and "1"
// replicate the grey; LA and RGBA drop the alpha without compositing over any background;
// P looks the index up in the palette; CMYK is `cmyk2rgb`, each channel
// clip8(255 − K − MULDIV255(C, 255 − K)). `crop` is `Image.crop`: areas outside the image are 0.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

#include "clip/core/error.hpp"
#include "clip/core/tensor.hpp"

namespace clip {

/// Pillow's image modes that clip decodes to (see the table above).
enum class image_mode : std::uint8_t { bilevel, l, la, p, rgb, rgba, cmyk };

/// Pillow's name of the mode: "1", "L", "LA", "P", "RGB", "RGBA", "CMYK".
constexpr std::string_view mode_name(image_mode mode) noexcept {
    switch (mode) {
    case image_mode::bilevel: return "1";
    case image_mode::l: return "L";
    case image_mode::la: return "LA";
    case image_mode::p: return "P";
    case image_mode::rgb: return "RGB";
    case image_mode::rgba: return "RGBA";
    case image_mode::cmyk: return "CMYK";
    }
    return "?";
}

/// Bytes per pixel in the mode.
constexpr int channels(image_mode mode) noexcept {
    switch (mode) {
    case image_mode::bilevel:
    case image_mode::l:
    case image_mode::p: return 1;
    case image_mode::la: return 2;
    case image_mode::rgb: return 3;
    case image_mode::rgba:
    case image_mode::cmyk: return 4;
    }
    return 0;
}

/// A palette: 256 RGB entries, `palette[3 * i + c]`. Entries a file does not define keep
/// Pillow's default, the grey ramp (i, i, i) (ImagingPaletteNew in src/libImaging/Palette.c).
using image_palette = std::array<std::uint8_t, 256 * 3>;

/// The grey ramp every palette starts from.
inline image_palette grey_ramp_palette() noexcept {
    image_palette ramp{};
    for (int i = 0; i < 256; ++i)
        for (int c = 0; c < 3; ++c) ramp[static_cast<std::size_t>(3 * i + c)] = static_cast<std::uint8_t>(i);
    return ramp;
}

class image {
public:
    /// An empty image (0 × 0, mode L); `empty()` is true.
    image() = default;

    /// A width × height image in `mode`, every byte 0 (P images get the grey ramp palette).
    image(std::int64_t width, std::int64_t height, image_mode mode)
        : pixels_(tensor::zeros({check_extent(height, "height"), check_extent(width, "width"), clip::channels(mode)},
                                dtype::u8)),
          mode_(mode), palette_(grey_ramp_palette()) {}

    /// A width × height image in `mode` whose pixels are not initialised (for decoders and
    /// resamplers that write every byte).
    static image uninitialized(std::int64_t width, std::int64_t height, image_mode mode) {
        image out;
        out.pixels_ = tensor::empty({check_extent(height, "height"), check_extent(width, "width"), clip::channels(mode)},
                                    dtype::u8);
        out.mode_ = mode;
        out.palette_ = grey_ramp_palette();
        return out;
    }

    /// Wraps pixels [H, W, C] u8 with C = channels(mode), sharing their memory when they are a
    /// contiguous CPU tensor (copied otherwise).
    static image from_pixels(const tensor& pixels, image_mode mode, const image_palette& palette = grey_ramp_palette()) {
        detail::check<shape_error>(pixels.ndim() == 3 && pixels.size(2) == clip::channels(mode), "image::from_pixels: mode ",
                                   mode_name(mode), " needs pixels [H, W, ", clip::channels(mode), "], got ", pixels.shape());
        detail::check<dtype_error>(pixels.dtype() == dtype::u8, "image::from_pixels: pixels must be u8, got ",
                                   pixels.dtype());
        image out;
        out.pixels_ = pixels.to(clip::device::cpu()).contiguous();
        out.mode_ = mode;
        out.palette_ = palette;
        return out;
    }

    std::int64_t width() const noexcept { return pixels_.defined() ? pixels_.size(1) : 0; }
    std::int64_t height() const noexcept { return pixels_.defined() ? pixels_.size(0) : 0; }
    image_mode mode() const noexcept { return mode_; }
    int channels() const noexcept { return clip::channels(mode_); }
    bool empty() const noexcept { return width() == 0 || height() == 0; }

    /// The pixels, [H, W, C] u8, contiguous. Shares memory with the image.
    const tensor& pixels() const noexcept { return pixels_; }
    /// The palette of a P image (the grey ramp for other modes).
    const image_palette& palette() const noexcept { return palette_; }
    void set_palette(const image_palette& palette) noexcept { palette_ = palette; }

    /// First byte of row y (width × channels bytes).
    std::uint8_t* row(std::int64_t y) noexcept { return data() + y * width() * channels(); }
    const std::uint8_t* row(std::int64_t y) const noexcept { return data() + y * width() * channels(); }
    std::uint8_t* data() noexcept { return pixels_.defined() ? static_cast<std::uint8_t*>(pixels_.data_ptr()) : nullptr; }
    const std::uint8_t* data() const noexcept {
        return pixels_.defined() ? static_cast<const std::uint8_t*>(pixels_.data_ptr()) : nullptr;
    }

    /// Pillow's `Image.crop((left, top, left + width, top + height))`: the box may reach outside
    /// the image, where the result is 0 (as Pillow fills it).
    image crop(std::int64_t left, std::int64_t top, std::int64_t crop_width, std::int64_t crop_height) const {
        image out(crop_width, crop_height, mode_);
        out.palette_ = palette_;
        const std::int64_t c = channels();
        const std::int64_t x_begin = std::clamp<std::int64_t>(left, 0, width()),
                           x_end = std::clamp<std::int64_t>(left + crop_width, 0, width());
        const std::int64_t y_begin = std::clamp<std::int64_t>(top, 0, height()),
                           y_end = std::clamp<std::int64_t>(top + crop_height, 0, height());
        if (x_begin >= x_end) return out;
        for (std::int64_t y = y_begin; y < y_end; ++y)
            std::memcpy(out.row(y - top) + (x_begin - left) * c, row(y) + x_begin * c,
                        static_cast<std::size_t>((x_end - x_begin) * c));
        return out;
    }

    /// Pillow 9.4's `Image.convert("RGB")` (see the header comment); an RGB image is returned
    /// as is (sharing its pixels).
    image convert_to_rgb() const {
        if (mode_ == image_mode::rgb) return *this;
        image out = uninitialized(width(), height(), image_mode::rgb);
        const std::int64_t n = width() * height();
        const std::uint8_t* in = data();
        std::uint8_t* rgb = out.data();
        for (std::int64_t i = 0; i < n; ++i, rgb += 3) {
            switch (mode_) {
            case image_mode::bilevel:
            case image_mode::l: rgb[0] = rgb[1] = rgb[2] = in[i]; break;
            case image_mode::la: rgb[0] = rgb[1] = rgb[2] = in[2 * i]; break;
            case image_mode::p: std::memcpy(rgb, &palette_[3 * static_cast<std::size_t>(in[i])], 3); break;
            case image_mode::rgba: std::memcpy(rgb, in + 4 * i, 3); break;
            case image_mode::cmyk: {
                const int not_black = 255 - in[4 * i + 3];
                for (int c = 0; c < 3; ++c)
                    rgb[c] = static_cast<std::uint8_t>(std::clamp(not_black - muldiv255(in[4 * i + c], not_black), 0, 255));
                break;
            }
            case image_mode::rgb: break;
            }
        }
        return out;
    }

    /// Pillow's MULDIV255: a·b/255 rounded, as ((t >> 8) + t) >> 8 with t = a·b + 128.
    static constexpr int muldiv255(int a, int b) noexcept {
        const int t = a * b + 128;
        return ((t >> 8) + t) >> 8;
    }

private:
    static std::int64_t check_extent(std::int64_t extent, const char* what) {
        detail::check<shape_error>(extent >= 0, "image: negative ", what, " ", extent);
        return extent;
    }

    tensor pixels_;
    image_mode mode_ = image_mode::l;
    image_palette palette_ = grey_ramp_palette();
};

} // namespace clip
