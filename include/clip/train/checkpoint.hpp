// clip/train/checkpoint.hpp: what a training run writes, and how it resumes.
//
//   save_weights(file, store, scheme)      the parameters (and a ResNet's BatchNorm buffers, as
//                                          PyTorch's state dict holds them), under the names of `scheme`:
//                                          OpenAI/OpenCLIP state-dict names, or Hugging Face
//                                          CLIPModel names (q/k/v split, projections transposed),
//                                          so the file loads wherever the run's starting
//                                          checkpoint did (clip::model::load, open_clip,
//                                          transformers)
//   save_checkpoint(dir, store, optimizer, scheme, state)
//        dir/step-00000100/weights.safetensors   save_weights
//        dir/step-00000100/state.safetensors     AdamW moments (f32, by OpenAI name), the step
//                                                count and `state` (what else the run needs to
//                                                continue identically: data position, settings)
//        dir/latest                              "step-00000100", replaced last
//   latest_checkpoint(dir)                 the directory `latest` names, if any
//   load_checkpoint(step_dir, store, optimizer) -> state: values, moments and step restored
//
// Every file is written atomically (temporary, fsync, rename) and `latest` moves only after its
// step directory is complete, so a run killed at any moment leaves the previous checkpoint
// loadable. Resuming restores every bit the next step reads, so it continues exactly as the
// uninterrupted run would have.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "clip/io/safetensors.hpp"
#include "clip/models/checkpoint.hpp"
#include "clip/train/adamw.hpp"
#include "clip/train/parameters.hpp"

namespace clip::detail {

inline std::string step_directory_name(std::int64_t step) {
    char name[32];
    std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
    return name;
}

} // namespace clip::detail

namespace clip::train {

/// The parameters of `store` as a state dict in `scheme`'s names (values are views or copies),
/// then its buffers (a ResNet's running statistics: OpenAI names only).
inline std::vector<std::pair<std::string, tensor>> state_dict(const parameter_store& store, naming_scheme scheme) {
    std::vector<std::pair<std::string, tensor>> out;
    // Hugging Face's CLIPModel has a ViT image tower and no SigLIP bias.
    detail::check(scheme == naming_scheme::openai || store.config().vision.kind == vision_kind::vit, "save_weights: a ",
                  "ModifiedResNet tower has no Hugging Face CLIPModel names: save with OpenAI names");
    for (const parameter& p : store.parameters()) {
        if (scheme == naming_scheme::openai) {
            out.emplace_back(p.name, p.value);
            continue;
        }
        detail::check(p.name != "logit_bias", "save_weights: 'logit_bias' (SigLIP) has no Hugging Face CLIPModel name: save ",
                      "with OpenAI names");
        const auto [name, part] = detail::huggingface_name(p.name);
        if (part == detail::hf_part::plain) {
            out.emplace_back(name, p.value);
        } else if (part == detail::hf_part::transposed) {
            out.emplace_back(name, p.value.t().contiguous());
        } else {
            const std::int64_t n = p.value.size(0) / 3;
            const std::string suffix = p.value.ndim() == 2 ? ".weight" : ".bias";
            out.emplace_back(name + "q_proj" + suffix, p.value.slice(0, 0, n));
            out.emplace_back(name + "k_proj" + suffix, p.value.slice(0, n, 2 * n));
            out.emplace_back(name + "v_proj" + suffix, p.value.slice(0, 2 * n, 3 * n));
        }
    }
    for (const model_buffer& b : store.buffers()) out.emplace_back(b.name, b.value);
    return out;
}

/// Writes the parameters under `scheme`'s names, atomically.
inline void save_weights(const std::filesystem::path& file, const parameter_store& store, naming_scheme scheme,
                         std::map<std::string, std::string> metadata = {}) {
    metadata.emplace("format", "pt"); // safetensors' PyTorch loader reads it as its own
    save_safetensors(file, state_dict(store, scheme), metadata);
}

/// The rest of a run's state, as strings (the caller serialises its own structures).
using run_state = std::map<std::string, std::string>;


/// Writes a resumable checkpoint of step `optimizer.steps()` under `dir` (see the top of the
/// file) and returns its step directory.
inline std::filesystem::path save_checkpoint(const std::filesystem::path& dir, const parameter_store& store, const adamw& optimizer,
                                             naming_scheme scheme, const run_state& state) {
    namespace fs = std::filesystem;
    std::error_code code;
    fs::create_directories(dir, code);
    if (code) throw io_error(detail::message("save_checkpoint: cannot create \"", dir.string(), "\": ", code.message()));
    const std::string name = detail::step_directory_name(optimizer.steps());
    const fs::path step_dir = dir / name;
    fs::create_directories(step_dir, code);
    if (code) throw io_error(detail::message("save_checkpoint: cannot create \"", step_dir.string(), "\": ", code.message()));

    save_weights(step_dir / "weights.safetensors", store, scheme, {{"step", std::to_string(optimizer.steps())}});
    std::vector<std::pair<std::string, tensor>> moments;
    for (const parameter& p : store.parameters()) {
        moments.emplace_back("exp_avg." + p.name, optimizer.exp_avg(p.name).view(p.value.shape()));
        moments.emplace_back("exp_avg_sq." + p.name, optimizer.exp_avg_sq(p.name).view(p.value.shape()));
    }
    std::map<std::string, std::string> meta(state.begin(), state.end());
    meta["clip.step"] = std::to_string(optimizer.steps());
    meta["clip.scheme"] = std::string(naming_scheme_name(scheme));
    save_safetensors(step_dir / "state.safetensors", moments, meta);
    // The pointer moves last, through the same atomic write.
    const std::string text = name + "\n";
    detail::atomic_file latest(dir / "latest", "save_checkpoint");
    latest.write(text.data(), text.size());
    latest.commit();
    return step_dir;
}

/// The step directory `dir/latest` names, if it exists.
inline std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& dir) {
    std::ifstream in(dir / "latest");
    std::string name;
    if (!in || !std::getline(in, name) || name.empty()) return std::nullopt;
    const std::filesystem::path step_dir = dir / name;
    std::error_code code;
    if (!std::filesystem::is_directory(step_dir, code))
        throw io_error(detail::message("\"", (dir / "latest").string(), "\" names \"", name, "\", which is not a directory"));
    return step_dir;
}

/// Restores the parameters, a ResNet's BatchNorm buffers, AdamW's moments and its step count from
/// a step directory written by save_checkpoint; returns the run state stored with them. The store and the optimiser must be
/// of the same architecture (every tensor is checked).
inline run_state load_checkpoint(const std::filesystem::path& step_dir, parameter_store& store, adamw& optimizer) {
    const std::filesystem::path weights = step_dir / "weights.safetensors", state_file = step_dir / "state.safetensors";
    checkpoint source(weights);
    const safetensors state = safetensors::open(state_file);
    const auto& meta = state.metadata();
    const auto step = meta.find("clip.step");
    detail::check<io_error>(step != meta.end(), state_file.string(), ": no clip.step: not a state file written by save_checkpoint");
    const auto weights_step = source.file().metadata().find("step");
    detail::check<io_error>(weights_step != source.file().metadata().end() && weights_step->second == step->second,
                            step_dir.string(), ": weights and state are of different steps");
    for (const parameter& p : store.parameters()) {
        p.value.copy_from(source.get(p.name, p.value.shape()).to(p.value.device()));
        for (const char* moment : {"exp_avg.", "exp_avg_sq."}) {
            const std::string name = moment + p.name;
            const tensor saved = state.get(name);
            detail::check<io_error>(saved.shape() == p.value.shape() && saved.dtype() == dtype::f32, state_file.string(), ": '", name,
                                    "' is ", saved.dtype(), " ", saved.shape(), ", expected f32 ", p.value.shape());
            const tensor& target = moment[7] == '.' ? optimizer.exp_avg(p.name) : optimizer.exp_avg_sq(p.name);
            target.view(p.value.shape()).copy_from(saved.to(target.device()));
        }
    }
    for (const model_buffer& b : store.buffers()) b.value.copy_from(source.get(b.name, b.value.shape()).to(b.value.device()));
    optimizer.resume_at(std::stoll(step->second));
    return run_state(meta.begin(), meta.end());
}

} // namespace clip::train
