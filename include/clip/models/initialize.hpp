// clip/models/initialize.hpp: OpenAI's initialisation of a CLIP model, as a parameter source.
//
// Follows `CLIP.initialize_parameters()` and the PyTorch defaults it leaves in place:
//   token_embedding N(0, 0.02²), positional_embedding N(0, 0.01²);
//   transformer blocks: in_proj N(0, W^-1), out_proj and c_proj N(0, W^-1 / (2·layers)),
//     c_fc N(0, (2W)^-1), in/out projection biases 0, MLP biases U(±1/sqrt(fan_in));
//   text_projection N(0, W^-1); ViT class/positional embeddings and proj: W^-0.5 · N(0, 1);
//   convolutions: PyTorch's default U(±1/sqrt(fan_in)); attention pool projections
//     N(0, C^-1); every Bottleneck's bn3 weight 0 (not the stem's) (the residual branch starts as identity);
//   LayerNorm and BatchNorm weights 1 and biases 0, running statistics 0 and 1 (and
//     num_batches_tracked 0);
//   logit_scale ln(1 / 0.07).
// Each tensor's random stream is seeded from the model seed and its name, so the values do not
// depend on the order in which layers ask for them.
#pragma once

#include <cmath>
#include <functional>
#include <string>

#include "clip/core/random.hpp"
#include "clip/models/config.hpp"
#include "clip/nn/parameters.hpp"

namespace clip {

class random_initialization : public nn::parameter_source {
public:
    random_initialization(const clip_config& config, std::uint64_t seed) : config_(config), seed_(seed) {}

    bool contains(const std::string&) const override { return true; }

    tensor get(const std::string& name, const shape& s) override {
        const std::uint64_t seed = seed_ ^ (std::hash<std::string>{}(name) * 0x9e3779b97f4a7c15ull);
        const auto ends = [&](const char* suffix) {
            const std::string x(suffix);
            return name.size() >= x.size() && name.compare(name.size() - x.size(), x.size(), x) == 0;
        };
        const auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
        const bool visual = name.rfind("visual.", 0) == 0;
        const double width = static_cast<double>(visual ? config_.vision.width : config_.text.width);
        const double layers = static_cast<double>(visual ? config_.vision.layers : config_.text.layers);
        const auto normal = [&](double stddev) { return rand_normal(s, seed, 0.0f, static_cast<float>(stddev)); };
        const auto fan_in_uniform = [&] {
            std::int64_t fan_in = 1;
            for (int i = 1; i < s.size(); ++i) fan_in *= s[i];
            const float bound = 1.0f / std::sqrt(static_cast<float>(std::max<std::int64_t>(fan_in, 1)));
            return rand_uniform(s, seed, -bound, bound);
        };

        if (name == "logit_scale") return tensor::full(s, std::log(1.0 / 0.07));
        if (name == "token_embedding.weight") return normal(0.02);
        if (name == "positional_embedding") return normal(0.01);
        if (name == "text_projection") return normal(std::pow(width, -0.5));
        if (name == "visual.class_embedding" || name == "visual.positional_embedding" || name == "visual.proj")
            return normal(std::pow(width, -0.5));
        if (has(".running_mean")) return tensor::zeros(s);
        if (has(".running_var")) return tensor::ones(s);
        if (ends(".num_batches_tracked")) return tensor::zeros(s);
        if (has("attnpool.") && ends("_proj.weight"))
            return normal(std::pow(static_cast<double>(config_.vision.resnet_embed_width()), -0.5));
        if (has("attnpool.") && ends(".bias")) return fan_in_uniform_bias(s, seed, config_.vision.resnet_embed_width());
        if (has("attnpool.positional_embedding"))
            return normal(std::pow(static_cast<double>(config_.vision.resnet_embed_width()), -0.5));
        // Only the Bottlenecks' bn3 (OpenAI zeroes it in layer1..layer4): the stem's visual.bn3
        // zeroed would make the tower's output independent of the image.
        if (has(".layer") && ends("bn3.weight")) return tensor::zeros(s);
        if (has("bn") || has("downsample.1") || has("ln_") || has(".ln")) {
            if (ends(".weight")) return tensor::ones(s);
            if (ends(".bias")) return tensor::zeros(s);
        }
        if (ends("attn.in_proj_weight")) return normal(std::pow(width, -0.5));
        if (ends("attn.out_proj.weight") || ends("mlp.c_proj.weight"))
            return normal(std::pow(width, -0.5) * std::pow(2.0 * layers, -0.5));
        if (ends("mlp.c_fc.weight")) return normal(std::pow(2.0 * width, -0.5));
        if (ends("attn.in_proj_bias") || ends("attn.out_proj.bias")) return tensor::zeros(s);
        if (ends("mlp.c_fc.bias")) return fan_in_uniform_bias(s, seed, static_cast<std::int64_t>(width));
        if (ends("mlp.c_proj.bias")) return fan_in_uniform_bias(s, seed, static_cast<std::int64_t>(4 * width));
        if (s.size() == 4) return fan_in_uniform(); // convolutions
        throw error(detail::message("random_initialization: no rule for parameter '", name, "' of shape ", s));
    }

private:
    static tensor fan_in_uniform_bias(const shape& s, std::uint64_t seed, std::int64_t fan_in) {
        const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
        return rand_uniform(s, seed, -bound, bound);
    }

    clip_config config_;
    std::uint64_t seed_;
};

} // namespace clip
