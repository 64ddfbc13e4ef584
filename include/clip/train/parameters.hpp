// clip/train/parameters.hpp: the trainable parameters of a CLIP model and their gradients.
//
// A parameter_store holds every parameter of a CLIP (ViT or ModifiedResNet image tower) under its
// OpenAI state-dict name (`visual.transformer.resblocks.0.attn.in_proj_weight`, `logit_scale`,
// ...), in the order of PyTorch's `CLIP.named_parameters()`, each as an f32 contiguous `value` and
// a `grad` of the same shape. As in llm.c, all values are carved out of one allocation and all
// gradients out of another, so zeroing the gradients is one memset and the trainable layers hold
// plain views.
//
// A ResNet's BatchNorm layers also have buffers (PyTorch's `named_buffers()`): `running_mean` and
// `running_var` (f32 [C]), which training-mode forward passes update, and `num_batches_tracked`
// (i64 []). They are state, not parameters: no gradient, no optimiser, not counted by numel();
// the store keeps them in a block of their own and serves them to inference models like the
// parameters.
//
// Values are always copies: a store starts from OpenAI's random initialisation
// (models/initialize.hpp) or from any parameter source, e.g. a checkpoint in either naming scheme
// (models/checkpoint.hpp translates Hugging Face names), whose tensors are read-only views of a
// memory-mapped file. The store is itself a parameter source, so `clip::model::build(config,
// store)` makes an inference model of the current values (built after the step it should see:
// inference layers pack their weights once).
//
// SigLIP training adds the learnable `logit_bias` (a scalar, after `logit_scale`); its random
// start is the SigLIP paper's logit_scale = ln 10, logit_bias = -10.
#pragma once

#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "clip/models/checkpoint.hpp"
#include "clip/models/config.hpp"
#include "clip/models/initialize.hpp"
#include "clip/nn/parameters.hpp"
#include "clip/train/buffers.hpp"

namespace clip::train {

/// The contrastive objective a model is trained with; SigLIP has one more parameter.
enum class objective : unsigned char {
    clip,   ///< OpenCLIP's ClipLoss: symmetric cross-entropy over logit_scale · cosine
    siglip, ///< SigLIP's pairwise sigmoid loss with a learnable logit_bias
};

struct parameter_spec {
    std::string name;
    shape dims;
};

/// One bias-free convolution of a ModifiedResNet and the BatchNorm after it.
struct resnet_conv_spec {
    std::string conv, bn;     ///< `visual.layer2.0.conv2`, `visual.layer2.0.bn2`
    std::int64_t in, out;     ///< channels
    std::int64_t kernel;      ///< 1 or 3
};

/// Every convolution + BatchNorm pair of a ModifiedResNet, in module order: the stem's three,
/// then per Bottleneck conv1/bn1, conv2/bn2, conv3/bn3 and, when the block changes shape
/// (stride 2, or `in` ≠ 4·planes), downsample.0/downsample.1.
inline std::vector<resnet_conv_spec> resnet_conv_specs(const vision_config& v) {
    const std::int64_t w = v.width;
    std::vector<resnet_conv_spec> out{{"visual.conv1", "visual.bn1", 3, w / 2, 3},
                                      {"visual.conv2", "visual.bn2", w / 2, w / 2, 3},
                                      {"visual.conv3", "visual.bn3", w / 2, w, 3}};
    std::int64_t in = w;
    for (std::size_t stage = 0; stage < 4; ++stage) {
        const std::int64_t planes = w << stage;
        for (std::int64_t i = 0; i < v.resnet_layers[stage]; ++i) {
            const std::string p = "visual.layer" + std::to_string(stage + 1) + "." + std::to_string(i) + ".";
            out.push_back({p + "conv1", p + "bn1", in, planes, 1});
            out.push_back({p + "conv2", p + "bn2", planes, planes, 3});
            out.push_back({p + "conv3", p + "bn3", planes, 4 * planes, 1});
            if ((i == 0 && stage > 0) || in != 4 * planes)
                out.push_back({p + "downsample.0", p + "downsample.1", in, 4 * planes, 1});
            in = 4 * planes;
        }
    }
    return out;
}

/// Name, shape and dtype of every buffer (BatchNorm running statistics and step counters), in
/// `named_buffers()` order; none for a ViT.
struct buffer_spec {
    std::string name;
    shape dims;
    dtype type = dtype::f32;
};
inline std::vector<buffer_spec> buffer_specs(const clip_config& c) {
    std::vector<buffer_spec> out;
    if (c.vision.kind != vision_kind::resnet) return out;
    for (const resnet_conv_spec& s : resnet_conv_specs(c.vision)) {
        out.push_back({s.bn + ".running_mean", {s.out}});
        out.push_back({s.bn + ".running_var", {s.out}});
        out.push_back({s.bn + ".num_batches_tracked", {}, dtype::i64});
    }
    return out;
}

/// Name and shape of every parameter of a CLIP, in `named_parameters()` order.
inline std::vector<parameter_spec> parameter_specs(const clip_config& c, objective kind = objective::clip) {
    c.validate();
    std::vector<parameter_spec> out;
    const auto add = [&](std::string name, shape s) { out.push_back({std::move(name), s}); };
    const auto blocks = [&](const std::string& prefix, std::int64_t width, std::int64_t layers) {
        for (std::int64_t i = 0; i < layers; ++i) {
            const std::string p = prefix + "resblocks." + std::to_string(i) + ".";
            add(p + "attn.in_proj_weight", {3 * width, width});
            add(p + "attn.in_proj_bias", {3 * width});
            add(p + "attn.out_proj.weight", {width, width});
            add(p + "attn.out_proj.bias", {width});
            add(p + "ln_1.weight", {width});
            add(p + "ln_1.bias", {width});
            add(p + "mlp.c_fc.weight", {4 * width, width});
            add(p + "mlp.c_fc.bias", {4 * width});
            add(p + "mlp.c_proj.weight", {width, 4 * width});
            add(p + "mlp.c_proj.bias", {width});
            add(p + "ln_2.weight", {width});
            add(p + "ln_2.bias", {width});
        }
    };
    const std::int64_t W = c.vision.width, P = c.vision.patch_size, Wt = c.text.width;
    add("positional_embedding", {c.text.context_length, Wt});
    add("text_projection", {Wt, c.embed_dim});
    add("logit_scale", {});
    if (kind == objective::siglip) add("logit_bias", {});
    if (c.vision.kind == vision_kind::resnet) {
        for (const resnet_conv_spec& s : resnet_conv_specs(c.vision)) {
            add(s.conv + ".weight", {s.out, s.in, s.kernel, s.kernel});
            add(s.bn + ".weight", {s.out});
            add(s.bn + ".bias", {s.out});
        }
        const std::int64_t E = c.vision.resnet_embed_width(), g = c.vision.resnet_grid();
        add("visual.attnpool.positional_embedding", {g * g + 1, E});
        for (const char* name : {"k_proj", "q_proj", "v_proj"}) {
            add(std::string("visual.attnpool.") + name + ".weight", {E, E});
            add(std::string("visual.attnpool.") + name + ".bias", {E});
        }
        add("visual.attnpool.c_proj.weight", {c.embed_dim, E});
        add("visual.attnpool.c_proj.bias", {c.embed_dim});
    } else {
        add("visual.class_embedding", {W});
        add("visual.positional_embedding", {c.vision.tokens(), W});
        add("visual.proj", {W, c.embed_dim});
        add("visual.conv1.weight", {W, 3, P, P});
        add("visual.ln_pre.weight", {W});
        add("visual.ln_pre.bias", {W});
        blocks("visual.transformer.", W, c.vision.layers);
        add("visual.ln_post.weight", {W});
        add("visual.ln_post.bias", {W});
    }
    blocks("transformer.", Wt, c.text.layers);
    add("token_embedding.weight", {c.text.vocab_size, Wt});
    add("ln_final.weight", {Wt});
    add("ln_final.bias", {Wt});
    return out;
}

/// One trainable tensor: its state-dict name, its value and its gradient (views of the store).
struct parameter {
    std::string name;
    tensor value; // f32, contiguous
    tensor grad;  // same shape; accumulated by backward passes, zeroed by zero_grad()
};

/// One buffer: its state-dict name and its value (a view of the store), written by the layers
/// that own it (BatchNorm's training-mode forward pass).
struct model_buffer {
    std::string name;
    tensor value; // f32 [C] running statistics, or the i64 [] step counter
};

class parameter_store : public nn::parameter_source {
public:
    parameter_store() = default;

    /// Every parameter of `c`, values and gradients zero, in the memory of `where`.
    explicit parameter_store(const clip_config& c, objective kind = objective::clip, clip::device where = clip::device::cpu())
        : config_(c), objective_(kind) {
        const std::vector<parameter_spec> specs = parameter_specs(c, kind);
        // Each parameter starts on a 64-byte boundary, so kernels see aligned rows.
        const auto padded = [](std::int64_t n) { return (n + 15) / 16 * 16; };
        std::int64_t total = 0;
        for (const parameter_spec& s : specs) total += padded(s.dims.numel());
        values_ = zeros({total}, dtype::f32, where);
        grads_ = zeros({total}, dtype::f32, where);
        std::int64_t offset = 0;
        for (const parameter_spec& s : specs) {
            const std::int64_t n = s.dims.numel();
            index_.emplace(s.name, parameters_.size());
            parameters_.push_back({s.name, values_.slice(0, offset, offset + n).view(s.dims),
                                   grads_.slice(0, offset, offset + n).view(s.dims)});
            offset += padded(n);
            count_ += n;
        }
        const std::vector<buffer_spec> buffers = buffer_specs(c);
        std::int64_t floats = 0, counters = 0;
        for (const buffer_spec& b : buffers) (b.type == dtype::f32 ? floats : counters) += padded(b.dims.numel());
        if (buffers.empty()) return;
        buffer_values_ = zeros({floats}, dtype::f32, where);
        counter_values_ = zeros({counters}, dtype::i64, where);
        std::int64_t float_offset = 0, counter_offset = 0;
        for (const buffer_spec& b : buffers) {
            const std::int64_t n = b.dims.numel();
            const bool f32 = b.type == dtype::f32;
            std::int64_t& next = f32 ? float_offset : counter_offset;
            buffer_index_.emplace(b.name, buffers_.size());
            buffers_.push_back({b.name, (f32 ? buffer_values_ : counter_values_).slice(0, next, next + n).view(b.dims)});
            next += padded(n);
        }
    }

    /// A copy of this store (values, gradients and buffers) in the memory of `where`: training
    /// runs on the device its store is on (a CUDA device trains a ViT with ClipLoss, in one process).
    parameter_store to(clip::device where) const {
        parameter_store out(config_, objective_, where);
        detail::copy_between(out.values_, values_);
        detail::copy_between(out.grads_, grads_);
        if (buffer_values_.defined()) {
            detail::copy_between(out.buffer_values_, buffer_values_);
            detail::copy_between(out.counter_values_, counter_values_);
        }
        return out;
    }
    /// Where the values and gradients are.
    clip::device device() const noexcept { return values_.defined() ? values_.device() : clip::device::cpu(); }

    /// OpenAI's random initialisation (CLIP.initialize_parameters) for seed `seed`; for SigLIP,
    /// logit_scale = ln 10 and logit_bias = -10. Running statistics start at mean 0, variance 1.
    static parameter_store random(const clip_config& c, std::uint64_t seed = 0, objective kind = objective::clip) {
        parameter_store store(c, kind);
        random_initialization source(c, seed);
        for (parameter& p : store.parameters_) {
            const bool siglip_scale = p.name == "logit_scale" && kind == objective::siglip;
            if (p.name == "logit_bias") p.value.copy_from(tensor::full({}, -10.0));
            else if (siglip_scale) p.value.copy_from(tensor::full({}, std::log(10.0)));
            else p.value.copy_from(source.get(p.name, p.value.shape()));
        }
        for (model_buffer& b : store.buffers_) b.value.copy_from(source.get(b.name, b.value.shape()));
        return store;
    }

    /// A copy of the parameters and buffers `source` holds (a checkpoint, another store). A
    /// SigLIP `logit_bias` the source lacks starts at -10, a missing `num_batches_tracked` at 0.
    static parameter_store from(const clip_config& c, nn::parameter_source& source, objective kind = objective::clip) {
        parameter_store store(c, kind);
        for (parameter& p : store.parameters_) {
            if (p.name == "logit_bias" && !source.contains(p.name)) p.value.copy_from(tensor::full({}, -10.0));
            else p.value.copy_from(source.get(p.name, p.value.shape()));
        }
        for (model_buffer& b : store.buffers_) {
            const bool counter = b.value.dtype() == dtype::i64;
            if (counter && !source.contains(b.name)) b.value.copy_from(tensor::zeros({}, dtype::i64));
            else b.value.copy_from(source.get(b.name, b.value.shape()));
        }
        return store;
    }

    /// A copy of a safetensors checkpoint (OpenAI/OpenCLIP or Hugging Face names); the
    /// architecture comes from `config_file` when given, else from the weight shapes.
    static parameter_store load(const std::filesystem::path& weights,
                                const std::optional<std::filesystem::path>& config_file = {},
                                objective kind = objective::clip) {
        checkpoint source(weights);
        const clip_config c = config_file ? read_config(*config_file) : source.infer_config();
        return from(c, source, kind);
    }

    // ---- parameter_source ------------------------------------------------------------------

    /// The value of parameter or buffer `name` (a view, not a copy), checked against `expected`.
    tensor get(const std::string& name, const shape& expected) override {
        const tensor& value = buffer_index_.count(name) ? buffer(name).value : at(name).value;
        detail::check<shape_error>(value.shape() == expected, "parameter_store: '", name, "' has shape ", value.shape(),
                                   ", expected ", expected);
        return value;
    }
    bool contains(const std::string& name) const override {
        return index_.count(name) != 0 || buffer_index_.count(name) != 0;
    }

    // ---- access ----------------------------------------------------------------------------

    const parameter& at(const std::string& name) const {
        const auto it = index_.find(name);
        detail::check<index_error>(it != index_.end(), "parameter_store: no parameter named '", name, "'");
        return parameters_[it->second];
    }
    std::span<const parameter> parameters() const noexcept { return parameters_; }
    /// A buffer by name (`visual.bn1.running_mean`); index_error if there is none.
    const model_buffer& buffer(const std::string& name) const {
        const auto it = buffer_index_.find(name);
        detail::check<index_error>(it != buffer_index_.end(), "parameter_store: no buffer named '", name, "'");
        return buffers_[it->second];
    }
    /// The buffers, in `named_buffers()` order (empty for a ViT).
    std::span<const model_buffer> buffers() const noexcept { return buffers_; }
    std::size_t size() const noexcept { return parameters_.size(); }
    /// Number of trainable scalars (what PyTorch's sum(p.numel()) gives).
    std::int64_t numel() const noexcept { return count_; }
    const clip_config& config() const noexcept { return config_; }
    objective kind() const noexcept { return objective_; }

    /// The blocks behind the views: every value, every gradient (the same layout, with zero
    /// padding between parameters), the float buffers and the i64 counters (undefined when the
    /// model has none). What a distributed run broadcasts and reduces in one call each.
    const tensor& value_block() const noexcept { return values_; }
    const tensor& gradient_block() const noexcept { return grads_; }
    const tensor& buffer_block() const noexcept { return buffer_values_; }
    const tensor& counter_block() const noexcept { return counter_values_; }

    /// Sets every gradient to zero (one memset over the gradient block).
    void zero_grad() const {
        if (grads_.defined()) zero(grads_);
    }

private:
    static void zero(const tensor& t) { detail::zero(t); }
    static tensor zeros(const shape& s, dtype t, clip::device where) {
        tensor out = tensor::empty(s, t, where);
        zero(out);
        return out;
    }

    clip_config config_;
    objective objective_ = objective::clip;
    std::vector<parameter> parameters_;
    std::unordered_map<std::string, std::size_t> index_;
    tensor values_; // [total] with 64-byte padding between parameters
    tensor grads_;  // [total], the same layout
    std::int64_t count_ = 0;
    std::vector<model_buffer> buffers_;
    std::unordered_map<std::string, std::size_t> buffer_index_;
    tensor buffer_values_;  // f32 [Σ running statistics], padded like the parameters
    tensor counter_values_; // i64 [Σ num_batches_tracked]
};

} // namespace clip::train
