// clip/ops/matmul.hpp: the fused matrix product, dispatched to a backend.
//
//   y = act(scale · (a · b) + bias) + residual          (see matmul_spec.hpp)
//
// a [..., M, K] and b [..., K, N] may be any strided views (a transpose is `w.t()`, never a
// copy); batch axes broadcast. On the CPU a product with packed weights runs on clip's own
// AVX-512 kernel where it can (backend/cpu/gemm.hpp); the rest runs on oneDNN (one cached
// primitive per spec, bias, activation and residual fused as post-ops), or on the Eigen reference
// backend when clip is built without oneDNN. A linear layer y = x Wᵀ + b is `matmul(x, w.t(), {.bias = b})`,
// or `matmul(x, packed, ...)` with `packed_weights packed(w.t())` made once at load time.
#pragma once

#include "clip/backend/cpu/gemm.hpp"
#include "clip/backend/cpu/packed.hpp"
#include "clip/backend/reference/matmul.hpp"
#include "clip/ops/matmul_spec.hpp"
#if defined(CLIP_WITH_ONEDNN)
#include "clip/backend/cpu/matmul.hpp"
#endif
#if defined(CLIP_WITH_CUDA)
#include "clip/backend/cuda/matmul.hpp"
#endif

namespace clip {

namespace detail {

inline void dispatch_matmul(const tensor& out, const tensor& a, const tensor& b, const matmul_options& o,
                            const packed_weights* packed) {
    const matmul_shape s = check_matmul(a, b, o, "matmul");
    require_defined(out, "matmul");
    check<shape_error>(out.shape() == s.out(), "matmul: output of shape ", out.shape(), " for a product of shape ",
                       s.out(), " (operands ", a.shape(), " and ", b.shape(), ")");
    check<dtype_error>(out.dtype() == dtype::f32, "matmul: output must be f32, got ", out.dtype());
    check<shape_error>(out.is_contiguous(), "matmul: output must be contiguous, got strides ", out.strides());
    check<device_error>(out.device() == a.device(), "matmul: output on ", out.device(), ", operands on ", a.device());
#if defined(CLIP_WITH_CUDA)
    if (a.device().is_cuda()) {
        if (s.k > 0) return cuda::matmul(out, a, b, o);
        // No products to run (K = 0): act(bias) + residual, on the host.
        const auto host = [](const tensor& t) { return t.defined() ? t.to(device::cpu()) : t; };
        const tensor h = tensor::empty(out.shape());
        dispatch_matmul(h, host(a), host(b), {host(o.bias), o.act, host(o.residual), o.scale}, nullptr);
        out.copy_from(h.to(out.device()));
        return;
    }
#endif
    require_cpu(a, "matmul");
    if (s.k > 0 && o.scale != 0.0f && cpu_gemm::matmul(out, a, b, o, packed)) return;
#if defined(CLIP_WITH_ONEDNN)
    if (s.k > 0 && o.scale != 0.0f) return onednn::matmul(out, a, b, o, packed);
#endif
    (void)packed;
    reference::matmul(out, a, b, o);
}

} // namespace detail

/// act(scale·(a·b) + bias) + residual as a new f32 tensor.
inline tensor matmul(const tensor& a, const tensor& b, const matmul_options& o = {}) {
    const detail::matmul_shape s = detail::check_matmul(a, b, o, "matmul");
    tensor out = tensor::empty(s.out(), dtype::f32, a.device());
    detail::dispatch_matmul(out, a, b, o, nullptr);
    return out;
}

/// The same with a constant right-hand operand kept in the backend's preferred layout.
inline tensor matmul(const tensor& a, const packed_weights& b, const matmul_options& o = {}) {
    const detail::matmul_shape s = detail::check_matmul(a, b.plain(), o, "matmul");
    tensor out = tensor::empty(s.out(), dtype::f32, a.device());
    detail::dispatch_matmul(out, a, b.plain(), o, &b);
    return out;
}

/// Writes the product into `out` (contiguous f32 of the product's shape), e.g. arena memory.
/// `o.residual` may be `out` itself: `x += mlp(x)` then reads and writes x in one pass.
inline void matmul_into(const tensor& out, const tensor& a, const tensor& b, const matmul_options& o = {}) {
    detail::dispatch_matmul(out, a, b, o, nullptr);
}
inline void matmul_into(const tensor& out, const tensor& a, const packed_weights& b, const matmul_options& o = {}) {
    detail::dispatch_matmul(out, a, b.plain(), o, &b);
}

} // namespace clip
