// clip/backend/cuda/gather.hpp: rows of a table gathered on a CUDA device (embedding lookups,
// pooling one position per sequence). The ids are checked on the host, where they usually are.
#pragma once

#include "clip/backend/cuda/jit.hpp"
#include "clip/backend/cuda/kernels.hpp"
#include "clip/core/tensor.hpp"

namespace clip::detail::cuda {

/// out [n, D] = table [V, D] rows at `ids` (i64, host or device, already checked against V).
inline tensor gather_rows(const tensor& table, const tensor& ids) {
    const tensor rows = table.stride(1) == 1 ? table : table.contiguous();
    const tensor index = ids.to(dtype::i64).contiguous().to(table.device());
    const std::int64_t n = index.numel(), width = rows.size(1);
    tensor out = tensor::empty({n, width}, dtype::f32, table.device());
    if (out.numel() == 0) return out;
    const int device_index = table.device().index;
    const float* t = rows.data<float>();
    std::int64_t stride = rows.stride(0);
    const std::int64_t* id = index.data<std::int64_t>();
    float* o = out.data<float>();
    std::int64_t count = n, w = width;
    const std::int64_t blocks = std::min<std::int64_t>((n * width + 255) / 256, 65536);
    launch(kernel(kernels_source(), "kernels", "gather_rows", device_index), dim3(static_cast<unsigned>(blocks)), dim3(256), 0,
           device_index, {&t, &stride, &id, &o, &count, &w}, "CUDA gather launch");
    return out;
}

} // namespace clip::detail::cuda
