// clip/nn/transformer.hpp: OpenAI CLIP's Transformer of ResidualAttentionBlocks.
//
// Each block is pre-norm:  x = x + attn(ln_1(x));  x = x + c_proj(act(c_fc(ln_2(x)))),
// act = QuickGELU for OpenAI's models (GELU when a config says so). Both residual adds are fused
// into the products that end each branch.
#pragma once

#include <vector>

#include "clip/nn/attention.hpp"
#include "clip/nn/layer_norm.hpp"
#include "clip/nn/trace.hpp"
#include "clip/ops/embedding.hpp"

namespace clip::nn {

/// Rows x[b, positions[b]] of x [B, T, W] -> [B, W]; a strided view when every position is the
/// same.
inline tensor rows_at(const tensor& x, const std::vector<std::int64_t>& positions) {
    const std::int64_t B = x.size(0), T = x.size(1), W = x.size(2);
    if (const auto p = common_position(positions)) return x.select(1, *p);
    tensor rows = tensor::empty({B}, dtype::i64);
    for (std::int64_t b = 0; b < B; ++b) rows.data<std::int64_t>()[b] = b * T + positions[static_cast<std::size_t>(b)];
    return embedding(x.reshape({B * T, W}), rows);
}

struct residual_block {
    layer_norm ln_1;
    multihead_attention attn;
    layer_norm ln_2;
    linear c_fc;   // [4W, W]
    linear c_proj; // [W, 4W]
    activation act = activation::quick_gelu;

    static residual_block load(parameter_source& source, const std::string& prefix, std::int64_t width,
                               std::int64_t heads, activation act, float eps) {
        return {layer_norm::load(source, prefix + ".ln_1", width, eps),
                multihead_attention::load(source, prefix + ".attn", width, heads),
                layer_norm::load(source, prefix + ".ln_2", width, eps),
                linear::load(source, prefix + ".mlp.c_fc", width, 4 * width),
                linear::load(source, prefix + ".mlp.c_proj", 4 * width, width), act};
    }

    residual_block quantized() const { return {ln_1, attn.quantized(), ln_2, c_fc.quantized(), c_proj.quantized(), act}; }

    residual_block to(device where, dtype weights = dtype::f32) const {
        return {ln_1.to(where), attn.to(where, weights), ln_2.to(where), c_fc.to(where, weights), c_proj.to(where, weights), act};
    }

    /// x: [B, T, W] -> [B, T, W]
    tensor operator()(const tensor& x, bool causal) const {
        const tensor h = attn(ln_1(x), causal, x);
        return c_proj(c_fc(ln_2(h), act), activation::none, h);
    }

    /// The block's output at one position per sequence, x [B, T, W] -> [B, W]: past the keys and
    /// values, one row per sequence instead of T (a ViT pools its class token, the text tower
    /// its EOT: the last block of ViT-B/32 at batch 8 drops 9 of its 13 ms).
    tensor at_positions(const tensor& x, const std::vector<std::int64_t>& positions, bool causal) const {
        const tensor h = attn.at_positions(ln_1(x), positions, causal, rows_at(x, positions));
        return c_proj(c_fc(ln_2(h), act), activation::none, h);
    }
};

struct transformer {
    std::vector<residual_block> blocks;

    static transformer load(parameter_source& source, const std::string& prefix, std::int64_t width,
                            std::int64_t layers, std::int64_t heads, activation act, float eps) {
        transformer t;
        for (std::int64_t i = 0; i < layers; ++i)
            t.blocks.push_back(
                residual_block::load(source, prefix + ".resblocks." + std::to_string(i), width, heads, act, eps));
        return t;
    }

    transformer quantized() const {
        transformer t;
        for (const residual_block& b : blocks) t.blocks.push_back(b.quantized());
        return t;
    }

    transformer to(device where, dtype weights = dtype::f32) const {
        transformer t;
        for (const residual_block& b : blocks) t.blocks.push_back(b.to(where, weights));
        return t;
    }

    /// x: [B, T, W] -> [B, T, W]; reports "<trace_prefix>.block.K" after each block.
    tensor operator()(tensor x, bool causal, const trace* observer = nullptr, const std::string& trace_prefix = "") const {
        for (std::size_t i = 0; i < blocks.size(); ++i) {
            x = blocks[i](x, causal);
            record(observer, trace_prefix + ".block." + std::to_string(i), x);
        }
        return x;
    }

    /// The output at one position per sequence, x [B, T, W] -> [B, W]: the rows
    /// `(*this)(x, causal)[b, positions[b]]`, with the last block computed for those rows only.
    tensor at_positions(tensor x, const std::vector<std::int64_t>& positions, bool causal) const {
        if (blocks.empty()) return rows_at(x, positions);
        for (std::size_t i = 0; i + 1 < blocks.size(); ++i) x = blocks[i](x, causal);
        return blocks.back().at_positions(x, positions, causal);
    }
};

} // namespace clip::nn
