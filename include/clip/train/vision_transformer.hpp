// clip/train/vision_transformer.hpp: the trainable ViT image tower (`visual.*`).
//
//   forward   x = patch_embedding(images)          [N, T, W]  (conv1 as a matmul, class token, positions)
//             x = transformer(ln_pre(x))           [N, T, W]
//             features = ln_post(x[:, 0]) · proj    [N, E]
//   backward  the same layers in reverse; the class-token pooling scatters the gradient of the
//             pooled rows back into a zero [N, T, W] buffer, which the blocks then update in place.
// Same parameters, names and numbers as models/vision_transformer.hpp (the patch convolution is
// a GEMM here, so its output differs from oneDNN's convolution by float rounding only).
#pragma once

#include "clip/train/layer_norm.hpp"
#include "clip/train/linear.hpp"
#include "clip/train/patch_embedding.hpp"
#include "clip/train/pooling.hpp"
#include "clip/train/transformer.hpp"

namespace clip::train {

struct vision_transformer {
    patch_embedding embed;
    layer_norm ln_pre;
    transformer blocks;
    layer_norm ln_post;
    projection proj; // [W, E]

    struct cache {
        patch_embedding::cache embed;
        layer_norm::cache ln_pre;
        transformer::cache blocks;
        token_pooling::cache pool;
        layer_norm::cache ln_post;
        projection::cache proj;
        detail::buffer grad_normed; // [N, W]
        detail::buffer grad_pooled; // [N, W]
        detail::buffer grad_stream; // [N, T, W]
        detail::buffer grad_embed;  // [N, T, W]
    };

    static vision_transformer bind(const parameter_store& store) {
        const clip_config& c = store.config();
        return {patch_embedding::bind(store), layer_norm::bind(store, "visual.ln_pre", c.layer_norm_eps),
                transformer::bind(store, "visual.transformer", c.vision.layers, c.vision.heads, false, c.act,
                                  c.layer_norm_eps),
                layer_norm::bind(store, "visual.ln_post", c.layer_norm_eps), projection::bind(store, "visual.proj")};
    }

    /// Mixed-precision products with the weights `half` maps to (f32 when it is empty).
    void set_half(const detail::half_weights& half) {
        embed.set_half(half);
        blocks.set_half(half);
        proj.set_half(half);
    }

    /// images [N, 3, R, R] f32 -> features [N, E] (before normalisation), kept in c.proj.output.
    const tensor& forward(const tensor& images, cache& c) const {
        const tensor& x = blocks.forward(ln_pre.forward(embed.forward(images, c.embed), c.ln_pre), c.blocks);
        return proj.forward(ln_post.forward(token_pooling::class_token(x, c.pool), c.ln_post), c.proj);
    }

    /// grad_features [N, E]: accumulates the gradients of every visual parameter.
    void backward(const tensor& grad_features, cache& c) const {
        const tensor& normed = detail::reuse(c.grad_normed, c.ln_post.output.shape(), grad_features);
        const tensor& pooled = detail::reuse(c.grad_pooled, c.pool.output.shape(), grad_features);
        const tensor& stream = detail::reuse(c.grad_stream, c.pool.input, grad_features);
        const tensor& embedded = detail::reuse(c.grad_embed, c.pool.input, grad_features);
        proj.backward(grad_features, c.proj, normed);
        ln_post.backward(normed, c.ln_post, pooled);
        token_pooling::backward(pooled, c.pool, stream);
        blocks.backward(stream, c.blocks);
        ln_pre.backward(stream, c.ln_pre, embedded);
        embed.backward(embedded, c.embed);
    }
};

} // namespace clip::train
