// clip/models/vision_transformer.hpp: OpenAI CLIP's VisionTransformer (`visual.*` of ViT models).
//
//   patches = conv1(image)            [N, W, g, g]   kernel = stride = patch, no bias (run as a product)
//   x = [class_embedding; patches] + positional_embedding      [N, g²+1, W]  (patch = row·g + col)
//   x = transformer(ln_pre(x));  features = ln_post(x[:, 0]) · proj          [N, E]
// Intermediates are reported as vis.conv1, vis.embed, vis.ln_pre, vis.block.K, vis.ln_post.
#pragma once

#include "clip/expr/node.hpp"
#include "clip/models/config.hpp"
#include "clip/nn/transformer.hpp"
#include "clip/ops/matmul.hpp"

namespace clip {

struct vision_transformer {
    vision_config config;
    tensor conv1;                // [W, 3, P, P]
    packed_weights patch_matrix; // conv1 as [3·P·P, W], in the backend's layout
    tensor class_embedding;      // [W]
    tensor positional_embedding; // [T, W]
    nn::layer_norm ln_pre, ln_post;
    nn::transformer transformer;
    tensor proj;                 // [W, E]
    packed_weights proj_packed;

    static vision_transformer load(nn::parameter_source& source, const clip_config& c) {
        const vision_config& v = c.vision;
        const std::int64_t W = v.width, P = v.patch_size, T = v.tokens();
        vision_transformer m;
        m.config = v;
        m.conv1 = source.get("visual.conv1.weight", {W, 3, P, P});
        m.patch_matrix = packed_weights(m.conv1.view({m.conv1.size(0), -1}).t());
        m.class_embedding = source.get("visual.class_embedding", {W});
        m.positional_embedding = source.get("visual.positional_embedding", {T, W});
        m.ln_pre = nn::layer_norm::load(source, "visual.ln_pre", W, c.layer_norm_eps);
        m.transformer = nn::transformer::load(source, "visual.transformer", W, v.layers, v.heads, c.act, c.layer_norm_eps);
        m.ln_post = nn::layer_norm::load(source, "visual.ln_post", W, c.layer_norm_eps);
        m.proj = source.get("visual.proj", {W, c.embed_dim});
        m.proj_packed = packed_weights(m.proj);
        return m;
    }

    /// The tower with int8 transformer products (the patch embedding and projection stay f32).
    vision_transformer quantized() const {
        vision_transformer m = *this;
        m.transformer = transformer.quantized();
        return m;
    }

    /// The tower with its weights on `where`.
    vision_transformer to(device where, dtype weights = dtype::f32) const {
        vision_transformer m = *this;
        m.conv1 = conv1.to(where).to(weights);
        m.patch_matrix = packed_weights(m.conv1.view({m.conv1.size(0), -1}).t());
        m.class_embedding = class_embedding.to(where);
        m.positional_embedding = positional_embedding.to(where);
        m.ln_pre = ln_pre.to(where);
        m.ln_post = ln_post.to(where);
        m.transformer = transformer.to(where, weights);
        m.proj = proj.to(where).to(weights);
        m.proj_packed = packed_weights(m.proj);
        return m;
    }

    /// images: [N, 3, R, R] f32 -> features [N, E]
    tensor operator()(const tensor& images, const nn::trace* observer = nullptr) const {
        const std::int64_t N = images.size(0), W = config.width, T = config.tokens(), P = config.patch_size;
        // The convolution with kernel = stride = P is one product of the patches, as rows
        // (c, y, x) like conv1's weight, with the packed weight: oneDNN's convolution for it is
        // im2col + sgemm on plain weights, 15% slower.
        const std::int64_t g = images.size(2) / P, cells = g * P;
        const tensor patches = images.slice(2, 0, cells)
                                   .slice(3, 0, cells)
                                   .reshape({N, 3, g, P, g, P})
                                   .permute({0, 2, 4, 1, 3, 5})
                                   .reshape({N * g * g, 3 * P * P});
        const tensor tokens = matmul(patches, patch_matrix); // [N·g·g, W]
        nn::record(observer, "vis.conv1", tokens.view({N, g, g, W}).permute({0, 3, 1, 2}));
        const tensor x = tensor::empty({N, T, W}, dtype::f32, images.device());
        x.slice(1, 0, 1).copy_from(class_embedding);
        x.slice(1, 1, T).copy_from(tokens.view({N, T - 1, W}));
        assign(x, x + positional_embedding);
        nn::record(observer, "vis.embed", x);
        const tensor normed = ln_pre(x);
        nn::record(observer, "vis.ln_pre", normed);
        // Untraced, the last block runs past its keys and values for the class token alone.
        const tensor first = observer ? transformer(normed, false, observer, "vis").select(1, 0)
                                      : transformer.at_positions(normed, std::vector<std::int64_t>(static_cast<std::size_t>(N), 0), false);
        const tensor pooled = ln_post(first); // [N, W]
        nn::record(observer, "vis.ln_post", pooled);
        return matmul(pooled, proj_packed);
    }
};

} // namespace clip
