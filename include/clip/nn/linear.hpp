// clip/nn/linear.hpp: torch.nn.Linear, y = x Wᵀ + b, with the activation and residual fused.
//
// The weight is kept in PyTorch's [out, in] layout and handed to the backend as its transpose
// (a stride, not a copy) wrapped in packed_weights, so the backend packs it once.
#pragma once

#include "clip/nn/parameters.hpp"
#include "clip/ops/matmul.hpp"
#if defined(CLIP_WITH_ONEDNN)
#include "clip/backend/cpu/int8.hpp"
#endif

namespace clip::nn {

struct linear {
    tensor weight;          // [out, in]
    tensor bias;            // [out] or undefined
    packed_weights packed;  // weight.t(), [in, out]
#if defined(CLIP_WITH_ONEDNN)
    std::shared_ptr<const detail::int8::weights> int8; // set by quantized(): products run in int8
#endif

    static linear from(tensor weight, tensor bias = {}) {
        linear l;
        l.weight = std::move(weight);
        l.bias = std::move(bias);
        l.packed = packed_weights(l.weight.t());
        return l;
    }
    static linear load(parameter_source& source, const std::string& prefix, std::int64_t in, std::int64_t out,
                       bool has_bias = true) {
        return from(source.get(prefix + ".weight", {out, in}), has_bias ? source.get(prefix + ".bias", {out}) : tensor{});
    }

    /// The layer with its weights on `where`, stored as `weights` (bf16/f16 products on CUDA); the
    /// bias stays f32.
    linear to(device where, dtype weights = dtype::f32) const {
        return from(weight.to(where).to(weights), bias.defined() ? bias.to(where) : tensor{});
    }

    /// The layer with int8 products (per-channel weights, per-row dynamic activations; see
    /// backend/cpu/int8.hpp); the f32 weights stay for everything else.
    linear quantized() const {
#if defined(CLIP_WITH_ONEDNN)
        detail::require_cpu(weight, "linear::quantized");
        linear l = *this;
        l.int8 = detail::int8::quantize_weights(weight);
        return l;
#else
        throw backend_error("int8 inference needs clip built with oneDNN (-Donednn=enabled)");
#endif
    }

    std::int64_t in_features() const { return weight.size(1); }
    std::int64_t out_features() const { return weight.size(0); }

    /// x: [..., in] -> act(x Wᵀ + b) + residual: [..., out]
    tensor operator()(const tensor& x, activation act = activation::none, const tensor& residual = {}) const {
#if defined(CLIP_WITH_ONEDNN)
        if (int8) {
            shape out_shape = x.shape();
            out_shape[out_shape.size() - 1] = out_features();
            tensor out = tensor::empty(out_shape);
            detail::int8::linear(out, x, *int8, {.bias = bias, .act = act, .residual = residual});
            return out;
        }
#endif
        return matmul(x, packed, {.bias = bias, .act = act, .residual = residual});
    }
};

} // namespace clip::nn
