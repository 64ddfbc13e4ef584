// clip/ops/rowwise.hpp: operations that normalise along the last axis.
//
// softmax, log_softmax, layer_norm and l2_normalize see their input as (rows, D) with D the last
// axis, and handle each row in two or three passes over D held in cache; rows are split across
// threads. Results are f32 in the input's shape. Formulas follow PyTorch:
//   softmax(x)     = exp(x - max x) / Σ exp(x - max x)
//   log_softmax(x) = x - max x - log Σ exp(x - max x)
//   layer_norm(x)  = (x - mean) / sqrt(var + eps) · weight + bias   (biased variance, eps 1e-5)
//   l2_normalize(x) = x / max(‖x‖₂, eps)                              (F.normalize, eps 1e-12)
#pragma once

#include <cmath>
#include <limits>

#include "clip/expr/node.hpp"
#if defined(CLIP_WITH_CUDA)
#include "clip/backend/cuda/rowwise.hpp"
#endif

namespace clip {

namespace detail {

/// Calls `body(in_row, out_row, D)` for every row of the last axis, in parallel.
template <class F>
tensor rowwise(const tensor& input, const char* op, std::int64_t passes, F&& body) {
    require_defined(input, op);
    require_cpu(input, op);
    check<shape_error>(input.ndim() >= 1, op, ": needs at least one dimension, got a scalar");
    const tensor x = input.to(dtype::f32).contiguous();
    tensor out = tensor::empty(x.shape(), dtype::f32);
    const std::int64_t width = x.shape().back();
    if (x.numel() == 0) return out;
    const std::int64_t rows = x.numel() / width;
    const float* in = x.data<float>();
    float* result = out.data<float>();
    parallel_for(rows, width * passes, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t r = first; r < last; ++r) body(in + r * width, result + r * width, width);
    });
    return out;
}

inline float row_max(const float* x, std::int64_t n) noexcept {
    simd acc(-std::numeric_limits<float>::infinity());
    std::int64_t i = 0;
    for (; i + simd_width <= n; i += simd_width) acc = xsimd::max(acc, simd::load_unaligned(x + i));
    float m = reduce_max(acc);
    for (; i < n; ++i) m = std::max(m, x[i]);
    return m;
}

/// out = exp(x - shift), returning Σ out.
inline float row_exp_sum(const float* x, float* out, std::int64_t n, float shift) noexcept {
    simd acc(0.0f);
    std::int64_t i = 0;
    for (; i + simd_width <= n; i += simd_width) {
        const simd e = xsimd::exp(simd::load_unaligned(x + i) - simd(shift));
        e.store_unaligned(out + i);
        acc += e;
    }
    if (i < n) {
        const simd e = xsimd::exp(load_partial(x + i, n - i) - simd(shift));
        store_partial(out + i, e, n - i);
        alignas(64) float lanes[simd::size] = {};
        store_partial(lanes, e, n - i);
        acc += simd::load_aligned(lanes);
    }
    return reduce_add(acc);
}

/// out = x·a + b over a row.
inline void row_affine(const float* x, float* out, std::int64_t n, float a, float b) noexcept {
    std::int64_t i = 0;
    for (; i + simd_width <= n; i += simd_width)
        xsimd::fma(simd::load_unaligned(x + i), simd(a), simd(b)).store_unaligned(out + i);
    for (; i < n; ++i) out[i] = x[i] * a + b;
}

// Four independent accumulators: one would serialise the row on the latency of its adds.
inline float row_sum(const float* x, std::int64_t n) noexcept {
    simd acc0(0.0f), acc1(0.0f), acc2(0.0f), acc3(0.0f);
    std::int64_t i = 0;
    for (; i + 4 * simd_width <= n; i += 4 * simd_width) {
        acc0 += simd::load_unaligned(x + i);
        acc1 += simd::load_unaligned(x + i + simd_width);
        acc2 += simd::load_unaligned(x + i + 2 * simd_width);
        acc3 += simd::load_unaligned(x + i + 3 * simd_width);
    }
    for (; i + simd_width <= n; i += simd_width) acc0 += simd::load_unaligned(x + i);
    float s = reduce_add((acc0 + acc1) + (acc2 + acc3));
    for (; i < n; ++i) s += x[i];
    return s;
}

/// Σ (x - center)²
inline float row_centered_square_sum(const float* x, std::int64_t n, float center) noexcept {
    const simd c(center);
    simd acc0(0.0f), acc1(0.0f), acc2(0.0f), acc3(0.0f);
    std::int64_t i = 0;
    for (; i + 4 * simd_width <= n; i += 4 * simd_width) {
        const simd d0 = simd::load_unaligned(x + i) - c, d1 = simd::load_unaligned(x + i + simd_width) - c;
        const simd d2 = simd::load_unaligned(x + i + 2 * simd_width) - c;
        const simd d3 = simd::load_unaligned(x + i + 3 * simd_width) - c;
        acc0 = xsimd::fma(d0, d0, acc0);
        acc1 = xsimd::fma(d1, d1, acc1);
        acc2 = xsimd::fma(d2, d2, acc2);
        acc3 = xsimd::fma(d3, d3, acc3);
    }
    for (; i + simd_width <= n; i += simd_width) {
        const simd d = simd::load_unaligned(x + i) - c;
        acc0 = xsimd::fma(d, d, acc0);
    }
    float s = reduce_add((acc0 + acc1) + (acc2 + acc3));
    for (; i < n; ++i) s += (x[i] - center) * (x[i] - center);
    return s;
}

/// out = (x·a + b)·weight + bias over a row, weight and bias optional ([n] or null).
inline void row_affine_weighted(const float* x, float* out, std::int64_t n, float a, float b, const float* weight,
                                const float* bias) noexcept {
    std::int64_t i = 0;
    for (; i + simd_width <= n; i += simd_width) {
        simd v = xsimd::fma(simd::load_unaligned(x + i), simd(a), simd(b));
        if (weight) v *= simd::load_unaligned(weight + i);
        if (bias) v += simd::load_unaligned(bias + i);
        v.store_unaligned(out + i);
    }
    for (; i < n; ++i) out[i] = (x[i] * a + b) * (weight ? weight[i] : 1.0f) + (bias ? bias[i] : 0.0f);
}

} // namespace detail

/// Softmax along the last axis, computed stably (the row maximum is subtracted first).
template <expression E>
tensor softmax(const E& x) {
    const tensor input = eval(x);
#if defined(CLIP_WITH_CUDA)
    if (input.device().is_cuda() && input.ndim() >= 1) return detail::cuda::softmax_rows(input, 0);
#endif
    return detail::rowwise(input, "softmax", 3, [](const float* in, float* out, std::int64_t n) {
        const float m = detail::row_max(in, n);
        const float total = detail::row_exp_sum(in, out, n, m);
        detail::row_affine(out, out, n, 1.0f / total, 0.0f);
    });
}

/// Softmax of each [T, T] matrix in the last two axes with a causal mask: row i keeps columns
/// j <= i and gives the rest probability 0, exactly as adding -inf above the diagonal would
/// (OpenAI CLIP's text attention mask).
template <expression E>
tensor causal_softmax(const E& x) {
    const tensor input = eval(x);
    detail::check<shape_error>(input.ndim() >= 2 && input.shape()[input.ndim() - 1] == input.shape()[input.ndim() - 2],
                               "causal_softmax: needs square matrices in the last two axes, got shape ", input.shape());
    const std::int64_t size = input.shape().back();
#if defined(CLIP_WITH_CUDA)
    if (input.device().is_cuda()) return detail::cuda::softmax_rows(input, 2, static_cast<int>(size));
#endif
    detail::require_cpu(input, "causal_softmax");
    const tensor rows = input.to(dtype::f32).contiguous();
    tensor out = tensor::empty(rows.shape(), dtype::f32);
    if (rows.numel() == 0) return out;
    const float* in = rows.data<float>();
    float* result = out.data<float>();
    detail::parallel_for(rows.numel() / size, size * 3, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t r = first; r < last; ++r) {
            const std::int64_t keep = r % size + 1;
            const float* row = in + r * size;
            float* dst = result + r * size;
            const float m = detail::row_max(row, keep);
            const float total = detail::row_exp_sum(row, dst, keep, m);
            detail::row_affine(dst, dst, keep, 1.0f / total, 0.0f);
            std::fill(dst + keep, dst + size, 0.0f);
        }
    });
    return out;
}

/// Log-softmax along the last axis.
template <expression E>
tensor log_softmax(const E& x) {
    const tensor input = eval(x);
#if defined(CLIP_WITH_CUDA)
    if (input.device().is_cuda() && input.ndim() >= 1) return detail::cuda::softmax_rows(input, 1);
#endif
    return detail::rowwise(input, "log_softmax", 3, [](const float* in, float* out, std::int64_t n) {
        const float m = detail::row_max(in, n);
        const float total = detail::row_exp_sum(in, out, n, m);
        detail::row_affine(in, out, n, 1.0f, -m - std::log(total));
    });
}

/// Layer normalisation over the last axis of size D; `weight` and `bias` are [D] or undefined.
template <expression E>
tensor layer_norm(const E& x, const tensor& weight = {}, const tensor& bias = {}, float eps = 1e-5f) {
    const tensor input = eval(x);
    const std::int64_t width = input.ndim() ? input.shape().back() : 0;
    const tensor w = weight.defined() ? weight.to(dtype::f32).contiguous() : tensor{};
    const tensor b = bias.defined() ? bias.to(dtype::f32).contiguous() : tensor{};
    for (const tensor* p : {&w, &b})
        if (p->defined()) {
            detail::check<device_error>(p->device() == input.device(), "layer_norm: ", p == &w ? "weight" : "bias",
                                        " on ", p->device(), ", input on ", input.device());
            detail::check<shape_error>(p->shape() == shape{width}, "layer_norm: ", p == &w ? "weight" : "bias",
                                       " of shape ", p->shape(), " does not match the last axis of input shape ",
                                       input.shape(), " (expected [", width, "])");
        }
    detail::check(eps >= 0.0f, "layer_norm: eps must be non-negative, got ", eps);
#if defined(CLIP_WITH_CUDA)
    if (input.device().is_cuda()) {
        detail::check<shape_error>(input.ndim() >= 1, "layer_norm: needs at least one dimension, got a scalar");
        return detail::cuda::layer_norm(input, w, b, eps);
    }
#endif
    const float* wp = w.defined() ? w.data<float>() : nullptr;
    const float* bp = b.defined() ? b.data<float>() : nullptr;
    return detail::rowwise(input, "layer_norm", 3, [=](const float* in, float* out, std::int64_t n) {
        const float mean = detail::row_sum(in, n) / static_cast<float>(n);
        const float var = detail::row_centered_square_sum(in, n, mean) / static_cast<float>(n);
        const float rstd = 1.0f / std::sqrt(var + eps);
        detail::row_affine_weighted(in, out, n, rstd, -mean * rstd, wp, bp);
    });
}

/// x / max(‖x‖₂, eps) along the last axis (PyTorch's F.normalize(x, dim=-1)).
template <expression E>
tensor l2_normalize(const E& x, float eps = 1e-12f) {
    const tensor input = eval(x);
#if defined(CLIP_WITH_CUDA)
    if (input.device().is_cuda()) {
        detail::check<shape_error>(input.ndim() >= 1, "l2_normalize: needs at least one dimension, got a scalar");
        return detail::cuda::l2_normalize(input, eps);
    }
#endif
    return detail::rowwise(input, "l2_normalize", 2, [eps](const float* in, float* out, std::int64_t n) {
        const float norm = std::sqrt(detail::row_centered_square_sum(in, n, 0.0f));
        detail::row_affine(in, out, n, 1.0f / std::max(norm, eps), 0.0f);
    });
}

} // namespace clip
