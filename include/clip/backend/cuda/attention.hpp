// clip/backend/cuda/attention.hpp: fused scaled dot-product attention on a CUDA device.
//
// One warp per query row streams the keys and values with the online softmax (kernels.hpp):
// no score matrix in memory, the causal mask stops at the query's own position. Heads of up to
// 128 features (every CLIP model uses 64).
#pragma once

#include "clip/backend/cuda/jit.hpp"
#include "clip/backend/cuda/kernels.hpp"
#include "clip/core/tensor.hpp"

namespace clip::detail::cuda {

/// q [B, H, T, D], k and v [B, H, S, D] with unit stride along D -> [B, T, H·D] contiguous.
inline tensor attention(const tensor& q, const tensor& k, const tensor& v, float scale, bool causal) {
    const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), S = k.size(2);
    check<shape_error>(D <= 128, "attention: heads of ", D, " features; the CUDA kernel takes up to 128");
    tensor out = tensor::empty({B, T, H * D}, dtype::f32, q.device());
    if (out.numel() == 0) return out;
    const int index = q.device().index;
    const float* qp = q.data<float>();
    const float* kp = k.data<float>();
    const float* vp = v.data<float>();
    float* op = out.data<float>();
    std::int64_t st[9] = {q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
                          v.stride(0), v.stride(1), v.stride(2)};
    int dims[5] = {static_cast<int>(B), static_cast<int>(H), static_cast<int>(T), static_cast<int>(S), static_cast<int>(D)};
    int mask = causal ? 1 : 0;
    const std::int64_t warps = B * H * T;
    const unsigned blocks = static_cast<unsigned>((warps + 3) / 4);
    launch(kernel(kernels_source(), "kernels", "attention", index), dim3(blocks), dim3(128), 0, index,
           {&qp, &kp, &vp, &op, &st[0], &st[1], &st[2], &st[3], &st[4], &st[5], &st[6], &st[7], &st[8], &dims[0], &dims[1],
            &dims[2], &dims[3], &dims[4], &scale, &mask},
           "CUDA attention launch");
    return out;
}

} // namespace clip::detail::cuda
