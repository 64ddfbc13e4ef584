// clip/core/shape.hpp: tensor shapes and strides, and NumPy broadcasting.
//
// A shape is a short list of non-negative extents, outermost first (row-major, as PyTorch).
// Strides count elements, not bytes; a stride of 0 repeats one element along that axis
// (a broadcast view).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <span>

#include "clip/core/error.hpp"

namespace clip {

/// Up to `max_dims` extents, stored inline: shapes are copied often and never allocate.
class shape {
public:
    static constexpr int max_dims = 8;

    constexpr shape() = default;
    constexpr shape(std::initializer_list<std::int64_t> dims) { assign(dims.begin(), dims.size()); }
    explicit shape(std::span<const std::int64_t> dims) { assign(dims.data(), dims.size()); }

    constexpr int size() const noexcept { return rank_; }
    constexpr bool empty() const noexcept { return rank_ == 0; }
    constexpr std::int64_t operator[](int axis) const noexcept { return dims_[static_cast<std::size_t>(axis)]; }
    constexpr std::int64_t& operator[](int axis) noexcept { return dims_[static_cast<std::size_t>(axis)]; }
    constexpr const std::int64_t* begin() const noexcept { return dims_.data(); }
    constexpr const std::int64_t* end() const noexcept { return dims_.data() + rank_; }
    constexpr std::int64_t* begin() noexcept { return dims_.data(); }
    constexpr std::int64_t* end() noexcept { return dims_.data() + rank_; }
    constexpr std::int64_t back() const noexcept { return dims_[static_cast<std::size_t>(rank_ - 1)]; }
    std::span<const std::int64_t> span() const noexcept { return {dims_.data(), static_cast<std::size_t>(rank_)}; }

    /// Number of elements (1 for a scalar of rank 0).
    constexpr std::int64_t numel() const noexcept {
        std::int64_t n = 1;
        for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
        return n;
    }

    void push_back(std::int64_t extent) {
        detail::check<shape_error>(rank_ < max_dims, "shape: more than ", max_dims, " dimensions");
        dims_[static_cast<std::size_t>(rank_++)] = extent;
    }
    void insert(int axis, std::int64_t extent) {
        push_back(extent);
        std::rotate(dims_.begin() + axis, dims_.begin() + rank_ - 1, dims_.begin() + rank_);
    }
    void erase(int axis) {
        std::copy(dims_.begin() + axis + 1, dims_.begin() + rank_, dims_.begin() + axis);
        --rank_;
    }

    friend constexpr bool operator==(const shape& a, const shape& b) noexcept {
        return a.rank_ == b.rank_ && std::equal(a.begin(), a.end(), b.begin());
    }

    friend std::ostream& operator<<(std::ostream& out, const shape& s) {
        out << '[';
        for (int i = 0; i < s.rank_; ++i) out << (i ? ", " : "") << s[i];
        return out << ']';
    }

private:
    constexpr void assign(const std::int64_t* dims, std::size_t n) {
        if (n > static_cast<std::size_t>(max_dims))
            throw shape_error(detail::message("shape: ", n, " dimensions, at most ", max_dims, " supported"));
        for (std::size_t i = 0; i < n; ++i) {
            if (dims[i] < 0) throw shape_error(detail::message("shape: negative extent ", dims[i]));
            dims_[i] = dims[i];
        }
        rank_ = static_cast<int>(n);
    }

    std::array<std::int64_t, max_dims> dims_{};
    int rank_ = 0;
};

/// Strides have the same inline storage; only the meaning differs.
using strides = shape;

namespace detail {

/// Row-major (C order) strides of a contiguous tensor of shape `s`.
inline strides contiguous_strides(const shape& s) {
    strides st;
    for (int i = 0; i < s.size(); ++i) st.push_back(0);
    std::int64_t step = 1;
    for (int i = s.size() - 1; i >= 0; --i) {
        st[i] = step;
        step *= std::max<std::int64_t>(s[i], 1);
    }
    return st;
}

/// Turns a possibly negative axis (-1 = last) into 0..rank-1, or throws naming the op.
inline int normalize_axis(std::int64_t axis, int rank, const char* op) {
    const std::int64_t a = axis < 0 ? axis + rank : axis;
    check<index_error>(a >= 0 && a < rank, op, ": axis ", axis, " out of range for a tensor of rank ", rank);
    return static_cast<int>(a);
}

/// The NumPy broadcast of two shapes, or a shape_error naming both.
inline shape broadcast_shapes(const shape& a, const shape& b, const char* op = "broadcast") {
    const int rank = std::max(a.size(), b.size());
    shape out;
    for (int i = 0; i < rank; ++i) {
        const int ia = i - (rank - a.size()), ib = i - (rank - b.size());
        const std::int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
        if (da != db && da != 1 && db != 1)
            throw shape_error(message(op, ": shapes ", a, " and ", b, " cannot be broadcast together (axis ", i,
                                      ": ", da, " vs ", db, ")"));
        out.push_back(da == 1 ? db : da);
    }
    return out;
}

} // namespace detail
} // namespace clip
