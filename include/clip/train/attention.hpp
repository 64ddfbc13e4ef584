// clip/train/attention.hpp: trainable multi-head self-attention (torch.nn.MultiheadAttention).
//
//   forward   qkv = x W_inᵀ + b_in                           [B, T, 3W]  (rows [q; k; v], as nn/attention.hpp)
//             per head h (D = W / H features):  S = scale · q kᵀ (+ causal mask),  P = softmax(S)
//             context = P v  (heads side by side)             [B, T, W]
//             y = context W_outᵀ + b_out + residual
//   backward  dP = d context · vᵀ,   dv = Pᵀ d context
//             dS = P ⊙ (dP − rowsum(dP ⊙ P))                 (softmax backward; masked entries have P = 0)
//             dq = scale · dS k,   dk = scale · dSᵀ q
//             then the two linear layers (linear.hpp).
// The forward kernel is ops/attention.hpp's (one task per query row, scores in a row buffer,
// the same operations in the same order, so the context matches the inference model's), plus it
// stores P [B, H, T, T] for the backward pass: CLIP's sequences are short (77 text tokens, 50 to
// 257 image tokens), and keeping P costs less than recomputing the scores. The backward kernel
// runs one task per (sequence, head), which owns that head's slices of dq, dk, dv, so the sums
// need no atomics and do not depend on the thread count. On a GPU the same formulas run as
// backend/cuda/train_kernels.hpp's attention kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "clip/ops/attention.hpp"
#include "clip/ops/rowwise.hpp"
#include "clip/train/linear.hpp"

namespace clip::detail {

/// y += a·x over n floats.
inline void row_axpy(float* y, float a, const float* x, std::int64_t n) noexcept {
    std::int64_t d = 0;
    for (; d + simd_width <= n; d += simd_width)
        xsimd::fma(simd(a), simd::load_unaligned(x + d), simd::load_unaligned(y + d)).store_unaligned(y + d);
    for (; d < n; ++d) y[d] += a * x[d];
}

/// qkv [B, T, 3W] -> probabilities [B, H, T, T] (zero above the diagonal when causal) and
/// context [B, T, W].
inline void attention_forward(const tensor& qkv, std::int64_t heads, bool causal, float scale,
                              const tensor& probabilities, const tensor& context) {
    const std::int64_t B = qkv.size(0), T = qkv.size(1), W = qkv.size(2) / 3, H = heads, D = W / H;
    const float* base = qkv.data<float>();
    float* probs = probabilities.data<float>();
    float* ctx = context.data<float>();
    parallel_for(B * H * T, T * D * 4, [&](std::int64_t first, std::int64_t last) {
        std::vector<float> scores(static_cast<std::size_t>(T));
        for (std::int64_t row = first; row < last; ++row) {
            const std::int64_t i = row % T, h = (row / T) % H, b = row / (T * H);
            const float* sequence = base + b * T * 3 * W;
            const float* query = sequence + i * 3 * W + h * D;
            const float* keys = sequence + W + h * D;
            const float* values = sequence + 2 * W + h * D;
            const std::int64_t visible = causal ? i + 1 : T;
            attention_row_scores(query, keys, 3 * W, visible, D, scale, scores.data());
            const float m = row_max(scores.data(), visible);
            const float total = row_exp_sum(scores.data(), scores.data(), visible, m);
            const float inverse = 1.0f / total;
            float* p = probs + ((b * H + h) * T + i) * T;
            for (std::int64_t j = 0; j < visible; ++j) p[j] = scores[static_cast<std::size_t>(j)] * inverse;
            std::fill(p + visible, p + T, 0.0f);
            attention_row_context(scores.data(), values, 3 * W, visible, D, inverse, ctx + (b * T + i) * W + h * D);
        }
    });
}

/// d context [B, T, W] -> d qkv [B, T, 3W] (written), from the cached qkv and probabilities.
inline void attention_backward(const tensor& qkv, const tensor& probabilities, const tensor& grad_context,
                               std::int64_t heads, bool causal, float scale, const tensor& grad_qkv) {
    const std::int64_t B = qkv.size(0), T = qkv.size(1), W = qkv.size(2) / 3, H = heads, D = W / H;
    const float* base = qkv.data<float>();
    const float* probs = probabilities.data<float>();
    const float* dctx = grad_context.data<float>();
    float* dbase = grad_qkv.data<float>();
    parallel_for(B * H, T * T * D * 4, [&](std::int64_t first, std::int64_t last) {
        std::vector<float> dp(static_cast<std::size_t>(T));
        for (std::int64_t task = first; task < last; ++task) {
            const std::int64_t b = task / H, h = task % H;
            const float* sequence = base + b * T * 3 * W;
            float* dsequence = dbase + b * T * 3 * W;
            for (std::int64_t j = 0; j < T; ++j) {
                std::fill_n(dsequence + j * 3 * W + W + h * D, D, 0.0f);     // dk_j
                std::fill_n(dsequence + j * 3 * W + 2 * W + h * D, D, 0.0f); // dv_j
            }
            for (std::int64_t i = 0; i < T; ++i) {
                const std::int64_t visible = causal ? i + 1 : T;
                const float* p = probs + (task * T + i) * T;
                const float* dc = dctx + (b * T + i) * W + h * D;
                const float* q = sequence + i * 3 * W + h * D;
                float* dq = dsequence + i * 3 * W + h * D;
                float weighted = 0.0f; // Σ_j P_ij dP_ij
                for (std::int64_t j = 0; j < visible; ++j) {
                    const float g = row_dot(dc, sequence + j * 3 * W + 2 * W + h * D, D);
                    dp[static_cast<std::size_t>(j)] = g;
                    weighted += p[j] * g;
                    row_axpy(dsequence + j * 3 * W + 2 * W + h * D, p[j], dc, D);
                }
                std::fill_n(dq, D, 0.0f);
                for (std::int64_t j = 0; j < visible; ++j) {
                    const float ds = p[j] * (dp[static_cast<std::size_t>(j)] - weighted) * scale;
                    row_axpy(dq, ds, sequence + j * 3 * W + W + h * D, D);
                    row_axpy(dsequence + j * 3 * W + W + h * D, ds, q, D);
                }
            }
        }
    });
}

} // namespace clip::detail

namespace clip::train {

struct multihead_attention {
    linear in_proj;  // [3W, W]
    linear out_proj; // [W, W]
    std::int64_t heads = 1;
    bool causal = false;

    struct cache {
        linear::cache in_proj;        // its output is qkv [B, T, 3W]
        detail::buffer probabilities; // P [B, H, T, T]
        detail::buffer context;       // [B, T, W]
        linear::cache out_proj;       // its output is the layer's [B, T, W]
    };
    /// Gradient buffers needed only during one backward call (shared by all blocks of a tower).
    struct scratch {
        detail::buffer context;      // [B, T, W]
        detail::buffer qkv;          // [B, T, 3W]
        std::vector<float> key_bias; // the key bias's gradient, kept across in_proj's backward
        detail::buffer key_bias_gpu; // the same on a GPU [W]
        detail::buffer scores;       // dS [B, H, T, T] (GPU only)
    };

    static multihead_attention bind(const parameter_store& store, const std::string& prefix, std::int64_t heads,
                                    bool causal) {
        multihead_attention a{linear::bind_packed(store, prefix + ".in_proj"),
                              linear::bind(store, prefix + ".out_proj"), heads, causal};
        const std::int64_t W = a.out_proj.out_features();
        detail::check<shape_error>(heads > 0 && W % heads == 0, prefix, ": width ", W, " is not divisible by ", heads,
                                   " heads");
        return a;
    }

    void set_half(const detail::half_weights& half) {
        in_proj.set_half(half);
        out_proj.set_half(half);
    }

    float scale() const { return 1.0f / std::sqrt(static_cast<float>(out_proj.out_features() / heads)); }

    /// x [B, T, W] -> out_proj(attention(x)) + residual [B, T, W], kept in c.out_proj.output.
    const tensor& forward(const tensor& x, cache& c, const tensor& residual = {}) const {
        const std::int64_t B = x.size(0), T = x.size(1), W = x.size(2);
        const tensor& qkv = in_proj.forward(x, c.in_proj);
        const tensor& probabilities = detail::reuse(c.probabilities, {B, heads, T, T}, x);
        const tensor& context = detail::reuse(c.context, {B, T, W}, x);
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(x)) detail::cuda::attention_forward(qkv, heads, causal, scale(), probabilities, context);
        else
#endif
            detail::attention_forward(qkv, heads, causal, scale(), probabilities, context);
        return out_proj.forward(context, c.out_proj, residual);
    }

    /// dy [B, T, W] -> dx [B, T, W] (written, or added to when `accumulate`).
    void backward(const tensor& dy, const cache& c, const tensor& dx, bool accumulate, scratch& s) const {
        const tensor& qkv = c.in_proj.output;
        const tensor& grad_context = detail::reuse(s.context, c.context.shape(), dy);
        const tensor& grad_qkv = detail::reuse(s.qkv, qkv.shape(), dy);
        out_proj.backward(dy, c.out_proj, grad_context);
        const std::int64_t W = qkv.size(-1) / 3;
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(dy)) {
            const tensor& grad_scores = detail::reuse(s.scores, c.probabilities.shape(), dy);
            detail::cuda::attention_backward(qkv, c.probabilities, grad_context, heads, causal, scale(), grad_scores, grad_qkv);
            // As below: the key bias keeps the gradient it had before in_proj's column sums.
            const tensor& key_bias = detail::reuse(s.key_bias_gpu, {W}, dy);
            const tensor bias_part = in_proj.grad_bias.slice(0, W, 2 * W);
            key_bias.copy_from(bias_part);
            in_proj.backward(grad_qkv, c.in_proj, dx, accumulate);
            bias_part.copy_from(key_bias);
            return;
        }
#endif
        detail::attention_backward(qkv, c.probabilities, grad_context, heads, causal, scale(), grad_qkv);
        // The key bias cannot change the output: it adds q·b_k to a whole row of scores, which the
        // softmax ignores, so its gradient is exactly zero. The column sums of dK would leave
        // rounding noise there, which Adam's g / (|g| + eps) turns into a random walk that differs
        // with the summation order (e.g. between one process and several).
        float* key_bias = in_proj.grad_bias.defined() ? in_proj.grad_bias.data<float>() + W : nullptr;
        if (key_bias) s.key_bias.assign(key_bias, key_bias + W);
        in_proj.backward(grad_qkv, c.in_proj, dx, accumulate);
        if (key_bias) std::copy(s.key_bias.begin(), s.key_bias.end(), key_bias);
    }
};

} // namespace clip::train
