// clip/nn/layer_norm.hpp: torch.nn.LayerNorm over the last axis (`ln_1`, `ln_final`, ...).
//
// y = (x - mean) / sqrt(var + eps) · weight + bias, biased variance, in float32.
#pragma once

#include "clip/nn/parameters.hpp"
#include "clip/ops/rowwise.hpp"

namespace clip::nn {

struct layer_norm {
    tensor weight; // [W]
    tensor bias;   // [W]
    float eps = 1e-5f;

    static layer_norm load(parameter_source& source, const std::string& prefix, std::int64_t width, float eps) {
        return {source.get(prefix + ".weight", {width}), source.get(prefix + ".bias", {width}), eps};
    }

    layer_norm to(device where) const { return {weight.to(where), bias.to(where), eps}; }

    /// x: [..., W] -> [..., W]
    tensor operator()(const tensor& x) const { return clip::layer_norm(x, weight, bias, eps); }
};

} // namespace clip::nn
