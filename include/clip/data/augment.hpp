// clip/data/augment.hpp: OpenCLIP's training transform (open_clip/transform.py `image_transform`
// with is_train=True and the default augmentation config):
//
//   RandomResizedCrop(size, scale=(0.9, 1.0), ratio=(3/4, 4/3), interpolation=BICUBIC)
//   convert("RGB"), ToTensor, Normalize(CLIP's mean and std)
//
//   clip::counter_rng rng(seed, clip::rng_purpose::augment, epoch, index);
//   clip::tensor x = clip::train_transform(img, 224, rng);   // [3, 224, 224] f32
//
// The crop box is torchvision's `RandomResizedCrop.get_params` (torchvision 0.14), step for step:
// up to 10 attempts of
//     target_area = W·H · U(scale)                      U drawn as a float32, as torch's uniform_
//     aspect      = exp(U(log ratio₀, log ratio₁))      the logs and exp in float32, as torch
//     w = int(round(√(target_area · aspect))), h = int(round(√(target_area / aspect)))
//                                                       (Python's round: halves to even)
//     if 0 < w ≤ W and 0 < h ≤ H: top ~ randint(0, H − h + 1), left ~ randint(0, W − w + 1)
// and if none fits, the centre crop of the whole image clamped to the ratio range:
//     W/H < ratio₀: w = W, h = int(round(w / ratio₀));  W/H > ratio₁: h = H, w = int(round(h · ratio₁));
//     else w = W, h = H;  top = (H − h) // 2, left = (W − w) // 2.
// Then `resized_crop` on a PIL image: `img.crop(box).resize((size, size), BICUBIC)`, which is
// Pillow's resampler of clip/image/resize.hpp (in the image's own mode), then convert("RGB") and
// ToTensor + Normalize as clip/image/preprocess.hpp. The random numbers come from the caller's
// counter_rng (clip/data/counter_rng.hpp), not torch's generator, so the crops are torchvision's
// distribution but not its exact draws. The evaluation transform is clip::preprocess.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "clip/core/error.hpp"
#include "clip/core/tensor.hpp"
#include "clip/data/counter_rng.hpp"
#include "clip/image/image.hpp"
#include "clip/image/preprocess.hpp"
#include "clip/image/resize.hpp"

namespace clip {

/// RandomResizedCrop's ranges: the crop's area as a fraction of the image's, and its
/// width / height. OpenCLIP's defaults.
struct random_resized_crop_options {
    std::array<double, 2> scale = {0.9, 1.0};
    std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0};
};

/// A box in pixels: Pillow's `crop((left, top, left + width, top + height))`.
struct crop_box {
    std::int64_t left = 0, top = 0, width = 0, height = 0;
    bool operator==(const crop_box&) const = default;
};

namespace detail {

/// Python's int(round(x)): halves go to the even neighbour.
inline std::int64_t round_half_even(double x) noexcept {
    double r = std::round(x);
    if (std::abs(x - std::trunc(x)) == 0.5) r = 2.0 * std::round(x / 2.0);
    return static_cast<std::int64_t>(r);
}

} // namespace detail

/// torchvision's RandomResizedCrop.get_params for a width × height image (see the header).
inline crop_box random_resized_crop_box(std::int64_t width, std::int64_t height, counter_rng& rng,
                                        const random_resized_crop_options& options = {}) {
    detail::check<shape_error>(width > 0 && height > 0, "random_resized_crop: empty image (", width, " x ", height, ")");
    detail::check(options.scale[0] > 0 && options.scale[0] <= options.scale[1] && options.ratio[0] > 0 &&
                      options.ratio[0] <= options.ratio[1],
                  "random_resized_crop: need 0 < scale₀ ≤ scale₁ and 0 < ratio₀ ≤ ratio₁");
    const double area = static_cast<double>(width * height);
    const float log_low = std::log(static_cast<float>(options.ratio[0]));
    const float log_high = std::log(static_cast<float>(options.ratio[1]));
    for (int attempt = 0; attempt < 10; ++attempt) {
        const double target_area = area * rng.uniform_f32(static_cast<float>(options.scale[0]), static_cast<float>(options.scale[1]));
        const double aspect = std::exp(rng.uniform_f32(log_low, log_high));
        const std::int64_t w = detail::round_half_even(std::sqrt(target_area * aspect));
        const std::int64_t h = detail::round_half_even(std::sqrt(target_area / aspect));
        if (0 < w && w <= width && 0 < h && h <= height) {
            const auto top = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(height - h + 1)));
            const auto left = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(width - w + 1)));
            return {left, top, w, h};
        }
    }
    const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
    std::int64_t w = width, h = height;
    if (in_ratio < options.ratio[0]) h = detail::round_half_even(static_cast<double>(w) / options.ratio[0]);
    else if (in_ratio > options.ratio[1]) w = detail::round_half_even(static_cast<double>(h) * options.ratio[1]);
    return {(width - w) / 2, (height - h) / 2, w, h};
}

/// RandomResizedCrop(size): the crop resized to size × size with Pillow's bicubic, in the
/// image's own mode.
inline image random_resized_crop(const image& in, std::int64_t size, counter_rng& rng,
                                 const random_resized_crop_options& options = {}) {
    detail::check<shape_error>(size > 0, "random_resized_crop: size ", size, " must be positive");
    const crop_box box = random_resized_crop_box(in.width(), in.height(), rng, options);
    return resize(in.crop(box.left, box.top, box.width, box.height), size, size, resample::bicubic);
}

namespace detail {

inline void train_transform_into(const image& in, std::int64_t size, counter_rng& rng,
                                 const random_resized_crop_options& options, float* out) {
    normalize_into(random_resized_crop(in, size, rng, options).convert_to_rgb(), out, clip_image_mean, clip_image_std);
}

} // namespace detail

/// OpenCLIP's training transform: RandomResizedCrop, convert("RGB"), ToTensor, Normalize.
/// [3, size, size] f32.
inline tensor train_transform(const image& in, std::int64_t size, counter_rng& rng,
                              const random_resized_crop_options& options = {}) {
    detail::check<shape_error>(size > 0, "train_transform: size ", size, " must be positive");
    tensor out = tensor::empty({3, size, size}); // [3, size, size]
    detail::train_transform_into(in, size, rng, options, out.data<float>());
    return out;
}

} // namespace clip
