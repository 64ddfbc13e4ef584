// clip/backend/cuda/rowwise.hpp: layer norm and L2 normalisation of rows on a CUDA device.
//
// The input is seen as rows of its last axis at a constant row stride (a contiguous tensor, or
// a strided selection such as the class token of every image); each row is one warp of the
// kernels in kernels.hpp. The result is a new contiguous f32 tensor.
#pragma once

#include "clip/backend/cuda/jit.hpp"
#include "clip/backend/cuda/kernels.hpp"
#include "clip/core/tensor.hpp"

namespace clip::detail::cuda {

/// `input` as rows of its last axis with one row stride, copied when its layout has none.
inline std::pair<tensor, std::int64_t> as_rows(const tensor& input) {
    const tensor x = input.to(dtype::f32);
    const std::int64_t width = x.shape().back(), rows = width ? x.numel() / width : 0;
    if (x.ndim() >= 1 && (x.ndim() == 1 || x.stride(-1) == 1)) {
        // Rows are evenly spaced when every outer axis steps by the next one's extent times its stride.
        bool even = x.stride(-1) == 1 || width <= 1;
        std::int64_t row_stride = x.ndim() >= 2 ? x.stride(-2) : width;
        for (int d = x.ndim() - 2; even && d >= 1; --d)
            if (x.size(d) != 1 && x.stride(d - 1) != x.stride(d) * x.size(d)) even = false;
        if (even && rows > 0 && row_stride >= width) return {x, row_stride};
    }
    return {x.contiguous(), width};
}

inline tensor layer_norm(const tensor& input, const tensor& weight, const tensor& bias, float eps) {
    const auto [x, row_stride] = as_rows(input);
    tensor out = tensor::empty(x.shape(), dtype::f32, x.device());
    const std::int64_t width = x.shape().back(), rows = width ? x.numel() / width : 0;
    if (rows == 0) return out;
    const int index = x.device().index;
    const float* in = x.data<float>();
    float* o = out.data<float>();
    const float* w = weight.defined() ? weight.data<float>() : nullptr;
    const float* b = bias.defined() ? bias.data<float>() : nullptr;
    std::int64_t stride = row_stride;
    int n = static_cast<int>(width);
    const unsigned blocks = static_cast<unsigned>((rows + 3) / 4);
    launch(kernel(kernels_source(), "kernels", "layer_norm", index), dim3(blocks), dim3(128), 0, index,
           {&in, &stride, &o, const_cast<std::int64_t*>(&rows), &n, &w, &b, &eps}, "CUDA layer_norm launch");
    return out;
}

/// mode 0 softmax, 1 log-softmax, 2 causal softmax over square matrices of `period` rows.
inline tensor softmax_rows(const tensor& input, int mode, int period = 1) {
    const auto [x, row_stride] = as_rows(input);
    tensor out = tensor::empty(x.shape(), dtype::f32, x.device());
    const std::int64_t width = x.shape().back(), rows = width ? x.numel() / width : 0;
    if (rows == 0) return out;
    const int index = x.device().index;
    const float* in = x.data<float>();
    float* o = out.data<float>();
    std::int64_t stride = row_stride;
    int n = static_cast<int>(width);
    const unsigned blocks = static_cast<unsigned>((rows + 3) / 4);
    launch(kernel(kernels_source(), "kernels", "softmax_rows", index), dim3(blocks), dim3(128), 0, index,
           {&in, &stride, &o, const_cast<std::int64_t*>(&rows), &n, &mode, &period}, "CUDA softmax launch");
    return out;
}

inline tensor l2_normalize(const tensor& input, float eps) {
    const auto [x, row_stride] = as_rows(input);
    tensor out = tensor::empty(x.shape(), dtype::f32, x.device());
    const std::int64_t width = x.shape().back(), rows = width ? x.numel() / width : 0;
    if (rows == 0) return out;
    const int index = x.device().index;
    const float* in = x.data<float>();
    float* o = out.data<float>();
    std::int64_t stride = row_stride;
    int n = static_cast<int>(width);
    const unsigned blocks = static_cast<unsigned>((rows + 3) / 4);
    launch(kernel(kernels_source(), "kernels", "l2_normalize", index), dim3(blocks), dim3(128), 0, index,
           {&in, &stride, &o, const_cast<std::int64_t*>(&rows), &n, &eps}, "CUDA l2_normalize launch");
    return out;
}

} // namespace clip::detail::cuda
