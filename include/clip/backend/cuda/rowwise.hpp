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

/// Runs the row kernel `name` (one warp per row) over `input`'s rows into a new tensor; the
/// kernel takes (in, row stride, out, rows, width, extra...).
template <class... Extra>
tensor run_rows(const tensor& input, const char* name, Extra... extra) {
    const auto [x, row_stride] = as_rows(input);
    tensor out = tensor::empty(x.shape(), dtype::f32, x.device());
    std::int64_t width = x.shape().back(), rows = width ? x.numel() / width : 0;
    if (rows == 0) return out;
    const int index = x.device().index;
    const float* in = x.data<float>();
    float* o = out.data<float>();
    std::int64_t stride = row_stride;
    int n = static_cast<int>(width);
    const unsigned blocks = static_cast<unsigned>((rows + 3) / 4);
    launch(kernel(kernels_source(), "kernels", name, index), dim3(blocks), dim3(128), 0, index,
           {&in, &stride, &o, &rows, &n, &extra...}, name);
    return out;
}

inline tensor layer_norm(const tensor& input, const tensor& weight, const tensor& bias, float eps) {
    const float* w = weight.defined() ? weight.data<float>() : nullptr;
    const float* b = bias.defined() ? bias.data<float>() : nullptr;
    return run_rows(input, "layer_norm", w, b, eps);
}

/// mode 0 softmax, 1 log-softmax, 2 causal softmax over square matrices of `period` rows.
inline tensor softmax_rows(const tensor& input, int mode, int period = 1) { return run_rows(input, "softmax_rows", mode, period); }

inline tensor l2_normalize(const tensor& input, float eps) { return run_rows(input, "l2_normalize", eps); }

} // namespace clip::detail::cuda
