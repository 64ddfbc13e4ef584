// clip/image/preprocess.hpp: CLIP's image transform, identical to OpenAI's `clip._transform(n_px)`
// (torchvision 0.14 on Pillow 9.4):
//
//   Resize(n_px, BICUBIC)   shorter side → n_px, longer side → int(n_px · long / short)
//                           (truncated), skipped when the size already matches; Pillow's bicubic
//                           on the image in its own mode (clip/image/resize.hpp: RGBA and LA
//                           premultiplied, P and "1" nearest neighbour)
//   CenterCrop(n_px)        top = int(round((H − n_px) / 2)), left likewise, Python's round half
//                           to even (an image smaller than n_px, which Resize cannot produce, is
//                           padded with zeros first, as torchvision pads)
//   convert("RGB")          L replicated, alpha dropped without compositing, palette looked up
//   ToTensor, Normalize     v / 255, then (v − mean) / std per channel, in float32 as torch does,
//                           mean = (0.48145466, 0.4578275, 0.40821073),
//                           std = (0.26862954, 0.26130258, 0.27577711)
//
//   preprocess(image, n_px)          -> [3, n_px, n_px] f32
//   preprocess(path, n_px)           -> [3, n_px, n_px] f32 (read_image, then the transform)
//   preprocess(paths, n_px)          -> [N, 3, n_px, n_px] f32, the images decoded and transformed
//                                       in parallel on clip's thread pool (OpenMP, one image per
//                                       thread at a time); throws if any fails
//   preprocess_each(paths, n_px)     -> the same, keeping going past files that fail (listed)
//   preprocess_rgb(image, n_px)      -> the RGB image [n_px, n_px, 3] before ToTensor
//   image_to_tensor(rgb)             -> ToTensor + Normalize alone: [3, H, W] f32
//
// The output is what `encode_image` takes. Matches ../shared/reference/preprocess_expected.safetensors
// exactly (tests/image/preprocess_test.cpp).
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "clip/core/error.hpp"
#include "clip/core/parallel.hpp"
#include "clip/core/tensor.hpp"
#include "clip/image/decode.hpp"
#include "clip/image/image.hpp"
#include "clip/image/resize.hpp"

namespace clip {

/// The per-channel mean and standard deviation CLIP normalises with (OpenAI's `_transform`).
constexpr std::array<float, 3> clip_image_mean = {0.48145466f, 0.4578275f, 0.40821073f};
constexpr std::array<float, 3> clip_image_std = {0.26862954f, 0.26130258f, 0.27577711f};

struct image_size {
    std::int64_t width = 0, height = 0;
    bool operator==(const image_size&) const = default;
};

/// torchvision's `Resize(size)` with an int size: the shorter side becomes `size`, the longer
/// int(size · long / short) (Python's true division, truncated), keeping the orientation.
inline image_size shorter_side_size(std::int64_t width, std::int64_t height, std::int64_t size) {
    detail::check<shape_error>(width > 0 && height > 0 && size > 0, "shorter_side_size: image ", width, " x ", height,
                               " and size ", size, " must be positive");
    const bool portrait = width <= height;
    const std::int64_t shorter = portrait ? width : height, longer = portrait ? height : width;
    const auto scaled = static_cast<std::int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
    return portrait ? image_size{size, scaled} : image_size{scaled, size};
}

/// torchvision `Resize(size, BICUBIC)` on a PIL image: Pillow's resize to `shorter_side_size`.
inline image resize_shorter_side(const image& in, std::int64_t size, resample filter = resample::bicubic) {
    const image_size target = shorter_side_size(in.width(), in.height(), size);
    return resize(in, target.width, target.height, filter);
}

namespace detail {

/// int(round(x / 2.0)) in Python for an integer x: halves round to the even neighbour.
constexpr std::int64_t half_rounded_to_even(std::int64_t x) noexcept {
    const std::int64_t floor_half = x >= 0 ? x / 2 : -((-x + 1) / 2);
    if (x % 2 == 0) return floor_half;
    return floor_half % 2 == 0 ? floor_half : floor_half + 1;
}

/// Where a crop of `crop` starts along an axis of `extent`: torchvision pads a short axis with
/// (crop − extent) // 2 zeros before it, then crops the middle with Python's rounding.
constexpr std::int64_t center_crop_offset(std::int64_t extent, std::int64_t crop) noexcept {
    if (crop > extent) return -((crop - extent) / 2);
    return half_rounded_to_even(extent - crop);
}

} // namespace detail

/// torchvision `CenterCrop(size)`: the middle size × size pixels (see the header comment).
inline image center_crop(const image& in, std::int64_t size) {
    detail::check<shape_error>(size > 0, "center_crop: size ", size, " must be positive");
    if (in.width() == size && in.height() == size) return in;
    return in.crop(detail::center_crop_offset(in.width(), size), detail::center_crop_offset(in.height(), size), size, size);
}

/// Resize + CenterCrop + convert("RGB"): the RGB pixels [n_px, n_px, 3] that ToTensor sees.
inline image preprocess_rgb(const image& in, std::int64_t n_px = 224) {
    return center_crop(resize_shorter_side(in, n_px), n_px).convert_to_rgb();
}

namespace detail {

/// ToTensor + Normalize of an RGB image into planes [3, H, W] at `out`: (v / 255 − mean) / std in
/// float32, looked up in a table of the 256 values per channel.
inline void normalize_into(const image& rgb, float* out, const std::array<float, 3>& mean,
                           const std::array<float, 3>& std_dev) {
    check(rgb.mode() == image_mode::rgb, "image_to_tensor: needs an RGB image, got ", mode_name(rgb.mode()));
    std::array<std::array<float, 256>, 3> table;
    for (int c = 0; c < 3; ++c)
        for (int v = 0; v < 256; ++v)
            table[static_cast<std::size_t>(c)][static_cast<std::size_t>(v)] =
                (static_cast<float>(v) / 255.0f - mean[static_cast<std::size_t>(c)]) / std_dev[static_cast<std::size_t>(c)];
    const std::int64_t plane = rgb.width() * rgb.height();
    const std::uint8_t* p = rgb.data();
    for (std::int64_t i = 0; i < plane; ++i, p += 3)
        for (std::int64_t c = 0; c < 3; ++c) out[c * plane + i] = table[static_cast<std::size_t>(c)][p[c]];
}

inline void preprocess_into(const image& in, std::int64_t n_px, float* out) {
    normalize_into(preprocess_rgb(in, n_px), out, clip_image_mean, clip_image_std);
}

} // namespace detail

/// ToTensor + Normalize: an RGB image → [3, H, W] f32, (v / 255 − mean) / std.
inline tensor image_to_tensor(const image& rgb, const std::array<float, 3>& mean = clip_image_mean,
                               const std::array<float, 3>& std_dev = clip_image_std) {
    tensor out = tensor::empty({3, rgb.height(), rgb.width()}); // [3, H, W]
    detail::normalize_into(rgb, out.data<float>(), mean, std_dev);
    return out;
}

/// `clip._transform(n_px)(img)`: [3, n_px, n_px] f32.
inline tensor preprocess(const image& in, std::int64_t n_px = 224) {
    detail::check<shape_error>(n_px > 0, "preprocess: n_px ", n_px, " must be positive");
    tensor out = tensor::empty({3, n_px, n_px}); // [3, n, n]
    detail::preprocess_into(in, n_px, out.data<float>());
    return out;
}

/// Reads an image file and applies `clip._transform(n_px)`: [3, n_px, n_px] f32.
inline tensor preprocess(const std::filesystem::path& file, std::int64_t n_px = 224) {
    return preprocess(read_image(file), n_px);
}

/// What preprocess_each made of a list of files: the images that decoded, in file order, and
/// one entry per file that did not.
struct preprocessed_batch {
    struct failure {
        std::size_t index = 0;     ///< position in the file list
        std::filesystem::path file;
        std::string message;       ///< the error's own message (names the file and the problem)
    };
    tensor images;                       ///< [loaded.size(), 3, n_px, n_px] f32
    std::vector<std::size_t> loaded;     ///< file-list positions of images' rows
    std::vector<failure> failures;       ///< in file order
};

/// Reads and transforms every file, in parallel over the images, keeping going past files that
/// fail: a tool indexing a folder skips a broken photo instead of stopping at it.
inline preprocessed_batch preprocess_each(const std::vector<std::filesystem::path>& files, std::int64_t n_px = 224) {
    detail::check<shape_error>(n_px > 0, "preprocess: n_px ", n_px, " must be positive");
    const auto n = static_cast<std::int64_t>(files.size());
    tensor out = tensor::empty({n, 3, n_px, n_px}); // [N, 3, n, n]
    float* data = n > 0 ? out.data<float>() : nullptr;
    const std::int64_t image_floats = 3 * n_px * n_px;
    // Exceptions must not leave an OpenMP region: each image's message is kept instead.
    std::vector<std::string> failures(static_cast<std::size_t>(n));
    std::vector<char> failed(static_cast<std::size_t>(n), 0);
    auto one = [&](std::int64_t i) {
        const auto k = static_cast<std::size_t>(i);
        try {
            detail::preprocess_into(read_image(files[k]), n_px, data + i * image_floats);
        } catch (const std::exception& e) {
            failed[k] = 1;
            failures[k] = e.what();
        } catch (...) {
            failed[k] = 1;
            failures[k] = "unknown error";
        }
    };
    // One image per thread at a time, handed out as threads free up (images differ in size, and
    // a thread that loses its core should not hold half the batch). Inside, each image's own
    // parallel loops run serially. Nested in a parallel region, or on one thread: a plain loop,
    // whose images then use the threads themselves.
    const int threads = static_cast<int>(std::min<std::int64_t>(num_threads(), n));
    if (threads <= 1 || omp_in_parallel()) {
        for (std::int64_t i = 0; i < n; ++i) one(i);
    } else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (std::int64_t i = 0; i < n; ++i) one(i);
    }
    preprocessed_batch result;
    std::int64_t rows = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const auto k = static_cast<std::size_t>(i);
        if (failed[k]) {
            result.failures.push_back({k, files[k], std::move(failures[k])});
            continue;
        }
        // Close the gaps left by failures (rows only move towards the front).
        if (rows != i) std::copy_n(data + i * image_floats, image_floats, data + rows * image_floats);
        result.loaded.push_back(k);
        ++rows;
    }
    result.images = rows == n ? out : out.slice(0, 0, rows);
    return result;
}

/// Reads and transforms every file, in parallel over the images: [N, 3, n_px, n_px] f32. When
/// some fail, throws (after all have been tried) an io_error naming the first failure's image and
/// index, and how many others failed.
inline tensor preprocess(const std::vector<std::filesystem::path>& files, std::int64_t n_px = 224) {
    preprocessed_batch batch = preprocess_each(files, n_px);
    if (batch.failures.empty()) return batch.images;
    const preprocessed_batch::failure& first = batch.failures.front();
    const std::size_t more = batch.failures.size() - 1;
    throw io_error(detail::message("preprocess: image ", first.index, " of ", files.size(), " (\"", first.file.string(),
                                   "\"): ", first.message,
                                   more ? detail::message(" (and ", more, " more images failed)") : std::string()));
}

} // namespace clip
