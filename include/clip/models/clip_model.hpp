// clip/models/clip_model.hpp: a whole CLIP model: image and text encoders and the logit scale.
//
//   encode_image(images [N, 3, R, R] f32) -> [N, E]      encode_text(ids [M, ctx]) -> [M, E]
//   logits(images, text): exp(logit_scale) · normalize(img) · normalize(txt)ᵀ  [N, M] and [M, N]
// as OpenAI's `CLIP.encode_image`, `CLIP.encode_text` and `CLIP.forward`. A model is loaded from
// a safetensors checkpoint (any naming scheme, architecture inferred or given by a config file)
// or built from a preset with OpenAI's random initialisation. Once built it is immutable; every
// method is const and may be called from several threads at once.
#pragma once

#include <filesystem>
#include <optional>
#include <variant>

#include "clip/models/checkpoint.hpp"
#include "clip/models/initialize.hpp"
#include "clip/models/modified_resnet.hpp"
#include "clip/models/text_transformer.hpp"
#include "clip/models/vision_transformer.hpp"

namespace clip {

class model {
public:
    /// Builds a model from any parameter source (a checkpoint, a random initialisation).
    static model build(const clip_config& config, nn::parameter_source& parameters) {
        config.validate();
        counting_source source(parameters);
        model m;
        m.config_ = config;
        if (config.vision.kind == vision_kind::vit) m.visual_ = vision_transformer::load(source, config);
        else m.visual_ = modified_resnet::load(source, config);
        m.text_ = text_transformer::load(source, config);
        m.logit_scale_ = source.get("logit_scale", {}).item<float>();
        m.parameters_ = source.count;
        return m;
    }

    /// Loads a safetensors checkpoint; the architecture comes from `config_file` (OpenCLIP or
    /// Hugging Face JSON) when given, else from the weight shapes.
    static model load(const std::filesystem::path& weights, const std::optional<std::filesystem::path>& config_file = {}) {
        checkpoint source(weights);
        clip_config config = config_file ? read_config(*config_file) : source.infer_config();
        model m = build(config, source);
        m.scheme_ = source.scheme();
        if (const std::vector<std::string> left = source.unused(); !left.empty()) {
            std::string sample;
            for (std::size_t i = 0; i < std::min<std::size_t>(left.size(), 4); ++i) sample += (i ? ", " : "") + left[i];
            throw io_error(detail::message(weights.string(), ": ", left.size(), " tensor(s) the architecture does not use (",
                                           sample, left.size() > 4 ? ", ..." : "", "): the checkpoint has parts clip does not ",
                                           "implement, or the config does not match it",
                                           config_file ? " (" + config_file->string() + ")" : std::string()));
        }
        return m;
    }

    /// A preset architecture ("ViT-B/32", "RN50", ...) with OpenAI's random initialisation.
    static model random(const clip_config& config, std::uint64_t seed = 0) {
        random_initialization source(config, seed);
        return build(config, source);
    }
    static model random(std::string_view preset_name, std::uint64_t seed = 0) { return random(preset(preset_name), seed); }

    /// A copy of the model with its weights on `where` (`model.to(clip::device::cuda())`); inputs
    /// from any device are moved to it, and results stay on it. On CUDA, `weights` = bf16 or f16
    /// stores the products' weights in 16 bits and runs the products in it with f32 accumulation
    /// (activations are converted per product, as PyTorch's autocast does); layer norms, softmax
    /// and embeddings stay f32, and features come out f32.
    model to(clip::device where, dtype weights = dtype::f32) const {
        detail::check<device_error>(!int8_ || where.is_cpu(), "model::to: an int8 model runs on the CPU only");
        detail::check<dtype_error>(weights == dtype::f32 || ((weights == dtype::bf16 || weights == dtype::f16) && where.is_cuda()),
                                   "model::to: weights of ", weights, " on ", where,
                                   " (f32 anywhere; bf16 or f16 on CUDA devices)");
        model m = *this;
        m.visual_ = std::visit(
            [&](const auto& tower) -> std::variant<vision_transformer, modified_resnet> { return tower.to(where, weights); }, visual_);
        m.text_ = text_.to(where, weights);
        m.device_ = where;
        return m;
    }
    /// A copy whose transformer linear layers (and a ModifiedResNet's attention pool) run in
    /// int8 on the CPU: weights quantised per output channel, activations per token at run time,
    /// s32 accumulation, f32 everywhere else (backend/cpu/int8.hpp). Features stay within cosine
    /// 0.99 of f32 on the reference models (tests/backend/int8_test.cpp).
    model quantized_int8() const {
        detail::check<device_error>(device_.is_cpu(), "model::quantized_int8: int8 products run on the CPU; the model is on ", device_);
        model m = *this;
        m.visual_ = std::visit([&](const auto& tower) -> std::variant<vision_transformer, modified_resnet> { return tower.quantized(); },
                               visual_);
        m.text_ = text_.quantized();
        m.int8_ = true;
        return m;
    }
    bool is_int8() const noexcept { return int8_; }

    /// Where the weights live.
    clip::device device() const noexcept { return device_; }

    const clip_config& config() const noexcept { return config_; }
    std::optional<naming_scheme> scheme() const noexcept { return scheme_; }
    /// The learned temperature, stored as its log (logits are scaled by exp(logit_scale)).
    float logit_scale() const noexcept { return logit_scale_; }

    /// images: [N, 3, R, R] f32, preprocessed -> [N, E] (before L2 normalisation)
    tensor encode_image(const tensor& images, const nn::trace* observer = nullptr) const {
        const std::int64_t R = config_.vision.image_size;
        detail::check<shape_error>(images.ndim() == 4 && images.size(1) == 3 && images.size(2) == R && images.size(3) == R,
                                   "encode_image: images must be [N, 3, ", R, ", ", R, "], got ", images.shape());
        detail::check<dtype_error>(images.dtype() == dtype::f32, "encode_image: images must be f32, got ", images.dtype());
        const tensor input = images.to(device_);
        return std::visit([&](const auto& tower) { return tower(input, observer); }, visual_);
    }

    /// text: [M, ctx] token ids (i32 or i64) -> [M, E] (before L2 normalisation)
    tensor encode_text(const tensor& text, const nn::trace* observer = nullptr) const {
        const std::int64_t ctx = config_.text.context_length;
        detail::check<shape_error>(text.ndim() == 2 && text.size(1) == ctx, "encode_text: token ids must be [M, ", ctx,
                                   "], got ", text.shape());
        detail::check<dtype_error>(text.dtype() == dtype::i64 || text.dtype() == dtype::i32,
                                   "encode_text: token ids must be i32 or i64, got ", text.dtype());
        return text_(text, observer);
    }

    struct logits_result {
        tensor per_image; // [N, M]
        tensor per_text;  // [M, N]
    };

    /// CLIP.forward: scaled cosine similarities between every image and every text.
    logits_result logits(const tensor& images, const tensor& text) const {
        const tensor image_features = l2_normalize(encode_image(images), 0.0f);
        const tensor text_features = l2_normalize(encode_text(text), 0.0f);
        const tensor per_image = matmul(image_features, text_features.t(), {.scale = std::exp(logit_scale_)});
        return {per_image, per_image.t().contiguous()};
    }

    /// Number of parameters (as PyTorch counts them; BatchNorm statistics excluded).
    std::int64_t parameter_count() const noexcept { return parameters_; }

private:
    /// Passes requests through and counts the parameters (BatchNorm statistics are buffers).
    struct counting_source : nn::parameter_source {
        explicit counting_source(nn::parameter_source& inner) : inner(inner) {}
        tensor get(const std::string& name, const shape& expected) override {
            tensor t = inner.get(name, expected);
            if (name.find("running_") == std::string::npos) count += t.numel();
            return t;
        }
        bool contains(const std::string& name) const override { return inner.contains(name); }
        nn::parameter_source& inner;
        std::int64_t count = 0;
    };

    clip_config config_;
    std::variant<vision_transformer, modified_resnet> visual_;
    text_transformer text_;
    float logit_scale_ = 0.0f;
    std::optional<naming_scheme> scheme_;
    std::int64_t parameters_ = 0;
    clip::device device_ = clip::device::cpu();
    bool int8_ = false;
};

} // namespace clip
