// clip/train/normalize.hpp: trainable L2 normalisation of feature rows (F.normalize(x, dim=-1)).
//
//   forward   n = ‖x‖₂,   y = x / max(n, eps)                         x, y [N, E]
//   backward  dx = (dy − y · (y · dy)) / n          when n > eps
//             dx = dy / eps                          otherwise (the clamp is constant)
// The forward pass is clip::l2_normalize's (ops/rowwise.hpp) row for row.
#pragma once

#include <cmath>

#include "clip/ops/rowwise.hpp"
#include "clip/train/buffers.hpp"

namespace clip::train {

struct l2_normalize {
    float eps = 1e-12f;

    struct cache {
        detail::buffer norm;   // [N]
        detail::buffer output; // y [N, E]
    };

    /// x [N, E] -> y [N, E], kept in `c.output`.
    const tensor& forward(const tensor& x, cache& c) const {
        detail::require_buffer(x, x.shape(), "l2_normalize", "input", x.device());
        detail::check<shape_error>(x.ndim() == 2, "l2_normalize: input must be [N, E], got ", x.shape());
        const std::int64_t N = x.size(0), E = x.size(1);
        const tensor& y = detail::reuse(c.output, x.shape(), x);
        detail::reuse(c.norm, {N}, x);
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(x)) {
            detail::cuda::l2_normalize_forward(x, eps, y, c.norm);
            return y;
        }
#endif
        float* norm = c.norm.data<float>();
        const float* in = x.data<float>();
        float* out = y.data<float>();
        const float epsilon = eps;
        detail::parallel_for(N, E * 2, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t r = first; r < last; ++r) {
                norm[r] = std::sqrt(detail::row_centered_square_sum(in + r * E, E, 0.0f));
                detail::row_affine(in + r * E, out + r * E, E, 1.0f / std::max(norm[r], epsilon), 0.0f);
            }
        });
        return y;
    }

    /// dy [N, E] -> dx [N, E] (written; may be dy itself).
    void backward(const tensor& dy, const cache& c, const tensor& dx) const {
        const std::int64_t N = c.output.size(0), E = c.output.size(1);
        detail::require_buffer(dy, c.output.shape(), "l2_normalize backward", "output gradient", c.output.device());
        detail::require_buffer(dx, c.output.shape(), "l2_normalize backward", "input gradient", c.output.device());
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(dy)) return detail::cuda::l2_normalize_backward(c.output, c.norm, dy, eps, dx);
#endif
        const float* y = c.output.data<float>();
        const float* norm = c.norm.data<float>();
        const float* g = dy.data<float>();
        float* out = dx.data<float>();
        const float epsilon = eps;
        detail::parallel_for(N, E * 3, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t r = first; r < last; ++r) {
                const float* yr = y + r * E;
                const float* gr = g + r * E;
                float* dr = out + r * E;
                if (norm[r] <= epsilon) {
                    for (std::int64_t i = 0; i < E; ++i) dr[i] = gr[i] / epsilon;
                    continue;
                }
                float projection = 0.0f;
                for (std::int64_t i = 0; i < E; ++i) projection += yr[i] * gr[i];
                const float inverse = 1.0f / norm[r];
                for (std::int64_t i = 0; i < E; ++i) dr[i] = (gr[i] - yr[i] * projection) * inverse;
            }
        });
    }
};

} // namespace clip::train
