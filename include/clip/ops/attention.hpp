// clip/ops/attention.hpp: scaled dot-product attention, fused per query row.
//
//   out[b, i, h, :] = Σ_j softmax_j(scale · q[b, h, i, :] · k[b, h, j, :]) · v[b, h, j, :]
// with an optional causal mask (key j ≤ query i). For CLIP's short sequences (50-257 image
// tokens, 77 text tokens) the per-head products are far too small for a GEMM library to pay its
// overheads, so each query row is one task: its T scores stay in a small buffer on the stack
// (never a [T, T] matrix in memory), the softmax runs on them in registers, and the weighted sum
// of the values streams through SIMD registers. Rows are split across threads.
//
// Layouts: q, k, v are [B, H, T, D] views with unit stride along D (the heads of a packed qkv
// projection, as `qkv.view({B, T, 3, H, D}).select(2, i).transpose(1, 2)` gives them); the result
// is [B, T, H·D], contiguous, ready for the output projection.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "clip/ops/rowwise.hpp"
#if defined(CLIP_WITH_CUDA)
#include "clip/backend/cuda/attention.hpp"
#endif

namespace clip {

inline tensor attention(const tensor& q, const tensor& k, const tensor& v, float scale, bool causal) {
    for (const tensor* t : {&q, &k, &v}) {
        detail::require_defined(*t, "attention");
        detail::check<device_error>(t->device() == q.device(), "attention: q on ", q.device(), ", k or v on ", t->device());
        detail::check<dtype_error>(t->dtype() == dtype::f32, "attention: q, k, v must be f32, got ", t->dtype());
        detail::check<shape_error>(t->ndim() == 4, "attention: q, k, v must be [B, H, T, D], got ", t->shape());
    }
    const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), S = k.size(2);
    detail::check<shape_error>(k.shape() == v.shape() && k.size(0) == B && k.size(1) == H && k.size(3) == D,
                               "attention: q ", q.shape(), ", k ", k.shape(), " and v ", v.shape(), " do not fit");
    detail::check<shape_error>(!causal || S == T, "attention: a causal mask needs as many keys as queries, got ", T,
                               " queries and ", S, " keys");
    const tensor qc = q.stride(3) == 1 ? q : q.contiguous();
    const tensor kc = k.stride(3) == 1 ? k : k.contiguous();
    const tensor vc = v.stride(3) == 1 ? v : v.contiguous();
#if defined(CLIP_WITH_CUDA)
    if (q.device().is_cuda()) return detail::cuda::attention(qc, kc, vc, scale, causal);
#endif
    detail::require_cpu(q, "attention");
    tensor out = tensor::empty({B, T, H * D});
    if (out.numel() == 0) return out;
    const float* qp = qc.data<float>();
    const float* kp = kc.data<float>();
    const float* vp = vc.data<float>();
    float* op = out.data<float>();
    const clip::strides qs = qc.strides(), ks = kc.strides(), vs = vc.strides();
    using detail::simd;
    using detail::simd_width;

    detail::parallel_for(B * H * T, S * D * 4, [&](std::int64_t first, std::int64_t last) {
        std::vector<float> scores(static_cast<std::size_t>(S));
        for (std::int64_t row = first; row < last; ++row) {
            const std::int64_t i = row % T, h = (row / T) % H, b = row / (T * H);
            const float* query = qp + b * qs[0] + h * qs[1] + i * qs[2];
            const float* keys = kp + b * ks[0] + h * ks[1];
            const float* values = vp + b * vs[0] + h * vs[1];
            const std::int64_t visible = causal ? i + 1 : S;
            for (std::int64_t j = 0; j < visible; ++j) {
                const float* key = keys + j * ks[2];
                simd acc(0.0f);
                std::int64_t d = 0;
                for (; d + simd_width <= D; d += simd_width)
                    acc = xsimd::fma(simd::load_unaligned(query + d), simd::load_unaligned(key + d), acc);
                float dot = detail::reduce_add(acc);
                for (; d < D; ++d) dot += query[d] * key[d];
                scores[static_cast<std::size_t>(j)] = dot * scale;
            }
            const float m = detail::row_max(scores.data(), visible);
            const float total = detail::row_exp_sum(scores.data(), scores.data(), visible, m);
            const float inverse = 1.0f / total;
            float* result = op + (b * T + i) * H * D + h * D;
            std::int64_t d = 0;
            for (; d + simd_width <= D; d += simd_width) {
                simd acc(0.0f);
                for (std::int64_t j = 0; j < visible; ++j)
                    acc = xsimd::fma(simd(scores[static_cast<std::size_t>(j)]), simd::load_unaligned(values + j * vs[2] + d), acc);
                (acc * simd(inverse)).store_unaligned(result + d);
            }
            for (; d < D; ++d) {
                float acc = 0.0f;
                for (std::int64_t j = 0; j < visible; ++j) acc += scores[static_cast<std::size_t>(j)] * values[j * vs[2] + d];
                result[d] = acc * inverse;
            }
        }
    });
    return out;
}

} // namespace clip
