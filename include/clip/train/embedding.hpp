// clip/train/embedding.hpp: the text tower's input, token embedding plus positional embedding.
//
//   forward   x[m, t] = E[ids[m, t]] + pos[t]                 x [M, T, W], E [V, W], pos [ctx, W], T ≤ ctx
//   backward  dE[ids[m, t]] += dx[m, t]   (a scatter-add: repeated ids add up, unused rows get 0)
//             dpos[t] += Σ_m dx[m, t]
// as torch.nn.Embedding plus a broadcast parameter. Both gradients are split across threads by
// column blocks, each walking all tokens in order, so a repeated id never races and the sums do
// not depend on the thread count.
#pragma once

#include <algorithm>

#include "clip/train/buffers.hpp"
#include "clip/train/parameters.hpp"

namespace clip::train {

struct token_embedding {
    tensor weight, grad_weight;         // E [V, W]
    tensor positional, grad_positional; // pos [ctx, W]

    struct cache {
        detail::buffer ids;    // [M, T] i64, a copy of the batch's token ids
        detail::buffer output; // [M, T, W]
    };

    static token_embedding bind(const parameter_store& store) {
        const parameter& e = store.at("token_embedding.weight");
        const parameter& p = store.at("positional_embedding");
        return {e.value, e.grad, p.value, p.grad};
    }

    /// Every one of the n host ids in [0, V), else an index_error naming the first that is not.
    static void check_ids(const std::int64_t* id, std::int64_t n, std::int64_t V) {
        for (std::int64_t i = 0; i < n; ++i)
            detail::check<index_error>(id[i] >= 0 && id[i] < V, "token_embedding: id ", id[i], " at position ", i,
                                       " is outside the table of ", V, " rows");
    }

    /// ids [M, T] (i32 or i64, T ≤ ctx: the first T positions) -> x [M, T, W], kept in `c.output`.
    const tensor& forward(const tensor& ids, cache& c) const {
        const std::int64_t V = weight.size(0), W = weight.size(1), ctx = positional.size(0);
        detail::check<shape_error>(ids.ndim() == 2 && ids.size(1) <= ctx, "token_embedding: ids must be [M, T] with T <= ",
                                   ctx, ", got ", ids.shape());
        detail::check<dtype_error>(ids.dtype() == dtype::i64 || ids.dtype() == dtype::i32,
                                   "token_embedding: ids must be i32 or i64, got ", ids.dtype());
        const std::int64_t M = ids.size(0), T = ids.size(1);
        const tensor& index = detail::reuse(c.ids, ids.shape(), dtype::i64, weight.device());
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(weight)) {
            // Checked on the host, then one upload.
            const tensor host = ids.to(device::cpu()).to(dtype::i64).contiguous();
            check_ids(host.data<std::int64_t>(), host.numel(), V);
            detail::copy_between(index, host);
            const tensor& x = detail::reuse(c.output, {M, T, W}, weight);
            detail::cuda::embed_tokens(weight, index, positional, x);
            return x;
        }
#endif
        index.copy_from(ids.to(weight.device()));
        const std::int64_t* id = index.data<std::int64_t>();
        check_ids(id, index.numel(), V);
        const tensor& x = detail::reuse(c.output, {M, T, W});
        const float* table = weight.data<float>();
        const float* pos = positional.data<float>();
        float* out = x.data<float>();
        detail::parallel_for(M * T, W, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t r = first; r < last; ++r) {
                const float* e = table + id[r] * W;
                const float* p = pos + (r % T) * W;
                for (std::int64_t i = 0; i < W; ++i) out[r * W + i] = e[i] + p[i];
            }
        });
        return x;
    }

    /// dx [M, T, W]: accumulates grad_weight and the first T rows of grad_positional.
    void backward(const tensor& dx, const cache& c) const {
        const std::int64_t W = weight.size(1), M = c.ids.size(0), T = c.ids.size(1);
        detail::require_buffer(dx, {M, T, W}, "token_embedding backward", "gradient", weight.device());
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(dx)) {
            detail::cuda::add_column_sums(grad_positional, dx, M, T * W, T * W);
            detail::cuda::scatter_add_rows(dx, c.ids, grad_weight);
            return;
        }
#endif
        const float* g = dx.data<float>();
        const std::int64_t* id = c.ids.data<std::int64_t>();
        float* table = grad_weight.data<float>();
        // Σ over the batch: rows of [M, T·W].
        detail::add_column_sums(grad_positional.data<float>(), g, M, T * W, T * W);
        constexpr std::int64_t block = 64;
        const std::int64_t blocks = (W + block - 1) / block;
        detail::parallel_for(blocks, M * T * block, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t b = first; b < last; ++b) {
                const std::int64_t c0 = b * block, c1 = std::min(W, c0 + block);
                for (std::int64_t r = 0; r < M * T; ++r) {
                    float* dst = table + id[r] * W;
                    const float* src = g + r * W;
                    for (std::int64_t i = c0; i < c1; ++i) dst[i] += src[i];
                }
            }
        });
    }
};

} // namespace clip::train
