// Tests for clip/data/loader.hpp: batch shapes and content (the transforms and tokens of the
// dataset's samples), shuffling as a function of (seed, epoch), resuming from a saved position,
// disjoint and covering shards, independence from the thread count, and bad samples.
#include "../support.hpp"

#include <clip/data/loader.hpp>
#include <clip/data/synthetic.hpp>

#include <memory>
#include <set>

namespace data_loader_test {

using clip::test::contains;
using clip::test::error_message;

namespace {

const clip::tokenizer& vocabulary_tokenizer() {
    static const clip::tokenizer tok(clip::synthetic_vocabulary());
    return tok;
}

std::shared_ptr<const clip::dataset> synthetic(std::size_t n) {
    return std::make_shared<clip::synthetic_dataset>(clip::synthetic_split::test, n, clip::synthetic_options{.image_size = 24, .seed = 2});
}

clip::loader_options small_options() {
    return {.batch_size = 4, .image_size = 16, .context_length = 12, .seed = 5};
}

bool same(const clip::image_text_batch& a, const clip::image_text_batch& b) {
    return a.indices == b.indices && a.captions == b.captions && a.position == b.position &&
           a.images.to_vector<float>() == b.images.to_vector<float>() &&
           a.tokens.to_vector<std::int64_t>() == b.tokens.to_vector<std::int64_t>();
}

/// A dataset whose samples with index % 5 == 3 fail.
class flaky final : public clip::dataset {
public:
    explicit flaky(std::size_t n) : inner_(clip::synthetic_split::train, n, {.image_size = 16}) {}
    std::size_t size() const override { return inner_.size(); }
    clip::example get(std::size_t i) const override {
        if (i % 5 == 3) throw clip::io_error("cannot decode sample " + std::to_string(i));
        return inner_.get(i);
    }
    std::string name(std::size_t i) const override { return "flaky/" + std::to_string(i); }

private:
    clip::synthetic_dataset inner_;
};

} // namespace

TEST_CASE("a batch holds the transformed images and the tokenized captions of its samples") {
    const auto data = synthetic(30);
    for (const bool augment : {false, true}) {
        INFO("augment " << augment);
        clip::loader_options options = small_options();
        options.augment = augment;
        clip::data_loader loader(data, vocabulary_tokenizer(), options);
        CHECK(loader.steps_per_epoch() == 7);
        const clip::image_text_batch b = loader.next();
        CHECK(b.position == clip::loader_position{0, 0});
        CHECK(loader.position() == clip::loader_position{0, 1});
        REQUIRE(b.images.shape() == clip::shape{4, 3, 16, 16});
        REQUIRE(b.tokens.shape() == clip::shape{4, 12});
        CHECK(b.tokens.dtype() == clip::dtype::i64);
        CHECK(b.failures.empty());
        const std::vector<std::size_t> order = loader.epoch_order(0);
        CHECK(b.indices == std::vector<std::size_t>(order.begin(), order.begin() + 4));
        for (std::size_t row = 0; row < 4; ++row) {
            const clip::example e = data->get(b.indices[row]);
            CHECK(b.captions[row] == e.caption);
            clip::tensor expected; // [3, 16, 16]
            if (augment) {
                clip::counter_rng rng(5, clip::rng_purpose::augment, 0, b.indices[row]);
                expected = clip::train_transform(e.picture, 16, rng);
            } else {
                expected = clip::preprocess(e.picture, 16);
            }
            CHECK(b.images.select(0, static_cast<std::int64_t>(row)).to_vector<float>() == expected.to_vector<float>());
            CHECK(b.tokens.select(0, static_cast<std::int64_t>(row)).to_vector<std::int64_t>() ==
                  vocabulary_tokenizer().tokenize(e.caption, 12).to_vector<std::int64_t>());
        }
    }
}

TEST_CASE("shuffling is a function of (seed, epoch); shuffle = false keeps index order") {
    const auto data = synthetic(50);
    const clip::data_loader a(data, vocabulary_tokenizer(), small_options());
    const clip::data_loader b(data, vocabulary_tokenizer(), small_options());
    clip::loader_options other_seed = small_options();
    other_seed.seed = 6;
    const clip::data_loader c(data, vocabulary_tokenizer(), other_seed);
    const std::vector<std::size_t> e0 = a.epoch_order(0);
    CHECK(std::set<std::size_t>(e0.begin(), e0.end()).size() == 50);
    CHECK(e0 == b.epoch_order(0));
    CHECK(e0 != a.epoch_order(1));
    CHECK(e0 != c.epoch_order(0));
    clip::loader_options ordered = small_options();
    ordered.shuffle = false;
    std::vector<std::size_t> identity(50);
    std::iota(identity.begin(), identity.end(), std::size_t{0});
    CHECK(clip::data_loader(data, vocabulary_tokenizer(), ordered).epoch_order(3) == identity);
}

TEST_CASE("resuming from a saved position gives the identical next batches, across epochs") {
    const auto data = synthetic(18); // 4 steps of 4 per epoch, 2 samples dropped
    clip::data_loader first(data, vocabulary_tokenizer(), small_options());
    std::vector<clip::image_text_batch> run;
    clip::loader_position saved;
    for (int i = 0; i < 10; ++i) {
        if (i == 3) saved = first.position();
        run.push_back(first.next());
    }
    CHECK(run[4].position == clip::loader_position{1, 0});
    CHECK(saved == clip::loader_position{0, 3});
    clip::data_loader resumed(data, vocabulary_tokenizer(), small_options());
    resumed.seek(saved);
    for (int i = 3; i < 10; ++i) {
        INFO("batch " << i);
        CHECK(same(resumed.next(), run[static_cast<std::size_t>(i)]));
    }
    CHECK(same(first.load({1, 2}), run[6]));
    CHECK(contains(error_message([&] { resumed.seek({0, 4}); }), "not in [0, 4)"));
}

TEST_CASE("batches do not depend on the number of threads") {
    const auto data = synthetic(16);
    const int threads = clip::num_threads();
    clip::set_num_threads(1);
    const clip::image_text_batch one = clip::data_loader(data, vocabulary_tokenizer(), small_options()).load({2, 1});
    clip::set_num_threads(3);
    const clip::image_text_batch three = clip::data_loader(data, vocabulary_tokenizer(), small_options()).load({2, 1});
    clip::set_num_threads(threads);
    CHECK(same(one, three));
}

TEST_CASE("ranks take disjoint shares that cover the epoch, with equal step counts") {
    const auto data = synthetic(50);
    for (const bool drop_last : {true, false}) {
        INFO("drop_last " << drop_last);
        std::multiset<std::size_t> all;
        std::set<std::int64_t> steps;
        for (std::int64_t rank = 0; rank < 3; ++rank) {
            clip::loader_options options = small_options();
            options.rank = rank;
            options.world_size = 3;
            options.drop_last = drop_last;
            const clip::data_loader loader(data, vocabulary_tokenizer(), options);
            const std::vector<std::size_t> mine = loader.epoch_order(4);
            all.insert(mine.begin(), mine.end());
            steps.insert(loader.steps_per_epoch());
            // The batches are the share, in order.
            std::vector<std::size_t> batched;
            for (std::int64_t s = 0; s < loader.steps_per_epoch(); ++s) {
                const clip::image_text_batch b = loader.load({4, s});
                batched.insert(batched.end(), b.indices.begin(), b.indices.end());
            }
            const std::size_t expected = drop_last ? 16 : mine.size(); // 50 / 3 = 16 → 4 steps of 4
            CHECK(batched == std::vector<std::size_t>(mine.begin(), mine.begin() + static_cast<std::ptrdiff_t>(expected)));
        }
        CHECK(all.size() == 50);
        CHECK(std::set<std::size_t>(all.begin(), all.end()).size() == 50);
        CHECK(steps == std::set<std::int64_t>{drop_last ? 4 : 5});
    }
}

TEST_CASE("bad samples are skipped and listed, or throw when skipping is off") {
    const auto data = std::make_shared<flaky>(20);
    clip::loader_options options = small_options();
    options.batch_size = 10;
    options.shuffle = false;
    clip::data_loader loader(data, vocabulary_tokenizer(), options);
    const clip::image_text_batch b = loader.next();
    CHECK(b.indices == std::vector<std::size_t>{0, 1, 2, 4, 5, 6, 7, 9});
    CHECK(b.images.size(0) == 8);
    CHECK(b.tokens.size(0) == 8);
    REQUIRE(b.failures.size() == 2);
    CHECK(b.failures[0].index == 3);
    CHECK(b.failures[0].name == "flaky/3");
    CHECK(contains(b.failures[1].message, "cannot decode sample 8"));
    // The rows after a gap hold their own sample.
    CHECK(b.tokens.select(0, 3).to_vector<std::int64_t>() ==
          vocabulary_tokenizer().tokenize(data->get(4).caption, 12).to_vector<std::int64_t>());
    options.skip_bad_samples = false;
    const clip::data_loader strict(data, vocabulary_tokenizer(), options);
    const std::string message = error_message([&] { strict.load({0, 1}); });
    CHECK(contains(message, "sample 13 (flaky/13): cannot decode sample 13 (and 1 more)"));
}

TEST_CASE("options that give no batch are refused") {
    const auto data = synthetic(5);
    clip::loader_options options = small_options();
    options.batch_size = 8;
    CHECK(contains(error_message([&] { clip::data_loader(data, vocabulary_tokenizer(), options); }), "no full batch of 8"));
    options.drop_last = false;
    CHECK(clip::data_loader(data, vocabulary_tokenizer(), options).steps_per_epoch() == 1);
    options.rank = 2;
    CHECK(contains(error_message([&] { clip::data_loader(data, vocabulary_tokenizer(), options); }), "rank 2"));
}

} // namespace data_loader_test
