// clip/train/linear.hpp: trainable y = act(x Wᵀ + b) + residual, and the bias-free y = x P.
//
// linear (torch.nn.Linear, W [out, in], b [out]; CLIP's in_proj, out_proj, c_fc, c_proj):
//   forward   z = x Wᵀ + b        one product (oneDNN; cuBLASLt on a GPU), bias (and residual, when act = none) fused
//             y = act(z) + residual
//   backward  dz = dy ⊙ act'(z)
//             dW += dzᵀ x,   db += Σ_rows dz,   dx = dz W   (dx += dz W when accumulating)
//   QuickGELU act(z) = z·σ(1.702z),  act'(z) = σ(1.702z) + 1.702z·σ(1.702z)·(1 − σ(1.702z))
//   GELU      act(z) = z·Φ(z),       act'(z) = Φ(z) + z·φ(z)    (Φ, φ: normal CDF and density)
// projection (CLIP's visual.proj and text_projection, P [in, out], no bias):
//   forward   y = x P;    backward   dP += xᵀ dy,   dx = dy Pᵀ
//
// Layouts: x [..., in] and y [..., out], contiguous; the leading axes are flattened into rows.
// Every backward product is clip::matmul on transposed views (dzᵀ, W and Pᵀ are strides, never
// copies); `dW +=` is the product's in-place residual (oneDNN's sum post-op, beta = 1), so
// gradients accumulate across calls until parameter_store::zero_grad().
#pragma once

#include "clip/ops/matmul.hpp"
#include "clip/train/buffers.hpp"
#include "clip/train/parameters.hpp"

namespace clip::detail {

/// dy ⊙ act'(z), written over dy (PyTorch's QuickGELU and GeluBackward formulas).
inline void activation_backward(activation act, const tensor& dy, const tensor& z) {
    switch (act) {
    case activation::none: return;
    case activation::relu: return assign(dy, clip::where(clip::greater(z, 0.0f), dy, 0.0f));
    case activation::quick_gelu: {
        const auto s = clip::sigmoid(z * 1.702f);
        return assign(dy, dy * (s + z * 1.702f * s * (1.0f - s)));
    }
    case activation::gelu: {
        const auto cdf = 0.5f * (1.0f + clip::erf(z * 0.70710678118654752f));
        const auto density = clip::exp(clip::square(z) * -0.5f) * 0.39894228040143268f;
        return assign(dy, dy * (cdf + z * density));
    }
    }
}

/// `t` as a matrix of rows of its last axis.
inline tensor rows_of(const tensor& t) { return t.view({-1, t.shape().back()}); }

} // namespace clip::detail

namespace clip::train {

struct linear {
    tensor weight, grad_weight; // [out, in]
    tensor bias, grad_bias;     // [out], or undefined for no bias
    activation act = activation::none;
    tensor weight16 = {};       // W in bf16 for mixed-precision products, or undefined (f32)

    struct cache {
        tensor input;                  // x [..., in]: the caller's buffer, which must live until backward
        detail::buffer pre_activation; // z [..., out], only when act != none
        detail::buffer output;         // y [..., out]
        detail::buffer input16;        // x in bf16 (mixed precision)
        mutable detail::buffer grad16; // dz in bf16 (mixed precision)
    };

    /// The layer `prefix` (`prefix.weight`, `prefix.bias`) of a store.
    static linear bind(const parameter_store& store, const std::string& prefix, activation act = activation::none,
                       bool has_bias = true) {
        const parameter& w = store.at(prefix + ".weight");
        linear l{w.value, w.grad, {}, {}, act};
        if (has_bias) {
            const parameter& b = store.at(prefix + ".bias");
            l.bias = b.value;
            l.grad_bias = b.grad;
        }
        return l;
    }
    /// The same from a packed [3W, W]-style pair named `<prefix>_weight`, `<prefix>_bias`
    /// (MultiheadAttention's in_proj).
    static linear bind_packed(const parameter_store& store, const std::string& prefix) {
        const parameter& w = store.at(prefix + "_weight");
        const parameter& b = store.at(prefix + "_bias");
        return {w.value, w.grad, b.value, b.grad, activation::none};
    }

    std::int64_t in_features() const { return weight.size(1); }
    std::int64_t out_features() const { return weight.size(0); }
    void set_half(const detail::half_weights& half) { weight16 = half ? half(weight) : tensor{}; }

    /// x [..., in] -> y = act(x Wᵀ + b) + residual [..., out], kept in `c.output`.
    const tensor& forward(const tensor& x, cache& c, const tensor& residual = {}) const {
        shape out_shape = x.shape();
        out_shape[out_shape.size() - 1] = out_features();
        detail::require_buffer(x, x.shape(), "linear", "input", weight.device());
        c.input = x;
        const tensor& y = detail::reuse(c.output, out_shape, x);
        // Mixed precision: both operands in bf16, f32 accumulation and output.
        const tensor x2 = detail::rows_of(weight16.defined() ? detail::converted(c.input16, x, weight16.dtype()) : x);
        const tensor& w = weight16.defined() ? weight16 : weight;
        const tensor y2 = detail::rows_of(y);
        if (act == activation::none) {
            const tensor r = residual.defined() ? detail::rows_of(residual) : tensor{};
            matmul_into(y2, x2, w.t(), {.bias = bias, .residual = r});
            return y;
        }
        const tensor& z = detail::reuse(c.pre_activation, out_shape, x);
        matmul_into(detail::rows_of(z), x2, w.t(), {.bias = bias});
        switch (act) {
        case activation::relu: assign(y, relu(z)); break;
        case activation::gelu: assign(y, gelu(z)); break;
        default: assign(y, quick_gelu(z)); break;
        }
        if (residual.defined()) assign(y, y + residual);
        return y;
    }

    /// dy [..., out] -> dx [..., in] (written, or added to when `accumulate`; skipped when dx is
    /// undefined), accumulating grad_weight and grad_bias. With an activation, dy is consumed:
    /// it is overwritten with dz.
    void backward(const tensor& dy, const cache& c, const tensor& dx = {}, bool accumulate = false) const {
        detail::require_buffer(dy, c.output.shape(), "linear backward", "output gradient", weight.device());
        if (act != activation::none) detail::activation_backward(act, dy, c.pre_activation);
        const tensor dz = detail::rows_of(dy); // [N, out]
        const bool half = weight16.defined();
        const tensor dzp = half ? detail::rows_of(detail::converted(c.grad16, dy, weight16.dtype())) : dz;
        const tensor x = detail::rows_of(half ? c.input16 : c.input); // [N, in]
        matmul_into(grad_weight, dzp.t(), x, {.residual = grad_weight});
        if (grad_bias.defined()) detail::add_column_sums(grad_bias, dz);
        if (!dx.defined()) return;
        detail::require_buffer(dx, c.input.shape(), "linear backward", "input gradient", weight.device());
        const tensor dx2 = detail::rows_of(dx);
        matmul_into(dx2, dzp, half ? weight16 : weight, {.residual = accumulate ? dx2 : tensor{}});
    }
};

struct projection {
    tensor weight, grad_weight; // [in, out]
    tensor weight16 = {};       // P in bf16 for mixed-precision products, or undefined (f32)

    struct cache {
        tensor input;                  // x [N, in]
        detail::buffer output;         // y [N, out]
        detail::buffer input16;        // x in bf16 (mixed precision)
        mutable detail::buffer grad16; // dy in bf16 (mixed precision)
    };

    void set_half(const detail::half_weights& half) { weight16 = half ? half(weight) : tensor{}; }

    static projection bind(const parameter_store& store, const std::string& name) {
        const parameter& p = store.at(name);
        return {p.value, p.grad};
    }

    /// x [N, in] -> y = x P [N, out], kept in `c.output`.
    const tensor& forward(const tensor& x, cache& c) const {
        detail::require_buffer(x, {x.size(0), weight.size(0)}, "projection", "input", weight.device());
        c.input = x;
        const tensor& y = detail::reuse(c.output, {x.size(0), weight.size(1)}, x);
        if (weight16.defined()) matmul_into(y, detail::converted(c.input16, x, weight16.dtype()), weight16);
        else matmul_into(y, x, weight);
        return y;
    }

    /// dy [N, out] -> dx [N, in] (written), accumulating grad_weight.
    void backward(const tensor& dy, const cache& c, const tensor& dx) const {
        detail::require_buffer(dy, c.output.shape(), "projection backward", "output gradient", weight.device());
        detail::require_buffer(dx, c.input.shape(), "projection backward", "input gradient", weight.device());
        if (weight16.defined()) {
            const tensor& dy16 = detail::converted(c.grad16, dy, weight16.dtype());
            matmul_into(grad_weight, c.input16.t(), dy16, {.residual = grad_weight});
            matmul_into(dx, dy16, weight16.t());
            return;
        }
        matmul_into(grad_weight, c.input.t(), dy, {.residual = grad_weight});
        matmul_into(dx, dy, weight.t());
    }
};

} // namespace clip::train
