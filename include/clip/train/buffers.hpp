// clip/train/buffers.hpp: the memory a training step works in, kept from one step to the next.
//
// Every trainable layer owns the buffers of its forward pass (its output and whatever its
// backward pass reads: normalisation statistics, pre-activations, attention probabilities), and
// the towers own the gradient buffers of their activations. `reuse` sizes a buffer on the first
// step and hands the same memory back on every later step that needs no more, so a steady-state
// step allocates no tensor memory (tests/train/model_test.cpp counts allocations to prove it).
// Buffers live on the device of the layer's input: a model whose parameter store is on a GPU
// keeps every activation there, and each layer runs its GPU half (backend/cuda/train.hpp).
//
// `add_column_sums` is the reduction behind every bias-like gradient (Σ over the rows of an
// [R, C] matrix). It splits the columns, not the rows, across threads: each sum is added in row
// order, so a gradient is the same whatever the thread count. `for_each_register` walks a row of
// channels (a channels-last pixel) in registers, the last one partial.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string_view>

#include "clip/expr/node.hpp"

#if defined(CLIP_WITH_CUDA)
#include "clip/backend/cuda/train.hpp"
#endif

namespace clip::detail {

/// A tensor that owns memory for `capacity` elements and shows a row-major prefix of it: a
/// cache field that keeps its memory when a batch is smaller (e.g. shorter captions) than the
/// largest seen so far.
struct buffer : tensor {
    std::int64_t capacity = 0;
};

/// `b` as a contiguous tensor of shape `s` and dtype `t` on `where`, reusing its memory when it
/// holds enough there (the previous contents are left as they are, reinterpreted).
inline const tensor& reuse(buffer& b, const shape& s, dtype t = dtype::f32, device where = device::cpu()) {
    const std::int64_t n = s.numel();
    if (!b.defined() || b.dtype() != t || n > b.capacity || b.device() != where) {
        static_cast<tensor&>(b) = tensor::empty(s, t, where);
        b.capacity = n;
    } else if (b.shape() != s) {
        static_cast<tensor&>(b) = tensor::from_blob(b.storage().get(), s, t, b.storage(), std::nullopt, where);
    }
    return b;
}
/// The same, f32 on the device of `like` (the layer's input, whose device a training step runs on).
inline const tensor& reuse(buffer& b, const shape& s, const tensor& like) { return reuse(b, s, dtype::f32, like.device()); }

/// Whether a layer's work runs on a CUDA device: where its input lives.
inline bool on_gpu(const tensor& t) noexcept { return t.device().is_cuda(); }

/// Whether the CPU runs the layers' device-generic formulation (see portable): set from the
/// environment's CLIP_TRAIN_PORTABLE (1: yes) at first use; tests set it directly.
inline std::atomic<bool>& portable_on_cpu() {
    static std::atomic<bool> on{[] {
        const char* v = std::getenv("CLIP_TRAIN_PORTABLE");
        return v && *v && std::string_view(v) != "0";
    }()};
    return on;
}

/// Whether a layer runs its device-generic formulation (tensor expressions, column sums and
/// products, which run on either device) rather than its CPU kernels: always on a GPU, and on
/// the CPU when portable_on_cpu() says so, so that the CPU's tests check the formulation a GPU
/// runs (the ModifiedResNet's layers).
inline bool portable(const tensor& t) { return on_gpu(t) || portable_on_cpu(); }

/// Sets a contiguous tensor's bytes to zero, on its device.
inline void zero(const tensor& t) {
#if defined(CLIP_WITH_CUDA)
    if (on_gpu(t)) return cuda::zero(t.data_ptr(), t.nbytes(), t.device().index);
#endif
    if (t.nbytes() > 0) std::memset(t.data_ptr(), 0, t.nbytes());
}

/// dst = src for contiguous tensors of one shape and dtype, on any two devices.
inline void copy_between(const tensor& dst, const tensor& src) {
    check<shape_error>(dst.shape() == src.shape() && dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous(),
                       "copy_between: ", src.shape(), " into ", dst.shape());
    if (dst.device() == src.device()) {
        dst.copy_from(src);
        return;
    }
#if defined(CLIP_WITH_CUDA)
    cuda::copy(dst.data_ptr(), src.data_ptr(), src.nbytes(), (on_gpu(dst) ? dst : src).device().index);
#endif
}

/// `t` itself on the CPU; on a GPU a host copy of it in `b` (small tensors whose values the host
/// works with: per-channel sums, logits).
inline const tensor& on_host(buffer& b, const tensor& t) {
    if (!on_gpu(t)) return t;
    const tensor& out = reuse(b, t.shape(), t.dtype());
    copy_between(out, t);
    return out;
}

/// `t` converted to `to` in `b` (the 16-bit operand of a mixed-precision product).
inline const tensor& converted(buffer& b, const tensor& t, dtype to) {
    const tensor& out = reuse(b, t.shape(), to, t.device());
    out.copy_from(t);
    return out;
}

/// Maps an f32 weight of a parameter store to its 16-bit copy (clip_model::set_precision), or
/// to an undefined tensor for f32 products.
using half_weights = std::function<tensor(const tensor&)>;

/// t (one element, f32) += v, on its device.
inline void add_to_scalar(const tensor& t, float v) {
    if (on_gpu(t)) {
        const tensor one = t.view({1});
        return assign(one, one + v);
    }
    *t.data<float>() += v;
}

/// sums[c] += Σ_r term(r, c) for r < rows and c < cols, where `term(r, c)` gives a register of
/// the simd_width terms of row r starting at column c, and `tail(r, c)` one term (for the
/// columns past the last full register).
template <class Term, class Tail>
void add_column_sums(float* sums, std::int64_t rows, std::int64_t cols, Term&& term, Tail&& tail) {
    constexpr std::int64_t block = 4 * simd_width; // four independent accumulators per task
    const std::int64_t blocks = (cols + block - 1) / block;
    parallel_for(blocks, rows * block, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t b = first; b < last; ++b) {
            const std::int64_t c0 = b * block, n = std::min(block, cols - c0);
            if (n == block) {
                simd a0 = simd::load_unaligned(sums + c0), a1 = simd::load_unaligned(sums + c0 + simd_width);
                simd a2 = simd::load_unaligned(sums + c0 + 2 * simd_width);
                simd a3 = simd::load_unaligned(sums + c0 + 3 * simd_width);
                for (std::int64_t r = 0; r < rows; ++r) {
                    a0 += term(r, c0);
                    a1 += term(r, c0 + simd_width);
                    a2 += term(r, c0 + 2 * simd_width);
                    a3 += term(r, c0 + 3 * simd_width);
                }
                a0.store_unaligned(sums + c0);
                a1.store_unaligned(sums + c0 + simd_width);
                a2.store_unaligned(sums + c0 + 2 * simd_width);
                a3.store_unaligned(sums + c0 + 3 * simd_width);
                continue;
            }
            for (std::int64_t c = c0; c < c0 + n; ++c) {
                float s = sums[c];
                for (std::int64_t r = 0; r < rows; ++r) s += tail(r, c);
                sums[c] = s;
            }
        }
    });
}

/// sums[c] += Σ_r x[r·row_stride + c]: the gradient of a bias broadcast over rows.
inline void add_column_sums(float* sums, const float* x, std::int64_t rows, std::int64_t cols, std::int64_t row_stride) {
    add_column_sums(
        sums, rows, cols, [&](std::int64_t r, std::int64_t c) { return simd::load_unaligned(x + r * row_stride + c); },
        [&](std::int64_t r, std::int64_t c) { return x[r * row_stride + c]; });
}

/// sums [C] += the column sums of x [R, C] (both contiguous f32), on their device. On a GPU in
/// a fixed order too: chunks of rows, then the chunks in order.
inline void add_column_sums(const tensor& sums, const tensor& x) {
    const std::int64_t R = x.size(0), C = x.size(1);
#if defined(CLIP_WITH_CUDA)
    if (on_gpu(x)) return cuda::add_column_sums(sums, x, R, C, C);
#endif
    add_column_sums(sums.data<float>(), x.data<float>(), R, C, C);
}

/// The simd_width channels from `p`, or the n < simd_width left at the end of a row (zero in
/// the other lanes): with store_lanes, one loop body serves full registers and the tail.
inline simd load_lanes(const float* p, std::int64_t n) noexcept {
    return n == simd_width ? simd::load_unaligned(p) : load_partial(p, n);
}
inline void store_lanes(float* p, simd v, std::int64_t n) noexcept {
    if (n == simd_width) v.store_unaligned(p);
    else store_partial(p, v, n);
}

/// f(c, n) for the registers of a row of C channels: n = simd_width lanes from channel c, fewer
/// in the last one.
template <class F>
void for_each_register(std::int64_t C, F&& f) {
    for (std::int64_t c = 0; c < C; c += simd_width) f(c, std::min(simd_width, C - c));
}

/// Checks that `t` is a defined, contiguous f32 tensor of shape `s` (what the training kernels
/// read and write directly), on the CPU unless `where` names a device.
inline void require_buffer(const tensor& t, const shape& s, const char* op, const char* what,
                           device where = device::cpu()) {
    require_defined(t, op);
    check<device_error>(t.device() == where, op, ": ", what, " is on ", t.device(), ", expected ", where,
                        " (the layer's parameters and inputs must share a device)");
    check<shape_error>(t.shape() == s, op, ": ", what, " has shape ", t.shape(), ", expected ", s);
    check<dtype_error>(t.dtype() == dtype::f32, op, ": ", what, " must be f32, got ", t.dtype());
    check<shape_error>(t.is_contiguous(), op, ": ", what, " must be contiguous, got strides ", t.strides());
}

} // namespace clip::detail
