// clip/backend/cpu/int8.hpp: int8 linear layers on oneDNN, accuracy first.
//
//   weights   W [N, K] -> s8 per output channel:  sw[n] = max_k |W[n, k]| / 127,  Wq = round(W / sw)
//   inputs    x [M, K] -> u8 per row (token):      sa[m] = max_k |x[m, k]| / 127,  xq = round(x / sa) + 128
//   product   acc[m, n] = Σ_k (xq[m, k] − 128) · Wq[n, k]   (u8 · s8 -> s32 on oneDNN, exact)
//   result    y = act(acc · sa[m] · sw[n] + b[n]) + residual
// The activations are quantised symmetrically and stored shifted by 128 in u8, the operand
// type the CPU's u8·s8 dot products take; oneDNN removes the shift (a source zero point).
// Scales, bias, activation and residual are one fused element-wise pass over the s32 result.
// Weights are quantised and packed into oneDNN's preferred layout once, when the layer is made.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "clip/backend/cpu/onednn.hpp"
#include "clip/expr/node.hpp"
#include "clip/ops/matmul_spec.hpp"

namespace clip::detail::int8 {

/// A linear layer's weights quantised per output channel, packed for oneDNN.
struct weights {
    std::int64_t k = 0, n = 0;
    tensor scale;       // sw [N] f32
    std::shared_ptr<void> packed; // Wq as oneDNN's s8 [K, N] in its preferred layout
    dnnl::memory::desc packed_md;
};

/// The primitive for u8 [M, K] · s8 [K, N] -> s32 [M, N] (weights in the layout oneDNN picks).
inline const onednn::plan_cache<dnnl::matmul, dnnl::matmul::primitive_desc>::plan& plan(std::int64_t m, std::int64_t k,
                                                                                        std::int64_t n) {
    static onednn::plan_cache<dnnl::matmul, dnnl::matmul::primitive_desc> plans;
    std::string key = "mm-int8";
    onednn::append_key(key, m, k, n);
    return plans.get(key, [&] {
        return onednn::guarded("int8 matmul: creating the primitive", [&] {
            using dt = dnnl::memory::data_type;
            using tag = dnnl::memory::format_tag;
            const dnnl::memory::desc a({m, k}, dt::u8, tag::ab), b({k, n}, dt::s8, tag::any), c({m, n}, dt::s32, tag::ab);
            dnnl::primitive_attr attr = onednn::base_attributes();
            attr.set_zero_points(DNNL_ARG_SRC, 0, {128});
            return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, onednn::engine());
        });
    });
}

/// Quantises W [N, K] (f32) per output channel and packs it.
inline std::shared_ptr<const weights> quantize_weights(const tensor& w_in) {
    const tensor w = w_in.to(dtype::f32).contiguous();
    check<shape_error>(w.ndim() == 2, "int8: weights must be [N, K], got ", w.shape());
    auto q = std::make_shared<weights>();
    q->n = w.size(0);
    q->k = w.size(1);
    const std::int64_t N = q->n, K = q->k;
    q->scale = tensor::empty({N});
    std::vector<std::int8_t> plain(static_cast<std::size_t>(N * K)); // [K, N] row-major: Wqᵀ
    const float* src = w.data<float>();
    float* scale = q->scale.data<float>();
    parallel_for(N, K * 3, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t row = first; row < last; ++row) {
            const float* r = src + row * K;
            float m = 0.0f;
            for (std::int64_t i = 0; i < K; ++i) m = std::max(m, std::abs(r[i]));
            const float s = m > 0.0f ? m / 127.0f : 1.0f;
            for (std::int64_t i = 0; i < K; ++i)
                plain[static_cast<std::size_t>(i * N + row)] =
                    static_cast<std::int8_t>(std::clamp(std::nearbyint(r[i] / s), -127.0f, 127.0f));
            scale[row] = s;
        }
    });
    // oneDNN's preferred layout does not depend on M; any M gives the same weights descriptor.
    q->packed_md = plan(64, K, N).pd.weights_desc();
    q->packed = allocate(q->packed_md.get_size(), device::cpu());
    const dnnl::memory from({{K, N}, dnnl::memory::data_type::s8, dnnl::memory::format_tag::ab}, onednn::engine(), plain.data());
    const dnnl::memory to(q->packed_md, onednn::engine(), q->packed.get());
    onednn::reorder_into(from, to);
    return q;
}

/// A per-thread buffer `slot` seen as a contiguous tensor of shape `s`, valid until the next
/// call with that slot on this thread.
inline tensor scratch(int slot, const shape& s, dtype t) {
    thread_local std::shared_ptr<void> buffers[3];
    thread_local std::size_t capacities[3] = {};
    const std::size_t bytes = static_cast<std::size_t>(s.numel()) * dtype_size(t);
    auto& buffer = buffers[slot];
    if (bytes > capacities[slot]) {
        buffer = allocate(bytes, device::cpu());
        capacities[slot] = bytes;
    }
    return tensor::from_blob(buffer.get(), s, t, buffer);
}

/// y [M, N] = act((x · Wqᵀ dequantised) + bias) + residual with x [M, K] quantised per row.
inline void linear(const tensor& out, const tensor& x_in, const weights& w, const matmul_options& o) {
    const tensor x = x_in.to(dtype::f32).contiguous().view({-1, w.k});
    const std::int64_t M = x.size(0), K = w.k, N = w.n;
    check<shape_error>(out.numel() == M * N && out.is_contiguous(), "int8 linear: output of shape ", out.shape(),
                       " for ", M, " rows of ", N);
    if (M == 0) return;
    // Per-row scales, the shifted u8 codes and the s32 sums live in per-thread buffers that grow
    // to the largest layer and are then reused: fresh multi-megabyte blocks would be mapped and
    // page-faulted in on every call.
    const tensor scale = scratch(0, {M, 1}, dtype::f32);
    const tensor codes = scratch(1, {M, K}, dtype::u8);
    const float* src = x.data<float>();
    float* sa = scale.data<float>();
    std::uint8_t* q = codes.data<std::uint8_t>();
    parallel_for(M, K * 3, [&](std::int64_t first, std::int64_t last) {
        using xsimd::batch;
        alignas(64) std::int32_t lanes[simd_width];
        for (std::int64_t row = first; row < last; ++row) {
            const float* r = src + row * K;
            simd top(0.0f);
            std::int64_t i = 0;
            for (; i + simd_width <= K; i += simd_width) top = xsimd::max(top, xsimd::abs(simd::load_unaligned(r + i)));
            float m = reduce_max(top);
            for (; i < K; ++i) m = std::max(m, std::abs(r[i]));
            const float s = m > 0.0f ? m / 127.0f : 1.0f, inverse = 1.0f / s;
            std::uint8_t* d = q + row * K;
            // round(x / s) + 128 in [1, 255]: vroundps (nearest even, as std::nearbyint), then the
            // integer lanes narrowed to bytes.
            for (i = 0; i + simd_width <= K; i += simd_width) {
                const simd v = xsimd::nearbyint(simd::load_unaligned(r + i) * simd(inverse)) + simd(128.0f);
                xsimd::batch_cast<std::int32_t>(xsimd::min(xsimd::max(v, simd(1.0f)), simd(255.0f))).store_aligned(lanes);
                for (std::int64_t j = 0; j < simd_width; ++j) d[i + j] = static_cast<std::uint8_t>(lanes[j]);
            }
            for (; i < K; ++i)
                d[i] = static_cast<std::uint8_t>(std::clamp(std::nearbyint(r[i] * inverse), -127.0f, 127.0f) + 128.0f);
            sa[row] = s;
        }
    });
    const tensor acc = scratch(2, {M, N}, dtype::i32);
    const auto& p = plan(M, K, N);
    onednn::guarded("int8 matmul: running the primitive", [&] {
        using dt = dnnl::memory::data_type;
        using tag = dnnl::memory::format_tag;
        p.primitive.execute(onednn::stream(),
                            {{DNNL_ARG_SRC, dnnl::memory({{M, K}, dt::u8, tag::ab}, onednn::engine(), codes.data_ptr())},
                             {DNNL_ARG_WEIGHTS, dnnl::memory(w.packed_md, onednn::engine(), w.packed.get())},
                             {DNNL_ARG_DST, dnnl::memory({{M, N}, dt::s32, tag::ab}, onednn::engine(), acc.data_ptr())},
                             {DNNL_ARG_SCRATCHPAD, onednn::scratchpad(p.pd.scratchpad_desc())}});
        onednn::stream().wait();
    });
    const tensor y = out.view({M, N});
    const auto value = acc * scale * w.scale * o.scale;
    const tensor bias = o.bias.defined() ? o.bias : tensor::zeros({N});
    const tensor residual = o.residual.defined() ? o.residual.reshape({M, N}) : tensor::zeros({1});
    switch (o.act) {
    case activation::none: assign(y, value + bias + residual); break;
    case activation::relu: assign(y, relu(value + bias) + residual); break;
    case activation::gelu: assign(y, gelu(value + bias) + residual); break;
    case activation::quick_gelu: assign(y, quick_gelu(value + bias) + residual); break;
    }
}

} // namespace clip::detail::int8
