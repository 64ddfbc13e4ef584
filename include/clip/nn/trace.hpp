// clip/nn/trace.hpp: an optional observer of intermediate activations.
//
// Encoders call it with the reference's names (`vis.block.0`, `txt.ln_final`, ...) so tests can
// compare a forward pass layer by layer against the PyTorch dump; without one, nothing is kept.
#pragma once

#include <functional>
#include <string>

#include "clip/core/tensor.hpp"

namespace clip::nn {

using trace = std::function<void(const std::string& name, const tensor& value)>;

inline void record(const trace* observer, const std::string& name, const tensor& value) {
    if (observer && *observer) (*observer)(name, value);
}

} // namespace clip::nn
