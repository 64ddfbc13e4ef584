// clip/ops/reduce.hpp: sum, mean, max and argmax along one axis.
//
// The input (any dtype, any layout; an expression is evaluated first) is read as f32 with shape
// (outer, R, inner), R the reduced axis. When inner = 1 each output reduces one contiguous run
// in SIMD registers; otherwise whole rows of `inner` elements are combined, so either way the
// loads are contiguous. `keepdim` keeps the reduced axis with extent 1, as in PyTorch.
// argmax returns i64 indices of the first maximum.
#pragma once

#include <limits>

#include "clip/expr/node.hpp"
#if defined(CLIP_WITH_CUDA)
#include "clip/backend/cuda/reduce.hpp"
#endif

namespace clip {

namespace detail {

enum class reduction { sum, mean, max, argmax };

inline tensor reduce(const tensor& input, std::int64_t axis, bool keepdim, reduction kind, const char* op) {
    require_defined(input, op);
    const int a = normalize_axis(axis, std::max(input.ndim(), 1), op);
    const tensor x = input.ndim() == 0 ? input.reshape({1}) : input;
    const std::int64_t extent = x.shape()[a];
    check<shape_error>(extent > 0 || kind == reduction::sum || kind == reduction::mean, op,
                       ": cannot reduce an empty axis (axis ", a, " of shape ", x.shape(), ")");
    shape out_shape = x.shape();
    out_shape[a] = 1;
    tensor out = tensor::empty(out_shape, kind == reduction::argmax ? dtype::i64 : dtype::f32, input.device());
    if (!keepdim) out = out.squeeze(a);
    if (out.numel() == 0) return out;

    const tensor src = x.to(dtype::f32).contiguous();
    std::int64_t outer = 1, inner = 1;
    for (int i = 0; i < a; ++i) outer *= x.shape()[i];
    for (int i = a + 1; i < x.ndim(); ++i) inner *= x.shape()[i];
#if defined(CLIP_WITH_CUDA)
    if (input.device().is_cuda()) {
        cuda::reduce_axis(out, src, outer, extent, inner, static_cast<int>(kind));
        return out;
    }
#endif
    require_cpu(input, op);
    const float* data = src.data<float>();
    float* result = kind == reduction::argmax ? nullptr : out.data<float>();
    std::int64_t* index = kind == reduction::argmax ? out.data<std::int64_t>() : nullptr;
    const float scale = kind == reduction::mean ? 1.0f / static_cast<float>(extent) : 1.0f;

    if (inner == 1) {
        parallel_for(outer, extent, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t o = first; o < last; ++o) {
                const float* row = data + o * extent;
                if (kind == reduction::argmax) {
                    std::int64_t best = 0;
                    for (std::int64_t r = 1; r < extent; ++r) best = row[r] > row[best] ? r : best;
                    index[o] = best;
                    continue;
                }
                const bool is_max = kind == reduction::max;
                simd acc(is_max ? -std::numeric_limits<float>::infinity() : 0.0f);
                std::int64_t r = 0;
                for (; r + simd_width <= extent; r += simd_width) {
                    const simd v = simd::load_unaligned(row + r);
                    acc = is_max ? xsimd::max(acc, v) : acc + v;
                }
                float total = is_max ? reduce_max(acc) : reduce_add(acc);
                for (; r < extent; ++r) total = is_max ? std::max(total, row[r]) : total + row[r];
                result[o] = total * scale;
            }
        });
        return out;
    }

    parallel_for(outer, extent * inner, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t o = first; o < last; ++o) {
            const float* block = data + o * extent * inner;
            if (kind == reduction::argmax) {
                std::int64_t* best = index + o * inner;
                for (std::int64_t i = 0; i < inner; ++i) best[i] = 0;
                for (std::int64_t r = 1; r < extent; ++r)
                    for (std::int64_t i = 0; i < inner; ++i)
                        if (block[r * inner + i] > block[best[i] * inner + i]) best[i] = r;
                continue;
            }
            float* acc = result + o * inner;
            if (extent == 0) std::fill(acc, acc + inner, 0.0f);
            else std::copy(block, block + inner, acc);
            for (std::int64_t r = 1; r < extent; ++r) {
                const float* row = block + r * inner;
                std::int64_t i = 0;
                for (; i + simd_width <= inner; i += simd_width) {
                    const simd v = simd::load_unaligned(row + i), s = simd::load_unaligned(acc + i);
                    (kind == reduction::max ? xsimd::max(s, v) : s + v).store_unaligned(acc + i);
                }
                for (; i < inner; ++i) acc[i] = kind == reduction::max ? std::max(acc[i], row[i]) : acc[i] + row[i];
            }
            if (scale != 1.0f)
                for (std::int64_t i = 0; i < inner; ++i) acc[i] *= scale;
        }
    });
    return out;
}

} // namespace detail

/// Sum along `axis` (f32 result).
template <expression E>
tensor sum(const E& x, std::int64_t axis, bool keepdim = false) {
    return detail::reduce(eval(x), axis, keepdim, detail::reduction::sum, "sum");
}
/// Mean along `axis` (f32 result; NaN for an empty axis, as 0/0).
template <expression E>
tensor mean(const E& x, std::int64_t axis, bool keepdim = false) {
    return detail::reduce(eval(x), axis, keepdim, detail::reduction::mean, "mean");
}
/// Maximum along `axis` (f32 result).
template <expression E>
tensor max(const E& x, std::int64_t axis, bool keepdim = false) {
    return detail::reduce(eval(x), axis, keepdim, detail::reduction::max, "max");
}
/// Index of the first maximum along `axis` (i64 result).
template <expression E>
tensor argmax(const E& x, std::int64_t axis, bool keepdim = false) {
    return detail::reduce(eval(x), axis, keepdim, detail::reduction::argmax, "argmax");
}
/// Sum of all elements (a rank-0 f32 tensor).
template <expression E>
tensor sum(const E& x) {
    const tensor t = eval(x);
    return detail::reduce(t.reshape({-1}), 0, false, detail::reduction::sum, "sum");
}

} // namespace clip
