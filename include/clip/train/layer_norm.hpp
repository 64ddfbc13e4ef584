// clip/train/layer_norm.hpp: trainable torch.nn.LayerNorm over the last axis.
//
//   forward   μ = mean(x),  rstd = 1/sqrt(var(x) + eps)  (biased variance),  x̂ = (x − μ)·rstd
//             y = x̂ ⊙ w + b
//   backward  g = dy ⊙ w
//             dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂))      (per row; += when accumulating)
//             dw += Σ_rows dy ⊙ x̂,   db += Σ_rows dy
// The forward pass is clip::layer_norm's (ops/rowwise.hpp) row for row, so a trainable tower
// gives the inference model's numbers; it keeps μ and rstd per row for the backward pass, which
// recomputes x̂ from the cached input rather than storing it. Rows are split across threads; the
// weight and bias gradients are column sums (buffers.hpp), independent of the thread count.
// Layouts: x, y [..., D] contiguous; mean, rstd [rows].
#pragma once

#include <cmath>

#include "clip/ops/rowwise.hpp"
#include "clip/train/buffers.hpp"
#include "clip/train/parameters.hpp"

namespace clip::train {

struct layer_norm {
    tensor weight, grad_weight; // [D]
    tensor bias, grad_bias;     // [D]
    float eps = 1e-5f;

    struct cache {
        tensor input;          // x [..., D]: the caller's buffer, which must live until backward
        detail::buffer mean;   // [rows]
        detail::buffer rstd;   // [rows]
        detail::buffer output; // y [..., D]
    };

    static layer_norm bind(const parameter_store& store, const std::string& prefix, float eps) {
        const parameter& w = store.at(prefix + ".weight");
        const parameter& b = store.at(prefix + ".bias");
        return {w.value, w.grad, b.value, b.grad, eps};
    }

    std::int64_t width() const { return weight.size(0); }

    /// x [..., D] -> y [..., D], kept in `c.output`.
    const tensor& forward(const tensor& x, cache& c) const {
        const std::int64_t D = width();
        detail::require_buffer(x, x.shape(), "layer_norm", "input", weight.device());
        detail::check<shape_error>(x.ndim() >= 1 && x.shape().back() == D, "layer_norm: input of shape ", x.shape(),
                                   " does not end in the normalised width ", D);
        c.input = x;
        const std::int64_t rows = x.numel() / D;
        const tensor& y = detail::reuse(c.output, x.shape(), x);
        detail::reuse(c.mean, {rows}, x);
        detail::reuse(c.rstd, {rows}, x);
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(x)) {
            detail::cuda::layer_norm_forward(x, weight, bias, eps, y, c.mean, c.rstd);
            return y;
        }
#endif
        float* mean = c.mean.data<float>();
        float* rstd = c.rstd.data<float>();
        const float* in = x.data<float>();
        float* out = y.data<float>();
        const float* w = weight.data<float>();
        const float* b = bias.data<float>();
        const float epsilon = eps;
        detail::parallel_for(rows, D * 3, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t r = first; r < last; ++r) {
                const float* row = in + r * D;
                const float m = detail::row_sum(row, D) / static_cast<float>(D);
                const float var = detail::row_centered_square_sum(row, D, m) / static_cast<float>(D);
                const float s = 1.0f / std::sqrt(var + epsilon);
                detail::row_affine_weighted(row, out + r * D, D, s, -m * s, w, b);
                mean[r] = m;
                rstd[r] = s;
            }
        });
        return y;
    }

    /// dy [..., D] -> dx [..., D] (written, or added to when `accumulate`), accumulating
    /// grad_weight and grad_bias. dx may be dy itself when not accumulating.
    void backward(const tensor& dy, const cache& c, const tensor& dx, bool accumulate = false) const {
        const std::int64_t D = width();
        detail::require_buffer(dy, c.input.shape(), "layer_norm backward", "output gradient", weight.device());
        detail::require_buffer(dx, c.input.shape(), "layer_norm backward", "input gradient", weight.device());
        const std::int64_t rows = c.input.numel() / D;
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(dy)) {
            detail::cuda::add_column_sums(grad_weight, dy, rows, D, D, c.input, c.mean, c.rstd);
            detail::cuda::add_column_sums(grad_bias, dy, rows, D, D);
            detail::cuda::layer_norm_backward(c.input, dy, c.mean, c.rstd, weight, dx, accumulate);
            return;
        }
#endif
        const float* x = c.input.data<float>();
        const float* g = dy.data<float>();
        const float* mean = c.mean.data<float>();
        const float* rstd = c.rstd.data<float>();
        const float* w = weight.data<float>();
        using detail::simd;
        using detail::simd_width;
        // The parameter gradients first: dx may overwrite dy.
        detail::add_column_sums(
            grad_weight.data<float>(), rows, D,
            [&](std::int64_t r, std::int64_t col) {
                const simd xhat = (simd::load_unaligned(x + r * D + col) - simd(mean[r])) * simd(rstd[r]);
                return simd::load_unaligned(g + r * D + col) * xhat;
            },
            [&](std::int64_t r, std::int64_t col) { return g[r * D + col] * ((x[r * D + col] - mean[r]) * rstd[r]); });
        detail::add_column_sums(grad_bias.data<float>(), g, rows, D, D);

        float* out = dx.data<float>();
        detail::parallel_for(rows, D * 4, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t r = first; r < last; ++r) {
                const float* xr = x + r * D;
                const float* gr = g + r * D;
                float* dr = out + r * D;
                const float m = mean[r], s = rstd[r];
                simd acc_g(0.0f), acc_gx(0.0f);
                std::int64_t i = 0;
                for (; i + simd_width <= D; i += simd_width) {
                    const simd gi = simd::load_unaligned(gr + i) * simd::load_unaligned(w + i);
                    acc_g += gi;
                    acc_gx += gi * ((simd::load_unaligned(xr + i) - simd(m)) * simd(s));
                }
                float sum_g = detail::reduce_add(acc_g), sum_gx = detail::reduce_add(acc_gx);
                for (std::int64_t j = i; j < D; ++j) {
                    const float gj = gr[j] * w[j];
                    sum_g += gj;
                    sum_gx += gj * ((xr[j] - m) * s);
                }
                const float mean_g = sum_g / static_cast<float>(D), mean_gx = sum_gx / static_cast<float>(D);
                for (i = 0; i + simd_width <= D; i += simd_width) {
                    const simd xhat = (simd::load_unaligned(xr + i) - simd(m)) * simd(s);
                    simd v = simd(s) * (simd::load_unaligned(gr + i) * simd::load_unaligned(w + i) - simd(mean_g) -
                                        xhat * simd(mean_gx));
                    if (accumulate) v += simd::load_unaligned(dr + i);
                    v.store_unaligned(dr + i);
                }
                for (; i < D; ++i) {
                    const float xhat = (xr[i] - m) * s;
                    const float v = s * (gr[i] * w[i] - mean_g - xhat * mean_gx);
                    dr[i] = accumulate ? dr[i] + v : v;
                }
            }
        });
    }
};

} // namespace clip::train
