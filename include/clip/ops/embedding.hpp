// clip/ops/embedding.hpp: embedding lookup (gathering rows of a table).
//
// embedding(table [V, D], ids [...]) -> [..., D], out[..., :] = table[ids[...], :], as
// torch.nn.functional.embedding. ids are i32 or i64; an id outside [0, V) throws index_error
// naming the id, its position and V. The result keeps the table's dtype.
#pragma once

#include <cstring>

#include "clip/core/tensor.hpp"
#if defined(CLIP_WITH_CUDA)
#include "clip/backend/cuda/gather.hpp"
#endif

namespace clip {

inline tensor embedding(const tensor& table, const tensor& ids) {
    detail::require_defined(table, "embedding");
    detail::require_defined(ids, "embedding");
    detail::check<shape_error>(table.ndim() == 2, "embedding: table must be [V, D], got shape ", table.shape());
    detail::check<dtype_error>(ids.dtype() == dtype::i64 || ids.dtype() == dtype::i32,
                               "embedding: ids must be i32 or i64, got ", ids.dtype());
    // The ids are checked where they can be read: on the host.
    const tensor index = ids.to(device::cpu()).to(dtype::i64).contiguous();
    const std::int64_t vocab = table.shape()[0], width = table.shape()[1];
    shape out_shape = ids.shape();
    out_shape.push_back(width);
    const std::int64_t* id = index.data<std::int64_t>();
    for (std::int64_t i = 0; i < index.numel(); ++i)
        detail::check<index_error>(id[i] >= 0 && id[i] < vocab, "embedding: id ", id[i], " at position ", i,
                                   " is outside the table of ", vocab, " rows");
#if defined(CLIP_WITH_CUDA)
    if (table.device().is_cuda()) {
        detail::check<dtype_error>(table.dtype() == dtype::f32, "embedding: a CUDA table must be f32, got ", table.dtype());
        return detail::cuda::gather_rows(table, index).view(out_shape);
    }
#endif
    detail::require_cpu(table, "embedding");
    const tensor rows = table.contiguous();
    tensor out = tensor::empty(out_shape, table.dtype());
    const std::size_t row_bytes = static_cast<std::size_t>(width) * dtype_size(table.dtype());
    const auto* src = static_cast<const std::byte*>(rows.data_ptr());
    auto* dst = static_cast<std::byte*>(out.data_ptr());
    detail::parallel_for(index.numel(), width, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t i = first; i < last; ++i)
            if (row_bytes) std::memcpy(dst + static_cast<std::size_t>(i) * row_bytes,
                                       src + static_cast<std::size_t>(id[i]) * row_bytes, row_bytes);
    });
    return out;
}

} // namespace clip
