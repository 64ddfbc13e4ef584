// clip/image/resize.hpp: Pillow's resampler, bit for bit: `resize(img, w, h, filter)` is Pillow
// 9.4's `Image.resize((w, h), filter)` on an image of the same mode.
//
// What Pillow does, and this file mirrors (src/PIL/Image.py `Image.resize`,
// src/libImaging/Resample.c, src/libImaging/Geometry.c, src/libImaging/Convert.c):
//
// * Same size: the image is returned unchanged (Pillow returns a copy; here the pixels are shared).
// * Modes "1" and "P" are always resized with nearest neighbour, whatever the filter (palette
//   indices cannot be interpolated). Nearest neighbour is `ImagingScaleAffine`: output pixel x
//   takes input pixel int(x₀), x₀ = s/2 + x·s accumulated in double, s = in / out.
// * LA and RGBA are resized premultiplied: converted to La / RGBa with MULDIV255(c, a)
//   (`rgbA2rgba`, `lA2la`), resized, and converted back with clip8(255·c / a) for 0 < a < 255
//   and c unchanged for a = 0 or 255 (`rgba2rgbA`, `la2lA`). Colour under alpha 0 does not
//   bleed into its neighbours, and fully transparent areas come out black.
// * The convolution (`ImagingResample` → `ImagingResampleInner`) is separable: a horizontal pass
//   (only when the width changes) into an 8-bit temporary holding just the rows the vertical
//   pass reads, then a vertical pass (only when the height changes). Each pass rounds and clips to
//   8 bits. Per output pixel i of a pass (`precompute_coeffs`):
//       scale = in / out, filterscale = max(scale, 1), support = filter support · filterscale
//       centre = (i + 0.5) · scale
//       taps x ∈ [int(centre − support + 0.5), int(centre + support + 0.5)) ∩ [0, in)
//       w(x) = filter((x − centre + 0.5) / filterscale), normalised to sum 1 (in double)
//   so downscaling is antialiased (the kernel widens with the scale). Bicubic is the cubic
//   convolution kernel with a = −0.5, support 2; bilinear the triangle, support 1. The weights
//   go to fixed point with PRECISION_BITS = 32 − 8 − 2 = 22 fractional bits, rounded half away
//   from zero (`normalize_coeffs_8bpc`), and each output channel is
//       clip8((2²¹ + Σ pixel · weight) >> 22)
//   in 32-bit integers (`ImagingResampleHorizontal_8bpc`, `ImagingResampleVertical_8bpc`).
//
// Exactness: the double-precision weights are computed with every product rounded before it is
// added (no fused multiply-add), as Pillow's baseline x86-64 build does; compilers contract
// a·b + c into an FMA under -march=x86-64-v3 even in ISO C++ mode, which can move a weight by one
// ulp and, rarely, an output by one level, so the products go through `detail::resampling::rounded`.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "clip/core/error.hpp"
#include "clip/core/parallel.hpp"
#include "clip/image/image.hpp"

namespace clip {

/// Pillow's resampling filters that clip implements (`PIL.Image.Resampling`).
enum class resample : std::uint8_t { nearest, bilinear, bicubic };

namespace detail::resampling {

/// Fractional bits of the fixed-point weights (Resample.c: 8 bits of result, 2 of headroom).
constexpr int precision_bits = 32 - 8 - 2;

/// v, forced to memory: the compiler can no longer fuse the product that made it into a later
/// addition (see the header comment).
inline double rounded(double v) noexcept {
    volatile double stored = v;
    return stored;
}

/// Resample.c `bicubic_filter`: ((a + 2)|x| − (a + 3))|x|² + 1 for |x| < 1,
/// a(|x|³ − 5|x|² + 8|x| − 4) for 1 ≤ |x| < 2, with a = −0.5.
inline double bicubic(double x) noexcept {
    constexpr double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) {
        const double t = rounded((a + 2.0) * x) - (a + 3.0);
        return rounded(rounded(t * x) * x) + 1;
    }
    if (x < 2.0) {
        const double t = rounded((x - 5) * x) + 8;
        return (rounded(t * x) - 4) * a;
    }
    return 0.0;
}

/// Resample.c `bilinear_filter`: 1 − |x| for |x| < 1.
inline double bilinear(double x) noexcept {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

/// The taps of one pass: output i reads `count[i]` inputs from `first[i]` with the fixed-point
/// weights `weights[i · ksize ...]`.
struct coefficients {
    int ksize = 0;
    std::vector<int> first, count;
    std::vector<std::int32_t> weights; // [out, ksize]
};

/// Resample.c `precompute_coeffs` + `normalize_coeffs_8bpc` for the box [0, in_size).
inline coefficients precompute(int in_size, int out_size, resample filter) {
    const double support_of_filter = filter == resample::bicubic ? 2.0 : 1.0;
    const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = rounded(support_of_filter * filterscale);
    const double ss = 1.0 / filterscale;

    coefficients out;
    out.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    out.first.resize(static_cast<std::size_t>(out_size));
    out.count.resize(static_cast<std::size_t>(out_size));
    out.weights.assign(static_cast<std::size_t>(out_size) * static_cast<std::size_t>(out.ksize), 0);
    std::vector<double> k(static_cast<std::size_t>(out.ksize));
    for (int i = 0; i < out_size; ++i) {
        const double center = rounded((i + 0.5) * scale);
        const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
        const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
        double total = 0.0;
        for (int x = 0; x < xmax; ++x) {
            const double argument = rounded((x + xmin - center + 0.5) * ss);
            const double w = rounded(filter == resample::bicubic ? bicubic(argument) : bilinear(argument));
            k[static_cast<std::size_t>(x)] = w;
            total += w;
        }
        std::int32_t* fixed = &out.weights[static_cast<std::size_t>(i) * static_cast<std::size_t>(out.ksize)];
        for (int x = 0; x < xmax; ++x) {
            double w = k[static_cast<std::size_t>(x)];
            if (total != 0.0) w /= total;
            const double scaled = w * (1 << precision_bits);
            fixed[x] = static_cast<std::int32_t>(w < 0 ? -0.5 + scaled : 0.5 + scaled);
        }
        out.first[static_cast<std::size_t>(i)] = xmin;
        out.count[static_cast<std::size_t>(i)] = std::max(xmax, 0);
    }
    return out;
}

/// Resample.c `clip8`: the fixed-point sum back to 0..255.
inline std::uint8_t clip8(std::int32_t sum) noexcept {
    return static_cast<std::uint8_t>(std::clamp(sum >> precision_bits, 0, 255));
}

constexpr std::int32_t rounding_bias = std::int32_t{1} << (precision_bits - 1);

/// Horizontal pass: rows [row_begin, row_end) of `in` (width in_width, C channels) into `out`
/// (out_width wide, row_end − row_begin rows).
template <int C>
void horizontal_pass(const std::uint8_t* in, std::int64_t in_width, std::int64_t row_begin, std::int64_t row_end,
                     std::uint8_t* out, std::int64_t out_width, const coefficients& k) {
    const std::int64_t rows = row_end - row_begin;
    parallel_for(rows, out_width * k.ksize * C, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t y = begin; y < end; ++y) {
            const std::uint8_t* src = in + (row_begin + y) * in_width * C;
            std::uint8_t* dst = out + y * out_width * C;
            for (std::int64_t x = 0; x < out_width; ++x) {
                const std::int32_t* w = &k.weights[static_cast<std::size_t>(x * k.ksize)];
                const std::uint8_t* p = src + static_cast<std::int64_t>(k.first[static_cast<std::size_t>(x)]) * C;
                const int count = k.count[static_cast<std::size_t>(x)];
                std::int32_t sum[C];
                for (int c = 0; c < C; ++c) sum[c] = rounding_bias;
                for (int t = 0; t < count; ++t)
                    for (int c = 0; c < C; ++c) sum[c] += static_cast<std::int32_t>(p[t * C + c]) * w[t];
                for (int c = 0; c < C; ++c) dst[x * C + c] = clip8(sum[c]);
            }
        }
    });
}

/// Vertical pass: `in` (rows of `row_bytes` bytes, the first being input row `row_offset`) into
/// `out` (out_height rows). Accumulates a whole output row at a time, row by input row (the
/// same integer sums as Pillow's per-pixel loop, in an order that vectorises).
inline void vertical_pass(const std::uint8_t* in, std::int64_t row_bytes, int row_offset, std::uint8_t* out,
                          std::int64_t out_height, const coefficients& k) {
    parallel_for(out_height, row_bytes * k.ksize, [&](std::int64_t begin, std::int64_t end) {
        std::vector<std::int32_t> sum(static_cast<std::size_t>(row_bytes));
        for (std::int64_t y = begin; y < end; ++y) {
            const std::int32_t* w = &k.weights[static_cast<std::size_t>(y * k.ksize)];
            const std::int64_t first = k.first[static_cast<std::size_t>(y)] - row_offset;
            std::fill(sum.begin(), sum.end(), rounding_bias);
            for (int t = 0; t < k.count[static_cast<std::size_t>(y)]; ++t) {
                const std::uint8_t* src = in + (first + t) * row_bytes;
                const std::int32_t weight = w[t];
                std::int32_t* s = sum.data();
                // Integer sums: vectorising cannot change them (GCC's -O2 cost model would not).
#pragma omp simd
                for (std::int64_t i = 0; i < row_bytes; ++i) s[i] += static_cast<std::int32_t>(src[i]) * weight;
            }
            std::uint8_t* dst = out + y * row_bytes;
            const std::int32_t* s = sum.data();
#pragma omp simd
            for (std::int64_t i = 0; i < row_bytes; ++i) dst[i] = clip8(s[i]);
        }
    });
}

/// Resample.c `ImagingResampleInner` on 8-bit channels, any mode (no premultiplication here).
inline image convolve(const image& in, std::int64_t width, std::int64_t height, resample filter) {
    const int c = in.channels();
    const bool need_horizontal = width != in.width(), need_vertical = height != in.height();
    const coefficients vertical = precompute(static_cast<int>(in.height()), static_cast<int>(height), filter);
    // Rows of the input the vertical pass reads: the horizontal pass computes only those.
    const int row_first = vertical.first.front();
    const int row_last = vertical.first.back() + vertical.count.back();

    image source = in;
    int row_offset = 0;
    if (need_horizontal) {
        const coefficients horizontal = precompute(static_cast<int>(in.width()), static_cast<int>(width), filter);
        image temporary = image::uninitialized(width, row_last - row_first, in.mode());
        auto run = [&]<int C>() {
            horizontal_pass<C>(in.data(), in.width(), row_first, row_last, temporary.data(), width, horizontal);
        };
        switch (c) {
        case 1: run.template operator()<1>(); break;
        case 2: run.template operator()<2>(); break;
        case 3: run.template operator()<3>(); break;
        default: run.template operator()<4>(); break;
        }
        source = temporary;
        row_offset = row_first;
    }
    if (!need_vertical) {
        if (!need_horizontal) return in;
        return source; // the horizontal pass computed every row: the vertical taps are the identity
    }
    image out = image::uninitialized(source.width(), height, in.mode());
    vertical_pass(source.data(), source.width() * c, row_offset, out.data(), height, vertical);
    return out;
}

/// Geometry.c `ImagingScaleAffine` (Pillow's NEAREST resize): output x takes input
/// int(s/2 + x·s), the position accumulated in double as Pillow does (an output whose position
/// falls outside the input, which rounding cannot produce for in/out scales, would be 0).
inline image nearest(const image& in, std::int64_t width, std::int64_t height) {
    auto positions = [](std::int64_t in_size, std::int64_t out_size) {
        const double step = static_cast<double>(static_cast<float>(in_size)) / static_cast<double>(out_size);
        std::vector<std::int64_t> index(static_cast<std::size_t>(out_size));
        double position = step * 0.5;
        for (auto& i : index) {
            i = position < 0.0 ? -1 : static_cast<std::int64_t>(position);
            if (i >= in_size) i = -1;
            position += step;
        }
        return index;
    };
    const std::vector<std::int64_t> xs = positions(in.width(), width), ys = positions(in.height(), height);
    image out(width, height, in.mode());
    out.set_palette(in.palette());
    const int c = in.channels();
    for (std::int64_t y = 0; y < height; ++y) {
        if (ys[static_cast<std::size_t>(y)] < 0) continue;
        const std::uint8_t* src = in.row(ys[static_cast<std::size_t>(y)]);
        std::uint8_t* dst = out.row(y);
        for (std::int64_t x = 0; x < width; ++x) {
            const std::int64_t from = xs[static_cast<std::size_t>(x)];
            if (from >= 0)
                for (int ch = 0; ch < c; ++ch) dst[x * c + ch] = src[from * c + ch];
        }
    }
    return out;
}

/// Convert.c `rgbA2rgba` / `lA2la`: colour channels times alpha / 255 (MULDIV255), in place.
inline void premultiply(image& img) {
    const int c = img.channels();
    std::uint8_t* p = img.data();
    const std::int64_t n = img.width() * img.height();
    for (std::int64_t i = 0; i < n; ++i, p += c) {
        const int alpha = p[c - 1];
        for (int ch = 0; ch < c - 1; ++ch) p[ch] = static_cast<std::uint8_t>(image::muldiv255(p[ch], alpha));
    }
}

/// Convert.c `rgba2rgbA` / `la2lA`: colour channels times 255 / alpha (integer division, clipped
/// to 255) for 0 < alpha < 255, unchanged for alpha 0 and 255; in place.
inline void unpremultiply(image& img) {
    const int c = img.channels();
    std::uint8_t* p = img.data();
    const std::int64_t n = img.width() * img.height();
    for (std::int64_t i = 0; i < n; ++i, p += c) {
        const int alpha = p[c - 1];
        if (alpha == 255 || alpha == 0) continue;
        for (int ch = 0; ch < c - 1; ++ch) p[ch] = static_cast<std::uint8_t>(std::min(255 * p[ch] / alpha, 255));
    }
}

/// A deep copy of the pixels (premultiplication must not write into the caller's image).
inline image copy_of(const image& in) {
    image out = image::uninitialized(in.width(), in.height(), in.mode());
    out.set_palette(in.palette());
    if (!in.empty()) std::copy(in.data(), in.data() + in.width() * in.height() * in.channels(), out.data());
    return out;
}

} // namespace detail::resampling

/// Pillow 9.4's `img.resize((width, height), filter)`; see the header comment for the rules.
/// Same size: returns `in` itself (sharing its pixels).
inline image resize(const image& in, std::int64_t width, std::int64_t height, resample filter = resample::bicubic) {
    detail::check<shape_error>(width > 0 && height > 0, "resize: output size ", width, " x ", height,
                               " must be positive");
    detail::check<shape_error>(!in.empty(), "resize: the input image is empty (", in.width(), " x ", in.height(), ")");
    detail::check<shape_error>(width <= (std::int64_t{1} << 30) && height <= (std::int64_t{1} << 30) &&
                                   in.width() <= (std::int64_t{1} << 30) && in.height() <= (std::int64_t{1} << 30),
                               "resize: ", in.width(), " x ", in.height(), " -> ", width, " x ", height,
                               " is beyond Pillow's int coordinates");
    if (width == in.width() && height == in.height()) return in;
    if (in.mode() == image_mode::bilevel || in.mode() == image_mode::p) filter = resample::nearest;
    if (filter == resample::nearest) return detail::resampling::nearest(in, width, height);
    if (in.mode() == image_mode::la || in.mode() == image_mode::rgba) {
        image premultiplied = detail::resampling::copy_of(in);
        detail::resampling::premultiply(premultiplied);
        image out = detail::resampling::convolve(premultiplied, width, height, filter);
        detail::resampling::unpremultiply(out);
        return out;
    }
    return detail::resampling::convolve(in, width, height, filter);
}

} // namespace clip
