// clip/ops/conv.hpp: 2-D convolution and average pooling, dispatched to a backend.
//
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

namespace clip {

namespace detail {

inline tensor dispatch_conv2d(const tensor& x, const tensor& w, const conv2d_options& o, const packed_weights* packed) {
    const shape out_shape = check_conv2d(x, w, o);
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

/// PyTorch's F.avg_pool2d(x, kernel, stride, padding, count_include_pad=...).
inline tensor avg_pool2d(const tensor& x, const pool2d_options& options = {}) {
    const pool2d_options o = detail::resolve(options);
    const shape out_shape = detail::check_pool2d(x, o);
    detail::require_cpu(x, "avg_pool2d");
#if defined(CLIP_WITH_ONEDNN)
    tensor out = is_channels_last(x) ? empty_channels_last(out_shape) : tensor::empty(out_shape);
    if (out.numel() > 0) detail::onednn::avg_pool2d(out, x, o);
#else
    tensor out = tensor::empty(out_shape);
    if (out.numel() > 0) detail::reference::avg_pool2d(out, x, o);
#endif
    return out;
}

} // namespace clip
