// clip/core/tensor.hpp: the tensor, a typed strided view of shared memory on a device.
//
// A tensor is a handle: copying it shares the memory (as a PyTorch tensor does). Views (slice,
// transpose, permute, view, squeeze, unsqueeze, expand) share the memory and change only the
// shape, strides and offset; `contiguous()` copies only when the layout is not already row-major,
// `clone()` always copies. Memory comes from the library allocator, an arena, or the caller
// (`from_blob`, e.g. a memory-mapped checkpoint).
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "clip/core/allocator.hpp"
#include "clip/core/device.hpp"
#include "clip/core/dtype.hpp"
#include "clip/core/error.hpp"
#include "clip/core/parallel.hpp"
#include "clip/core/shape.hpp"
#include "clip/core/strided.hpp"
#if defined(CLIP_WITH_CUDA)
#include "clip/backend/cuda/elementwise.hpp"
#endif

namespace clip {

class tensor;

namespace detail {
void copy_elements(const tensor& dst, const tensor& src);
shape infer_shape(std::span<const std::int64_t> dims, const shape& from, const char* op);
std::optional<strides> view_strides(const shape& from, const strides& from_strides, const shape& to);
} // namespace detail

class tensor {
public:
    /// An undefined tensor (no memory); `defined()` is false.
    tensor() = default;

    // ---- creation -------------------------------------------------------------------------

    /// Uninitialised memory for `s` elements of `t` on `where`.
    static tensor empty(const clip::shape& s, clip::dtype t = dtype::f32, clip::device where = clip::device::cpu()) {
        return tensor(detail::allocate(static_cast<std::size_t>(s.numel()) * dtype_size(t), where), s,
                      detail::contiguous_strides(s), t, where);
    }
    /// Uninitialised memory from an arena; valid until the arena's `reset()`.
    static tensor empty(const clip::shape& s, clip::dtype t, arena& pool) {
        return tensor(pool.allocate(static_cast<std::size_t>(s.numel()) * dtype_size(t)), s,
                      detail::contiguous_strides(s), t, clip::device::cpu());
    }
    static tensor full(const clip::shape& s, double value, clip::dtype t = dtype::f32) {
        tensor out = empty(s, t);
        detail::visit_dtype(t, [&]<class T>() {
            T* p = out.data<T>();
            const T v = detail::convert<T>(static_cast<float>(value));
            if constexpr (std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::int32_t>)
                std::fill(p, p + s.numel(), static_cast<T>(value));
            else std::fill(p, p + s.numel(), v);
        });
        return out;
    }
    static tensor zeros(const clip::shape& s, clip::dtype t = dtype::f32) { return full(s, 0.0, t); }
    static tensor ones(const clip::shape& s, clip::dtype t = dtype::f32) { return full(s, 1.0, t); }

    /// A CPU tensor holding a copy of `values`, shaped `s` (1-D when omitted).
    template <element_type T>
    static tensor from(std::span<const T> values, std::optional<clip::shape> s = std::nullopt) {
        const clip::shape target = s ? *s : clip::shape{static_cast<std::int64_t>(values.size())};
        detail::check<shape_error>(target.numel() == static_cast<std::int64_t>(values.size()), "tensor::from: ",
                                   values.size(), " values cannot fill shape ", target);
        tensor out = empty(target, dtype_of<T>());
        if (!values.empty()) std::memcpy(out.data_ptr(), values.data(), values.size() * sizeof(T));
        return out;
    }
    template <element_type T>
    static tensor from(std::initializer_list<T> values, std::optional<clip::shape> s = std::nullopt) {
        return from(std::span<const T>(values.begin(), values.size()), s);
    }
    template <element_type T>
    static tensor from(const std::vector<T>& values, std::optional<clip::shape> s = std::nullopt) {
        return from(std::span<const T>(values), s);
    }

    /// Views memory the caller owns. `owner` (may be null) is kept alive as long as any view of
    /// the tensor is; without it the caller must outlive every view.
    static tensor from_blob(void* data, const clip::shape& s, clip::dtype t, std::shared_ptr<void> owner = nullptr,
                            std::optional<clip::strides> st = std::nullopt, clip::device where = clip::device::cpu()) {
        detail::check(data != nullptr || s.numel() == 0, "tensor::from_blob: null data for shape ", s);
        const clip::strides layout = st ? *st : detail::contiguous_strides(s);
        detail::check<shape_error>(layout.size() == s.size(), "tensor::from_blob: strides ", layout,
                                   " do not match shape ", s);
        return tensor(std::shared_ptr<void>(std::move(owner), data), s, layout, t, where);
    }

    // ---- properties -----------------------------------------------------------------------

    bool defined() const noexcept { return static_cast<bool>(storage_); }
    const clip::shape& shape() const noexcept { return shape_; }
    const clip::strides& strides() const noexcept { return strides_; }
    clip::dtype dtype() const noexcept { return dtype_; }
    clip::device device() const noexcept { return device_; }
    int ndim() const noexcept { return shape_.size(); }
    std::int64_t numel() const noexcept { return shape_.numel(); }
    std::size_t nbytes() const noexcept { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
    std::int64_t size(std::int64_t axis) const { return shape_[detail::normalize_axis(axis, ndim(), "size")]; }
    std::int64_t stride(std::int64_t axis) const { return strides_[detail::normalize_axis(axis, ndim(), "stride")]; }
    std::int64_t offset() const noexcept { return offset_; }

    /// True when the elements are laid out row-major without gaps (extent-1 axes ignored).
    bool is_contiguous() const noexcept {
        std::int64_t expected = 1;
        for (int i = ndim() - 1; i >= 0; --i) {
            if (shape_[i] == 1) continue;
            if (strides_[i] != expected) return false;
            expected *= shape_[i];
        }
        return true;
    }

    /// Address of the first element (on the tensor's device).
    void* data_ptr() const noexcept {
        return static_cast<std::byte*>(storage_.get()) + offset_ * static_cast<std::int64_t>(dtype_size(dtype_));
    }
    /// Typed address of the first element; the dtype must be T's.
    template <element_type T>
    T* data() const {
        detail::check<dtype_error>(dtype_ == dtype_of<T>(), "tensor::data: tensor holds ", dtype_, ", asked for ",
                                   dtype_of<T>());
        return static_cast<T*>(data_ptr());
    }
    /// The storage handle, shared by every view of the same memory.
    const std::shared_ptr<void>& storage() const noexcept { return storage_; }

    /// The single element of a one-element tensor, converted to T.
    template <element_type T>
    T item() const {
        detail::check<shape_error>(numel() == 1, "tensor::item: tensor of shape ", shape_, " has ", numel(),
                                   " elements, not 1");
        return to_vector<T>()[0];
    }

    /// A copy of the elements in row-major order, converted to T.
    template <element_type T>
    std::vector<T> to_vector() const {
        const tensor host = to(clip::device::cpu()).to(dtype_of<T>()).contiguous();
        const T* p = host.data<T>();
        return std::vector<T>(p, p + numel());
    }

    // ---- views ----------------------------------------------------------------------------

    /// Elements start, start+step, ... < stop along `axis` (negative bounds count from the end,
    /// and are clamped as in Python slicing).
    tensor slice(std::int64_t axis, std::int64_t start, std::int64_t stop, std::int64_t step = 1) const {
        const int a = detail::normalize_axis(axis, ndim(), "slice");
        detail::check<index_error>(step >= 1, "slice: step must be positive, got ", step);
        const std::int64_t n = shape_[a];
        auto clamp = [n](std::int64_t i) { return std::clamp<std::int64_t>(i < 0 ? i + n : i, 0, n); };
        const std::int64_t begin = clamp(start), end = std::max(begin, clamp(stop));
        tensor out = *this;
        out.offset_ += begin * strides_[a];
        out.shape_[a] = (end - begin + step - 1) / step;
        out.strides_[a] *= step;
        return out;
    }
    /// The slice at `index` along `axis`, with that axis removed.
    tensor select(std::int64_t axis, std::int64_t index) const {
        const int a = detail::normalize_axis(axis, ndim(), "select");
        const std::int64_t n = shape_[a];
        detail::check<index_error>(index >= -n && index < n, "select: index ", index, " out of range for axis ", a,
                                   " of size ", n, " (shape ", shape_, ")");
        tensor out = *this;
        out.offset_ += (index < 0 ? index + n : index) * strides_[a];
        out.shape_.erase(a);
        out.strides_.erase(a);
        return out;
    }
    tensor transpose(std::int64_t axis0, std::int64_t axis1) const {
        const int a = detail::normalize_axis(axis0, ndim(), "transpose");
        const int b = detail::normalize_axis(axis1, ndim(), "transpose");
        tensor out = *this;
        std::swap(out.shape_[a], out.shape_[b]);
        std::swap(out.strides_[a], out.strides_[b]);
        return out;
    }
    /// Swaps the last two axes (a matrix transpose, batched).
    tensor t() const {
        detail::check<shape_error>(ndim() >= 2, "t: needs at least 2 dimensions, tensor has shape ", shape_);
        return transpose(-2, -1);
    }
    /// Reorders the axes: axis i of the result is axis order[i] of this tensor.
    tensor permute(std::initializer_list<std::int64_t> order) const {
        return permute(std::span<const std::int64_t>(order.begin(), order.size()));
    }
    tensor permute(std::span<const std::int64_t> order) const {
        detail::check<shape_error>(static_cast<int>(order.size()) == ndim(), "permute: ", order.size(),
                                   " axes given for a tensor of shape ", shape_);
        tensor out = *this;
        unsigned seen = 0;
        for (int i = 0; i < ndim(); ++i) {
            const int a = detail::normalize_axis(order[static_cast<std::size_t>(i)], ndim(), "permute");
            detail::check<index_error>(!(seen & (1u << a)), "permute: axis ", a, " appears twice");
            seen |= 1u << a;
            out.shape_[i] = shape_[a];
            out.strides_[i] = strides_[a];
        }
        return out;
    }
    /// The same elements with another shape, without copying; one extent may be -1. Throws when
    /// the strides cannot express it (use `reshape`).
    tensor view(std::initializer_list<std::int64_t> dims) const {
        return view(std::span<const std::int64_t>(dims.begin(), dims.size()));
    }
    tensor view(std::span<const std::int64_t> dims) const {
        const clip::shape target = detail::infer_shape(dims, shape_, "view");
        const auto st = detail::view_strides(shape_, strides_, target);
        detail::check<shape_error>(st.has_value(), "view: a tensor of shape ", shape_, " and strides ", strides_,
                                   " cannot be viewed as ", target, " without a copy (use reshape)");
        tensor out = *this;
        out.shape_ = target;
        out.strides_ = *st;
        return out;
    }
    tensor view(const clip::shape& s) const { return view(s.span()); }
    /// Like `view`, but copies when the layout requires it.
    tensor reshape(std::initializer_list<std::int64_t> dims) const {
        return reshape(std::span<const std::int64_t>(dims.begin(), dims.size()));
    }
    tensor reshape(std::span<const std::int64_t> dims) const {
        const clip::shape target = detail::infer_shape(dims, shape_, "reshape");
        if (detail::view_strides(shape_, strides_, target)) return view(target);
        return contiguous().view(target);
    }
    tensor reshape(const clip::shape& s) const { return reshape(s.span()); }
    /// Removes `axis`, which must have extent 1.
    tensor squeeze(std::int64_t axis) const {
        const int a = detail::normalize_axis(axis, ndim(), "squeeze");
        detail::check<shape_error>(shape_[a] == 1, "squeeze: axis ", a, " of shape ", shape_, " has extent ",
                                   shape_[a], ", not 1");
        tensor out = *this;
        out.shape_.erase(a);
        out.strides_.erase(a);
        return out;
    }
    /// Inserts an extent-1 axis before position `axis` (-1 appends).
    tensor unsqueeze(std::int64_t axis) const {
        const int a = detail::normalize_axis(axis, ndim() + 1, "unsqueeze");
        tensor out = *this;
        out.shape_.insert(a, 1);
        out.strides_.insert(a, a < ndim() ? strides_[a] * shape_[a] : 1);
        return out;
    }
    /// A broadcast view with shape `s` (extent-1 axes repeat with stride 0).
    tensor expand(const clip::shape& s) const {
        detail::check<shape_error>(detail::broadcast_shapes(shape_, s, "expand") == s, "expand: shape ", shape_,
                                   " cannot be expanded to ", s);
        tensor out = *this;
        out.shape_ = s;
        out.strides_ = clip::strides{};
        for (int i = 0; i < s.size(); ++i) {
            const int j = i - (s.size() - ndim());
            out.strides_.push_back(j >= 0 && shape_[j] == s[i] ? strides_[j] : 0);
        }
        return out;
    }

    // ---- copies ---------------------------------------------------------------------------

    /// This tensor if already row-major, else a row-major copy.
    tensor contiguous() const { return is_contiguous() ? *this : clone(); }
    /// A row-major copy in new memory on the same device.
    tensor clone() const {
        tensor out = empty(shape_, dtype_, device_);
        detail::copy_elements(out, *this);
        return out;
    }
    /// The elements converted to `t` (this tensor itself when already of that dtype).
    tensor to(clip::dtype t) const {
        if (t == dtype_) return *this;
        tensor out = empty(shape_, t, device_);
        detail::copy_elements(out, *this);
        return out;
    }
    /// The tensor on `where` (this tensor itself when already there).
    tensor to(clip::device where) const {
        if (where == device_) return *this;
        const tensor src = contiguous();
        tensor out = empty(shape_, dtype_, where);
#if defined(CLIP_WITH_CUDA)
        detail::cuda::copy(out.data_ptr(), src.data_ptr(), nbytes(), where.is_cuda() ? where.index : device_.index);
#else
        throw device_error(detail::message("tensor::to(", where, "): clip was built without CUDA"));
#endif
        return out;
    }
    /// Copies `src` into this tensor's memory, broadcasting it to this shape and converting it.
    const tensor& copy_from(const tensor& src) const {
        detail::copy_elements(*this, src);
        return *this;
    }

private:
    tensor(std::shared_ptr<void> storage, const clip::shape& s, const clip::strides& st, clip::dtype t,
           clip::device where)
        : storage_(std::move(storage)), shape_(s), strides_(st), dtype_(t), device_(where) {}

    std::shared_ptr<void> storage_;
    std::int64_t offset_ = 0; // in elements
    clip::shape shape_;
    clip::strides strides_;
    clip::dtype dtype_ = clip::dtype::f32;
    clip::device device_;
};

namespace detail {

/// Throws device_error unless `t` lives in host memory.
inline void require_cpu(const tensor& t, const char* op) {
    check<device_error>(t.device().is_cpu(), op, ": tensor of shape ", t.shape(), " is on ", t.device(),
                        ", this operation runs on the CPU; move it with .to(clip::device::cpu())");
}

inline void require_defined(const tensor& t, const char* op) {
    check(t.defined(), op, ": tensor is undefined (default-constructed)");
}

inline shape infer_shape(std::span<const std::int64_t> dims, const shape& from, const char* op) {
    const auto requested = [&] {
        std::string text = "[";
        for (std::size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
        return text + "]";
    };
    const std::int64_t numel = from.numel();
    check<shape_error>(dims.size() <= static_cast<std::size_t>(shape::max_dims), op, ": ", dims.size(),
                       " dimensions requested, at most ", shape::max_dims, " supported");
    shape out;
    int unknown = -1;
    std::int64_t known = 1;
    for (std::size_t i = 0; i < dims.size(); ++i) {
        if (dims[i] == -1) {
            if (unknown >= 0) throw shape_error(message(op, ": more than one extent is -1 in ", requested()));
            unknown = static_cast<int>(i);
            out.push_back(1);
        } else {
            if (dims[i] < 0) throw shape_error(message(op, ": negative extent in ", requested()));
            out.push_back(dims[i]);
            known *= dims[i];
        }
    }
    if (unknown >= 0) {
        if (known == 0 || numel % known != 0)
            throw shape_error(message(op, ": a tensor of shape ", from, " cannot be shaped as ", requested()));
        out[unknown] = numel / known;
    }
    if (out.numel() != numel)
        throw shape_error(message(op, ": a tensor of shape ", from, " (", numel, " elements) cannot be shaped as ",
                                  requested()));
    return out;
}

/// Strides that show the memory of (from, from_strides) as shape `to`, if any exist (PyTorch's
/// rule: each run of axes that is contiguous in memory may be split or merged freely).
inline std::optional<strides> view_strides(const shape& from, const strides& from_strides, const shape& to) {
    strides out;
    for (int i = 0; i < to.size(); ++i) out.push_back(0);
    const std::int64_t numel = from.numel();
    bool contiguous = true;
    for (std::int64_t i = from.size() - 1, expected = 1; i >= 0; --i) {
        const int a = static_cast<int>(i);
        if (from[a] == 1) continue;
        if (from_strides[a] != expected) contiguous = false;
        expected *= from[a];
    }
    if (numel == 0 || contiguous) return contiguous_strides(to);
    int view_axis = to.size() - 1;
    std::int64_t chunk_stride = from_strides[from.size() - 1];
    std::int64_t tensor_numel = 1, view_numel = 1;
    for (int axis = from.size() - 1; axis >= 0; --axis) {
        tensor_numel *= from[axis];
        if (axis == 0 || (from[axis - 1] != 1 && from_strides[axis - 1] != tensor_numel * chunk_stride)) {
            while (view_axis >= 0 && (view_numel < tensor_numel || to[view_axis] == 1)) {
                out[view_axis] = view_numel * chunk_stride;
                view_numel *= to[view_axis];
                --view_axis;
            }
            if (view_numel != tensor_numel) return std::nullopt;
            if (axis > 0) {
                chunk_stride = from_strides[axis - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    if (view_axis != -1) return std::nullopt;
    return out;
}

template <class To, class From>
void copy_run(To* dst, std::int64_t dst_step, const From* src, std::int64_t src_step, std::int64_t n) {
    if constexpr (std::is_same_v<To, From>) {
        if (dst_step == 1 && src_step == 1) {
            std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(To));
            return;
        }
    }
    for (std::int64_t i = 0; i < n; ++i) dst[i * dst_step] = convert<To>(src[i * src_step]);
}

/// dst[...] = src[...] with broadcasting of src to dst's shape and dtype conversion.
inline void copy_elements(const tensor& dst, const tensor& src) {
    require_defined(dst, "copy");
    require_defined(src, "copy");
    check<device_error>(dst.device() == src.device(), "copy: source on ", src.device(), ", destination on ",
                        dst.device());
    check<shape_error>(broadcast_shapes(src.shape(), dst.shape(), "copy") == dst.shape(), "copy: source of shape ",
                       src.shape(), " cannot be broadcast to destination shape ", dst.shape());
    if (dst.numel() == 0) return;
    const tensor source = src.expand(dst.shape());
    shape extent = dst.shape();
    strides dst_strides = dst.strides(), src_strides = source.strides();
    strides* operands[] = {&dst_strides, &src_strides};
    order_axes_by_first(extent, operands);
    coalesce(extent, operands);
#if defined(CLIP_WITH_CUDA)
    if (dst.device().is_cuda()) {
        const std::vector<std::int64_t> ext(extent.begin(), extent.end());
        cuda::run_elementwise("", ext, dst.data_ptr(), dst.dtype(), {dst_strides.begin(), dst_strides.end()},
                              {{source.data_ptr(), source.dtype(), {src_strides.begin(), src_strides.end()}}}, {},
                              dst.device().index);
        return;
    }
#endif
    require_cpu(dst, "copy");
    const std::int64_t inner = extent.back();
    const std::int64_t rows = extent.numel() / inner;
    visit_dtype(dst.dtype(), [&]<class To>() {
        visit_dtype(src.dtype(), [&]<class From>() {
            To* d = static_cast<To*>(dst.data_ptr());
            const From* s = static_cast<const From*>(source.data_ptr());
            const std::int64_t dst_step = dst_strides.back(), src_step = src_strides.back();
            parallel_for(rows, inner, [&](std::int64_t begin, std::int64_t end) {
                for (std::int64_t row = begin; row < end; ++row)
                    copy_run(d + row_offset(extent, dst_strides, row), dst_step,
                             s + row_offset(extent, src_strides, row), src_step, inner);
            });
        });
    });
}

} // namespace detail
} // namespace clip
