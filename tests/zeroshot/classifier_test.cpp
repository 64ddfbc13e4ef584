// Tests for clip/zeroshot/classifier.hpp: prompt ensembling as CLIP's ImageNet notebook does it,
// against the reference end-to-end model (e2e.safetensors, e2e_io.safetensors).
#include "../support.hpp"

#include <cmath>

namespace zeroshot_classifier_test {

using clip::test::contains;
using clip::test::error_message;

namespace {

const std::vector<std::string> captions = {"a photo of a cat", "a rocket on a launch pad at night",
                                           "a black and white photo of a man with a camera",
                                           "an astronaut in an orange suit", "a cup of coffee"};

/// softmax of each row, in double.
std::vector<double> softmax_rows(const std::vector<float>& x, std::size_t columns) {
    std::vector<double> out(x.size());
    for (std::size_t r = 0; r < x.size() / columns; ++r) {
        double m = -INFINITY, total = 0;
        for (std::size_t c = 0; c < columns; ++c) m = std::max(m, static_cast<double>(x[r * columns + c]));
        for (std::size_t c = 0; c < columns; ++c) total += out[r * columns + c] = std::exp(x[r * columns + c] - m);
        for (std::size_t c = 0; c < columns; ++c) out[r * columns + c] /= total;
    }
    return out;
}

} // namespace

TEST_CASE("captions as labels with the template {} give the reference CLIP.forward probabilities") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::model model = clip::model::load(*dir / "e2e.safetensors");
    const clip::tokenizer tokenizer = clip::tokenizer::load(*dir / "bpe_simple_vocab_16e6.txt.gz");
    const auto io = clip::safetensors::open(*dir / "e2e_io.safetensors");
    const std::vector<std::string> single = {"{}"};
    for (std::int64_t batch : {1, 2, 256}) {
        INFO("batch " << batch);
        const clip::zero_shot_classifier classifier(model, tokenizer, captions, single, {.batch = batch});
        // One template: the class weights are the normalised text features.
        clip::test::check_close(classifier.weights(), io.get("text_features_normalized"), 1e-5);
        CHECK(classifier.scale() == doctest::Approx(std::exp(4.0)));
        // From the reference image features: the reference logits, and their softmax.
        const clip::tensor probabilities = classifier.probabilities(io.get("image_features"));
        const std::vector<double> expected = softmax_rows(io.get("logits_per_image").to_vector<float>(), captions.size());
        const std::vector<float> got = probabilities.to_vector<float>();
        REQUIRE(got.size() == expected.size());
        for (std::size_t i = 0; i < got.size(); ++i) CHECK(std::abs(got[i] - expected[i]) <= 1e-4);
        clip::test::check_close(classifier.logits(io.get("image_features")), io.get("logits_per_image"), 1e-4);
        // End to end from the preprocessed images.
        const auto ranked = classifier.classify(model, io.get("image"), 5);
        REQUIRE(ranked.size() == 4);
        for (std::size_t i = 0; i < 4; ++i) {
            REQUIRE(ranked[i].size() == 5);
            for (std::size_t j = 0; j < 5; ++j) {
                const auto& p = ranked[i][j];
                CHECK(std::abs(p.probability - expected[i * 5 + static_cast<std::size_t>(p.index)]) <= 1e-4);
                if (j) CHECK(ranked[i][j - 1].probability >= p.probability);
            }
        }
    }
}

TEST_CASE("templates are ensembled: normalise each, average, normalise") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::model model = clip::model::load(*dir / "e2e.safetensors");
    const clip::tokenizer tokenizer = clip::tokenizer::load(*dir / "bpe_simple_vocab_16e6.txt.gz");
    const std::vector<std::string> labels = {"cat", "rocket", "cup of coffee"};
    const std::vector<std::string> templates = {"a photo of a {}.", "a drawing of the {}.", "itap of my {}."};
    const clip::zero_shot_classifier classifier(model, tokenizer, labels, templates, {.batch = 4});
    const std::int64_t E = model.config().embed_dim;
    REQUIRE(classifier.weights().shape() == clip::shape{3, E});
    for (std::size_t c = 0; c < labels.size(); ++c) {
        std::vector<std::string> prompts;
        for (const auto& t : templates) prompts.push_back(clip::format_template(t, labels[c]));
        const std::vector<float> f = model.encode_text(tokenizer.tokenize(std::span<const std::string>(prompts))).to_vector<float>();
        std::vector<double> mean(static_cast<std::size_t>(E), 0.0);
        for (std::size_t t = 0; t < templates.size(); ++t) {
            double norm = 0;
            for (std::int64_t e = 0; e < E; ++e) norm += double(f[t * E + e]) * f[t * E + e];
            for (std::int64_t e = 0; e < E; ++e) mean[e] += f[t * E + e] / std::sqrt(norm) / templates.size();
        }
        double norm = 0;
        for (double v : mean) norm += v * v;
        const std::vector<float> got = classifier.weights().select(0, static_cast<std::int64_t>(c)).to_vector<float>();
        for (std::int64_t e = 0; e < E; ++e) CHECK(std::abs(got[e] - mean[e] / std::sqrt(norm)) <= 1e-5);
    }
}

TEST_CASE("top_k and classifier errors") {
    const clip::tensor p = clip::tensor::from(std::vector<float>{0.1f, 0.5f, 0.2f, 0.2f, 0.25f, 0.25f, 0.25f, 0.25f}, clip::shape{2, 4});
    const auto r = clip::top_k(p, 3);
    REQUIRE(r.size() == 2);
    CHECK(r[0][0].index == 1);
    CHECK(r[0][1].index == 2); // tie with 3: lower index first
    CHECK(r[0][2].index == 3);
    CHECK(r[1][0].index == 0);
    CHECK(r[1][2].index == 2);
    CHECK(clip::top_k(p, 10)[0].size() == 4);
    CHECK_THROWS_AS((void)clip::top_k(p, 0), clip::error);

    const clip::tensor w = clip::tensor::from(std::vector<float>{3, 0, 0, 2}, clip::shape{2, 2});
    const clip::zero_shot_classifier classifier({"a", "b"}, w, 10.0f);
    clip::test::check_close(classifier.weights(), clip::tensor::from(std::vector<float>{1, 0, 0, 1}, clip::shape{2, 2}));
    const clip::tensor logits = classifier.logits(clip::tensor::from(std::vector<float>{0, 5}, clip::shape{1, 2}));
    clip::test::check_close(logits, clip::tensor::from(std::vector<float>{0, 10}, clip::shape{1, 2}));
    CHECK(contains(error_message([&] { (void)classifier.logits(clip::tensor::zeros({1, 3})); }), "[N, 2]"));
    CHECK(contains(error_message([&] { clip::zero_shot_classifier({"a", "a"}, w, 1.0f); }), "appears twice"));
    CHECK(contains(error_message([&] { clip::zero_shot_classifier({"a"}, w, 1.0f); }), "[1, E]"));
}

} // namespace zeroshot_classifier_test
