// clip/models/checkpoint.hpp: reading a CLIP checkpoint whatever its naming scheme.
//
// Two schemes are recognised from the tensor names:
//  - openai: OpenAI's and OpenCLIP's state-dict names (`visual.conv1.weight`,
//    `transformer.resblocks.N.attn.in_proj_weight`, `visual.layerK.N.*` for ResNets, ...);
//    OpenCLIP's `open_clip_model.safetensors` files use them too.
//  - huggingface: transformers' CLIPModel names (`vision_model.*`, `text_model.*`, separate
//    q/k/v projections, `visual_projection.weight` = visual.proj transposed), as written by
//    transformers' convert_clip_original_pytorch_to_hf.py.
// Layers always ask for OpenAI names; this source translates, concatenates q/k/v, transposes the
// projections and converts f16/bf16 to f32. The architecture is inferred from the shapes as
// OpenAI's build_model does, or read from an OpenCLIP model config or a Hugging Face config.json.
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "clip/expr/node.hpp"
#include "clip/io/safetensors.hpp"
#include "clip/models/config.hpp"
#include "clip/nn/parameters.hpp"

namespace clip {

enum class naming_scheme : unsigned char { openai, huggingface };

constexpr std::string_view naming_scheme_name(naming_scheme s) noexcept {
    return s == naming_scheme::openai ? "openai" : "huggingface";
}

namespace detail {

/// The distinct N of names "<prefix>N.<rest>" (layer counts, as build_model counts them).
inline std::int64_t count_indexed(const std::vector<std::string>& names, const std::string& prefix) {
    // The numbers compared as digit strings without leading zeros: std::stoll threw
    // std::out_of_range on a name with 20 digits.
    std::set<std::string> seen;
    for (const std::string& name : names) {
        if (name.rfind(prefix, 0) != 0) continue;
        const std::size_t end = name.find('.', prefix.size());
        const std::string index = name.substr(prefix.size(), end == std::string::npos ? std::string::npos : end - prefix.size());
        if (!index.empty() && std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; }))
            seen.insert(index.substr(std::min(index.find_first_not_of('0'), index.size() - 1)));
    }
    return static_cast<std::int64_t>(seen.size());
}

inline std::int64_t integer_sqrt(std::int64_t n) {
    if (n <= 0) return 0; // an empty positional embedding: no grid (sqrt(-1) is NaN)
    auto r = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
    return r;
}

/// Maps the rest of a transformer block name from OpenAI's to Hugging Face's spelling.
inline std::string hf_block_rest(const std::string& rest) {
    const std::pair<const char*, const char*> renames[] = {
        {"ln_1.", "layer_norm1."}, {"ln_2.", "layer_norm2."},       {"mlp.c_fc.", "mlp.fc1."},
        {"mlp.c_proj.", "mlp.fc2."}, {"attn.out_proj.", "self_attn.out_proj."}};
    for (const auto& [from, to] : renames)
        if (rest.rfind(from, 0) == 0) return to + rest.substr(std::string(from).size());
    return rest;
}

/// How a tensor of OpenAI's naming is stored in a Hugging Face CLIPModel checkpoint.
enum class hf_part : unsigned char {
    plain,      ///< the same values under another name
    transposed, ///< visual.proj and text_projection: HF's Linear stores the transpose
    qkv,        ///< in_proj_weight/bias: three tensors, HF name + "q_proj"/"k_proj"/"v_proj" + suffix
};

/// OpenAI name -> Hugging Face name (for qkv: the prefix before "q_proj").
inline std::pair<std::string, hf_part> huggingface_name(const std::string& name) {
    const auto starts = [&](const char* p) { return name.rfind(p, 0) == 0; };
    const auto rest_after = [&](const std::string& p) { return name.substr(p.size()); };
    if (name == "visual.conv1.weight") return {"vision_model.embeddings.patch_embedding.weight", hf_part::plain};
    if (name == "visual.class_embedding") return {"vision_model.embeddings.class_embedding", hf_part::plain};
    if (name == "visual.positional_embedding")
        return {"vision_model.embeddings.position_embedding.weight", hf_part::plain};
    if (starts("visual.ln_pre.")) return {"vision_model.pre_layrnorm." + rest_after("visual.ln_pre."), hf_part::plain};
    if (starts("visual.ln_post."))
        return {"vision_model.post_layernorm." + rest_after("visual.ln_post."), hf_part::plain};
    if (name == "visual.proj") return {"visual_projection.weight", hf_part::transposed};
    if (name == "text_projection") return {"text_projection.weight", hf_part::transposed};
    if (name == "token_embedding.weight") return {"text_model.embeddings.token_embedding.weight", hf_part::plain};
    if (name == "positional_embedding") return {"text_model.embeddings.position_embedding.weight", hf_part::plain};
    if (starts("ln_final.")) return {"text_model.final_layer_norm." + rest_after("ln_final."), hf_part::plain};
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"visual.transformer.resblocks.", "vision_model.encoder.layers."},
                                   std::pair<std::string, std::string>{"transformer.resblocks.", "text_model.encoder.layers."}}) {
        if (!starts(from.c_str())) continue;
        const std::string rest = rest_after(from);
        const std::size_t dot = rest.find('.');
        const std::string index = rest.substr(0, dot), tail = dot == std::string::npos ? "" : rest.substr(dot + 1);
        if (tail == "attn.in_proj_weight" || tail == "attn.in_proj_bias")
            return {to + index + ".self_attn.", hf_part::qkv};
        return {to + index + "." + hf_block_rest(tail), hf_part::plain};
    }
    return {name, hf_part::plain};
}

} // namespace detail

/// A checkpoint file as a parameter source (OpenAI names in, f32 tensors out).
class checkpoint : public nn::parameter_source {
public:
    explicit checkpoint(const std::filesystem::path& path) : file_(safetensors::open(path)) {
        names_ = file_.names();
        scheme_ = detect();
    }

    naming_scheme scheme() const noexcept { return scheme_; }
    const safetensors& file() const noexcept { return file_; }
    const std::vector<std::string>& names() const noexcept { return names_; }

    bool contains(const std::string& name) const override {
        if (scheme_ == naming_scheme::openai) return file_.contains(name);
        const auto [hf, kind] = translate(name);
        return file_.contains(kind == part::qkv ? hf + "q_proj" + qkv_suffix(name) : hf);
    }

    tensor get(const std::string& name, const shape& expected) override {
        tensor value;
        std::string stored = name;
        if (scheme_ == naming_scheme::openai) {
            value = fetch(name);
        } else {
            const auto [hf, kind] = translate(name);
            stored = hf;
            if (kind == part::qkv) {
                const std::string suffix = qkv_suffix(name);
                stored = hf + "{q,k,v}_proj" + suffix;
                const tensor q = fetch(hf + "q_proj" + suffix), k = fetch(hf + "k_proj" + suffix),
                             v = fetch(hf + "v_proj" + suffix);
                detail::check<io_error>(q.shape() == k.shape() && q.shape() == v.shape() && q.ndim() >= 1,
                                        file_.path().string(), ": tensors ", stored, " differ in shape (", q.shape(),
                                        ", ", k.shape(), ", ", v.shape(), ")");
                clip::shape joined = q.shape();
                joined[0] *= 3;
                value = tensor::empty(joined);
                const std::int64_t n = q.shape()[0];
                value.slice(0, 0, n).copy_from(q);
                value.slice(0, n, 2 * n).copy_from(k);
                value.slice(0, 2 * n, 3 * n).copy_from(v);
            } else {
                value = fetch(hf);
                if (kind == part::transposed) {
                    detail::check<io_error>(value.ndim() == 2, file_.path().string(), ": tensor '", hf,
                                            "' should be a matrix, has shape ", value.shape());
                    value = value.t();
                }
            }
        }
        if (value.ndim() == 0 && expected.size() == 1 && expected[0] == 1) value = value.reshape({1});
        detail::check<io_error>(value.shape() == expected, file_.path().string(), ": tensor '", stored, "' has shape ",
                                value.shape(), ", the architecture expects ", expected);
        return value.to(dtype::f32).contiguous();
    }

    /// Stored tensors no parameter request has read, apart from those a loader may ignore (the
    /// scalars OpenAI's checkpoints carry, BatchNorm's step counter, HF's position_ids buffers).
    /// After a model is built from this checkpoint, any left means parts of the network this
    /// library does not implement (OpenCLIP's layer scale, an attention pooler, ...) or a
    /// config that does not match the weights: outputs would silently be wrong.
    std::vector<std::string> unused() const {
        std::vector<std::string> out;
        const auto ends = [](const std::string& name, std::string_view tail) {
            return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
        };
        for (const std::string& name : names_) {
            if (used_.count(name) || name == "input_resolution" || name == "context_length" || name == "vocab_size" ||
                ends(name, "num_batches_tracked") || ends(name, "position_ids"))
                continue;
            out.push_back(name);
        }
        return out;
    }

    /// The architecture as OpenAI's build_model infers it from the shapes (QuickGELU, 64-wide heads).
    clip_config infer_config() const {
        clip_config c;
        const std::string file = file_.path().string();
        // Each tensor read must have its rank (conv.back() of a scalar read outside the shape) and
        // extents within clip_config::max_extent (an empty tensor may declare any extent, and the
        // products below overflowed).
        const auto dims = [&](const std::string& name, int rank) {
            const clip::shape s = fetch(name).shape();
            detail::check<io_error>(s.size() == rank && std::all_of(s.begin(), s.end(), [](std::int64_t e) {
                                        return e <= clip_config::max_extent;
                                    }),
                                    file, ": tensor '", name, "' has shape ", s, "; a CLIP model's has ", rank,
                                    " dimensions of at most ", clip_config::max_extent);
            return s;
        };
        if (scheme_ == naming_scheme::openai) {
            const bool vit = file_.contains("visual.proj");
            if (vit) {
                const clip::shape conv = dims("visual.conv1.weight", 4);
                c.vision.kind = vision_kind::vit;
                c.vision.width = conv[0];
                c.vision.patch_size = conv.back();
                c.vision.layers = detail::count_indexed(names_, "visual.transformer.resblocks.");
                const std::int64_t grid = detail::integer_sqrt(dims("visual.positional_embedding", 2)[0] - 1);
                c.vision.image_size = c.vision.patch_size * grid;
                c.vision.heads = c.vision.width / 64;
            } else {
                c.vision.kind = vision_kind::resnet;
                for (int i = 0; i < 4; ++i)
                    c.vision.resnet_layers[static_cast<std::size_t>(i)] =
                        detail::count_indexed(names_, "visual.layer" + std::to_string(i + 1) + ".");
                c.vision.width = dims("visual.layer1.0.conv1.weight", 4)[0];
                c.vision.image_size = detail::integer_sqrt(dims("visual.attnpool.positional_embedding", 2)[0] - 1) * 32;
                c.vision.heads = c.vision.width * 32 / 64;
            }
            c.embed_dim = dims("text_projection", 2)[1];
            c.text.context_length = dims("positional_embedding", 2)[0];
            c.text.vocab_size = dims("token_embedding.weight", 2)[0];
            c.text.width = dims("ln_final.weight", 1)[0];
            c.text.layers = detail::count_indexed(names_, "transformer.resblocks.");
        } else {
            const clip::shape conv = dims("vision_model.embeddings.patch_embedding.weight", 4);
            c.vision.kind = vision_kind::vit;
            c.vision.width = conv[0];
            c.vision.patch_size = conv.back();
            c.vision.layers = detail::count_indexed(names_, "vision_model.encoder.layers.");
            const std::int64_t grid =
                detail::integer_sqrt(dims("vision_model.embeddings.position_embedding.weight", 2)[0] - 1);
            c.vision.image_size = c.vision.patch_size * grid;
            c.vision.heads = c.vision.width / 64;
            c.embed_dim = dims("visual_projection.weight", 2)[0];
            c.text.context_length = dims("text_model.embeddings.position_embedding.weight", 2)[0];
            c.text.vocab_size = dims("text_model.embeddings.token_embedding.weight", 2)[0];
            c.text.width = dims("text_model.final_layer_norm.weight", 1)[0];
            c.text.layers = detail::count_indexed(names_, "text_model.encoder.layers.");
        }
        c.text.heads = std::max<std::int64_t>(1, c.text.width / 64);
        c.vision.heads = std::max<std::int64_t>(1, c.vision.heads);
        // Validated here so that a failure names the file (model::build's check would not).
        try {
            c.validate();
        } catch (const error& e) {
            throw io_error(detail::message(file, ": the architecture inferred from the tensor shapes is invalid: ", e.what()));
        }
        return c;
    }

private:
    using part = detail::hf_part;
    static std::pair<std::string, part> translate(const std::string& name) { return detail::huggingface_name(name); }

    tensor fetch(const std::string& name) const {
        detail::check<io_error>(file_.contains(name), file_.path().string(), ": tensor '", name,
                                "' is missing (naming scheme ", naming_scheme_name(scheme_), ")");
        used_.insert(name);
        return file_.get(name);
    }

    static std::string qkv_suffix(const std::string& name) {
        return name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0 ? ".weight" : ".bias";
    }

    naming_scheme detect() const {
        if (file_.contains("visual.conv1.weight") || file_.contains("token_embedding.weight")) return naming_scheme::openai;
        if (file_.contains("vision_model.embeddings.patch_embedding.weight") ||
            file_.contains("text_model.embeddings.token_embedding.weight"))
            return naming_scheme::huggingface;
        std::string sample;
        for (std::size_t i = 0; i < std::min<std::size_t>(names_.size(), 5); ++i) sample += (i ? ", " : "") + names_[i];
        throw io_error(detail::message(file_.path().string(), ": unknown naming scheme: neither OpenAI/OpenCLIP names ",
                                       "(visual.conv1.weight, token_embedding.weight) nor Hugging Face CLIPModel names ",
                                       "(vision_model.embeddings.patch_embedding.weight) are present; first tensors: ",
                                       sample.empty() ? "(none)" : sample));
    }

    safetensors file_;
    std::vector<std::string> names_;
    naming_scheme scheme_ = naming_scheme::openai;
    mutable std::set<std::string, std::less<>> used_;
};

/// Reads an OpenCLIP model config (`embed_dim`, `vision_cfg`, `text_cfg`, `quick_gelu`) or a
/// Hugging Face CLIPConfig (`projection_dim`, `vision_config`, `text_config`, `hidden_act`).
inline clip_config read_config(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    detail::check<io_error>(static_cast<bool>(in), path.string(), ": cannot open the model config");
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    nlohmann::json j = detail::parse_json(text, path.string()); // a key given twice is an error, as everywhere
    const std::string file = path.string();
    // Every number read here is an extent or a count. Checked before use: the head counts are
    // computed from them before validate() runs (a head_width of 0 divided by zero, a width of
    // 2^62 overflowed), and get<std::int64_t>() of 1e20 is undefined behaviour.
    const auto extent = [&](const nlohmann::json& value, const std::string& key) -> std::int64_t {
        detail::check<io_error>(value.is_number_unsigned() && value.get<std::uint64_t>() >= 1 &&
                                    value.get<std::uint64_t>() <= static_cast<std::uint64_t>(clip_config::max_extent),
                                file, ": '", key, "' must be an integer from 1 to ", clip_config::max_extent, ", it is ",
                                value.dump());
        return value.get<std::int64_t>();
    };
    const auto number = [&](const nlohmann::json& object, const char* key, std::int64_t fallback) -> std::int64_t {
        if (!object.contains(key)) return fallback;
        return extent(object[key], key);
    };
    // The Hugging Face Hub's open_clip_config.json wraps the model config in "model_cfg".
    if (j.is_object() && j.contains("model_cfg") && j["model_cfg"].is_object() && !j.contains("vision_cfg")) {
        nlohmann::json inner = j["model_cfg"];
        j = std::move(inner);
    }
    try {
        clip_config c;
        if (j.contains("vision_cfg") && j.contains("text_cfg")) { // OpenCLIP
            const nlohmann::json& v = j["vision_cfg"];
            const nlohmann::json& t = j["text_cfg"];
            // Options that change the network without changing the names of the weights this
            // library reads: refused rather than silently ignored.
            const auto refuse = [&](const nlohmann::json& cfg, const char* section, const char* key, auto is_default) {
                if (cfg.contains(key) && !cfg[key].is_null() && !is_default(cfg[key]))
                    throw io_error(detail::message(file, ": ", section, ".", key, " = ", cfg[key].dump(),
                                                   " is not supported (clip implements OpenAI's CLIP architecture)"));
            };
            const auto is_false = [](const nlohmann::json& x) { return x.is_boolean() && !x.get<bool>(); };
            const auto is_empty = [](const nlohmann::json& x) { return x.empty() || (x.is_string() && x.get<std::string>().empty()); };
            const auto is = [](const char* value) { return [value](const nlohmann::json& x) { return x.is_string() && x.get<std::string>() == value; }; };
            for (const char* key : {"no_ln_pre", "attentional_pool", "final_ln_after_pool", "output_tokens", "input_patchnorm",
                                    "global_average_pool"})
                refuse(v, "vision_cfg", key, is_false);
            for (const char* key : {"timm_model_name", "ls_init_value", "act_kwargs", "norm_kwargs"}) refuse(v, "vision_cfg", key, is_empty);
            refuse(v, "vision_cfg", "pool_type", is("tok"));
            for (const char* key : {"embed_cls", "no_causal_mask", "proj_bias", "output_tokens"}) refuse(t, "text_cfg", key, is_false);
            for (const char* key : {"hf_model_name", "ls_init_value", "act_kwargs", "norm_kwargs"}) refuse(t, "text_cfg", key, is_empty);
            refuse(t, "text_cfg", "pool_type", is("argmax"));
            refuse(t, "text_cfg", "proj_type", is("linear"));
            c.embed_dim = number(j, "embed_dim", c.embed_dim);
            c.act = j.value("quick_gelu", false) ? activation::quick_gelu : activation::gelu;
            c.vision.image_size = number(v, "image_size", 224);
            c.vision.width = number(v, "width", 768);
            const std::int64_t head_width = number(v, "head_width", 64);
            if (v.contains("layers") && v["layers"].is_array()) {
                detail::check<io_error>(v["layers"].size() == 4, file, ": vision_cfg.layers must list 4 stages");
                c.vision.kind = vision_kind::resnet;
                for (std::size_t i = 0; i < 4; ++i) c.vision.resnet_layers[i] = extent(v["layers"][i], "layers");
                c.vision.heads = c.vision.width * 32 / head_width;
            } else {
                c.vision.kind = vision_kind::vit;
                c.vision.layers = number(v, "layers", 12);
                c.vision.patch_size = number(v, "patch_size", 16);
                c.vision.heads = c.vision.width / head_width;
            }
            c.text.context_length = number(t, "context_length", 77);
            c.text.vocab_size = number(t, "vocab_size", 49408);
            c.text.width = number(t, "width", 512);
            c.text.heads = number(t, "heads", 8);
            c.text.layers = number(t, "layers", 12);
        } else if (j.contains("vision_config") && j.contains("text_config")) { // Hugging Face
            const nlohmann::json& v = j["vision_config"];
            const nlohmann::json& t = j["text_config"];
            c.embed_dim = number(j, "projection_dim", 512);
            const std::string act = t.value("hidden_act", std::string("quick_gelu"));
            detail::check<io_error>(act == "quick_gelu" || act == "gelu", file, ": unsupported hidden_act '", act, "'");
            c.act = act == "gelu" ? activation::gelu : activation::quick_gelu;
            // As a double: a value beyond float's range would make the conversion undefined.
            const double eps = t.value("layer_norm_eps", 1e-5);
            detail::check<io_error>(eps > 0 && eps < 1, file, ": text_config.layer_norm_eps must be in (0, 1), it is ", eps);
            c.layer_norm_eps = static_cast<float>(eps);
            c.vision.kind = vision_kind::vit;
            c.vision.image_size = number(v, "image_size", 224);
            c.vision.width = number(v, "hidden_size", 768);
            c.vision.layers = number(v, "num_hidden_layers", 12);
            c.vision.patch_size = number(v, "patch_size", 32);
            c.vision.heads = number(v, "num_attention_heads", 12);
            c.text.context_length = number(t, "max_position_embeddings", 77);
            c.text.vocab_size = number(t, "vocab_size", 49408);
            c.text.width = number(t, "hidden_size", 512);
            c.text.heads = number(t, "num_attention_heads", 8);
            c.text.layers = number(t, "num_hidden_layers", 12);
        } else {
            throw io_error(detail::message(file, ": not a model config: expected OpenCLIP's vision_cfg/text_cfg or ",
                                           "Hugging Face's vision_config/text_config"));
        }
        c.validate();
        return c;
    } catch (const nlohmann::json::exception& e) {
        throw io_error(detail::message(file, ": malformed model config: ", e.what()));
    } catch (const io_error&) {
        throw;
    } catch (const error& e) {
        throw io_error(detail::message(file, ": ", e.what()));
    }
}

} // namespace clip
