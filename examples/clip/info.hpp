// examples/clip/info.hpp: `clip info`: what a checkpoint (or preset) is: naming scheme,
// architecture and parameter count.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <iomanip>
#include <iostream>

#include "common.hpp"

namespace clip_tool {

struct info_options {
    std::string model;
    std::string config;
};

inline CLI::App* add_info_command(CLI::App& app, info_options& o) {
    CLI::App* cmd = app.add_subcommand("info", "Naming scheme, architecture and parameter count of a model");
    cmd->add_option("--model", o.model, "Checkpoint (.safetensors) or preset (" + [] {
        std::string known;
        for (const std::string& n : clip::preset_names()) known += (known.empty() ? "" : ", ") + n;
        return known;
    }() + ")")->required();
    cmd->add_option("--config", o.config, "Model config JSON (OpenCLIP or Hugging Face); default: infer from shapes");
    return cmd;
}

/// 151277313 -> "151,277,313"
inline std::string with_thousands(std::int64_t n) {
    std::string digits = std::to_string(n < 0 ? -n : n), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return n < 0 ? "-" + out : out;
}

inline void run_info(const info_options& o) {
    const opened_model opened = open_model(o.model, o.config);
    const clip::clip_config& c = opened.model.config();
    const bool vit = c.vision.kind == clip::vision_kind::vit;
    const auto line = [](const char* key, const auto& value) {
        std::cout << std::left << std::setw(16) << (std::string(key) + ":") << value << '\n';
    };
    line("model", opened.name);
    line("scheme", opened.is_preset ? std::string("random init (preset)")
                                    : std::string(opened.model.scheme() ? clip::naming_scheme_name(*opened.model.scheme())
                                                                        : "unknown"));
    line("architecture", message(c));
    line("vision", vit ? "ViT" : "ModifiedResNet");
    line("image size", c.vision.image_size);
    if (vit) {
        line("patch size", c.vision.patch_size);
        line("vision width", c.vision.width);
        line("vision layers", c.vision.layers);
        line("vision heads", c.vision.heads);
    } else {
        const auto& l = c.vision.resnet_layers;
        line("vision width", message(c.vision.width, " (stem; attention pool ", c.vision.resnet_embed_width(), ")"));
        line("vision layers", message("[", l[0], ", ", l[1], ", ", l[2], ", ", l[3], "]"));
        line("vision heads", message(c.vision.heads, " (attention pool)"));
    }
    line("text width", c.text.width);
    line("text layers", c.text.layers);
    line("text heads", c.text.heads);
    line("context", c.text.context_length);
    line("vocab", c.text.vocab_size);
    line("embed dim", c.embed_dim);
    line("activation", c.act == clip::activation::gelu ? "GELU" : "QuickGELU");
    line("logit scale", message(opened.model.logit_scale(), " (log; logits scaled by ",
                                std::exp(opened.model.logit_scale()), ")"));
    line("parameters", with_thousands(opened.model.parameter_count()));
}

} // namespace clip_tool
