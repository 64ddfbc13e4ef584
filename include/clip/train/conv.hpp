// clip/train/conv.hpp: a trainable bias-free torch.nn.Conv2d on channels-last activations.
//
//   forward   y = conv2d(x, K)                        x [N, H, W, C], K [O, C, k, k], y [N, H', W', O]
//   backward  dK += Σ_{n, y, x} dy[n, y, x, o] · x[n, y·s + i − p, x·s + j − p, c]   (conv2d_backward_weights)
//             dx[n, h, w, c] = Σ dy[n, y, x, o] · K[o, c, i, j] over the windows that read (h, w)
//                                                     (conv2d_backward_data; skipped when dx is undefined)
// Activations are contiguous [N, H, W, C] buffers, which ops/conv.hpp sees as channels-last
// [N, C, H, W] views: oneDNN runs its direct (brgemm/jit) convolutions on them, forward and both
// backward passes, with plans cached per shape. The kernel changes every step, so it is
// reordered into oneDNN's layout on each call rather than packed once (a small cost next to the
// convolution). Without oneDNN the reference im2col products run instead; on a GPU im2col,
// cuBLASLt products and col2im (backend/cuda/conv.hpp).
#pragma once

#include "clip/ops/conv.hpp"
#include "clip/train/buffers.hpp"
#include "clip/train/parameters.hpp"

namespace clip::train {

struct conv2d {
    tensor weight, grad_weight; // K [O, C, k, k]
    std::int64_t stride = 1;
    std::int64_t padding = 0;

    struct cache {
        tensor input;          // x [N, H, W, C]: the caller's buffer, which must live until backward
        detail::buffer output; // y [N, H', W', O]
    };

    /// The convolution `name` (`name.weight`) of a store.
    static conv2d bind(const parameter_store& store, const std::string& name, std::int64_t stride = 1,
                       std::int64_t padding = 0) {
        const parameter& w = store.at(name + ".weight");
        return {w.value, w.grad, stride, padding};
    }

    std::int64_t out_channels() const { return weight.size(0); }
    std::int64_t in_channels() const { return weight.size(1); }
    conv2d_options options() const { return {.stride = {stride, stride}, .padding = {padding, padding}}; }

    /// [N, H, W, C] memory seen as a channels-last [N, C, H, W] tensor.
    static tensor nchw(const tensor& nhwc) { return nhwc.permute({0, 3, 1, 2}); }

    /// x [N, H, W, C] -> y [N, H', W', O], kept in `c.output`.
    const tensor& forward(const tensor& x, cache& c) const {
        detail::require_buffer(x, x.shape(), "conv2d", "input", weight.device());
        detail::check<shape_error>(x.ndim() == 4 && x.size(3) == in_channels(), "conv2d: input of shape ", x.shape(),
                                   " is not [N, H, W, ", in_channels(), "] (channels-last)");
        const shape out = detail::check_conv2d(nchw(x), weight, options()); // [N, O, H', W']
        c.input = x;
        const tensor& y = detail::reuse(c.output, {out[0], out[2], out[3], out[1]}, x);
        conv2d_into(nchw(y), nchw(x), weight, options());
        return y;
    }

    /// dy [N, H', W', O] -> dx [N, H, W, C] (written; skipped when undefined), accumulating
    /// grad_weight.
    void backward(const tensor& dy, const cache& c, const tensor& dx = {}) const {
        detail::require_buffer(dy, c.output.shape(), "conv2d backward", "output gradient", weight.device());
        conv2d_backward_weights(grad_weight, nchw(c.input), nchw(dy), options(), true);
        if (!dx.defined()) return;
        detail::require_buffer(dx, c.input.shape(), "conv2d backward", "input gradient", weight.device());
        conv2d_backward_data(nchw(dx), nchw(dy), weight, options());
    }
};

} // namespace clip::train
