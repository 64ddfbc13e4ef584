// clip/expr/evaluate.hpp: running an expression tree in one pass (included by node.hpp).
//
// The destination and every tensor leaf are aligned to the destination's shape (broadcast axes
// get stride 0) and their common contiguous axes are merged, leaving rows of one inner run. The
// work is cut into blocks of up to `block_size` elements of a row; each thread builds its own
// evaluator tree (raw pointers and small buffers, no allocation) and streams its blocks through
// it: load every operand, apply the functors in registers, store once.
#pragma once

#include <vector>

#include "clip/expr/node.hpp"

namespace clip::detail {

#if defined(CLIP_WITH_CUDA)
namespace cuda {
template <class Node>
void assign(const tensor& dst, const Node& node);
}
#endif

/// Results of at least this many bytes are written with streaming stores.
inline constexpr std::size_t streaming_threshold = std::size_t{32} << 20;

/// True when `t` reads memory of `dst` through a different layout, so that writing `dst` while
/// reading `t` element by element would read already-overwritten values.
inline bool overlaps_differently(const tensor& t, const tensor& dst) {
    return t.storage() == dst.storage() &&
           !(t.offset() == dst.offset() && t.shape() == dst.shape() && t.strides() == dst.strides() &&
             t.dtype() == dst.dtype());
}

template <class Node>
void assign(const tensor& dst, const Node& node) {
    require_defined(dst, "assign");
    if (const auto d = node.device(); d && *d != dst.device())
        throw device_error(message("assign: expression on ", *d, ", destination on ", dst.device()));
    const shape target = dst.shape();
    check<shape_error>(broadcast_shapes(node.shape(), target, "assign") == target, "assign: expression of shape ",
                       node.shape(), " cannot be written into a tensor of shape ", target);
    if (dst.numel() == 0) return;
#if defined(CLIP_WITH_CUDA)
    if (dst.device().is_cuda()) {
        // Every thread reads its operands before it writes, so only other elements' overlap matters.
        bool aliased = false;
        node.for_each_tensor([&](const tensor& t) { aliased = aliased || overlaps_differently(t, dst); });
        if (aliased) return dst.copy_from(evaluate(node)), void();
        return cuda::assign(dst, node);
    }
#endif
    require_cpu(dst, "assign");

    bool aliased = false;
    node.for_each_tensor([&](const tensor& t) { aliased = aliased || overlaps_differently(t, dst); });
    if (aliased) {
        dst.copy_from(evaluate(node));
        return;
    }

    std::vector<leaf_plan> plans;
    node.for_each_tensor([&](const tensor& t) {
        const tensor aligned = t.expand(target);
        plans.push_back({static_cast<const std::byte*>(aligned.data_ptr()), aligned.dtype(), aligned.strides()});
    });
    check(plans.size() < 15, "assign: an expression may read at most 14 tensors, this one reads ", plans.size());
    shape extent = target;
    strides dst_strides = dst.strides();
    std::vector<strides*> operands{&dst_strides};
    for (leaf_plan& p : plans) operands.push_back(&p.st);
    order_axes_by_first(extent, operands);
    coalesce(extent, operands);

    const std::int64_t inner = extent.back();
    const std::int64_t rows = extent.numel() / inner;
    const std::int64_t blocks_per_row = (inner + block_size - 1) / block_size;
    const std::int64_t dst_step = dst_strides.back();
    const bool direct = dst.dtype() == dtype::f32 && dst_step == 1;
    std::byte* const dst_base = static_cast<std::byte*>(dst.data_ptr());
    const dtype dst_type = dst.dtype();
    const std::int64_t cost = std::min<std::int64_t>(block_size, inner) * static_cast<std::int64_t>(4 + plans.size());
    // A result much larger than the cache is not read again soon: write it around the cache.
    const bool streaming = direct && dst.nbytes() >= streaming_threshold;

    parallel_for(rows * blocks_per_row, cost, [&](std::int64_t first, std::int64_t last) {
        const leaf_plan* next = plans.data();
        typename Node::evaluator ev(node, next);
        alignas(64) float staging[block_size];
        for (std::int64_t item = first; item < last; ++item) {
            const std::int64_t row = item / blocks_per_row;
            const std::int64_t start = (item % blocks_per_row) * block_size;
            const std::int64_t n = std::min(block_size, inner - start);
            ev.prepare(extent, row, start, n);
            const std::int64_t offset = row_offset(extent, dst_strides, row) + start * dst_step;
            float* out = direct ? reinterpret_cast<float*>(dst_base) + offset : staging;
            std::int64_t j = 0;
            if (streaming && reinterpret_cast<std::uintptr_t>(out) % memory_alignment == 0)
                for (; j + simd_width <= n; j += simd_width) stream_store(out + j, ev.load(j));
            else
                for (; j + simd_width <= n; j += simd_width) ev.load(j).store_unaligned(out + j);
            if (j < n) store_partial(out + j, ev.load_partial(j, n - j), n - j);
            if (!direct) {
                visit_dtype(dst_type, [&]<class T>() {
                    T* d = reinterpret_cast<T*>(dst_base) + offset;
                    for (std::int64_t i = 0; i < n; ++i) d[i * dst_step] = convert<T>(staging[i]);
                });
            }
        }
        if (streaming) stream_fence();
    });
}

template <class Node>
tensor evaluate(const Node& node) {
    tensor out = tensor::empty(node.shape(), dtype::f32, node.device().value_or(device::cpu()));
    assign(out, node);
    return out;
}

} // namespace clip::detail
