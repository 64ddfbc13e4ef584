// clip/train/pool.hpp: trainable torch.nn.AvgPool2d(k) (kernel = stride = k, no padding) on
// channels-last activations, the ModifiedResNet's only pooling (stem, anti-aliased strides,
// downsample branches).
//
//   forward   y[n, i, j, c] = 1/k² · Σ_{a, b < k} x[n, i·k + a, j·k + b, c]      x [N, H, W, C] -> y [N, H/k, W/k, C]
//   backward  dx[n, h, w, c] = dy[n, h/k, w/k, c] / k²   (0 for the rows and columns past the
//             last whole window, which PyTorch's floor drops)
// Written here rather than with oneDNN's pooling primitives: two memory-bound loops over
// channels-last rows, and the backward pass can add into a gradient another branch wrote. On a
// GPU (or under CLIP_TRAIN_PORTABLE=1) the forward pass is clip::avg_pool2d_into and the backward
// pass one tensor expression: dx seen as [N, H/k, k, W/k, k, C] windows plus dy broadcast over
// the two k axes.
#pragma once

#include <cstring>

#include "clip/ops/conv.hpp"
#include "clip/train/buffers.hpp"

namespace clip::train {

struct avg_pool {
    std::int64_t kernel = 2;

    struct cache {
        shape input;           // [N, H, W, C]
        detail::buffer output; // y [N, H/k, W/k, C]
    };

    /// x [N, H, W, C] -> y [N, H/k, W/k, C], kept in `c.output`.
    const tensor& forward(const tensor& x, cache& c) const {
        detail::require_buffer(x, x.shape(), "avg_pool", "input", x.device());
        detail::check<shape_error>(x.ndim() == 4 && x.size(1) >= kernel && x.size(2) >= kernel, "avg_pool: input of shape ",
                                   x.shape(), " is not [N, H, W, C] with H, W >= ", kernel);
        const std::int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3), k = kernel;
        const std::int64_t OH = H / k, OW = W / k;
        c.input = x.shape();
        const tensor& y = detail::reuse(c.output, {N, OH, OW, C}, x);
        if (detail::portable(x)) {
            const auto nchw = [](const tensor& t) { return t.permute({0, 3, 1, 2}); };
            avg_pool2d_into(nchw(y), nchw(x), {.kernel = {k, k}, .stride = {k, k}});
            return y;
        }
        const float* in = x.data<float>();
        float* out = y.data<float>();
        const float inverse = 1.0f / static_cast<float>(k * k);
        using detail::simd;
        detail::parallel_for(N * OH, OW * k * k * C, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t row = first; row < last; ++row) {
                const std::int64_t n = row / OH, i = row % OH;
                for (std::int64_t j = 0; j < OW; ++j)
                    detail::for_each_register(C, [&](std::int64_t ch, std::int64_t lanes) {
                        simd sum(0.0f);
                        for (std::int64_t a = 0; a < k; ++a)
                            for (std::int64_t b = 0; b < k; ++b)
                                sum += detail::load_lanes(in + ((n * H + i * k + a) * W + j * k + b) * C + ch, lanes);
                        detail::store_lanes(out + ((n * OH + i) * OW + j) * C + ch, sum * simd(inverse), lanes);
                    });
            }
        });
        return y;
    }

    /// dy [N, H/k, W/k, C] -> dx [N, H, W, C] (written, or added to when `accumulate`).
    void backward(const tensor& dy, const cache& c, const tensor& dx, bool accumulate = false) const {
        const std::int64_t N = c.input[0], H = c.input[1], W = c.input[2], C = c.input[3], k = kernel;
        const std::int64_t OH = H / k, OW = W / k;
        detail::require_buffer(dy, {N, OH, OW, C}, "avg_pool backward", "output gradient", dy.device());
        detail::require_buffer(dx, c.input, "avg_pool backward", "input gradient", dy.device());
        if (detail::portable(dy)) {
            if (!accumulate) detail::zero(dx);
            const tensor windows = tensor::from_blob(dx.data_ptr(), {N, OH, k, OW, k, C}, dtype::f32, dx.storage(),
                                                     strides{H * W * C, k * W * C, W * C, k * C, C, 1}, dx.device());
            const tensor spread = dy.view({N, OH, 1, OW, 1, C}).expand({N, OH, k, OW, k, C});
            assign(windows, windows + spread * (1.0f / static_cast<float>(k * k)));
            return;
        }
        const float* g = dy.data<float>();
        float* out = dx.data<float>();
        const float inverse = 1.0f / static_cast<float>(k * k);
        using detail::simd;
        detail::parallel_for(N * H, W * C, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t row = first; row < last; ++row) {
                const std::int64_t n = row / H, h = row % H;
                float* target = out + row * W * C;
                if (h >= OH * k) {
                    if (!accumulate) std::memset(target, 0, static_cast<std::size_t>(W * C) * sizeof(float));
                    continue;
                }
                for (std::int64_t w = 0; w < W; ++w) {
                    float* pixel = target + w * C;
                    if (w >= OW * k) {
                        if (!accumulate) std::memset(pixel, 0, static_cast<std::size_t>(C) * sizeof(float));
                        continue;
                    }
                    const float* source = g + ((n * OH + h / k) * OW + w / k) * C;
                    detail::for_each_register(C, [&](std::int64_t ch, std::int64_t lanes) {
                        simd v = detail::load_lanes(source + ch, lanes) * simd(inverse);
                        if (accumulate) v += detail::load_lanes(pixel + ch, lanes);
                        detail::store_lanes(pixel + ch, v, lanes);
                    });
                }
            }
        });
    }
};

} // namespace clip::train
