// clip/core/strided.hpp: walking several strided operands of one shape together.
//
// Element-wise kernels see their operands as (outer rows) × (inner run): adjacent axes that are
// laid out back to back in every operand are merged first, so a contiguous tensor of any rank
// becomes one long run and the inner loop can be vectorised.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>

#include "clip/core/shape.hpp"

namespace clip::detail {

/// Merges adjacent axes that are contiguous with each other in every operand, drops extent-1
/// axes, and leaves at least one axis. `operand_strides` are updated in place.
inline void coalesce(shape& extent, std::span<strides*> operand_strides) {
    shape merged;
    std::array<strides, 16> merged_strides{};
    const std::size_t count = operand_strides.size();
    for (int axis = 0; axis < extent.size(); ++axis) {
        if (extent[axis] == 1) continue;
        bool joins = merged.size() > 0;
        for (std::size_t k = 0; k < count && joins; ++k)
            joins = merged_strides[k].back() == (*operand_strides[k])[axis] * extent[axis];
        if (joins) {
            merged[merged.size() - 1] *= extent[axis];
            for (std::size_t k = 0; k < count; ++k)
                merged_strides[k][merged.size() - 1] = (*operand_strides[k])[axis];
        } else {
            merged.push_back(extent[axis]);
            for (std::size_t k = 0; k < count; ++k) merged_strides[k].push_back((*operand_strides[k])[axis]);
        }
    }
    if (merged.empty()) {
        merged.push_back(extent.numel() == 0 ? 0 : 1);
        for (std::size_t k = 0; k < count; ++k) merged_strides[k].push_back(0);
    }
    extent = merged;
    for (std::size_t k = 0; k < count; ++k) *operand_strides[k] = merged_strides[k];
}

/// Reorders the axes so that the first operand's (the destination's) strides decrease, as they
/// do in row-major memory: a channels-last or transposed destination is then still walked in
/// memory order, and coalesce() can merge its axes into one long unit-stride run.
inline void order_axes_by_first(shape& extent, std::span<strides*> operand_strides) {
    const strides& key = *operand_strides[0];
    std::array<int, shape::max_dims> order{};
    for (int i = 0; i < extent.size(); ++i) order[static_cast<std::size_t>(i)] = i;
    std::stable_sort(order.begin(), order.begin() + extent.size(),
                     [&](int a, int b) { return key[a] > key[b]; });
    const shape old_extent = extent;
    for (int i = 0; i < extent.size(); ++i) extent[i] = old_extent[order[static_cast<std::size_t>(i)]];
    for (strides* st : operand_strides) {
        const strides old = *st;
        for (int i = 0; i < extent.size(); ++i) (*st)[i] = old[order[static_cast<std::size_t>(i)]];
    }
}

/// Element offset of outer row `row` (all axes but the last) for the given strides.
inline std::int64_t row_offset(const shape& extent, const strides& st, std::int64_t row) noexcept {
    std::int64_t offset = 0;
    for (int axis = extent.size() - 2; axis >= 0; --axis) {
        const std::int64_t n = extent[axis];
        offset += (row % n) * st[axis];
        row /= n;
    }
    return offset;
}

} // namespace clip::detail
