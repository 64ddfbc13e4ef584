// clip/ops/conv.hpp: 2-D convolution and average pooling, dispatched to a backend.
//
// conv2d_into and the two backward passes (conv2d_backward_data, conv2d_backward_weights) are
// what training uses: they write into the caller's buffers, take kernels that change every step,
// and run oneDNN's training primitives (or the reference im2col products without oneDNN); on a
// GPU im2col, cuBLASLt products and col2im (backend/cuda/conv.hpp).
// Layouts and formulas are PyTorch's (see conv_spec.hpp); the result keeps the input's memory
// layout (channels-last in, channels-last out) on oneDNN. On the CPU both run on oneDNN, or on
// the reference backend when clip is built without oneDNN. For a fixed kernel, wrap it once in
// packed_weights so oneDNN's preferred layout is computed once.
#pragma once

#include "clip/backend/cpu/packed.hpp"
#include "clip/backend/reference/conv.hpp"
#include "clip/ops/conv_spec.hpp"
#if defined(CLIP_WITH_ONEDNN)
#include "clip/backend/cpu/conv.hpp"
#endif
#if defined(CLIP_WITH_CUDA)
#include "clip/backend/cuda/conv.hpp"
#include "clip/backend/cuda/reduce.hpp"
#endif

namespace clip {

namespace detail {

inline tensor dispatch_conv2d(const tensor& x, const tensor& w, const conv2d_options& o, const packed_weights* packed) {
    const shape out_shape = check_conv2d(x, w, o);
#if defined(CLIP_WITH_CUDA)
    if (x.device().is_cuda()) return cuda::conv2d(x, w, o, out_shape);
#endif
    require_cpu(x, "conv2d");
#if defined(CLIP_WITH_ONEDNN)
    tensor out = is_channels_last(x) ? empty_channels_last(out_shape) : tensor::empty(out_shape);
    if (out.numel() > 0) onednn::conv2d(out, x, w, o, packed);
#else
    (void)packed;
    tensor out = tensor::empty(out_shape);
    if (out.numel() > 0) reference::conv2d(out, x, w, o);
#endif
    return out;
}

} // namespace detail

/// PyTorch's F.conv2d(x, weight, bias, stride, padding, dilation, groups).
inline tensor conv2d(const tensor& x, const tensor& weight, const conv2d_options& o = {}) {
    return detail::dispatch_conv2d(x, weight, o, nullptr);
}
inline tensor conv2d(const tensor& x, const packed_weights& weight, const conv2d_options& o = {}) {
    return detail::dispatch_conv2d(x, weight.plain(), o, &weight);
}

/// conv2d(x, weight, o) written into `out` ([B, O, H', W'], row-major or channels-last): for
/// kernels that change between calls (training), which are not worth packing.
inline void conv2d_into(const tensor& out, const tensor& x, const tensor& weight, const conv2d_options& o = {}) {
    const shape out_shape = detail::check_conv2d(x, weight, o);
    detail::check_conv2d_operand(out, out_shape, "conv2d_into", "output", x.device());
#if defined(CLIP_WITH_CUDA)
    if (x.device().is_cuda()) return detail::cuda::conv2d_into(out, x, weight, o);
#endif
    detail::require_cpu(x, "conv2d_into");
#if defined(CLIP_WITH_ONEDNN)
    detail::onednn::conv2d(out, x, weight, o);
#else
    detail::reference::conv2d(out, x, weight, o);
#endif
}

/// The input gradient of y = conv2d(x, weight, o) (without its bias and activation, whose
/// gradients are the caller's): dx[b, c, h, w] = Σ_{o, i, j} dy[b, o, y, x] · weight[o, c, i, j]
/// over the output positions (y, x) whose window reads (h, w) through tap (i, j). Written into
/// dx [B, C, H, W], row-major or channels-last.
inline void conv2d_backward_data(const tensor& dx, const tensor& dy, const tensor& weight, const conv2d_options& o = {}) {
    detail::check_conv2d_backward(dx, weight, dy, o, "conv2d_backward_data");
#if defined(CLIP_WITH_CUDA)
    if (dy.device().is_cuda()) return detail::cuda::conv2d_backward_data(dx, dy, weight, o);
#endif
#if defined(CLIP_WITH_ONEDNN)
    detail::onednn::conv2d_backward_data(dx, dy, weight, o);
#else
    detail::reference::conv2d_backward_data(dx, dy, weight, o);
#endif
}

/// The kernel gradient of y = conv2d(x, weight, o): dw[o, c, i, j] = Σ_{b, y, x} dy[b, o, y, x] ·
/// x[b, c, y·s + i·d − p, x·s + j·d − p] (zero outside the image). Written into dw (contiguous,
/// the kernel's shape), or added to it when `accumulate`.
inline void conv2d_backward_weights(const tensor& dw, const tensor& x, const tensor& dy, const conv2d_options& o = {},
                                    bool accumulate = false) {
    detail::check_conv2d_backward(x, dw, dy, o, "conv2d_backward_weights");
    detail::check<shape_error>(dw.is_contiguous(), "conv2d_backward_weights: the kernel gradient must be contiguous, ",
                               "got strides ", dw.strides());
#if defined(CLIP_WITH_CUDA)
    if (dy.device().is_cuda()) return detail::cuda::conv2d_backward_weights(dw, x, dy, o, accumulate);
#endif
#if defined(CLIP_WITH_ONEDNN)
    detail::onednn::conv2d_backward_weights(dw, x, dy, o, accumulate);
#else
    detail::reference::conv2d_backward_weights(dw, x, dy, o, accumulate);
#endif
}

/// avg_pool2d(x, options) written into `out` ([B, C, H', W'], row-major or channels-last): for
/// buffers kept from one training step to the next.
inline void avg_pool2d_into(const tensor& out, const tensor& x, const pool2d_options& options = {}) {
    const pool2d_options o = detail::resolve(options);
    const shape out_shape = detail::check_pool2d(x, o);
    detail::check_conv2d_operand(out, out_shape, "avg_pool2d_into", "output", x.device());
    if (out.numel() == 0) return;
#if defined(CLIP_WITH_CUDA)
    if (x.device().is_cuda()) return detail::cuda::avg_pool2d(out, x, o.kernel, o.stride, o.padding, o.count_include_pad);
#endif
    detail::require_cpu(x, "avg_pool2d");
#if defined(CLIP_WITH_ONEDNN)
    detail::onednn::avg_pool2d(out, x, o);
#else
    if (out.is_contiguous()) return detail::reference::avg_pool2d(out, x, o);
    const tensor rows = tensor::empty(out_shape);
    detail::reference::avg_pool2d(rows, x, o);
    out.copy_from(rows);
#endif
}

/// PyTorch's F.avg_pool2d(x, kernel, stride, padding, count_include_pad=...); channels-last in,
/// channels-last out (row-major without oneDNN on the CPU).
inline tensor avg_pool2d(const tensor& x, const pool2d_options& options = {}) {
    const shape out_shape = detail::check_pool2d(x, detail::resolve(options));
#if defined(CLIP_WITH_ONEDNN)
    const bool keep_layout = true;
#else
    const bool keep_layout = x.device().is_cuda();
#endif
    tensor out = keep_layout && is_channels_last(x) ? empty_channels_last(out_shape, x.device())
                                                    : tensor::empty(out_shape, dtype::f32, x.device());
    avg_pool2d_into(out, x, options);
    return out;
}

} // namespace clip
