// examples/clip/train.hpp: `clip train`: contrastive training from scratch or from a checkpoint,
// with OpenCLIP's flags where OpenCLIP has them (clip/train/, clip/data/).
//
//   data:   --dataset-type synthetic (the built-in shapes, clip/data/synthetic.hpp), csv
//           (OpenCLIP's CSV: --csv-separator, --csv-img-key, --csv-caption-key) or webdataset
//           (tar shards: --train-data "a.tar,b.tar" or "shards-{000..009}.tar")
//   model:  --model PRESET or --config OPENCLIP.json (random OpenAI initialisation, vocab_size set
//           to the vocabulary's), or --init W.safetensors [--config C] (fine-tuning)
//   saves:  --save DIR: DIR/step-N/{weights,state}.safetensors and DIR/latest (clip/train/
//           checkpoint.hpp); weights keep the names of --init (OpenAI or Hugging Face), OpenAI
//           names from scratch. --resume DIR continues bit for bit.
// With the synthetic data, zero-shot top-1 on held-out images is measured every
// --zeroshot-frequency steps and at the end, separately for the shape-colour combinations seen
// in training and those never seen; --grid FILE.png draws test images with their predictions.
//
// Data parallel: `mpirun -np N clip train ...` (a build with MPI) trains one rank per process:
// --accum-freq micro-batches of --batch-size pairs per rank and step, disjoint rows of each
// epoch's common shuffle (clip/data/loader.hpp), features all-gathered with --gather-with-grad /
// --local-loss semantics (SigLIP: each rank's images against all texts), the loss over the
// whole step, gradients averaged (clip/train/model.hpp); rank 0 alone prints, evaluates and
// saves. Each rank uses (cores / ranks on its host) threads unless --threads says otherwise.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "clip/dist/connect.hpp"
#if CLIP_WITH_NCCL
#include "clip/dist/nccl.hpp"
#endif
#include "common.hpp"

namespace clip_tool {

struct train_options {
    std::string train_data;
    std::string dataset_type = "synthetic";
    std::string csv_separator = "\t";
    std::string csv_img_key = "filepath";
    std::string csv_caption_key = "title";
    long long train_num_samples = 20000;
    int batch_size = 64;
    double lr = 5e-4;
    double wd = 0.2;
    double beta1 = 0.9;
    double beta2 = 0.98;
    double eps = 1e-6;
    long long warmup = 100;
    std::string lr_scheduler = "cosine";
    int epochs = 0;
    long long steps = 0;
    int accum_freq = 1;
    double grad_clip_norm = 0;
    unsigned long long seed = 0;
    std::string save;
    long long save_steps = 0;
    std::string resume;
    std::string model;
    std::string init;
    std::string config;
    std::string vocab;
    std::string loss = "clip";
    bool no_augment = false;
    bool no_shuffle = false;
    long long zeroshot_frequency = 0;
    long long val_num_samples = 720;
    long long log_every = 10;
    std::string grid;
    int threads = 0;
    std::string device = "cpu";
    std::string precision = "fp32";
    bool local_loss = false;
    bool gather_with_grad = false;
    double dist_timeout = 300;
    std::string dist_backend = "mpi";
};

inline CLI::App* add_train_command(CLI::App& app, train_options& o) {
    CLI::App* cmd = app.add_subcommand("train", "Contrastive training (ClipLoss or SigLIP) from scratch or from a checkpoint");
    cmd->add_option("--train-data", o.train_data, "CSV file, or tar shards: \"a.tar,b.tar\" or \"shards-{000..009}.tar\"");
    cmd->add_option("--dataset-type", o.dataset_type, "synthetic (built-in shapes), csv or webdataset")
        ->capture_default_str()
        ->check(CLI::IsMember({"synthetic", "csv", "webdataset"}));
    cmd->add_option("--csv-separator", o.csv_separator, "CSV separator (one character; OpenCLIP's default is a tab)");
    cmd->add_option("--csv-img-key", o.csv_img_key, "CSV column of the image paths")->capture_default_str();
    cmd->add_option("--csv-caption-key", o.csv_caption_key, "CSV column of the captions")->capture_default_str();
    cmd->add_option("--train-num-samples", o.train_num_samples, "Synthetic samples per epoch")->capture_default_str()->check(at_least(1));
    cmd->add_option("--batch-size", o.batch_size, "Pairs per micro-batch and rank (a step is --accum-freq of them on each rank)")
        ->capture_default_str()
        ->check(at_least(2));
    cmd->add_option("--lr", o.lr, "Peak learning rate")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--wd", o.wd, "AdamW weight decay (not on gains, biases, logit_scale)")->capture_default_str();
    cmd->add_option("--beta1", o.beta1, "AdamW beta1")->capture_default_str();
    cmd->add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str();
    cmd->add_option("--eps", o.eps, "AdamW epsilon")->capture_default_str();
    cmd->add_option("--warmup", o.warmup, "Linear warmup steps of the cosine schedule")->capture_default_str()->check(at_least(0));
    cmd->add_option("--lr-scheduler", o.lr_scheduler, "cosine (decay to 0) or const (after the warmup), as OpenCLIP's")
        ->capture_default_str()
        ->check(CLI::IsMember({"cosine", "const"}));
    auto* epochs = cmd->add_option("--epochs", o.epochs, "Epochs (passes over the data)")->check(at_least(1));
    auto* steps = cmd->add_option("--steps", o.steps, "Optimiser steps (instead of --epochs)")->check(at_least(1));
    epochs->excludes(steps);
    steps->excludes(epochs);
    cmd->add_option("--accum-freq", o.accum_freq, "Micro-batches of --batch-size per step; the loss stays exact over the whole step")
        ->capture_default_str()
        ->check(at_least(1));
    cmd->add_option("--grad-clip-norm", o.grad_clip_norm, "Clip the gradients' global norm to this (0: off)")->capture_default_str();
    cmd->add_option("--device", o.device,
                    "Where the model trains: cpu, or cuda / cuda:N; over several ranks `cuda` is each rank's local GPU")
        ->capture_default_str();
    cmd->add_option("--precision", o.precision, "fp32, or amp_bf16: bf16 products with f32 weights, gradients and optimiser (GPU)")
        ->capture_default_str()
        ->check(CLI::IsMember({"fp32", "amp_bf16"}));
    cmd->add_option("--seed", o.seed, "Seed of initialisation, shuffling, augmentation and synthetic data")->capture_default_str();
    cmd->add_option("--save", o.save, "Checkpoint directory (DIR/step-N/, DIR/latest)")->type_name("DIR");
    cmd->add_option("--save-steps", o.save_steps, "Also save every N steps (0: at the end only)")->check(at_least(0));
    cmd->add_option("--resume", o.resume, "Continue the run saved in DIR (its latest checkpoint)")->type_name("DIR");
    auto* model = cmd->add_option("--model", o.model, "Preset to train from scratch (ViT or ResNet; OpenAI's random initialisation)");
    auto* init = cmd->add_option("--init", o.init, "Checkpoint to fine-tune (.safetensors)")->type_name("W.safetensors");
    model->excludes(init);
    init->excludes(model);
    cmd->add_option("--config", o.config, "OpenCLIP model config JSON: from scratch without --model, or the architecture of --init");
    cmd->add_option("--vocab", o.vocab, "BPE vocabulary; \"synthetic\" builds one from the synthetic captions "
                                        "(the default with --dataset-type synthetic)");
    cmd->add_option("--loss", o.loss, "clip (OpenCLIP's ClipLoss) or siglip (sigmoid loss, learnable bias)")
        ->capture_default_str()
        ->check(CLI::IsMember({"clip", "siglip"}));
    cmd->add_flag("--no-augment", o.no_augment, "Evaluation transform instead of RandomResizedCrop(scale 0.9-1)");
    cmd->add_flag("--no-shuffle", o.no_shuffle, "Every epoch in data order");
    cmd->add_option("--zeroshot-frequency", o.zeroshot_frequency, "Synthetic data: zero-shot evaluation every N steps (0: at the end)")
        ->check(at_least(0));
    cmd->add_option("--val-num-samples", o.val_num_samples, "Synthetic data: held-out images in the zero-shot evaluation")
        ->capture_default_str()
        ->check(at_least(36));
    cmd->add_option("--log-every", o.log_every, "Progress line every N steps")->capture_default_str()->check(at_least(1));
    cmd->add_option("--grid", o.grid, "Synthetic data: write test images with their predicted captions to this PNG")->type_name("FILE.png");
    cmd->add_option("--threads", o.threads, "Threads (default: CLIP_NUM_THREADS, else all cores, shared by the ranks on a host)")->check(at_least(1));
    cmd->add_flag("--local-loss", o.local_loss, "Several ranks: each rank's rows of the logits against all columns (OpenCLIP's)");
    cmd->add_flag("--gather-with-grad", o.gather_with_grad,
                  "Several ranks: gradients flow back through the gathered features (the exact global-batch gradient)");
    cmd->add_option("--dist-timeout", o.dist_timeout, "Several ranks: seconds a collective may wait for the others")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--dist-backend", o.dist_backend,
                    "Several ranks on GPUs: mpi (features and gradients through host memory) or nccl (GPU to GPU; one GPU per rank)")
        ->capture_default_str()
        ->check(CLI::IsMember({"mpi", "nccl"}));
    cmd->footer("Example (the demo: a small CLIP from scratch on the built-in shapes):\n"
                "  clip train --dataset-type synthetic --config examples/train/synthetic-small.json --batch-size 64 \\\n"
                "             --steps 2000 --lr 1e-3 --warmup 50 --wd 0.1 --save run --grid predictions.png");
    return cmd;
}

namespace detail {

/// "a-{00..02}.tar,b.tar" -> a-00.tar a-01.tar a-02.tar b.tar (OpenCLIP's braceexpand form, one
/// numeric range per item, zero padding kept).
inline std::vector<std::filesystem::path> expand_shards(const std::string& spec) {
    std::vector<std::filesystem::path> out;
    std::size_t start = 0;
    while (start <= spec.size()) {
        const std::size_t comma = spec.find_first_of(",", start);
        const std::string item = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        start = comma == std::string::npos ? spec.size() + 1 : comma + 1;
        if (item.empty()) continue;
        const std::size_t open = item.find('{'), dots = item.find("..", open == std::string::npos ? 0 : open),
                          close = item.find('}', dots == std::string::npos ? 0 : dots);
        if (open == std::string::npos || dots == std::string::npos || close == std::string::npos) {
            out.emplace_back(item);
            continue;
        }
        const std::string first = item.substr(open + 1, dots - open - 1), last = item.substr(dots + 2, close - dots - 2);
        const auto digits = [](const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; };
        if (!digits(first) || !digits(last)) throw clip::error(message("--train-data: cannot expand \"", item, "\" (expected {N..M})"));
        const long long a = std::stoll(first), b = std::stoll(last);
        if (b < a || b - a > 1'000'000) throw clip::error(message("--train-data: range {", first, "..", last, "} is empty or too large"));
        for (long long k = a; k <= b; ++k) {
            std::string number = std::to_string(k);
            if (number.size() < first.size()) number.insert(0, first.size() - number.size(), '0');
            out.emplace_back(item.substr(0, open) + number + item.substr(close + 1));
        }
    }
    return out;
}

struct zero_shot_score {
    double seen = 0, unseen = 0;
    double shape = 0, colour = 0; // the predicted pair's shape / colour right, over all images
    std::int64_t seen_count = 0, unseen_count = 0;
};

/// Zero-shot top-1 on the synthetic test split: classes are the 36 shape-colour pairs, prompts
/// ensembled over the caption templates; accuracy split by whether the pair was in training.
inline zero_shot_score synthetic_zero_shot(const clip::model& m, const clip::tokenizer& tok, const clip::synthetic_dataset& test,
                                           std::vector<int>* predictions = nullptr) {
    const clip::zero_shot_classifier classifier(m, tok, clip::synthetic_class_names(), clip::synthetic_templates());
    const std::int64_t R = m.config().vision.image_size;
    zero_shot_score score;
    const auto n = static_cast<std::int64_t>(test.size());
    for (std::int64_t first = 0; first < n; first += 128) {
        const std::int64_t last = std::min(n, first + 128);
        clip::tensor images = clip::tensor::empty({last - first, 3, R, R});
        for (std::int64_t i = first; i < last; ++i)
            images.select(0, i - first).copy_from(clip::preprocess(test.get(static_cast<std::size_t>(i)).picture, R));
        const auto ranked = classifier.classify(m, images, 1);
        for (std::int64_t i = first; i < last; ++i) {
            const clip::synthetic_attributes a = test.attributes(static_cast<std::size_t>(i));
            const auto predicted = static_cast<int>(ranked[static_cast<std::size_t>(i - first)][0].index);
            const bool right = predicted == clip::synthetic_class(a.shape, a.colour);
            score.shape += predicted / static_cast<int>(clip::synthetic_colours.size()) == a.shape;
            score.colour += predicted % static_cast<int>(clip::synthetic_colours.size()) == a.colour;
            if (predictions) predictions->push_back(predicted);
            if (clip::synthetic_held_out(a.shape, a.colour)) {
                score.unseen += right;
                ++score.unseen_count;
            } else {
                score.seen += right;
                ++score.seen_count;
            }
        }
    }
    score.shape /= static_cast<double>(std::max<std::int64_t>(n, 1));
    score.colour /= static_cast<double>(std::max<std::int64_t>(n, 1));
    if (score.seen_count) score.seen /= static_cast<double>(score.seen_count);
    if (score.unseen_count) score.unseen /= static_cast<double>(score.unseen_count);
    return score;
}

/// The first `count` test images in a grid, each captioned with its predicted class (green when
/// right, red when wrong) and, when wrong, the true one.
inline void write_prediction_grid(const std::filesystem::path& file, const clip::synthetic_dataset& test,
                                  const std::vector<int>& predictions, std::size_t count = 24) {
    const std::vector<std::string> names = clip::synthetic_class_names();
    std::vector<clip::image> images;
    std::vector<std::string> captions;
    clip::caption_grid_options options;
    options.columns = 6;
    options.scale = 2;
    options.max_lines = 3;
    for (std::size_t i = 0; i < std::min(count, predictions.size()); ++i) {
        const clip::synthetic_attributes a = test.attributes(i);
        const int truth = clip::synthetic_class(a.shape, a.colour);
        const bool right = predictions[i] == truth;
        images.push_back(test.get(i).picture);
        captions.push_back(names[static_cast<std::size_t>(predictions[i])] +
                           (right ? "" : " (is " + names[static_cast<std::size_t>(truth)] + ")") +
                           (clip::synthetic_held_out(a.shape, a.colour) ? " *unseen" : ""));
        options.caption_colours.push_back(right ? clip::rgb_colour{0, 130, 0} : clip::rgb_colour{200, 0, 0});
    }
    clip::write_png(file, clip::caption_grid(images, captions, options));
    std::cout << "wrote " << file.string() << ": " << images.size() << " test images with their predicted classes\n";
}

/// The settings a resumed run must share with the saved one to continue identically.
/// --device as a rank trains on it: `cuda` over several ranks is the GPU of the rank's index on
/// its node (the launcher's local rank, as torchrun's LOCAL_RANK picks it); `cuda:N` is that GPU.
inline clip::device training_device(const std::string& option, const clip::dist::communicator& world) {
    const clip::device where = parse_device(option);
    if (option != "cuda" || world.size() == 1) return where;
    for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"})
        if (const char* v = std::getenv(name)) return clip::device::cuda(std::atoi(v));
    return where;
}

inline std::string run_settings(const train_options& o, std::int64_t total_steps, int world_size) {
    nlohmann::ordered_json j = {{"dataset_type", o.dataset_type}, {"train_data", o.train_data},
                                {"train_num_samples", o.train_num_samples}, {"batch_size", o.batch_size},
                                {"lr", o.lr}, {"wd", o.wd}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps},
                                {"warmup", o.warmup}, {"lr_scheduler", o.lr_scheduler}, {"steps", total_steps}, {"accum_freq", o.accum_freq},
                                {"grad_clip_norm", o.grad_clip_norm}, {"seed", o.seed}, {"loss", o.loss},
                                {"augment", !o.no_augment}, {"shuffle", !o.no_shuffle}};
    // --accum-freq once split --batch-size into micro-batches; a run saved then lacks this entry
    // and is refused rather than resumed with --accum-freq times larger steps.
    if (o.accum_freq > 1) j["micro_batch_size"] = o.batch_size;
    if (o.precision != "fp32") j["precision"] = o.precision;
    if (world_size > 1) {
        j["world_size"] = world_size;
        j["local_loss"] = o.local_loss;
        j["gather_with_grad"] = o.gather_with_grad;
    }
    return j.dump();
}

} // namespace detail

inline void run_train(const train_options& o) {
    namespace fs = std::filesystem;
    using clock = std::chrono::steady_clock;
    const std::unique_ptr<clip::dist::communicator> world = clip::dist::connect(o.dist_timeout);
    const bool lead = world->rank() == 0; // prints, evaluates, saves
    if (o.threads > 0) clip::set_num_threads(o.threads);
    else if (world->size() > 1 && !std::getenv("CLIP_NUM_THREADS")) {
        const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        const int ranks_here = local ? std::max(1, std::atoi(local)) : 1;
        clip::set_num_threads(std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / ranks_here));
    }
    const bool synthetic = o.dataset_type == "synthetic";
    if (!synthetic && o.train_data.empty()) throw clip::error("train: --dataset-type " + o.dataset_type + " needs --train-data");
    if (o.model.empty() && o.init.empty() && o.config.empty())
        throw clip::error("train: give the architecture: --model PRESET, --config OPENCLIP.json, or --init W.safetensors");
    if (!o.grid.empty() && !synthetic) throw clip::error("train: --grid draws synthetic test images; it needs --dataset-type synthetic");

    // Vocabulary first: a model trained from scratch takes its size.
    const bool synthetic_vocab = o.vocab == "synthetic" || (o.vocab.empty() && synthetic && o.init.empty());
    const clip::tokenizer tokenizer = synthetic_vocab ? clip::tokenizer(clip::synthetic_vocabulary())
                                                      : load_tokenizer(o.vocab, o.init.empty() ? std::nullopt : std::optional<fs::path>(o.init));
    const auto vocabulary_size = static_cast<std::int64_t>(tokenizer.vocabulary().size());

    const clip::train::objective objective = o.loss == "siglip" ? clip::train::objective::siglip : clip::train::objective::clip;
    clip::naming_scheme scheme = clip::naming_scheme::openai;
    std::unique_ptr<clip::train::parameter_store> store;
    if (!o.init.empty()) {
        if (!fs::exists(o.init)) throw clip::io_error(message("--init ", o.init, ": no such file"));
        scheme = clip::checkpoint(o.init).scheme();
        store = std::make_unique<clip::train::parameter_store>(clip::train::parameter_store::load(
            o.init, o.config.empty() ? std::nullopt : std::optional<fs::path>(o.config), objective));
        if (vocabulary_size > store->config().text.vocab_size)
            throw clip::error(message("the vocabulary has ", vocabulary_size, " tokens but --init's token embedding has ",
                                      store->config().text.vocab_size, " rows"));
    } else {
        clip::clip_config c = o.model.empty() ? clip::read_config(o.config) : clip::preset(o.model);
        if (c.text.vocab_size != vocabulary_size) {
            if (lead) std::cerr << "clip: train: text vocab_size " << c.text.vocab_size << " -> " << vocabulary_size << " (the vocabulary's size)\n";
            c.text.vocab_size = vocabulary_size;
        }
        store = std::make_unique<clip::train::parameter_store>(clip::train::parameter_store::random(c, o.seed, objective));
    }
    if (world->size() > 1) {
        // Every rank starts from rank 0's parameters and statistics (DDP's broadcast at start).
        const auto bytes = [](const clip::tensor& t) {
            return std::span<std::byte>(static_cast<std::byte*>(t.data_ptr()), t.defined() ? t.nbytes() : 0);
        };
        for (const clip::tensor* t : {&store->value_block(), &store->buffer_block(), &store->counter_block()})
            if (t->defined()) world->broadcast(bytes(*t), 0);
    }
    const clip::device where = detail::training_device(o.device, *world);
    if (where.is_cuda()) store = std::make_unique<clip::train::parameter_store>(store->to(where));
    const clip::clip_config& config = store->config();

    std::shared_ptr<const clip::dataset> data;
    if (synthetic)
        data = std::make_shared<clip::synthetic_dataset>(clip::synthetic_split::train, static_cast<std::size_t>(o.train_num_samples),
                                                         clip::synthetic_options{.image_size = config.vision.image_size, .seed = o.seed});
    else if (o.dataset_type == "csv")
        data = std::make_shared<clip::csv_dataset>(o.train_data, clip::csv_options{o.csv_separator, o.csv_img_key, o.csv_caption_key});
    else
        data = std::make_shared<clip::webdataset>(detail::expand_shards(o.train_data));
    // A step reads --accum-freq micro-batches of --batch-size on every rank (OpenCLIP's meaning).
    clip::data_loader loader(data, tokenizer,
                             {.batch_size = static_cast<std::int64_t>(o.batch_size) * o.accum_freq, .image_size = config.vision.image_size,
                              .context_length = config.text.context_length, .seed = o.seed, .shuffle = !o.no_shuffle,
                              .augment = !o.no_augment, .rank = world->rank(), .world_size = world->size()});
    const std::int64_t total = o.steps > 0 ? o.steps : loader.steps_per_epoch() * std::max(1, o.epochs);
    if (o.warmup >= total) throw clip::error(message("train: --warmup ", o.warmup, " must be below the ", total, " steps of the run"));
    const bool constant = o.lr_scheduler == "const";

    clip::train::adamw optimizer(*store, {.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps, .weight_decay = o.wd});
    const clip::train::cosine_lr cosine(o.lr, o.warmup, total);
    // OpenCLIP's const_lr: the same warmup, then the base rate.
    const auto schedule = [&](std::int64_t step) {
        if (!constant) return cosine(step);
        return step < o.warmup ? o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup) : o.lr;
    };
    if (world->size() == 1 && (o.local_loss || o.gather_with_grad)) {
        if (lead) std::cerr << "clip: train: --local-loss and --gather-with-grad apply to several ranks (mpirun -np N); one process ignores them\n";
    }
    const std::string settings = detail::run_settings(o, total, world->size());
    if (!o.resume.empty()) {
        const std::optional<fs::path> latest = clip::train::latest_checkpoint(o.resume);
        if (!latest) throw clip::io_error(message("--resume ", o.resume, ": no checkpoint (no ", (fs::path(o.resume) / "latest").string(), ")"));
        const clip::train::run_state state = clip::train::load_checkpoint(*latest, *store, optimizer);
        if (state.count("settings") && state.at("settings") != settings)
            throw clip::error(message("--resume ", o.resume, ": the run was saved with other settings (", state.at("settings"),
                                      "); resume with the same options"));
        loader.seek({std::stoll(state.at("data.epoch")), std::stoll(state.at("data.step"))});
        if (lead) std::cerr << "resumed " << latest->string() << " at step " << optimizer.steps() << '\n';
    }

    std::optional<clip::synthetic_dataset> test;
    if (synthetic && lead)
        test.emplace(clip::synthetic_split::test, static_cast<std::size_t>(o.val_num_samples),
                     clip::synthetic_options{.image_size = config.vision.image_size, .seed = o.seed + 1});
    const auto evaluate = [&](std::vector<int>* predictions = nullptr) {
        // The inference model packs its weights on the CPU.
        std::unique_ptr<clip::train::parameter_store> host;
        if (!store->device().is_cpu()) host = std::make_unique<clip::train::parameter_store>(store->to(clip::device::cpu()));
        const clip::model inference = clip::model::build(config, host ? *host : *store);
        return detail::synthetic_zero_shot(inference, tokenizer, *test, predictions);
    };
    const auto report = [&](const detail::zero_shot_score& s, std::int64_t step) {
        std::printf("step %lld: zero-shot top-1 (seen combinations): %.3f, (unseen combinations): %.3f, chance %.3f; "
                    "shape right %.3f, colour right %.3f\n",
                    static_cast<long long>(step), s.seen, s.unseen, 1.0 / 36.0, s.shape, s.colour);
        std::fflush(stdout);
    };
    const auto save = [&] {
        if (o.save.empty() || !lead) return;
        const clip::loader_position p = loader.position();
        const fs::path dir = clip::train::save_checkpoint(o.save, *store, optimizer, scheme,
                                                          {{"data.epoch", std::to_string(p.epoch)}, {"data.step", std::to_string(p.step)},
                                                           {"settings", settings}});
        std::cerr << "saved " << dir.string() << '\n';
    };

    if (lead) {
        std::printf("training %s: %lld parameters, %lld steps of %lld pairs, %lld steps per epoch, vocabulary of %lld",
                    o.init.empty() ? (o.model.empty() ? o.config.c_str() : o.model.c_str()) : o.init.c_str(),
                    static_cast<long long>(store->numel()), static_cast<long long>(total),
                    static_cast<long long>(o.batch_size) * o.accum_freq * world->size(), static_cast<long long>(loader.steps_per_epoch()),
                    static_cast<long long>(vocabulary_size));
        if (world->size() > 1)
            std::printf(", %d ranks (%s) of %d pairs, %d threads each%s%s", world->size(), std::string(world->backend()).c_str(),
                        o.batch_size * o.accum_freq, clip::num_threads(), o.local_loss ? ", local loss" : "",
                        o.gather_with_grad ? ", gather with grad" : "");
        if (o.accum_freq > 1) std::printf(", %d micro-batches of %d pairs%s", o.accum_freq, o.batch_size, world->size() > 1 ? " per rank" : "");
        std::printf("\n");
        std::fflush(stdout);
    }
    clip::train::clip_model model(*store);
    if (o.precision == "amp_bf16") model.set_precision(clip::dtype::bf16);
    // --dist-backend nccl: the training collectives between the GPUs' memories, the ranks met
    // through MPI (which still broadcast the start and shard the data).
    std::unique_ptr<clip::dist::communicator> gpus;
    if (world->size() > 1 && o.dist_backend == "nccl") {
        if (!where.is_cuda()) throw clip::error("train: --dist-backend nccl needs --device cuda");
#if CLIP_WITH_NCCL
        gpus = clip::dist::nccl_communicator::over(*world, where.index, o.dist_timeout);
#else
        throw clip::error("train: --dist-backend nccl: this clip was built without NCCL");
#endif
    }
    if (world->size() > 1)
        model.set_world(gpus ? *gpus : *world, {.local_loss = o.local_loss, .gather_with_grad = o.gather_with_grad});
    auto window_start = clock::now();
    std::int64_t window_samples = 0, skipped = 0;
    double loss_sum = 0;
    std::int64_t loss_count = 0;
    for (std::int64_t step = optimizer.steps(); step < total; ++step) {
        const clip::image_text_batch batch = loader.next();
        skipped += static_cast<std::int64_t>(batch.failures.size());
        for (const auto& f : batch.failures)
            std::cerr << "clip: train: " << (world->size() > 1 ? "rank " + std::to_string(world->rank()) + " " : "") << "skipped " << f.name << ": " << f.message << '\n';
        if (batch.images.size(0) < std::max(o.accum_freq, world->size() > 1 ? 1 : 2))
            throw clip::error(message("train: step ", step, " has ", batch.images.size(0), " readable pairs",
                                      world->size() > 1 ? " on rank " + std::to_string(world->rank()) : std::string()));
        store->zero_grad();
        const float loss = o.accum_freq > 1 ? model.forward_backward_accumulated(batch.images, batch.tokens, o.accum_freq)
                                            : (model.forward(batch.images, batch.tokens));
        if (o.accum_freq == 1) model.backward();
        if (o.grad_clip_norm > 0) clip::train::clip_grad_norm(*store, o.grad_clip_norm);
        const double lr = schedule(step);
        optimizer.step(lr);
        clip::train::clamp_logit_scale(*store);
        // The batch's loss and size over all ranks (a rank's local loss is its rows' share).
        float totals[2] = {loss, static_cast<float>(batch.images.size(0))};
        world->all_reduce_sum(totals);
        const float batch_loss = totals[0] / static_cast<float>(world->size());
        if (!std::isfinite(batch_loss)) throw clip::error(message("train: the loss is ", batch_loss, " at step ", step + 1, ": lower --lr?"));
        window_samples += static_cast<std::int64_t>(totals[1]);
        loss_sum += batch_loss;
        ++loss_count;
        const std::int64_t done = step + 1;
        if (lead && (done % o.log_every == 0 || done == total)) {
            const double seconds = std::chrono::duration<double>(clock::now() - window_start).count();
            std::printf("step %lld/%lld  loss %.4f  lr %.3g  logit_scale %.2f  %.1f samples/s\n", static_cast<long long>(done),
                        static_cast<long long>(total), loss_sum / static_cast<double>(loss_count), lr,
                        std::exp(store->at("logit_scale").value.item<float>()), static_cast<double>(window_samples) / seconds);
            std::fflush(stdout);
            window_start = clock::now();
            window_samples = 0;
            loss_sum = 0;
            loss_count = 0;
        }
        if (o.save_steps > 0 && done % o.save_steps == 0 && done < total) save();
        if (test && o.zeroshot_frequency > 0 && done % o.zeroshot_frequency == 0 && done < total) report(evaluate(), done);
    }
    save();
    if (skipped) std::cerr << "clip: train: " << skipped << " samples could not be read and were skipped\n";
    if (test) {
        std::vector<int> predictions;
        const detail::zero_shot_score s = evaluate(&predictions);
        std::printf("zero-shot top-1 (seen combinations): %.3f   (%lld images)\n", s.seen, static_cast<long long>(s.seen_count));
        std::printf("zero-shot top-1 (unseen combinations): %.3f   (%lld images)\n", s.unseen, static_cast<long long>(s.unseen_count));
        std::printf("chance: %.3f (1 of 36 shape-colour classes)\n", 1.0 / 36.0);
        std::printf("shape right: %.3f, colour right: %.3f (chance 1/6 each)\n", s.shape, s.colour);
        if (!o.grid.empty()) detail::write_prediction_grid(o.grid, *test, predictions);
    }
}

} // namespace clip_tool
