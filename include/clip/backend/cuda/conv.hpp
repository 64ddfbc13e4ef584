// clip/backend/cuda/conv.hpp: 2-D convolution on a CUDA device as unfold + product, and its two
// backward passes.
//
// The input is unfolded into a [B·H'·W', C·KH·KW] matrix (im2col in kernels.hpp) and multiplied
// by the kernel seen as [O, C·KH·KW]ᵀ on cuBLASLt, the bias and activation fused there. The
// product's rows are pixels, so the result is [B, O, H', W'] laid out channels-last, which is
// what the next layer reads best. For ViT's patch embedding (kernel = stride, no padding) the
// unfold is a pure rearrangement of the image.
//
// Backward, with dY seen as the [B·H'·W', O] matrix of its pixels:
//   weights  dK [O, C·KH·KW] (+)= dYᵀ · im2col(x)
//   data     dX = col2im(dY · K): each input element sums the unfolded entries that read it, a
//            gather (one thread per element, no atomics), so the result does not depend on
//            scheduling.
//
// With cuDNN (CLIP_WITH_CUDNN), kernels wider than 1×1 that do not patchify (worth_direct) run
// there instead, in all three passes (cudnn.hpp); the rest, and whatever cuDNN declines, take the
// products above.
#pragma once

#include "clip/backend/cuda/jit.hpp"
#include "clip/backend/cuda/kernels.hpp"
#include "clip/backend/cuda/matmul.hpp"
#include "clip/ops/conv_spec.hpp"
#if defined(CLIP_WITH_CUDNN)
#include "clip/backend/cuda/cudnn.hpp"
#endif

namespace clip::detail::cuda {

/// The 14 integer geometry parameters shared by im2col and col2im.
struct conv_geometry {
    int p[14];
    conv_geometry(const tensor& x, std::int64_t KH, std::int64_t KW, std::int64_t OH, std::int64_t OW, const conv2d_options& o)
        : p{static_cast<int>(x.size(0)), static_cast<int>(x.size(1)), static_cast<int>(x.size(2)), static_cast<int>(x.size(3)),
            static_cast<int>(KH), static_cast<int>(KW), static_cast<int>(OH), static_cast<int>(OW),
            static_cast<int>(o.stride[0]), static_cast<int>(o.stride[1]), static_cast<int>(o.padding[0]),
            static_cast<int>(o.padding[1]), static_cast<int>(o.dilation[0]), static_cast<int>(o.dilation[1])} {}
};

/// Runs im2col (x -> cols) or col2im (cols -> x) over x's strides.
inline void unfold_kernel(const char* name, const float* from, float* to, conv_geometry g, const tensor& x,
                          std::int64_t elements) {
    const int index = x.device().index;
    std::int64_t xs[4] = {x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
    const std::int64_t blocks = std::min<std::int64_t>((elements + 255) / 256, 65536);
    int* p = g.p;
    launch(kernel(kernels_source(), "kernels", name, index), dim3(static_cast<unsigned>(blocks)), dim3(256), 0, index,
           {&from, &to, &p[0], &p[1], &p[2], &p[3], &p[4], &p[5], &p[6], &p[7], &p[8], &p[9], &p[10], &p[11], &p[12], &p[13],
            &xs[0], &xs[1], &xs[2], &xs[3]},
           "CUDA im2col/col2im launch");
}

/// A channels-last [N, O, OH, OW] tensor as the [N·OH·OW, O] matrix of its pixels (a copy when
/// it is laid out otherwise).
inline tensor pixel_rows(const tensor& t) {
    const tensor pixels = t.permute({0, 2, 3, 1});
    return (pixels.is_contiguous() ? pixels : pixels.contiguous()).view({t.size(0) * t.size(2) * t.size(3), t.size(1)});
}

/// Whether a KH×KW kernel with options `o` reads each pixel once, in place: 1×1, stride 1, no
/// padding. Its unfolded matrix is then the input's pixel rows (most of a ResNet's convolutions).
inline bool pointwise(std::int64_t KH, std::int64_t KW, const conv2d_options& o) {
    return KH == 1 && KW == 1 && o.stride[0] == 1 && o.stride[1] == 1 && o.padding[0] == 0 && o.padding[1] == 0;
}

/// Whether a kernel is worth a direct convolution: wider than 1×1 and not patchifying. A 1×1
/// kernel's unfold is its pixel rows (or a subsample of them) and a patchifying one's (kernel =
/// stride, unpadded, undilated: ViT's patch embedding) a rearrangement of the input, so those are
/// single products on cuBLASLt; a 3×3 kernel's unfold repeats every pixel nine times.
inline bool worth_direct(std::int64_t KH, std::int64_t KW, const conv2d_options& o) {
    const bool patchify = KH == o.stride[0] && KW == o.stride[1] && o.padding[0] == 0 && o.padding[1] == 0 && o.dilation[0] == 1 &&
                          o.dilation[1] == 1;
    return KH * KW > 1 && !patchify;
}

/// x [N, C, H, W] (any strides) -> its unfolded [N·OH·OW, C·KH·KW] matrix (a view of a
/// channels-last x for a pointwise kernel).
inline tensor im2col(const tensor& x, std::int64_t KH, std::int64_t KW, std::int64_t OH, std::int64_t OW, const conv2d_options& o) {
    if (pointwise(KH, KW, o)) return pixel_rows(x);
    const tensor cols = tensor::empty({x.size(0) * OH * OW, x.size(1) * KH * KW}, dtype::f32, x.device());
    if (cols.numel() > 0) unfold_kernel("im2col", x.data<float>(), cols.data<float>(), conv_geometry(x, KH, KW, OH, OW, o), x, cols.numel());
    return cols;
}

/// conv2d(x, w, o) into out [N, O, OH, OW] (row-major or channels-last).
inline void conv2d_into(const tensor& out, const tensor& x, const tensor& w, const conv2d_options& o) {
    check(o.groups == 1, "conv2d on CUDA: groups = ", o.groups, " is not supported (CLIP's models use 1)");
    if (out.numel() == 0) return;
    const std::int64_t O = w.size(0), KH = w.size(2), KW = w.size(3), OH = out.size(2), OW = out.size(3);
#if defined(CLIP_WITH_CUDNN)
    if (w.dtype() == dtype::f32 && worth_direct(KH, KW, o) && cudnn_conv2d_into(out, x, w, o)) return;
#endif
    const tensor cols = im2col(x, KH, KW, OH, OW, o);
    const tensor pixels = out.permute({0, 2, 3, 1});
    const bool direct = pixels.is_contiguous();
    const tensor rows = direct ? pixels.view({out.size(0) * OH * OW, O}) : tensor::empty({out.size(0) * OH * OW, O}, dtype::f32, x.device());
    matmul(rows, cols, w.reshape({O, w.size(1) * KH * KW}).t(), {.bias = o.bias, .act = o.act});
    if (!direct) pixels.copy_from(rows.view({out.size(0), OH, OW, O}));
}

inline tensor conv2d(const tensor& x, const tensor& w, const conv2d_options& o, const shape& out_shape) {
    const tensor out = empty_channels_last(out_shape, x.device());
    conv2d_into(out, x, w, o);
    return out;
}

/// dw [O, C, KH, KW] (contiguous) = (or +=) the kernel gradient of conv2d(x, w, o) for dy.
inline void conv2d_backward_weights(const tensor& dw, const tensor& x, const tensor& dy, const conv2d_options& o, bool accumulate) {
    check(o.groups == 1, "conv2d backward on CUDA: groups = ", o.groups, " is not supported (CLIP's models use 1)");
    const std::int64_t O = dw.size(0), KH = dw.size(2), KW = dw.size(3);
    const tensor grad = dw.view({O, dw.size(1) * KH * KW});
    if (dy.numel() == 0) {
        if (!accumulate) grad.copy_from(tensor::zeros(grad.shape()).to(dw.device()));
        return;
    }
#if defined(CLIP_WITH_CUDNN)
    if (worth_direct(KH, KW, o) && cudnn_conv2d_backward_weights(dw, x, dy, o, accumulate)) return;
#endif
    matmul(grad, pixel_rows(dy).t(), im2col(x, KH, KW, dy.size(2), dy.size(3), o), {.residual = accumulate ? grad : tensor{}});
}

/// dx [N, C, H, W] (any strides) = the input gradient of conv2d(x, w, o) for dy.
inline void conv2d_backward_data(const tensor& dx, const tensor& dy, const tensor& w, const conv2d_options& o) {
    check(o.groups == 1, "conv2d backward on CUDA: groups = ", o.groups, " is not supported (CLIP's models use 1)");
    if (dx.numel() == 0) return;
    const std::int64_t O = w.size(0), KH = w.size(2), KW = w.size(3), OH = dy.size(2), OW = dy.size(3);
    const tensor pixels = dx.permute({0, 2, 3, 1});
    if (pointwise(KH, KW, o) && pixels.is_contiguous()) // dx's pixel rows are the unfolded gradient itself
        return matmul(pixels.view({dx.size(0) * OH * OW, dx.size(1)}), pixel_rows(dy), w.reshape({O, dx.size(1)}), {});
#if defined(CLIP_WITH_CUDNN)
    if (w.dtype() == dtype::f32 && worth_direct(KH, KW, o) && cudnn_conv2d_backward_data(dx, dy, w, o)) return;
#endif
    const tensor cols = tensor::empty({dy.size(0) * OH * OW, dx.size(1) * KH * KW}, dtype::f32, dx.device());
    if (cols.numel() > 0) matmul(cols, pixel_rows(dy), w.reshape({O, dx.size(1) * KH * KW}), {});
    unfold_kernel("col2im", cols.data<float>(), dx.data<float>(), conv_geometry(dx, KH, KW, OH, OW, o), dx, dx.numel());
}

} // namespace clip::detail::cuda
