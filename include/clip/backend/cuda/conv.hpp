// clip/backend/cuda/conv.hpp: 2-D convolution on a CUDA device as unfold + product.
//
// The input is unfolded into a [B·H'·W', C·KH·KW] matrix (im2col in kernels.hpp) and multiplied
// by the kernel seen as [O, C·KH·KW]ᵀ on cuBLASLt, the bias and activation fused there. The
// product's rows are pixels, so the result is [B, O, H', W'] laid out channels-last, which is
// what the next layer reads best. For ViT's patch embedding (kernel = stride, no padding) the
// unfold is a pure rearrangement of the image.
#pragma once

#include "clip/backend/cuda/jit.hpp"
#include "clip/backend/cuda/kernels.hpp"
#include "clip/backend/cuda/matmul.hpp"
#include "clip/ops/conv_spec.hpp"

namespace clip::detail::cuda {

inline tensor conv2d(const tensor& input, const tensor& w, const conv2d_options& o, const shape& out_shape) {
    check(o.groups == 1, "conv2d on CUDA: groups = ", o.groups, " is not supported (CLIP's models use 1)");
    const tensor& x = input;
    const std::int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    const std::int64_t O = w.size(0), KH = w.size(2), KW = w.size(3), OH = out_shape[2], OW = out_shape[3];
    const tensor out = empty_channels_last(out_shape, x.device());
    if (out.numel() == 0) return out;
    const int index = x.device().index;
    const tensor cols = tensor::empty({N * OH * OW, C * KH * KW}, dtype::f32, x.device());
    int p[15] = {static_cast<int>(N), static_cast<int>(C), static_cast<int>(H), static_cast<int>(W), static_cast<int>(KH),
                 static_cast<int>(KW), static_cast<int>(OH), static_cast<int>(OW), static_cast<int>(o.stride[0]),
                 static_cast<int>(o.stride[1]), static_cast<int>(o.padding[0]), static_cast<int>(o.padding[1]),
                 static_cast<int>(o.dilation[0]), static_cast<int>(o.dilation[1]), 0};
    std::int64_t xs[4] = {x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
    const float* xp = x.data<float>();
    float* cp = cols.data<float>();
    const std::int64_t blocks = std::min<std::int64_t>((cols.numel() + 255) / 256, 65536);
    launch(kernel(kernels_source(), "kernels", "im2col", index), dim3(static_cast<unsigned>(blocks)), dim3(256), 0, index,
           {&xp, &cp, &p[0], &p[1], &p[2], &p[3], &p[4], &p[5], &p[6], &p[7], &p[8], &p[9], &p[10], &p[11], &p[12], &p[13], &xs[0], &xs[1], &xs[2], &xs[3]},
           "CUDA im2col launch");
    const tensor rows = out.permute({0, 2, 3, 1}).view({N * OH * OW, O}); // channels-last memory as [pixels, O]
    matmul(rows, cols, w.reshape({O, C * KH * KW}).t(), {.bias = o.bias, .act = o.act});
    return out;
}

} // namespace clip::detail::cuda
