// clip/data/loader.hpp: batches of (image, tokens) for training, from any dataset (CSV,
// WebDataset, synthetic), reproducible from (seed, epoch, step) alone.
//
//   clip::data_loader loader(std::make_shared<clip::synthetic_dataset>(...), tokenizer,
//                            {.batch_size = 128, .image_size = 64, .context_length = 16, .seed = 7});
//   clip::image_text_batch b = loader.next();   // b.images [B, 3, R, R] f32, b.tokens [B, ctx] i64
//   clip::loader_position saved = loader.position();
//   ...
//   loader.seek(saved);                         // the next batch is the one that followed `saved`
//
// Epoch e visits the dataset in the order of a Fisher–Yates shuffle drawn from
// counter_rng(seed, shuffle, e) (or in index order with shuffle = false), the same permutation on
// every rank. Rank r of world_size W takes every W-th sample of it starting at r: the ranks'
// shares are disjoint and together cover the epoch (DistributedSampler's interleaving, without
// its padding). An epoch has the same number of steps on every rank: ⌊N/W⌋ / B with drop_last
// (OpenCLIP drops the last partial batch when training), ⌈⌈N/W⌉ / B⌉ without, the last batch
// then being short on some ranks. Step s of the epoch is the rank's samples [sB, sB + B).
//
// Each sample is read (dataset::get), transformed and tokenized on its own, in parallel on
// clip's OpenMP pool, one sample per thread at a time: with augment, OpenCLIP's training
// transform (clip/data/augment.hpp) drawing from counter_rng(seed, augment, epoch, index);
// without, CLIP's evaluation transform (clip::preprocess). Captions are tokenized with
// truncation, as OpenCLIP's tokenizer does (the last kept id becomes <|endoftext|>). So a batch
// depends on nothing but the dataset, the options and its position: not on thread timing, not on
// the batches before it, and `seek` is all a resumed run needs (a trainer saves position() with
// its checkpoint).
//
// A sample that fails (unreadable file, undecodable image, invalid UTF-8 caption) is skipped and
// listed in the batch's `failures`, so the batch has fewer rows (possibly none); failures are
// deterministic, so a resumed run skips the same ones. With skip_bad_samples = false the batch
// throws clip::io_error naming the first failure instead. A loader is not thread-safe: one
// thread calls next().
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "clip/core/error.hpp"
#include "clip/core/parallel.hpp"
#include "clip/core/tensor.hpp"
#include "clip/data/augment.hpp"
#include "clip/data/counter_rng.hpp"
#include "clip/data/dataset.hpp"
#include "clip/image/preprocess.hpp"
#include "clip/text/tokenizer.hpp"

namespace clip {

struct loader_options {
    std::int64_t batch_size = 64;
    std::int64_t image_size = 224;      ///< R: images come out R × R
    std::int64_t context_length = 77;
    std::uint64_t seed = 0;
    bool shuffle = true;                ///< false: every epoch in index order
    bool augment = true;                ///< OpenCLIP's training transform; false: clip::preprocess
    bool drop_last = true;
    bool skip_bad_samples = true;       ///< false: a failing sample throws
    random_resized_crop_options crop{};
    std::int64_t rank = 0, world_size = 1;
};

/// Where a loader is: the next batch is step `step` of epoch `epoch`.
struct loader_position {
    std::int64_t epoch = 0, step = 0;
    bool operator==(const loader_position&) const = default;
};

/// A sample the loader could not use, and why.
struct sample_failure {
    std::size_t index = 0;   ///< dataset index
    std::string name;        ///< dataset::name(index)
    std::string message;
};

struct image_text_batch {
    tensor images;                         ///< [B, 3, R, R] f32
    tensor tokens;                         ///< [B, context_length] i64
    std::vector<std::size_t> indices;      ///< the dataset index of each row
    std::vector<std::string> captions;     ///< each row's caption, as the dataset gave it
    std::vector<sample_failure> failures;  ///< samples of this step that were skipped
    loader_position position;              ///< the step this batch is
};

namespace detail {

/// Runs `one(i)` for i in [0, n) on clip's pool, one item per thread at a time (items differ in
/// cost: a large JPEG next to a small PNG); a plain loop on one thread or inside a parallel
/// region. `one` must not throw.
template <class F>
void for_each_item_parallel(std::int64_t n, F&& one) {
    const int threads = static_cast<int>(std::min<std::int64_t>(num_threads(), n));
    if (threads <= 1 || omp_in_parallel()) {
        for (std::int64_t i = 0; i < n; ++i) one(i);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (std::int64_t i = 0; i < n; ++i) one(i);
}

} // namespace detail

class data_loader {
public:
    data_loader(std::shared_ptr<const dataset> data, tokenizer tok, loader_options options)
        : data_(std::move(data)), tokenizer_(std::move(tok)), options_(options) {
        detail::check(data_ != nullptr, "data_loader: null dataset");
        detail::check(options_.batch_size >= 1 && options_.image_size >= 1 && options_.context_length >= 2,
                      "data_loader: need batch_size ≥ 1, image_size ≥ 1 and context_length ≥ 2, got ", options_.batch_size,
                      ", ", options_.image_size, ", ", options_.context_length);
        detail::check(options_.world_size >= 1 && options_.rank >= 0 && options_.rank < options_.world_size,
                      "data_loader: rank ", options_.rank, " is not in [0, world_size = ", options_.world_size, ")");
        detail::check(steps_per_epoch() >= 1, "data_loader: ", data_->size(), " samples over ", options_.world_size,
                      " ranks give no ", options_.drop_last ? "full " : "", "batch of ", options_.batch_size);
    }

    const loader_options& options() const noexcept { return options_; }
    const dataset& data() const noexcept { return *data_; }

    /// Steps in one epoch (the same on every rank).
    std::int64_t steps_per_epoch() const noexcept {
        const auto n = static_cast<std::int64_t>(data_->size());
        const std::int64_t w = options_.world_size, b = options_.batch_size;
        if (options_.drop_last) return (n / w) / b;
        return ((n + w - 1) / w + b - 1) / b;
    }

    /// This rank's samples of epoch `epoch`, in visiting order (dataset indices).
    std::vector<std::size_t> epoch_order(std::int64_t epoch) const {
        const std::size_t n = data_->size();
        std::vector<std::size_t> all(n);
        std::iota(all.begin(), all.end(), std::size_t{0});
        if (options_.shuffle && n > 1) {
            counter_rng rng(options_.seed, rng_purpose::shuffle, static_cast<std::uint64_t>(epoch));
            for (std::size_t k = n - 1; k > 0; --k) std::swap(all[k], all[rng.below(k + 1)]);
        }
        std::vector<std::size_t> mine;
        for (auto k = static_cast<std::size_t>(options_.rank); k < n; k += static_cast<std::size_t>(options_.world_size))
            mine.push_back(all[k]);
        return mine;
    }

    /// The position of the batch next() returns next.
    loader_position position() const noexcept { return position_; }
    /// Continues from `p` (a position() saved earlier, with the same dataset and options).
    void seek(loader_position p) {
        detail::check(p.epoch >= 0 && p.step >= 0 && p.step < steps_per_epoch(), "data_loader::seek: step ", p.step,
                      " is not in [0, ", steps_per_epoch(), ")");
        position_ = p;
    }

    /// The batch at the current position; then moves to the next step (of the next epoch after
    /// the last).
    image_text_batch next() {
        image_text_batch b = load(position_);
        if (++position_.step == steps_per_epoch()) position_ = {position_.epoch + 1, 0};
        return b;
    }

    /// The batch at position `p`, without moving.
    image_text_batch load(loader_position p) const {
        detail::check(p.epoch >= 0 && p.step >= 0 && p.step < steps_per_epoch(), "data_loader: step ", p.step,
                      " is not in [0, ", steps_per_epoch(), ")");
        if (p.epoch != cached_epoch_) {
            cached_order_ = epoch_order(p.epoch);
            cached_epoch_ = p.epoch;
        }
        const auto begin = static_cast<std::size_t>(p.step * options_.batch_size);
        const std::size_t end = std::min(cached_order_.size(), begin + static_cast<std::size_t>(options_.batch_size));
        const std::vector<std::size_t> indices(cached_order_.begin() + static_cast<std::ptrdiff_t>(std::min(begin, end)),
                                               cached_order_.begin() + static_cast<std::ptrdiff_t>(end));
        return assemble(indices, p);
    }

private:
    image_text_batch assemble(const std::vector<std::size_t>& indices, loader_position p) const {
        const auto n = static_cast<std::int64_t>(indices.size());
        const std::int64_t r = options_.image_size, ctx = options_.context_length, image_floats = 3 * r * r;
        tensor images = tensor::empty({n, 3, r, r});             // [n, 3, R, R]
        tensor tokens = tensor::zeros({n, ctx}, dtype::i64);     // [n, ctx]
        float* pixels = n > 0 ? images.data<float>() : nullptr;
        std::int64_t* ids = n > 0 ? tokens.data<std::int64_t>() : nullptr;
        std::vector<std::string> captions(indices.size()), failures(indices.size());
        std::vector<char> failed(indices.size(), 0);
        // Exceptions must not leave the OpenMP region: each sample's message is kept instead.
        detail::for_each_item_parallel(n, [&](std::int64_t k) {
            const auto at = static_cast<std::size_t>(k);
            try {
                example e = data_->get(indices[at]);
                if (options_.augment) {
                    counter_rng rng(options_.seed, rng_purpose::augment, static_cast<std::uint64_t>(p.epoch), indices[at]);
                    detail::train_transform_into(e.picture, r, rng, options_.crop, pixels + k * image_floats);
                } else {
                    detail::preprocess_into(e.picture, r, pixels + k * image_floats);
                }
                const tensor row = tokenizer_.tokenize(std::string_view(e.caption), ctx, true); // [1, ctx]
                std::copy_n(row.data<std::int64_t>(), ctx, ids + k * ctx);
                captions[at] = std::move(e.caption);
            } catch (const std::exception& error) {
                failed[at] = 1;
                failures[at] = error.what();
            } catch (...) {
                failed[at] = 1;
                failures[at] = "unknown error";
            }
        });
        image_text_batch out;
        out.position = p;
        std::int64_t rows = 0;
        for (std::int64_t k = 0; k < n; ++k) {
            const auto at = static_cast<std::size_t>(k);
            if (failed[at]) {
                out.failures.push_back({indices[at], data_->name(indices[at]), std::move(failures[at])});
                continue;
            }
            // Close the gaps left by failures (rows only move towards the front).
            if (rows != k) {
                std::copy_n(pixels + k * image_floats, image_floats, pixels + rows * image_floats);
                std::copy_n(ids + k * ctx, ctx, ids + rows * ctx);
            }
            out.indices.push_back(indices[at]);
            out.captions.push_back(std::move(captions[at]));
            ++rows;
        }
        if (!out.failures.empty() && !options_.skip_bad_samples) {
            const sample_failure& first = out.failures.front();
            throw io_error(detail::message("data_loader: epoch ", p.epoch, " step ", p.step, ": sample ", first.index, " (",
                                           first.name, "): ", first.message,
                                           out.failures.size() > 1 ? detail::message(" (and ", out.failures.size() - 1, " more)")
                                                                   : std::string()));
        }
        out.images = rows == n ? images : images.slice(0, 0, rows);
        out.tokens = rows == n ? tokens : tokens.slice(0, 0, rows);
        return out;
    }

    std::shared_ptr<const dataset> data_;
    tokenizer tokenizer_;
    loader_options options_;
    loader_position position_{};
    mutable std::int64_t cached_epoch_ = -1;     // the epoch whose order cached_order_ holds
    mutable std::vector<std::size_t> cached_order_;
};

} // namespace clip
