// clip/ops/conv_spec.hpp: what a 2-D convolution and average pooling compute, for every backend.
//
// conv2d: x [B, C, H, W], weight [O, C/groups, kH, kW], bias [O] -> [B, O, H', W'] with
//   H' = (H + 2·pad_h - dilation_h·(kH - 1) - 1) / stride_h + 1   (likewise W'),
// PyTorch's nn.Conv2d (cross-correlation, zero padding), then the activation if one is given
// (a conv + folded BatchNorm + ReLU is one call).
// avg_pool2d: x [B, C, H, W] -> [B, C, H', W'], the mean over each kernel window; with padding,
// padded zeros count in the divisor unless count_include_pad is false (nn.AvgPool2d).
// Both accept row-major (NCHW) or channels-last (NHWC) memory and answer in the same layout.
#pragma once

#include <array>

#include "clip/core/tensor.hpp"
#include "clip/ops/matmul_spec.hpp"

namespace clip {

struct conv2d_options {
    tensor bias = {};                     ///< [O], or undefined
    std::array<std::int64_t, 2> stride = {1, 1};
    std::array<std::int64_t, 2> padding = {0, 0};
    std::array<std::int64_t, 2> dilation = {1, 1};
    std::int64_t groups = 1;
    activation act = activation::none;    ///< applied after the bias
};

struct pool2d_options {
    std::array<std::int64_t, 2> kernel = {2, 2};
    std::array<std::int64_t, 2> stride = {0, 0}; ///< 0 means "equal to the kernel", as in PyTorch
    std::array<std::int64_t, 2> padding = {0, 0};
    bool count_include_pad = true;
};

/// True when a [N, C, H, W] tensor is laid out channels-last (NHWC in memory).
inline bool is_channels_last(const tensor& t) {
    if (t.ndim() != 4) return false;
    return t.permute({0, 2, 3, 1}).is_contiguous() && !t.is_contiguous();
}

/// A [N, C, H, W] tensor with channels-last memory (NHWC), the layout oneDNN's direct
/// convolutions run fastest on; shape and indexing are the usual NCHW.
inline tensor empty_channels_last(const shape& nchw, device where = device::cpu()) {
    return tensor::empty({nchw[0], nchw[2], nchw[3], nchw[1]}, dtype::f32, where).permute({0, 3, 1, 2});
}

/// The same values in channels-last memory (a copy unless already so).
inline tensor to_channels_last(const tensor& t) {
    if (is_channels_last(t)) return t;
    tensor out = empty_channels_last(t.shape(), t.device());
    out.copy_from(t);
    return out;
}

namespace detail {

/// `t` itself if its memory is row-major or channels-last, else a row-major copy.
inline tensor dense_nchw(const tensor& t) { return t.is_contiguous() || is_channels_last(t) ? t : t.contiguous(); }

inline std::int64_t conv_out_extent(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                                    std::int64_t dilation) {
    const std::int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
    return span < 0 ? 0 : span / stride + 1; // a kernel larger than the padded input fits nowhere
}

inline shape check_conv2d(const tensor& x, const tensor& w, const conv2d_options& o) {
    require_defined(x, "conv2d");
    require_defined(w, "conv2d");
    check<shape_error>(x.ndim() == 4, "conv2d: input must be [B, C, H, W], got shape ", x.shape());
    check<shape_error>(w.ndim() == 4, "conv2d: weight must be [O, C/groups, kH, kW], got shape ", w.shape());
    check<device_error>(x.device() == w.device(), "conv2d: input on ", x.device(), ", weight on ", w.device());
    const bool half_weight_on_cuda = x.device().is_cuda() && (w.dtype() == dtype::bf16 || w.dtype() == dtype::f16);
    check<dtype_error>(x.dtype() == dtype::f32 && (w.dtype() == dtype::f32 || half_weight_on_cuda),
                       "conv2d: input and weight must be f32 (a bf16/f16 weight on CUDA), got ", x.dtype(), " and ", w.dtype());
    check(o.groups >= 1 && x.shape()[1] % o.groups == 0 && w.shape()[0] % o.groups == 0, "conv2d: groups ", o.groups,
          " must divide input channels ", x.shape()[1], " and output channels ", w.shape()[0]);
    check<shape_error>(w.shape()[1] * o.groups == x.shape()[1], "conv2d: input of shape ", x.shape(),
                       " has ", x.shape()[1], " channels, weight of shape ", w.shape(), " expects ",
                       w.shape()[1] * o.groups, " (groups ", o.groups, ")");
    for (int i = 0; i < 2; ++i)
        check(o.stride[i] >= 1 && o.dilation[i] >= 1 && o.padding[i] >= 0, "conv2d: stride and dilation must be >= 1 ",
              "and padding >= 0");
    if (o.bias.defined())
        check<shape_error>(o.bias.shape() == shape{w.shape()[0]}, "conv2d: bias of shape ", o.bias.shape(),
                           " does not match ", w.shape()[0], " output channels");
    const std::int64_t h = conv_out_extent(x.shape()[2], w.shape()[2], o.stride[0], o.padding[0], o.dilation[0]);
    const std::int64_t wd = conv_out_extent(x.shape()[3], w.shape()[3], o.stride[1], o.padding[1], o.dilation[1]);
    check<shape_error>(h >= 1 && wd >= 1, "conv2d: kernel ", w.shape()[2], "x", w.shape()[3], " does not fit input ",
                       x.shape()[2], "x", x.shape()[3], " with padding ", o.padding[0], "x", o.padding[1]);
    return {x.shape()[0], w.shape()[0], h, wd};
}

/// Checks that `t` is a dense (row-major or channels-last) f32 tensor of shape `s` on `where`.
inline void check_conv2d_operand(const tensor& t, const shape& s, const char* op, const char* what, device where) {
    require_defined(t, op);
    check<device_error>(t.device() == where, op, ": ", what, " is on ", t.device(), ", the weight on ", where);
    check<shape_error>(t.shape() == s, op, ": ", what, " has shape ", t.shape(), ", expected ", s);
    check<dtype_error>(t.dtype() == dtype::f32, op, ": ", what, " must be f32, got ", t.dtype());
    check<shape_error>(t.is_contiguous() || is_channels_last(t), op, ": ", what,
                       " must be row-major or channels-last, got strides ", t.strides());
}

/// The checks of a convolution's backward pass: x (or dx) and the kernel (or its gradient) as
/// conv2d takes them, dy of the output's shape; the bias and activation are the caller's.
inline void check_conv2d_backward(const tensor& x, const tensor& w, const tensor& dy, const conv2d_options& o,
                                  const char* op) {
    const shape out_shape = check_conv2d(x, w, o);
    check(!o.bias.defined() && o.act == activation::none, op,
          ": the options must have no bias and no activation (their gradients are the caller's)");
    check_conv2d_operand(x, x.shape(), op, "input (gradient)", w.device());
    check_conv2d_operand(dy, out_shape, op, "output gradient", w.device());
}

inline pool2d_options resolve(pool2d_options o) {
    for (int i = 0; i < 2; ++i)
        if (o.stride[i] == 0) o.stride[i] = o.kernel[i];
    return o;
}

inline shape check_pool2d(const tensor& x, const pool2d_options& o) {
    require_defined(x, "avg_pool2d");
    check<shape_error>(x.ndim() == 4, "avg_pool2d: input must be [B, C, H, W], got shape ", x.shape());
    check<dtype_error>(x.dtype() == dtype::f32, "avg_pool2d: input must be f32, got ", x.dtype());
    for (int i = 0; i < 2; ++i) {
        check(o.kernel[i] >= 1 && o.stride[i] >= 1, "avg_pool2d: kernel and stride must be >= 1");
        check(o.padding[i] >= 0 && 2 * o.padding[i] <= o.kernel[i], "avg_pool2d: padding ", o.padding[i],
              " must be at most half the kernel ", o.kernel[i]);
    }
    const std::int64_t h = conv_out_extent(x.shape()[2], o.kernel[0], o.stride[0], o.padding[0], 1);
    const std::int64_t w = conv_out_extent(x.shape()[3], o.kernel[1], o.stride[1], o.padding[1], 1);
    check<shape_error>(h >= 1 && w >= 1, "avg_pool2d: kernel ", o.kernel[0], "x", o.kernel[1], " does not fit input ",
                       x.shape()[2], "x", x.shape()[3]);
    return {x.shape()[0], x.shape()[1], h, w};
}

} // namespace detail
} // namespace clip
