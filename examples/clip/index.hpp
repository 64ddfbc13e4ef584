// examples/clip/index.hpp: `clip index`: embed every JPEG and PNG under a folder into an index
// file (clip/search/index.hpp) that `clip search` queries.
//
// Re-running on the same folder embeds only files that are new or whose size or modification
// time changed, and drops files that are gone; nothing changed, nothing written. Files that cannot
// be read are skipped and listed at the end (exit status 3: the index was written without them).
// The index is written atomically, also every --save-every seconds during a long run, so a run
// that is interrupted keeps the last complete index.
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "progress.hpp"

namespace clip_tool {

struct index_options {
    std::string device = "cpu";
    std::string model;
    std::string config;
    std::string images;
    std::string out;
    int batch = 32;
    int threads = 0;
    std::string ann = "auto";
    long long ann_threshold = 100000;
    double save_every = 300;
};

inline CLI::App* add_index_command(CLI::App& app, index_options& o) {
    CLI::App* cmd = app.add_subcommand("index", "Embed every JPEG/PNG under a folder into an index for `clip search`");
    cmd->add_option("--model", o.model, "Checkpoint (.safetensors) or preset")->required();
    cmd->add_option("--config", o.config, "Model config JSON (OpenCLIP or Hugging Face); default: infer from shapes");
    cmd->add_option("--images", o.images, "Folder searched recursively for .jpg, .jpeg and .png files")->required()->type_name("DIR");
    cmd->add_option("--out", o.out, "Index file (safetensors); an existing one is updated")->required()->type_name("INDEX");
    cmd->add_option("--batch", o.batch, "Images decoded and encoded at a time")->capture_default_str()->check(at_least(1));
    cmd->add_option("--threads", o.threads, "Threads (default: CLIP_NUM_THREADS, else all cores)")->check(at_least(1));
    cmd->add_option("--device", o.device, "Where the model runs: cpu, cuda or cuda:N")->capture_default_str();
    cmd->add_option("--ann", o.ann, "HNSW graph for approximate search: auto (from --ann-threshold images), always, never")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "always", "never"}));
    cmd->add_option("--ann-threshold", o.ann_threshold, "Index size from which --ann auto builds the graph")
        ->capture_default_str()
        ->check(at_least(1));
    cmd->add_option("--save-every", o.save_every, "Seconds between saves of the work done so far during a long run")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->footer("Exit status: 0 indexed; 1 error (nothing written); 3 written, but some files could not be read (listed).\n"
                "Example:\n"
                "  clip index --model ViT-B-32.safetensors --images ~/Pictures --out pictures.index");
    return cmd;
}

inline void report_skipped(const std::vector<std::pair<std::string, std::string>>& skipped) {
    if (skipped.empty()) return;
    std::cerr << "skipped " << skipped.size() << " file(s) that could not be read:\n";
    for (const auto& [file, why] : skipped) std::cerr << "  " << file << ": " << why << '\n';
}

/// Returns the number of files that could not be read.
inline std::size_t run_index(const index_options& o) {
    namespace fs = std::filesystem;
    using clock = std::chrono::steady_clock;
    const auto started = clock::now();
    if (o.threads > 0) clip::set_num_threads(o.threads);

    const std::vector<fs::path> files = clip::find_images(o.images);
    if (files.empty()) throw clip::error(message("--images ", o.images, ": no .jpg, .jpeg or .png files in it or below it"));
    std::optional<clip::embedding_index> old;
    std::error_code code;
    if (fs::exists(o.out, code)) {
        try {
            old = clip::embedding_index::load(o.out);
        } catch (const clip::error& e) {
            throw clip::io_error(message(e.what(), " (remove it, or choose another --out)"));
        }
    }
    opened_model opened = open_model(o.model, o.config);
    if (const clip::device where = parse_device(o.device); where.is_cuda()) opened.model = opened.model.to(where);
    const std::string identity = model_identity(opened, o.config);
    if (old && old->model() != identity) {
        const auto name = old->info().find("model_name");
        throw clip::error(message("--out ", o.out, " was built by another model (",
                                  name != old->info().end() ? name->second : std::string("unnamed"), ": ", old->model(),
                                  "); --model ", o.model, " is ", identity, ". Use the same model, or a new --out"));
    }
    const std::int64_t D = opened.model.config().embed_dim, R = opened.model.config().vision.image_size;

    // Which files keep their embedding, which are (re)embedded.
    struct entry {
        std::string path;
        clip::file_stamp stamp;
        std::int64_t old_row = -1; // row in `old`, or -1: embedded in this run
    };
    std::vector<entry> kept;
    std::vector<fs::path> pending;
    std::vector<clip::file_stamp> pending_stamps;
    std::vector<std::pair<std::string, std::string>> skipped; // file, why
    for (const fs::path& file : files) {
        clip::file_stamp stamp;
        try {
            stamp = clip::stamp_of(file);
        } catch (const clip::error& e) {
            skipped.emplace_back(file.string(), e.what());
            continue;
        }
        const std::optional<std::int64_t> row = old ? old->find(file.string()) : std::nullopt;
        if (row && old->stamps()[static_cast<std::size_t>(*row)] == stamp) {
            kept.push_back({file.string(), stamp, *row});
        } else {
            pending.push_back(file);
            pending_stamps.push_back(stamp);
        }
    }
    const std::int64_t removed = old ? old->size() - static_cast<std::int64_t>(kept.size()) -
                                           std::count_if(pending.begin(), pending.end(), [&](const fs::path& f) { return old->find(f.string()).has_value(); })
                                     : 0;

    std::vector<entry> embedded;
    std::vector<float> rows; // [embedded.size(), D]
    // The index of `kept` plus what is embedded so far, in path order.
    const auto assemble = [&] {
        std::vector<const entry*> all;
        for (const entry& e : kept) all.push_back(&e);
        for (const entry& e : embedded) all.push_back(&e);
        std::sort(all.begin(), all.end(), [](const entry* a, const entry* b) { return a->path < b->path; });
        std::vector<std::string> paths;
        std::vector<clip::file_stamp> stamps;
        clip::tensor embeddings = clip::tensor::empty({static_cast<std::int64_t>(all.size()), D});
        const float* previous = old ? old->embeddings().data<float>() : nullptr;
        for (std::size_t i = 0; i < all.size(); ++i) {
            paths.push_back(all[i]->path);
            stamps.push_back(all[i]->stamp);
            const float* src = all[i]->old_row >= 0 ? previous + all[i]->old_row * D
                                                    : rows.data() + (all[i] - embedded.data()) * D;
            std::copy_n(src, D, embeddings.data<float>() + static_cast<std::int64_t>(i) * D);
        }
        clip::embedding_index index(identity, std::move(paths), std::move(stamps), embeddings);
        index.info()["model_name"] = opened.name;
        index.info()["root"] = o.images;
        return index;
    };

    const auto wants_graph = [&](std::int64_t size) {
        return o.ann == "always" || (o.ann == "auto" && size >= o.ann_threshold);
    };
    if (pending.empty() && removed == 0 && old) {
        if (wants_graph(old->size()) == old->has_graph()) {
            std::cout << "up to date: " << o.out << " holds all " << old->size() << " images under " << o.images << '\n';
        } else {
            if (old->has_graph()) old->drop_graph();
            else old->build_graph();
            old->save(o.out);
            std::cout << "up to date: " << o.out << " holds all " << old->size() << " images under " << o.images
                      << (old->has_graph() ? "; built its HNSW graph" : "; removed its HNSW graph") << '\n';
        }
    } else {
        embedded.reserve(pending.size());
        progress_bar progress("embedding", static_cast<std::int64_t>(pending.size()));
        auto last_save = clock::now();
        for (std::size_t first = 0; first < pending.size(); first += static_cast<std::size_t>(o.batch)) {
            const std::size_t last = std::min(pending.size(), first + static_cast<std::size_t>(o.batch));
            const std::vector<fs::path> batch_files(pending.begin() + static_cast<std::ptrdiff_t>(first),
                                                    pending.begin() + static_cast<std::ptrdiff_t>(last));
            const clip::preprocessed_batch batch = clip::preprocess_each(batch_files, R);
            for (const auto& failure : batch.failures) skipped.emplace_back(failure.file.string(), failure.message);
            if (!batch.loaded.empty()) {
                const clip::tensor features = clip::l2_normalize(opened.model.encode_image(batch.images).to(clip::device::cpu())); // [B, D]
                rows.insert(rows.end(), features.data<float>(), features.data<float>() + features.numel());
                for (std::size_t i : batch.loaded)
                    embedded.push_back({pending[first + i].string(), pending_stamps[first + i], -1});
            }
            progress.update(static_cast<std::int64_t>(last));
            if (last < pending.size() && std::chrono::duration<double>(clock::now() - last_save).count() >= o.save_every) {
                assemble().save(o.out);
                last_save = clock::now();
            }
        }
        clip::embedding_index index = assemble();
        if (index.size() == 0) {
            report_skipped(skipped);
            throw clip::error(message("--images ", o.images, ": none of the ", files.size(), " image files could be read"));
        }
        if (wants_graph(index.size())) {
            std::cerr << "building the HNSW graph over " << index.size() << " embeddings...\n";
            index.build_graph();
        }
        index.save(o.out);
        const double seconds = std::chrono::duration<double>(clock::now() - started).count();
        std::cout << "indexed " << index.size() << " images into " << o.out << " (" << embedded.size() << " embedded, "
                  << kept.size() << " unchanged, " << removed << " removed" << (index.has_graph() ? ", with an HNSW graph" : "")
                  << ") in " << std::fixed << std::setprecision(1) << seconds << " s\n";
    }
    report_skipped(skipped);
    return skipped.size();
}

} // namespace clip_tool
