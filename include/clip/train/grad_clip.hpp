// clip/train/grad_clip.hpp: gradient clipping by global norm (torch.nn.utils.clip_grad_norm_).
//
//   total = ‖(‖g_1‖₂, ‖g_2‖₂, ...)‖₂ over every parameter's gradient
//   g ← g · min(1, max_norm / (total + 1e-6))
// returning `total` (before clipping), as PyTorch does. The squares are summed in double, one
// parameter at a time in the store's order, so the norm does not depend on the thread count.
#pragma once

#include <cmath>
#include <vector>

#include "clip/train/parameters.hpp"

namespace clip::train {

/// The global L2 norm of every gradient in the store.
inline double grad_norm(const parameter_store& store) {
#if defined(CLIP_WITH_CUDA)
    // The padding between parameters is zero, so the whole block's squares are the parameters'.
    if (detail::on_gpu(store.gradient_block())) return std::sqrt(detail::cuda::sum_squares(store.gradient_block()));
#endif
    double total = 0.0;
    for (const parameter& p : store.parameters()) {
        const float* g = p.grad.data<float>();
        const std::int64_t n = p.grad.numel();
        const std::int64_t chunks = std::max<std::int64_t>(1, std::min<std::int64_t>(64, n / 4096));
        std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
        detail::parallel_for(chunks, n / chunks, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t c = first; c < last; ++c) {
                double s = 0.0;
                for (std::int64_t i = n * c / chunks; i < n * (c + 1) / chunks; ++i)
                    s += static_cast<double>(g[i]) * g[i];
                partial[static_cast<std::size_t>(c)] = s;
            }
        });
        double squares = 0.0;
        for (double s : partial) squares += s;
        total += squares;
    }
    return std::sqrt(total);
}

/// Scales every gradient so that the global norm is at most `max_norm`; returns the norm before.
inline double clip_grad_norm(const parameter_store& store, double max_norm) {
    detail::check(max_norm > 0.0, "clip_grad_norm: max_norm must be positive, got ", max_norm);
    const double total = grad_norm(store);
    const double coefficient = max_norm / (total + 1e-6);
    if (coefficient >= 1.0) return total;
    const float factor = static_cast<float>(coefficient);
    if (detail::on_gpu(store.gradient_block())) {
        assign(store.gradient_block(), store.gradient_block() * factor);
        return total;
    }
    for (const parameter& p : store.parameters()) {
        float* g = p.grad.data<float>();
        const std::int64_t n = p.grad.numel();
        detail::parallel_for(n, 1, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t i = first; i < last; ++i) g[i] *= factor;
        });
    }
    return total;
}

} // namespace clip::train
