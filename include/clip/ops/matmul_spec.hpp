// clip/ops/matmul_spec.hpp: what a fused matrix product computes, shared by every backend.
//
//   y = act(scale · (a · b) + bias) + residual
//
// a is [..., M, K], b is [..., K, N] (batch axes broadcast), bias is [N], residual broadcasts to
// y's shape [..., M, N]. The activation is applied before the residual add, which is the order of
// a transformer MLP (`x + c_proj(gelu(c_fc(x)))` lowers to two products, the second one with the
// residual fused).
#pragma once

#include <cmath>

#include "clip/core/tensor.hpp"

namespace clip {

enum class activation : unsigned char {
    none,
    relu,       ///< max(x, 0)
    gelu,       ///< 0.5·x·(1 + erf(x/√2)), PyTorch's exact GELU
    quick_gelu, ///< x·sigmoid(1.702·x), OpenAI CLIP's QuickGELU (oneDNN's swish with alpha 1.702)
};

struct matmul_options {
    tensor bias = {};                     ///< [N], or undefined
    activation act = activation::none;
    tensor residual = {};                 ///< broadcastable to [..., M, N], or undefined
    float scale = 1.0f;
};

namespace detail {

/// The activation on one float, for reference implementations and tails.
inline float activate(activation act, float x) noexcept {
    switch (act) {
    case activation::none: return x;
    case activation::relu: return x > 0.0f ? x : 0.0f;
    case activation::gelu: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case activation::quick_gelu: return x / (1.0f + std::exp(-1.702f * x));
    }
    return x;
}

/// Shapes of a product, checked: the broadcast batch axes, M, K, N.
struct matmul_shape {
    shape batch;
    std::int64_t m, k, n;
    shape out() const {
        shape s = batch;
        s.push_back(m);
        s.push_back(n);
        return s;
    }
};

inline matmul_shape check_matmul(const tensor& a, const tensor& b, const matmul_options& o, const char* op) {
    require_defined(a, op);
    require_defined(b, op);
    check<shape_error>(a.ndim() >= 2 && b.ndim() >= 2, op, ": operands need at least 2 dimensions, got shapes ",
                       a.shape(), " and ", b.shape());
    check<device_error>(a.device() == b.device(), op, ": operands on ", a.device(), " and ", b.device());
    // On CUDA, bf16 or f16 operands (one may be f32, converted per product as autocast does)
    // multiply with f32 accumulation into an f32 result.
    const auto half = [](dtype t) { return t == dtype::bf16 || t == dtype::f16; };
    if (a.device().is_cuda() && (half(a.dtype()) || half(b.dtype())))
        check<dtype_error>((a.dtype() == b.dtype() || a.dtype() == dtype::f32 || b.dtype() == dtype::f32) &&
                               (half(a.dtype()) || a.dtype() == dtype::f32) && (half(b.dtype()) || b.dtype() == dtype::f32),
                           op, ": operands of ", a.dtype(), " and ", b.dtype(), " do not mix (on CUDA: f32, bf16 or f16, ",
                           "one 16-bit type per product)");
    else
        check<dtype_error>(a.dtype() == dtype::f32 && b.dtype() == dtype::f32, op, ": operands must be f32",
                           a.device().is_cuda() ? " (or bf16/f16 on CUDA)" : " (bf16/f16 run on CUDA devices)", ", got ",
                           a.dtype(), " and ", b.dtype());
    const std::int64_t k = a.shape().back();
    check<shape_error>(b.shape()[b.ndim() - 2] == k, op, ": shapes ", a.shape(), " and ", b.shape(),
                       " do not multiply (inner dimensions ", k, " and ", b.shape()[b.ndim() - 2], " differ)");
    shape batch_a(std::span<const std::int64_t>(a.shape().begin(), static_cast<std::size_t>(a.ndim() - 2)));
    shape batch_b(std::span<const std::int64_t>(b.shape().begin(), static_cast<std::size_t>(b.ndim() - 2)));
    matmul_shape s{broadcast_shapes(batch_a, batch_b, op), a.shape()[a.ndim() - 2], k, b.shape().back()};
    if (o.bias.defined()) {
        check<shape_error>(o.bias.shape() == shape{s.n}, op, ": bias of shape ", o.bias.shape(),
                           " does not match output columns ", s.n, " (shapes ", a.shape(), " and ", b.shape(), ")");
        check<device_error>(o.bias.device() == a.device(), op, ": bias on ", o.bias.device(), ", operands on ",
                            a.device());
    }
    if (o.residual.defined()) {
        check<shape_error>(broadcast_shapes(o.residual.shape(), s.out(), op) == s.out(), op, ": residual of shape ",
                           o.residual.shape(), " does not broadcast to the output shape ", s.out());
        check<device_error>(o.residual.device() == a.device(), op, ": residual on ", o.residual.device(),
                            ", operands on ", a.device());
    }
    return s;
}

} // namespace detail
} // namespace clip
