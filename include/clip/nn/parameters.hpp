// clip/nn/parameters.hpp: where a model's parameters come from.
//
// Layers are built by asking a parameter_source for each tensor by its OpenAI state-dict name
// (`visual.transformer.resblocks.0.attn.in_proj_weight`) and the shape the architecture expects.
// A checkpoint source (models/checkpoint.hpp) translates the names of other schemes and converts
// dtypes; a random source (models/initialize.hpp) draws OpenAI's initialisation. Either way the
// layer code is the same.
#pragma once

#include <string>

#include "clip/core/tensor.hpp"

namespace clip::nn {

class parameter_source {
public:
    virtual ~parameter_source() = default;
    /// The f32 tensor `name`, of shape `expected`, or an error naming the source and the tensor.
    virtual tensor get(const std::string& name, const shape& expected) = 0;
    /// Whether `name` exists (for optional parameters).
    virtual bool contains(const std::string& name) const = 0;
};

} // namespace clip::nn
