// clip/nn/attention.hpp: torch.nn.MultiheadAttention as CLIP uses it (self-attention).
//
// in_proj packs the q, k and v projections as rows [q; k; v] of one [3W, W] weight, so one
// product makes all three; head h uses features h·D ... h·D + D-1 (D = W / heads); the heads are
// strided views of that product, fed to the fused attention kernel (ops/attention.hpp). Per head:
//   scores = (q kᵀ) / sqrt(D)   (+ causal mask: key j ≤ query i),   p = softmax(scores),
//   context = p v,  heads concatenated, then out_proj.
// Layout: x [B, T, W] batch-first (the reference runs [T, B, W]; the math is per sequence).
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "clip/nn/linear.hpp"
#include "clip/ops/attention.hpp"

namespace clip::nn {

/// The position every sequence pools, if they all pool the same one (and there is one).
inline std::optional<std::int64_t> common_position(const std::vector<std::int64_t>& positions) {
    if (positions.empty() ||
        !std::all_of(positions.begin(), positions.end(), [&](std::int64_t p) { return p == positions[0]; }))
        return std::nullopt;
    return positions[0];
}

struct multihead_attention {
    linear in_proj;  // [3W, W]
    linear out_proj; // [W, W]
    std::int64_t heads = 1;

    static multihead_attention load(parameter_source& source, const std::string& prefix, std::int64_t width,
                                    std::int64_t heads) {
        detail::check<shape_error>(heads > 0 && width % heads == 0, prefix, ": width ", width,
                                   " is not divisible by ", heads, " heads");
        return {linear::from(source.get(prefix + ".in_proj_weight", {3 * width, width}),
                             source.get(prefix + ".in_proj_bias", {3 * width})),
                linear::load(source, prefix + ".out_proj", width, width), heads};
    }

    multihead_attention quantized() const { return {in_proj.quantized(), out_proj.quantized(), heads}; }

    multihead_attention to(device where, dtype weights = dtype::f32) const {
        return {in_proj.to(where, weights), out_proj.to(where, weights), heads};
    }

    /// x: [B, T, W] -> residual + out_proj(attention(x)): [B, T, W]
    tensor operator()(const tensor& x, bool causal, const tensor& residual = {}) const {
        const heads_of h = project(x);
        return out_proj(attention(h.q, h.k, h.v, h.scale, causal), activation::none, residual);
    }

    /// The output at one query position per sequence: x [B, T, W] (every position gives keys and
    /// values), positions[b] < T, residual [B, W] -> [B, W]. Causal: the query at p sees keys
    /// 0 … p; otherwise every key. One batched call when the positions agree and nothing is
    /// masked (a ViT's class token), else one call per sequence on its visible keys.
    tensor at_positions(const tensor& x, const std::vector<std::int64_t>& positions, bool causal,
                        const tensor& residual) const {
        const heads_of h = project(x);
        const std::int64_t B = x.size(0), T = x.size(1), W = x.size(2);
        if (const auto p = common_position(positions); p && !causal) {
            const tensor context = attention(h.q.slice(2, *p, *p + 1), h.k, h.v, h.scale, false); // [B, 1, W]
            return out_proj(context.view({B, W}), activation::none, residual);
        }
        const tensor context = tensor::empty({B, W}, dtype::f32, x.device());
        for (std::int64_t b = 0; b < B; ++b) {
            const std::int64_t p = positions[static_cast<std::size_t>(b)], keys = causal ? p + 1 : T;
            context.slice(0, b, b + 1)
                .copy_from(attention(h.q.slice(0, b, b + 1).slice(2, p, p + 1), h.k.slice(0, b, b + 1).slice(2, 0, keys),
                                     h.v.slice(0, b, b + 1).slice(2, 0, keys), h.scale, false)
                               .view({1, W}));
        }
        return out_proj(context, activation::none, residual);
    }

private:
    struct heads_of {
        tensor q, k, v; // [B, H, T, D] views of one qkv product
        float scale;
    };
    heads_of project(const tensor& x) const {
        const std::int64_t B = x.size(0), T = x.size(1), W = x.size(2), D = W / heads;
        const tensor split = in_proj(x).view({B, T, 3, heads, D}); // views from here on
        return {split.select(2, 0).transpose(1, 2), split.select(2, 1).transpose(1, 2),
                split.select(2, 2).transpose(1, 2), 1.0f / std::sqrt(static_cast<float>(D))};
    }
};

} // namespace clip::nn
