// examples/clip/search.hpp: `clip search`: the images of an index (`clip index`) nearest to text
// or image queries, by cosine similarity of their embeddings.
//
//   out: per query, the top-k images with their scores; with --json one JSON object per query
//        and line: {"query": TEXT or FILE, "kind": "text"|"image", "results": [{"path", "score"}]}
// The model must be the one that built the index (the index records its fingerprint).
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "common.hpp"

namespace clip_tool {

struct search_options {
    std::string device = "cpu";
    std::string index;
    std::string model;
    std::string config;
    std::string vocab;
    std::vector<std::string> texts;
    std::vector<std::string> images;
    int top_k = 10;
    bool json = false;
    bool exact = false;
    int ef = 0;
    bool truncate = false;
    int threads = 0;
};

inline CLI::App* add_search_command(CLI::App& app, search_options& o) {
    CLI::App* cmd = app.add_subcommand("search", "Nearest images of an index to text or image queries");
    cmd->add_option("--index", o.index, "Index file written by `clip index`")->required()->type_name("INDEX");
    cmd->add_option("--model", o.model, "The checkpoint or preset that built the index")->required();
    cmd->add_option("--config", o.config, "Model config JSON, as given to `clip index`");
    cmd->add_option("--vocab", o.vocab, "BPE vocabulary for --text (default: $CLIP_VOCAB, else beside the model file)")->type_name("FILE");
    cmd->add_option("--text", o.texts, "Text queries")->type_name("TEXT");
    cmd->add_option("--image", o.images, "Image queries (JPEG, PNG)")->type_name("FILE");
    cmd->add_option("--top-k", o.top_k, "Results per query")->capture_default_str()->check(at_least(1));
    cmd->add_flag("--json", o.json, "One JSON object per query and line: query, kind, results [{path, score}]");
    cmd->add_flag("--exact", o.exact, "Brute force even when the index has an HNSW graph");
    cmd->add_option("--ef", o.ef, "HNSW candidate list size (default max(512, 16 * top-k)); larger is slower and more exact")
        ->check(at_least(1));
    cmd->add_flag("--truncate", o.truncate, "Cut a --text too long for the context instead of failing");
    cmd->add_option("--threads", o.threads, "Threads (default: CLIP_NUM_THREADS, else all cores)")->check(at_least(1));
    cmd->add_option("--device", o.device, "Where the model runs: cpu, cuda or cuda:N")->capture_default_str();
    cmd->footer("Scores are cosine similarities between the query's and the images' embeddings.\n"
                "Examples:\n"
                "  clip search --index pictures.index --model ViT-B-32.safetensors --text \"a dog on a beach\"\n"
                "  clip search --index pictures.index --model ViT-B-32.safetensors --image query.jpg --top-k 5 --json");
    return cmd;
}

inline void run_search(const search_options& o) {
    if (o.texts.empty() && o.images.empty()) throw clip::error("search: give at least one query with --text or --image");
    if (o.threads > 0) clip::set_num_threads(o.threads);
    const clip::embedding_index index = [&] {
        std::error_code code;
        if (!std::filesystem::exists(o.index, code)) throw clip::io_error(message("--index ", o.index, ": no such file"));
        return clip::embedding_index::load(o.index);
    }();
    opened_model opened = open_model(o.model, o.config);
    if (const clip::device where = parse_device(o.device); where.is_cuda()) opened.model = opened.model.to(where);
    const std::string identity = model_identity(opened, o.config);
    if (index.model() != identity) {
        const auto name = index.info().find("model_name");
        throw clip::error(message("--index ", o.index, " was built by another model (",
                                  name != index.info().end() ? name->second : std::string("unnamed"), ": ", index.model(),
                                  "); --model ", o.model, " is ", identity, ": its embeddings cannot be compared"));
    }

    // Queries: texts first, then images, as given.
    std::vector<std::pair<std::string, std::string>> queries; // kind, text or file
    std::vector<clip::tensor> features;
    if (!o.texts.empty()) {
        const clip::tokenizer tokenizer = load_tokenizer(o.vocab, opened, o.model);
        features.push_back(opened.model.encode_text(tokenize_texts(tokenizer, o.texts, opened.model.config().text.context_length, o.truncate)).to(clip::device::cpu()));
        for (const std::string& t : o.texts) queries.emplace_back("text", t);
    }
    if (!o.images.empty()) {
        const std::vector<std::filesystem::path> files(o.images.begin(), o.images.end());
        features.push_back(opened.model.encode_image(clip::preprocess(files, opened.model.config().vision.image_size)).to(clip::device::cpu()));
        for (const std::string& f : o.images) queries.emplace_back("image", f);
    }
    clip::tensor all = clip::tensor::empty({static_cast<std::int64_t>(queries.size()), opened.model.config().embed_dim});
    std::int64_t at = 0;
    for (const clip::tensor& f : features) {
        all.slice(0, at, at + f.size(0)).copy_from(f);
        at += f.size(0);
    }
    const clip::hits hits = index.search(all, o.top_k, {.exact = o.exact, .ef = o.ef});

    const std::int64_t k = hits.indices.size(1);
    for (std::size_t q = 0; q < queries.size(); ++q) {
        const std::int64_t* rows = hits.indices.data<std::int64_t>() + static_cast<std::int64_t>(q) * k;
        const float* scores = hits.scores.data<float>() + static_cast<std::int64_t>(q) * k;
        if (o.json) {
            nlohmann::json line = {{"query", queries[q].second}, {"kind", queries[q].first}, {"results", nlohmann::json::array()}};
            for (std::int64_t j = 0; j < k; ++j)
                if (rows[j] >= 0)
                    line["results"].push_back({{"path", index.paths()[static_cast<std::size_t>(rows[j])]}, {"score", static_cast<double>(scores[j])}});
            std::cout << line.dump() << '\n';
        } else {
            std::cout << queries[q].first << ": " << queries[q].second << '\n';
            for (std::int64_t j = 0; j < k; ++j) {
                if (rows[j] < 0) continue;
                char score[32];
                std::snprintf(score, sizeof score, "%8.4f", static_cast<double>(scores[j]));
                std::cout << score << "  " << index.paths()[static_cast<std::size_t>(rows[j])] << '\n';
            }
        }
    }
}

} // namespace clip_tool
