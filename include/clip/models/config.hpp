// clip/models/config.hpp: the architecture of a CLIP model, and the published presets.
//
// The fields are the constructor arguments of OpenAI's `clip.model.CLIP` (embed_dim,
// image_resolution, vision_layers, vision_width, vision_patch_size, context_length, vocab_size,
// transformer_width, transformer_heads, transformer_layers) plus the MLP activation, which
// OpenAI's models fix to QuickGELU and OpenCLIP / Hugging Face configs may change to GELU.
// Head counts follow `build_model`: the head dimension is always 64.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "clip/core/error.hpp"
#include "clip/ops/matmul_spec.hpp"

namespace clip {

enum class vision_kind : unsigned char { vit, resnet };

struct vision_config {
    vision_kind kind = vision_kind::vit;
    std::int64_t image_size = 224;
    std::int64_t width = 768;                        ///< ViT width, or the ResNet stem width (64 for RN50)
    std::int64_t layers = 12;                        ///< ViT transformer blocks
    std::array<std::int64_t, 4> resnet_layers{};     ///< Bottlenecks per ResNet stage
    std::int64_t patch_size = 32;                    ///< ViT only
    std::int64_t heads = 12;                         ///< ViT: width / 64; ResNet attention pool: width·32 / 64

    std::int64_t tokens() const { return (image_size / patch_size) * (image_size / patch_size) + 1; }
    /// Channels entering the ResNet attention pool (the last stage's output).
    std::int64_t resnet_embed_width() const { return width * 32; }
    /// Spatial side of the last ResNet stage (stride 32 overall).
    std::int64_t resnet_grid() const { return image_size / 32; }
};

struct text_config {
    std::int64_t context_length = 77;
    std::int64_t vocab_size = 49408;
    std::int64_t width = 512;
    std::int64_t heads = 8;
    std::int64_t layers = 12;
};

struct clip_config {
    std::int64_t embed_dim = 512;
    vision_config vision;
    text_config text;
    activation act = activation::quick_gelu; ///< of every transformer MLP
    float layer_norm_eps = 1e-5f;

    /// The largest extent (width, layers, image size, vocabulary, ...) a config may have: far
    /// beyond any model, and small enough that the products computed from extents (tokens,
    /// attention-pool width, the sizes of weight matrices) cannot overflow int64.
    static constexpr std::int64_t max_extent = std::int64_t{1} << 24;

    void validate() const {
        auto positive = [](std::int64_t v, const char* what) {
            detail::check(v > 0, "clip_config: ", what, " must be positive, got ", v);
            detail::check(v <= max_extent, "clip_config: ", what, " is ", v, ", more than the limit of ", max_extent);
        };
        positive(embed_dim, "embed_dim");
        positive(vision.image_size, "vision.image_size");
        positive(vision.width, "vision.width");
        positive(vision.heads, "vision.heads");
        positive(text.context_length, "text.context_length");
        positive(text.vocab_size, "text.vocab_size");
        positive(text.width, "text.width");
        positive(text.heads, "text.heads");
        positive(text.layers, "text.layers");
        detail::check(text.width % text.heads == 0, "clip_config: text width ", text.width,
                      " is not divisible by its ", text.heads, " heads");
        detail::check(act == activation::quick_gelu || act == activation::gelu,
                      "clip_config: the MLP activation must be QuickGELU or GELU");
        detail::check(std::isfinite(layer_norm_eps) && layer_norm_eps > 0, "clip_config: layer_norm_eps must be positive, got ",
                      layer_norm_eps);
        if (vision.kind == vision_kind::vit) {
            positive(vision.patch_size, "vision.patch_size");
            positive(vision.layers, "vision.layers");
            detail::check(vision.image_size % vision.patch_size == 0, "clip_config: image size ", vision.image_size,
                          " is not a multiple of the patch size ", vision.patch_size);
            detail::check(vision.width % vision.heads == 0, "clip_config: vision width ", vision.width,
                          " is not divisible by its ", vision.heads, " heads");
        } else {
            for (std::int64_t n : vision.resnet_layers) positive(n, "vision.resnet_layers[i]");
            detail::check(vision.image_size % 32 == 0, "clip_config: ResNet image size ", vision.image_size,
                          " is not a multiple of 32");
            detail::check(vision.resnet_embed_width() % vision.heads == 0, "clip_config: attention-pool width ",
                          vision.resnet_embed_width(), " is not divisible by its ", vision.heads, " heads");
        }
    }
};

inline std::ostream& operator<<(std::ostream& out, const clip_config& c) {
    out << "embed_dim " << c.embed_dim << ", ";
    if (c.vision.kind == vision_kind::vit)
        out << "vision ViT (image " << c.vision.image_size << ", patch " << c.vision.patch_size << ", width "
            << c.vision.width << ", layers " << c.vision.layers << ", heads " << c.vision.heads << ")";
    else
        out << "vision ModifiedResNet (image " << c.vision.image_size << ", width " << c.vision.width << ", layers ["
            << c.vision.resnet_layers[0] << ", " << c.vision.resnet_layers[1] << ", " << c.vision.resnet_layers[2] << ", "
            << c.vision.resnet_layers[3] << "], attention-pool heads " << c.vision.heads << ")";
    return out << ", text (context " << c.text.context_length << ", vocab " << c.text.vocab_size << ", width "
               << c.text.width << ", layers " << c.text.layers << ", heads " << c.text.heads << "), "
               << (c.act == activation::gelu ? "GELU" : "QuickGELU");
}

namespace detail {

inline clip_config make_vit(std::int64_t embed, std::int64_t image, std::int64_t layers, std::int64_t width,
                            std::int64_t patch, std::int64_t text_width, std::int64_t text_layers) {
    clip_config c;
    c.embed_dim = embed;
    c.vision = {vision_kind::vit, image, width, layers, {}, patch, width / 64};
    c.text = {77, 49408, text_width, text_width / 64, text_layers};
    return c;
}

inline clip_config make_resnet(std::int64_t embed, std::int64_t image, std::array<std::int64_t, 4> layers,
                               std::int64_t width, std::int64_t text_width, std::int64_t text_layers) {
    clip_config c;
    c.embed_dim = embed;
    c.vision = {vision_kind::resnet, image, width, 0, layers, 0, width * 32 / 64};
    c.text = {77, 49408, text_width, text_width / 64, text_layers};
    return c;
}

} // namespace detail

/// Names of the built-in architectures (OpenAI's released models).
inline std::vector<std::string> preset_names() {
    return {"RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px"};
}

/// The architecture of an OpenAI release, as its checkpoint's shapes give it.
inline clip_config preset(std::string_view name) {
    using detail::make_resnet;
    using detail::make_vit;
    if (name == "RN50") return make_resnet(1024, 224, {3, 4, 6, 3}, 64, 512, 12);
    if (name == "RN101") return make_resnet(512, 224, {3, 4, 23, 3}, 64, 512, 12);
    if (name == "RN50x4") return make_resnet(640, 288, {4, 6, 10, 6}, 80, 640, 12);
    if (name == "RN50x16") return make_resnet(768, 384, {6, 8, 18, 8}, 96, 768, 12);
    if (name == "RN50x64") return make_resnet(1024, 448, {3, 15, 36, 10}, 128, 1024, 12);
    if (name == "ViT-B/32") return make_vit(512, 224, 12, 768, 32, 512, 12);
    if (name == "ViT-B/16") return make_vit(512, 224, 12, 768, 16, 512, 12);
    if (name == "ViT-L/14") return make_vit(768, 224, 24, 1024, 14, 768, 12);
    if (name == "ViT-L/14@336px") return make_vit(768, 336, 24, 1024, 14, 768, 12);
    std::string known;
    for (const std::string& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw error(detail::message("unknown model preset '", name, "' (known: ", known, ")"));
}

} // namespace clip
