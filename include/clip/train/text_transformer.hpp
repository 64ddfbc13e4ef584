// clip/train/text_transformer.hpp: the trainable text tower (`encode_text`).
//
//   forward   x = token_embedding[ids] + positional_embedding    [M, T, W]
//             x = transformer(x) with the causal mask              [M, T, W]
//             features = ln_final(x[m, argmax ids[m]]) · text_projection   [M, E]
//   backward  the same layers in reverse; the EOT pooling scatters the gradient of the pooled
//             rows into a zero [M, T, W] buffer (positions after the EOT token get none).
// As in models/text_transformer.hpp: ln_final is per position, so it runs on the pooled rows
// only; and with the causal mask no position after the last EOT of the batch can change a
// feature, so the tower runs on T = max_m argmax(ids[m]) + 1 positions, not ctx (a batch of
// 20-token captions costs 21 of 77 positions, forward and backward; the gradients of the later
// positional embeddings are exactly 0 either way). The numbers are the inference model's.
#pragma once

#include <algorithm>

#include "clip/train/embedding.hpp"
#include "clip/train/layer_norm.hpp"
#include "clip/train/linear.hpp"
#include "clip/train/pooling.hpp"
#include "clip/train/transformer.hpp"

namespace clip::train {

struct text_transformer {
    token_embedding embed;
    transformer blocks;
    layer_norm ln_final;
    projection proj; // text_projection [W, E]

    struct cache {
        token_embedding::cache embed;
        transformer::cache blocks;
        token_pooling::cache pool;
        layer_norm::cache ln_final;
        projection::cache proj;
        detail::buffer grad_normed; // [M, W]
        detail::buffer grad_pooled; // [M, W]
        detail::buffer grad_stream; // [M, T, W]
    };

    static text_transformer bind(const parameter_store& store) {
        const clip_config& c = store.config();
        return {token_embedding::bind(store),
                transformer::bind(store, "transformer", c.text.layers, c.text.heads, true, c.act, c.layer_norm_eps),
                layer_norm::bind(store, "ln_final", c.layer_norm_eps), projection::bind(store, "text_projection")};
    }

    /// Mixed-precision products with the weights `half` maps to (f32 when it is empty).
    void set_half(const detail::half_weights& half) {
        blocks.set_half(half);
        proj.set_half(half);
    }

    /// ids [M, ctx] (i32 or i64) -> features [M, E] (before normalisation), kept in c.proj.output.
    const tensor& forward(const tensor& ids, cache& c) const {
        const std::int64_t ctx = embed.positional.size(0);
        detail::check<shape_error>(ids.ndim() == 2 && ids.size(1) == ctx, "text_transformer: ids must be [M, ", ctx,
                                   "], got ", ids.shape());
        const tensor& eot = token_pooling::eot_positions(ids.device().is_cpu() ? ids : ids.to(device::cpu()), c.pool);
        const std::int64_t* position = eot.data<std::int64_t>();
        const std::int64_t used = ids.size(0) == 0 ? ctx : *std::max_element(position, position + ids.size(0)) + 1;
        const tensor& x = blocks.forward(embed.forward(ids.slice(1, 0, used), c.embed), c.blocks);
        return proj.forward(ln_final.forward(token_pooling::gather(x, c.pool), c.ln_final), c.proj);
    }

    /// grad_features [M, E]: accumulates the gradients of every text parameter.
    void backward(const tensor& grad_features, cache& c) const {
        const tensor& normed = detail::reuse(c.grad_normed, c.ln_final.output.shape(), grad_features);
        const tensor& pooled = detail::reuse(c.grad_pooled, c.pool.output.shape(), grad_features);
        const tensor& stream = detail::reuse(c.grad_stream, c.pool.input, grad_features);
        proj.backward(grad_features, c.proj, normed);
        ln_final.backward(normed, c.ln_final, pooled);
        token_pooling::backward(pooled, c.pool, stream);
        blocks.backward(stream, c.blocks);
        embed.backward(stream, c.embed);
    }
};

} // namespace clip::train
