// clip/backend/cuda/reduce.hpp: reductions along one axis and average pooling on a CUDA device.
//
// One thread per output element walks the reduced axis: CLIP reduces short axes (pooling
// windows, the tokens of one image), where a thread per output already fills the GPU.
#pragma once

#include "clip/backend/cuda/jit.hpp"
#include "clip/backend/cuda/kernels.hpp"
#include "clip/core/tensor.hpp"

namespace clip::detail::cuda {

/// `out` (f32, or i64 for argmax; contiguous) = reduction `kind` (0 sum, 1 mean, 2 max, 3 argmax)
/// of the contiguous f32 `x` seen as (outer, R, inner).
inline void reduce_axis(const tensor& out, const tensor& x, std::int64_t outer, std::int64_t R, std::int64_t inner, int kind) {
    const int index = x.device().index;
    const float* in = x.data<float>();
    void* o = out.data_ptr();
    const std::int64_t blocks = std::min<std::int64_t>((outer * inner + 255) / 256, 65536);
    launch(kernel(kernels_source(), "kernels", "reduce_axis", index), dim3(static_cast<unsigned>(blocks)), dim3(256), 0, index,
           {&in, &o, &outer, &R, &inner, &kind}, "CUDA reduction launch");
}

inline void avg_pool2d(const tensor& out, const tensor& x, std::array<std::int64_t, 2> kernel_size,
                       std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding, bool count_include_pad) {
    const int index = x.device().index;
    const float* xp = x.data<float>();
    float* yp = out.data<float>();
    int d[6] = {static_cast<int>(x.size(0)), static_cast<int>(x.size(1)), static_cast<int>(x.size(2)),
                static_cast<int>(x.size(3)), static_cast<int>(out.size(2)), static_cast<int>(out.size(3))};
    std::int64_t st[8] = {x.stride(0), x.stride(1), x.stride(2), x.stride(3), out.stride(0), out.stride(1), out.stride(2), out.stride(3)};
    int k[7] = {static_cast<int>(kernel_size[0]), static_cast<int>(kernel_size[1]), static_cast<int>(stride[0]),
                static_cast<int>(stride[1]), static_cast<int>(padding[0]), static_cast<int>(padding[1]), count_include_pad ? 1 : 0};
    const std::int64_t blocks = std::min<std::int64_t>((out.numel() + 255) / 256, 65536);
    launch(kernel(kernels_source(), "kernels", "avg_pool2d", index), dim3(static_cast<unsigned>(blocks)), dim3(256), 0, index,
           {&xp, &yp, &d[0], &d[1], &d[2], &d[3], &d[4], &d[5], &st[0], &st[1], &st[2], &st[3], &st[4], &st[5], &st[6], &st[7],
            &k[0], &k[1], &k[2], &k[3], &k[4], &k[5], &k[6]},
           "CUDA avg_pool2d launch");
}

} // namespace clip::detail::cuda
