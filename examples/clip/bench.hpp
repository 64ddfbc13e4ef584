// examples/clip/bench.hpp: `clip bench`: encoder throughput on random inputs, one JSON line per
// (threads, batch) measurement, with the fields of ../shared/peers/bench_torch.py so the two can
// be compared line by line.
//
// Inputs follow bench_torch.py: images N(0, 1) [B, 3, R, R]; token rows [SOT, random ids, EOT,
// 0...] with SOT = vocab - 2 and EOT = vocab - 1, so the EOT is the row's largest id and argmax
// pooling finds it for any vocabulary. --text-length sets how many tokens a row has: the text
// tower computes positions up to the batch's last EOT only, so the default, full rows, times the
// same work as the peers (which compute all positions whatever the caption). The weights' values do not affect the speed, so a
// preset is built with random OpenAI initialisation (seed 0).
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <optional>
#include <random>
#include <vector>

#include "common.hpp"

namespace clip_tool {

struct bench_options {
    std::string model = "ViT-B/32";
    std::string config;
    std::string task = "encode_image";
    std::vector<int> batches{8};
    std::vector<int> threads;  ///< empty: the library's default
    int iters = 10;
    int warmup = 2;
    bool json = false;
    std::string text_length = "full";
    std::string device = "cpu";
    std::string dtype = "float32";
    std::string precision = "f32";
    bool tf32 = false;
};

inline CLI::App* add_bench_command(CLI::App& app, bench_options& o) {
    CLI::App* cmd = app.add_subcommand("bench", "Encoder throughput on random inputs (JSON lines like bench_torch.py)");
    cmd->add_option("--model", o.model, "Preset (random init, seed 0) or checkpoint (.safetensors)")->capture_default_str();
    cmd->add_option("--config", o.config, "Model config JSON for a checkpoint; default: infer from shapes");
    cmd->add_option("--device", o.device, "cpu, or cuda / cuda:N (weights and inputs on the GPU, timed to completion)")
        ->capture_default_str();
    cmd->add_option("--precision", o.precision, "f32, or int8 (CPU: int8 transformer products, see docs/models.md)")
        ->capture_default_str()
        ->check(CLI::IsMember({"f32", "int8"}));
    cmd->add_flag("--tf32", o.tf32, "On CUDA, let f32 products use TF32 tensor cores");
    cmd->add_option("--dtype", o.dtype, "Weights and products on CUDA: float32, bfloat16 or float16 (f32 accumulation)")
        ->capture_default_str()
        ->check(CLI::IsMember({"float32", "bfloat16", "float16"}));
    cmd->add_option("--task", o.task, "What to time")
        ->capture_default_str()
        ->check(CLI::IsMember({"encode_image", "encode_text", "train_step"}));
    cmd->add_option("--batch", o.batches, "Batch size(s), e.g. 1,8,32: one measurement each")
        ->delimiter(',')
        ->capture_default_str()
        ->check(at_least(1));
    cmd->add_option("--threads", o.threads, "Thread count(s), e.g. 1,2 (default: CLIP_NUM_THREADS, else all cores)")
        ->delimiter(',')
        ->check(at_least(1));
    cmd->add_option("--iters", o.iters, "Timed calls per measurement (the median is reported)")
        ->capture_default_str()
        ->check(at_least(1));
    cmd->add_option("--warmup", o.warmup, "Untimed calls first (the first one creates the oneDNN plans)")
        ->capture_default_str()
        ->check(at_least(0));
    cmd->add_option("--text-length", o.text_length,
                    "encode_text rows: full (EOT in the last slot: all positions computed, as the peers do), "
                    "captions (8-20 tokens, real caption lengths; the tower stops at the batch's last EOT), or N tokens")
        ->capture_default_str()
        ->check([](const std::string& v) -> std::string {
            if (v == "full" || v == "captions") return {};
            return !v.empty() && v.find_first_not_of("0123456789") == std::string::npos && std::stoll(v) >= 2
                       ? std::string()
                       : "must be full, captions or a token count of at least 2";
        });
    cmd->add_flag("--json", o.json, "Print only the JSON lines");
    cmd->footer("Fields: peer, model, task, batch, threads, device, dtype, items_per_s (batch / median),\n"
                "ms_per_batch (median), cold_ms (first call, plans included), iters, peak_rss_mb (the\n"
                "process's peak so far).");
    return cmd;
}

namespace detail {

/// [B, ctx] i64 rows: SOT, random ids in [1, vocab - 3], EOT, zero padding. `length` "full"
/// puts the EOT in the last slot (every position is computed, as the peers compute them all);
/// "captions" draws 8 to 20 tokens a row (SOT and EOT included), the length of real captions; a
/// number gives every row that many tokens.
inline clip::tensor random_tokens(const clip::clip_config& c, std::int64_t batch, const std::string& length, std::uint64_t seed) {
    const std::int64_t ctx = c.text.context_length, vocab = c.text.vocab_size;
    clip::tensor tokens = clip::tensor::zeros({batch, ctx}, clip::dtype::i64); // [B, ctx]
    std::mt19937_64 rng(seed);
    auto* row = tokens.data<std::int64_t>();
    for (std::int64_t b = 0; b < batch; ++b, row += ctx) {
        const std::int64_t n = length == "full"       ? ctx
                               : length == "captions" ? 8 + static_cast<std::int64_t>(rng() % 13)
                                                      : std::stoll(length);
        const std::int64_t used = std::clamp<std::int64_t>(n, 2, ctx);
        row[0] = vocab - 2;
        for (std::int64_t i = 1; i < used - 1; ++i)
            row[i] = 1 + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(std::max<std::int64_t>(vocab - 3, 1)));
        row[used - 1] = vocab - 1;
    }
    return tokens;
}

inline double peak_rss_mb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0; // ru_maxrss is in KiB on Linux
}

inline double rounded(double value, int decimals) {
    const double scale = std::pow(10.0, decimals);
    return std::round(value * scale) / scale;
}

template <class F>
double seconds(F&& call) {
    const auto start = std::chrono::steady_clock::now();
    call();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace detail

/// bench_torch.py's "small" training configuration (not an OpenAI model): ViT image 64, patch 8,
/// width 256, 4 layers; text width 256, 4 heads, 4 layers, context 77; embeddings of 256.
inline clip::clip_config small_config() {
    clip::clip_config c = clip::detail::make_vit(256, 64, 4, 256, 8, 256, 4);
    c.text.heads = 4;
    return c;
}

inline void run_bench(const bench_options& o) {
    const bool train_task = o.task == "train_step";
    if (o.model == "small" && !train_task)
        throw clip::error("bench: --model small is the training configuration; use it with --task train_step");
    const clip::device where = parse_device(o.device);
#if defined(CLIP_WITH_CUDA)
    clip::set_allow_tf32(o.tf32);
#endif
    opened_model opened = o.model == "small" ? opened_model{clip::model::random(small_config(), 0), "small", true}
                                             : open_model(o.model, o.config);
    const clip::dtype weights = o.dtype == "bfloat16" ? clip::dtype::bf16 : o.dtype == "float16" ? clip::dtype::f16 : clip::dtype::f32;
    if (!train_task && (where.is_cuda() || weights != clip::dtype::f32)) opened.model = opened.model.to(where, weights);
    if (o.precision == "int8") {
        if (train_task) throw clip::error("bench: --precision int8 is for inference; --task train_step trains in f32");
        opened.model = opened.model.quantized_int8();
    }
    const clip::clip_config& c = opened.model.config();
    const bool image_task = o.task == "encode_image";
    // train_step: both towers, ClipLoss, backward and AdamW (lr 1e-5, weight decay 0.1) on one
    // batch, as bench_torch.py --task train_step does.
    std::optional<clip::train::parameter_store> store;
    if (train_task) store.emplace(clip::train::parameter_store::random(c, 0).to(where));
    const std::vector<int> thread_counts = o.threads.empty() ? std::vector<int>{clip::num_threads()} : o.threads;

    for (const int threads : thread_counts) {
        clip::set_num_threads(threads);
        for (const int batch : o.batches) {
            const std::int64_t R = c.vision.image_size;
            const clip::tensor images = image_task || train_task ? clip::rand_normal({batch, 3, R, R}, 1).to(where) : clip::tensor{}; // [B, 3, R, R]
            const clip::tensor tokens = image_task ? clip::tensor{} : detail::random_tokens(c, batch, o.text_length, 2); // [B, ctx]
            std::optional<clip::train::clip_model> trainer;
            std::optional<clip::train::adamw> optimizer;
            if (train_task) {
                store->zero_grad();
                trainer.emplace(*store);
                trainer->set_precision(weights); // bf16: mixed precision (GPU only)
                optimizer.emplace(*store, clip::train::adamw_options{.lr = 1e-5, .weight_decay = 0.1});
            }
            const auto call = [&] {
                if (train_task) {
                    store->zero_grad();
                    (void)trainer->forward(images, tokens);
                    trainer->backward();
                    optimizer->step();
                    if (where.is_cuda()) (void)store->at("logit_scale").value.item<float>(); // waits for the GPU
                    return;
                }
                const clip::tensor out = image_task ? opened.model.encode_image(images) : opened.model.encode_text(tokens);
                if (where.is_cuda()) (void)out.to(clip::device::cpu()); // waits for the GPU
            };
            double cold = 0.0;
            for (int i = 0; i < o.warmup; ++i) {
                const double s = detail::seconds(call);
                if (i == 0) cold = s;
            }
            std::vector<double> times(static_cast<std::size_t>(o.iters));
            for (double& t : times) t = detail::seconds(call);
            std::sort(times.begin(), times.end());
            const std::size_t n = times.size();
            const double median = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);

            nlohmann::ordered_json row;
            row["peer"] = "clip";
            row["model"] = opened.name;
            row["task"] = o.task;
            row["batch"] = batch;
            row["threads"] = threads;
            row["device"] = where.is_cuda() ? "cuda" : "cpu";
            row["dtype"] = o.precision == "int8" ? "int8" : weights != clip::dtype::f32 ? o.dtype : where.is_cuda() && o.tf32 ? "tf32" : "float32";
            if (!image_task) row["text_length"] = o.text_length;
            if (train_task) row["variant"] = "clip_loss+adamw";
            row["items_per_s"] = detail::rounded(batch / median, 3);
            row["ms_per_batch"] = detail::rounded(1e3 * median, 3);
            if (o.warmup > 0) row["cold_ms"] = detail::rounded(1e3 * cold, 3);
            row["iters"] = o.iters;
            row["peak_rss_mb"] = detail::rounded(detail::peak_rss_mb(), 1);
            if (!o.json)
                std::cout << opened.name << ' ' << o.task << ", batch " << batch << ", " << threads << " thread"
                          << (threads == 1 ? "" : "s") << ": " << detail::rounded(1e3 * median, 2)
                          << " ms/batch (median of " << o.iters << "), " << detail::rounded(batch / median, 2)
                          << (image_task ? " images/s" : train_task ? " pairs/s" : " texts/s") << ", peak RSS "
                          << detail::rounded(detail::peak_rss_mb(), 1) << " MB\n";
            std::cout << row.dump() << std::endl; // flushed: a long sweep reports as it goes
        }
    }
}

} // namespace clip_tool
