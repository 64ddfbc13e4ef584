// clip/ops/attention.hpp: scaled dot-product attention, fused per query row.
//
//   out[b, i, h, :] = Σ_j softmax_j(scale · q[b, h, i, :] · k[b, h, j, :]) · v[b, h, j, :]
// with an optional causal mask (key j ≤ query i). For CLIP's short sequences (50-257 image
// tokens, 77 text tokens) the per-head products are far too small for a GEMM library to pay its
// overheads, so each query row is fused: its T scores stay in a small buffer (never a [T, T]
// matrix in memory), the softmax runs on them in registers, and the weighted sum of the values
// streams through SIMD registers. Scores come simd::size keys at a time and the weighted sum
// keeps up to 8 vectors of the row in registers, so no FMA waits on the one before. Threads take
// blocks of queries of one head. On CPUs with AVX-512F a block instead runs as two register-tiled
// products (backend/cpu/attention.hpp), unless CLIP_CPU_GEMM=onednn keeps everything on the row
// kernel; the training forward shares the row kernel's helpers.
//
// Layouts: q, k, v are [B, H, T, D] views with unit stride along D (the heads of a packed qkv
// projection, as `qkv.view({B, T, 3, H, D}).select(2, i).transpose(1, 2)` gives them); the result
// is [B, T, H·D], contiguous, ready for the output projection.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "clip/backend/cpu/attention.hpp"
#include "clip/ops/rowwise.hpp"
#if defined(CLIP_WITH_CUDA)
#include "clip/backend/cuda/attention.hpp"
#endif

namespace clip {

namespace detail {

/// scale · (q · k_r) for simd::size consecutive keys k_r = k + r·stride: one accumulator per key,
/// so the FMA chains are independent, and haddp sums all of them across lanes at once.
/// The accumulators start from the first products, not from zeros: zeroing the array compiles
/// to a `rep stos` that cost a fifth of the function.
inline simd attention_dots(const float* q, const float* k, std::int64_t stride, std::int64_t D, float scale) noexcept {
    simd acc[simd::size];
    std::int64_t d = 0;
    if (D >= simd_width) {
        const simd x = simd::load_unaligned(q);
        for (std::size_t r = 0; r < simd::size; ++r)
            acc[r] = x * simd::load_unaligned(k + static_cast<std::int64_t>(r) * stride);
        d = simd_width;
    } else {
        for (std::size_t r = 0; r < simd::size; ++r) acc[r] = simd(0.0f);
    }
    for (; d + simd_width <= D; d += simd_width) {
        const simd x = simd::load_unaligned(q + d);
        for (std::size_t r = 0; r < simd::size; ++r)
            acc[r] = xsimd::fma(x, simd::load_unaligned(k + static_cast<std::int64_t>(r) * stride + d), acc[r]);
    }
    simd sums = xsimd::haddp(acc);
    if (d < D) {
        alignas(64) float tail[simd::size];
        for (std::size_t r = 0; r < simd::size; ++r) {
            float t = 0.0f;
            for (std::int64_t e = d; e < D; ++e) t += q[e] * k[static_cast<std::int64_t>(r) * stride + e];
            tail[r] = t;
        }
        sums += simd::load_aligned(tail);
    }
    return sums * simd(scale);
}

/// out[0 .. N·simd_width) = scale · Σ_j p[j] · v_j[same range], v_j = v + j·stride: N accumulators
/// stay in registers while the keys stream past, instead of one chain per vector of the row.
template <int N>
void attention_weighted_sum(const float* p, const float* v, std::int64_t stride, std::int64_t count, float scale,
                            float* out) noexcept {
    simd acc[N];
    for (int u = 0; u < N; ++u) acc[u] = count > 0 ? simd(p[0]) * simd::load_unaligned(v + u * simd_width) : simd(0.0f);
    for (std::int64_t j = 1; j < count; ++j) {
        const simd w(p[j]);
        const float* row = v + j * stride;
        for (int u = 0; u < N; ++u) acc[u] = xsimd::fma(w, simd::load_unaligned(row + u * simd_width), acc[u]);
    }
    for (int u = 0; u < N; ++u) (acc[u] * simd(scale)).store_unaligned(out + u * simd_width);
}

/// a · b over n floats.
inline float row_dot(const float* a, const float* b, std::int64_t n) noexcept {
    simd acc(0.0f);
    std::int64_t d = 0;
    for (; d + simd_width <= n; d += simd_width)
        acc = xsimd::fma(simd::load_unaligned(a + d), simd::load_unaligned(b + d), acc);
    float s = reduce_add(acc);
    for (; d < n; ++d) s += a[d] * b[d];
    return s;
}

/// A short row copied through SIMD registers (a memmove call per 64-float row cost more than
/// the copy).
inline void attention_copy_row(const float* from, float* to, std::int64_t n) noexcept {
    std::int64_t d = 0;
    for (; d + simd_width <= n; d += simd_width) simd::load_unaligned(from + d).store_unaligned(to + d);
    for (; d < n; ++d) to[d] = from[d];
}

/// scores[j] = scale · (query · key_j) for j < visible, keys at `stride` floats apart.
inline void attention_row_scores(const float* query, const float* keys, std::int64_t stride, std::int64_t visible,
                                 std::int64_t D, float scale, float* scores) noexcept {
    std::int64_t j = 0;
    for (; j + simd_width <= visible; j += simd_width)
        attention_dots(query, keys + j * stride, stride, D, scale).store_unaligned(scores + j);
    for (; j < visible; ++j) scores[j] = row_dot(query, keys + j * stride, D) * scale;
}

/// result[d] = scale · Σ_{j < visible} p[j] · value_j[d] for d < D, values at `stride` floats apart.
inline void attention_row_context(const float* p, const float* values, std::int64_t stride, std::int64_t visible,
                                  std::int64_t D, float scale, float* result) noexcept {
    std::int64_t d = 0;
    for (; d + 8 * simd_width <= D; d += 8 * simd_width)
        attention_weighted_sum<8>(p, values + d, stride, visible, scale, result + d);
    for (; d + 2 * simd_width <= D; d += 2 * simd_width)
        attention_weighted_sum<2>(p, values + d, stride, visible, scale, result + d);
    for (; d + simd_width <= D; d += simd_width)
        attention_weighted_sum<1>(p, values + d, stride, visible, scale, result + d);
    for (; d < D; ++d) {
        float acc = 0.0f;
        for (std::int64_t j = 0; j < visible; ++j) acc += p[j] * values[j * stride + d];
        result[d] = acc * scale;
    }
}

} // namespace detail

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
    // Tasks are blocks of queries of one (batch, head). Each copies the keys and values it needs
    // into contiguous scratch first: in a packed qkv projection consecutive keys lie 3W floats
    // apart, one page per key, and walking them for every query missed the TLB.
    // A head is split only when there are too few heads to keep every thread busy, since each
    // block copies its keys and values again.
    const std::int64_t blocks = std::clamp<std::int64_t>((4 * num_threads() + B * H - 1) / (B * H), 1, (T + 15) / 16);
    const std::int64_t block = (T + blocks - 1) / blocks;
#if defined(CLIP_HAS_AVX512_GEMM)
    if (detail::cpu_gemm::chosen() == detail::cpu_gemm::kernel::avx512 && S > 0) {
        detail::parallel_for(B * H * blocks, block * S * D * 4, [&](std::int64_t first, std::int64_t last) {
            thread_local std::vector<float> scratch;
            for (std::int64_t task = first; task < last; ++task) {
                const std::int64_t bh = task / blocks, h = bh % H, b = bh / H;
                const std::int64_t i0 = (task % blocks) * block, i1 = std::min(T, i0 + block);
                detail::cpu_gemm::attention_block(qp + b * qs[0] + h * qs[1], qs[2], i0, i1, kp + b * ks[0] + h * ks[1], ks[2],
                                                  vp + b * vs[0] + h * vs[1], vs[2], S, D, scale, causal,
                                                  op + b * T * H * D + h * D, H * D, scratch);
            }
        });
        return out;
    }
#endif
    detail::parallel_for(B * H * blocks, block * S * D * 4, [&](std::int64_t first, std::int64_t last) {
        thread_local std::vector<float> scratch;
        scratch.resize(static_cast<std::size_t>(2 * S * D + S));
        float* key_rows = scratch.data();
        float* value_rows = key_rows + S * D;
        float* scores = value_rows + S * D;
        for (std::int64_t task = first; task < last; ++task) {
            const std::int64_t bh = task / blocks, h = bh % H, b = bh / H;
            const std::int64_t i0 = (task % blocks) * block, i1 = std::min(T, i0 + block);
            const std::int64_t needed = causal ? i1 : S;
            const float* keys = kp + b * ks[0] + h * ks[1];
            const float* values = vp + b * vs[0] + h * vs[1];
            for (std::int64_t j = 0; j < needed; ++j) {
                detail::attention_copy_row(keys + j * ks[2], key_rows + j * D, D);
                detail::attention_copy_row(values + j * vs[2], value_rows + j * D, D);
            }
            for (std::int64_t i = i0; i < i1; ++i) {
                const float* query = qp + b * qs[0] + h * qs[1] + i * qs[2];
                const std::int64_t visible = causal ? i + 1 : S;
                detail::attention_row_scores(query, key_rows, D, visible, D, scale, scores);
                const float m = detail::row_max(scores, visible);
                const float total = detail::row_exp_sum(scores, scores, visible, m);
                float* result = op + (b * T + i) * H * D + h * D;
                detail::attention_row_context(scores, value_rows, D, visible, D, 1.0f / total, result);
            }
        }
    });
    return out;
}

} // namespace clip
