// examples/clip/zeroshot.hpp: `clip zeroshot`: classify images among labels given in words, by
// prompt ensembling (clip/zeroshot/classifier.hpp).
//
//   out: per image, the top-k labels with their probabilities; with --json one JSON object per
//        image and line: {"image": FILE, "labels": [...], "probs": [...]} (best first)
// An image that cannot be read is reported on stderr and the others are still classified; the
// exit status is then 1.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"

namespace clip_tool {

struct zeroshot_options {
    std::string device = "cpu";
    std::string precision = "f32";
    std::string model;
    std::string config;
    std::string vocab;
    std::string labels;
    std::string labels_file;
    std::string template_text;
    std::string templates;
    std::vector<std::string> images;
    int top_k = 5;
    bool json = false;
    bool truncate = false;
    int batch = 32;
    int threads = 0;
};

inline CLI::App* add_zeroshot_command(CLI::App& app, zeroshot_options& o) {
    CLI::App* cmd = app.add_subcommand("zeroshot", "Classify images among labels given in words (zero-shot, prompt ensembling)");
    cmd->add_option("--model", o.model, "Checkpoint (.safetensors, OpenAI/OpenCLIP or Hugging Face names) or preset")->required();
    cmd->add_option("--config", o.config, "Model config JSON (OpenCLIP or Hugging Face); default: infer from shapes");
    cmd->add_option("--vocab", o.vocab, "BPE vocabulary (default: $CLIP_VOCAB, else bpe_simple_vocab_16e6.txt.gz "
                                        "or vocab.json beside the model file)")
        ->type_name("FILE");
    auto* labels = cmd->add_option("--labels", o.labels, "Comma-separated labels, e.g. \"cat,dog,car\"")->type_name("LIST");
    auto* labels_file = cmd->add_option("--labels-file", o.labels_file, "Labels, one per line")->type_name("FILE");
    labels->excludes(labels_file);
    labels_file->excludes(labels);
    auto* one = cmd->add_option("--template", o.template_text, "One prompt template, {} for the label (default: \"a photo of a {}.\")")
                    ->type_name("TEXT");
    auto* many = cmd->add_option("--templates", o.templates,
                                 "Templates: \"imagenet\" (CLIP's 80 ImageNet prompts), \"default\", or a file with one per line")
                     ->type_name("imagenet|default|FILE");
    one->excludes(many);
    many->excludes(one);
    cmd->add_option("--top-k", o.top_k, "Labels shown per image")->capture_default_str()->check(at_least(1));
    cmd->add_flag("--json", o.json, "One JSON object per image and line: image, labels, probs");
    cmd->add_flag("--truncate", o.truncate, "Cut prompts too long for the context instead of failing");
    cmd->add_option("--batch", o.batch, "Images (and prompts ×8) encoded at a time")->capture_default_str()->check(at_least(1));
    cmd->add_option("--threads", o.threads, "Threads (default: CLIP_NUM_THREADS, else all cores)")->check(at_least(1));
    cmd->add_option("--device", o.device, "Where the model runs: cpu, cuda or cuda:N")->capture_default_str();
    cmd->add_option("--precision", o.precision, "f32, or int8 on the CPU (int8 transformer products)")
        ->capture_default_str()
        ->check(CLI::IsMember({"f32", "int8"}));
    cmd->add_option("images", o.images, "Image files (JPEG, PNG)")->required()->type_name("IMAGE");
    cmd->footer("Probabilities are softmax(exp(logit_scale) * cosine) over the labels, the class embeddings averaged\n"
                "over the templates as in CLIP's ImageNet notebook.\n"
                "Examples:\n"
                "  clip zeroshot --model ViT-B-32.safetensors --labels \"cat,dog,car\" photo.jpg\n"
                "  clip zeroshot --model m.safetensors --labels-file classes.txt --templates imagenet --top-k 3 --json *.jpg");
    return cmd;
}

inline std::vector<std::string> zeroshot_templates(const zeroshot_options& o) {
    if (!o.template_text.empty()) {
        try {
            (void)clip::format_template(o.template_text, "x");
        } catch (const clip::error& e) {
            throw clip::error(message("--template: ", e.what()));
        }
        return {o.template_text};
    }
    if (o.templates.empty() || o.templates == "default") return clip::default_templates();
    if (o.templates == "imagenet") return clip::imagenet_templates();
    return clip::load_templates(o.templates);
}

/// Returns the number of images that could not be read.
inline std::size_t run_zeroshot(const zeroshot_options& o) {
    if (o.labels.empty() && o.labels_file.empty()) throw clip::error("zeroshot: give the labels with --labels or --labels-file");
    if (o.threads > 0) clip::set_num_threads(o.threads);
    // What needs no model first, so that a typo costs no model load.
    const std::vector<std::string> labels = o.labels.empty() ? clip::read_labels(o.labels_file) : clip::split_labels(o.labels);
    const std::vector<std::string> templates = zeroshot_templates(o);
    opened_model opened = open_model(o.model, o.config);
    if (const clip::device where = parse_device(o.device); where.is_cuda()) opened.model = opened.model.to(where);
    if (o.precision == "int8") opened.model = opened.model.quantized_int8();
    const clip::tokenizer tokenizer = load_tokenizer(o.vocab, opened, o.model);

    const clip::zero_shot_classifier classifier(opened.model, tokenizer, labels, templates,
                                                {.batch = static_cast<std::int64_t>(o.batch) * 8, .truncate = o.truncate});
    const std::int64_t R = opened.model.config().vision.image_size;
    std::size_t failed = 0;
    for (std::size_t first = 0; first < o.images.size(); first += static_cast<std::size_t>(o.batch)) {
        const std::size_t last = std::min(o.images.size(), first + static_cast<std::size_t>(o.batch));
        const std::vector<std::filesystem::path> files(o.images.begin() + static_cast<std::ptrdiff_t>(first),
                                                       o.images.begin() + static_cast<std::ptrdiff_t>(last));
        const clip::preprocessed_batch batch = clip::preprocess_each(files, R);
        for (const auto& failure : batch.failures) std::cerr << "clip: zeroshot: " << failure.message << '\n';
        failed += batch.failures.size();
        if (batch.loaded.empty()) continue;
        const auto ranked = classifier.classify(opened.model, batch.images, o.top_k);
        for (std::size_t i = 0; i < batch.loaded.size(); ++i) {
            const std::string& image = o.images[first + batch.loaded[i]];
            if (o.json) {
                nlohmann::json row = {{"image", image}, {"labels", nlohmann::json::array()}, {"probs", nlohmann::json::array()}};
                for (const clip::prediction& p : ranked[i]) {
                    row["labels"].push_back(labels[static_cast<std::size_t>(p.index)]);
                    row["probs"].push_back(static_cast<double>(p.probability));
                }
                std::cout << row.dump() << '\n';
            } else {
                std::cout << image << '\n';
                for (const clip::prediction& p : ranked[i]) {
                    char probability[32];
                    std::snprintf(probability, sizeof probability, "%8.4f", static_cast<double>(p.probability));
                    std::cout << probability << "  " << labels[static_cast<std::size_t>(p.index)] << '\n';
                }
            }
        }
        std::cout.flush();
    }
    if (failed) std::cerr << "clip: zeroshot: " << failed << " of " << o.images.size() << " images could not be read\n";
    return failed;
}

} // namespace clip_tool
