// clip/train/transformer.hpp: trainable ResidualAttentionBlocks and their stack.
//
//   forward   h = x + attn(ln_1(x));   y = h + c_proj(act(c_fc(ln_2(h))))      (pre-norm, as nn/transformer.hpp)
//   backward  with d = dy:  d += ln_2ᵀ(c_fcᵀ(c_projᵀ(d)))   (now d = dh)
//                           d += ln_1ᵀ(attnᵀ(d))             (now d = dx)
// Both residual adds are fused into the products that end each branch, forward and backward:
// the residual stream's gradient is one [B, T, W] buffer updated in place, and each branch adds
// its contribution as the last product's residual or the layer norm's accumulation. Each block
// keeps its own activations; the gradient buffers of the branches are shared by all blocks.
#pragma once

#include <vector>

#include "clip/train/attention.hpp"
#include "clip/train/layer_norm.hpp"
#include "clip/train/linear.hpp"

namespace clip::train {

struct residual_block {
    layer_norm ln_1;
    multihead_attention attn;
    layer_norm ln_2;
    linear c_fc;   // [4W, W], with the MLP activation
    linear c_proj; // [W, 4W]

    struct cache {
        layer_norm::cache ln_1;
        multihead_attention::cache attn; // its output is h
        layer_norm::cache ln_2;
        linear::cache c_fc;
        linear::cache c_proj;            // its output is the block's
    };
    struct scratch {
        multihead_attention::scratch attn;
        detail::buffer normed; // gradient at a layer norm's output [B, T, W]
        detail::buffer hidden; // gradient at the MLP's hidden layer [B, T, 4W]
    };

    static residual_block bind(const parameter_store& store, const std::string& prefix, std::int64_t heads,
                               bool causal, activation act, float eps) {
        return {layer_norm::bind(store, prefix + ".ln_1", eps),
                multihead_attention::bind(store, prefix + ".attn", heads, causal),
                layer_norm::bind(store, prefix + ".ln_2", eps), linear::bind(store, prefix + ".mlp.c_fc", act),
                linear::bind(store, prefix + ".mlp.c_proj")};
    }

    void set_half(const detail::half_weights& half) {
        attn.set_half(half);
        c_fc.set_half(half);
        c_proj.set_half(half);
    }

    /// x [B, T, W] -> [B, T, W], kept in c.c_proj.output; x must live until backward.
    const tensor& forward(const tensor& x, cache& c) const {
        const tensor& h = attn.forward(ln_1.forward(x, c.ln_1), c.attn, x);
        return c_proj.forward(c_fc.forward(ln_2.forward(h, c.ln_2), c.c_fc), c.c_proj, h);
    }

    /// d [B, T, W]: the gradient at the block's output in, at its input out.
    void backward(const tensor& d, const cache& c, scratch& s) const {
        const tensor& normed = detail::reuse(s.normed, d.shape(), d);
        const tensor& hidden = detail::reuse(s.hidden, c.c_fc.output.shape(), d);
        c_proj.backward(d, c.c_proj, hidden);
        c_fc.backward(hidden, c.c_fc, normed);
        ln_2.backward(normed, c.ln_2, d, true);
        attn.backward(d, c.attn, normed, false, s.attn);
        ln_1.backward(normed, c.ln_1, d, true);
    }
};

struct transformer {
    std::vector<residual_block> blocks;

    struct cache {
        std::vector<residual_block::cache> blocks;
        residual_block::scratch scratch;
    };

    /// The blocks `<prefix>.resblocks.N` of a store.
    static transformer bind(const parameter_store& store, const std::string& prefix, std::int64_t layers,
                            std::int64_t heads, bool causal, activation act, float eps) {
        transformer t;
        for (std::int64_t i = 0; i < layers; ++i)
            t.blocks.push_back(residual_block::bind(store, prefix + ".resblocks." + std::to_string(i), heads, causal,
                                                    act, eps));
        return t;
    }

    void set_half(const detail::half_weights& half) {
        for (residual_block& b : blocks) b.set_half(half);
    }

    /// x [B, T, W] -> [B, T, W] (the last block's buffer); x must live until backward.
    const tensor& forward(const tensor& x, cache& c) const {
        c.blocks.resize(blocks.size());
        const tensor* stream = &x;
        for (std::size_t i = 0; i < blocks.size(); ++i) stream = &blocks[i].forward(*stream, c.blocks[i]);
        return *stream;
    }

    /// d [B, T, W]: the gradient at the output in, at the input out.
    void backward(const tensor& d, cache& c) const {
        for (std::size_t i = blocks.size(); i-- > 0;) blocks[i].backward(d, c.blocks[i], c.scratch);
    }
};

} // namespace clip::train
