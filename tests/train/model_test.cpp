// Tests for clip/train/model.hpp: the PyTorch training step of the reference fixtures
// (train_step.*: OpenCLIP's ClipLoss and AdamW on a small ViT CLIP) reproduced tensor by tensor,
// two steps in a row; a SigLIP step; steady-state steps that allocate nothing.
#include "../support.hpp"

#include "clip/train/adamw.hpp"
#include "clip/train/grad_clip.hpp"
#include "clip/train/model.hpp"

#include <map>

namespace train_model_test {

using clip::shape;
using clip::tensor;
namespace train = clip::train;

namespace {

/// The fixture's parameters, stored as `<prefix><name>`.
struct prefixed_source : clip::nn::parameter_source {
    prefixed_source(const clip::safetensors& file, std::string prefix) : file(file), prefix(std::move(prefix)) {}
    tensor get(const std::string& name, const shape& expected) override {
        const tensor t = file.get(prefix + name);
        REQUIRE(t.shape() == expected);
        return t;
    }
    bool contains(const std::string& name) const override { return file.contains(prefix + name); }
    const clip::safetensors& file;
    std::string prefix;
};

/// The train_step model: ViT image 32, patch 8, width 64, 2 layers; text width 64, 2 layers,
/// vocabulary 1000; embed 32; one head per tower.
clip::clip_config fixture_config() {
    clip::clip_config c = clip::detail::make_vit(32, 32, 2, 64, 8, 64, 2);
    c.text.vocab_size = 1000;
    return c;
}

struct difference {
    double max_error = 0.0; // max |a - b|
    double max_reference = 0.0; // max |b|
};

difference compare(const tensor& actual, const tensor& expected) {
    REQUIRE(actual.shape() == expected.shape());
    const std::vector<float> a = actual.to_vector<float>(), b = expected.to_vector<float>();
    difference d;
    for (std::size_t i = 0; i < a.size(); ++i) {
        d.max_error = std::max(d.max_error, std::abs(static_cast<double>(a[i]) - b[i]));
        d.max_reference = std::max(d.max_reference, std::abs(static_cast<double>(b[i])));
    }
    return d;
}

/// The README's forward tolerance: max |a − b| ≤ rel · max(1, max |b|).
void check_forward(const std::string& name, const tensor& actual, const tensor& expected, double rel = 1e-4) {
    const difference d = compare(actual, expected);
    INFO(name << ": max abs error " << d.max_error << ", allowed " << rel * std::max(1.0, d.max_reference));
    CHECK(d.max_error <= rel * std::max(1.0, d.max_reference));
}

/// Every gradient within 1e-4 · max |g_ref| of `<prefix><name>`; returns the worst ratio.
double check_gradients(const train::parameter_store& store, const clip::safetensors& io, const std::string& prefix) {
    double worst = 0.0;
    std::string worst_name;
    for (const train::parameter& p : store.parameters()) {
        const difference d = compare(p.grad, io.get(prefix + p.name));
        const double ratio = d.max_reference > 0 ? d.max_error / d.max_reference : d.max_error;
        INFO(prefix << p.name << ": max |g - g_ref| " << d.max_error << ", max |g_ref| " << d.max_reference);
        CHECK(d.max_error <= 1e-4 * d.max_reference);
        if (ratio > worst) worst = ratio, worst_name = p.name;
    }
    MESSAGE(prefix << "*: worst max|g - g_ref| / max|g_ref| = " << worst << " (" << worst_name << ")");
    return worst;
}

/// Every value within `tolerance` (absolute) of `<prefix><name>`; returns the worst error.
double check_values(const train::parameter_store& store, const clip::safetensors& io, const std::string& prefix,
                    double tolerance) {
    double worst = 0.0;
    for (const train::parameter& p : store.parameters()) {
        const difference d = compare(p.value, io.get(prefix + p.name));
        INFO(prefix << p.name << ": max abs error " << d.max_error);
        CHECK(d.max_error <= tolerance);
        worst = std::max(worst, d.max_error);
    }
    MESSAGE(prefix << "*: worst max abs error " << worst << " (tolerance " << tolerance << ")");
    return worst;
}

/// Copies `<prefix><name>` of every parameter into its value (or its gradient).
void set_from(const train::parameter_store& store, const clip::safetensors& io, const std::string& prefix,
              bool gradients = false) {
    for (const train::parameter& p : store.parameters()) (gradients ? p.grad : p.value).copy_from(io.get(prefix + p.name));
}

train::adamw_options fixture_optimizer() {
    return {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-6, .weight_decay = 0.2};
}

/// Four 77-token rows of 7s whose EOT (999) is at position `eot + m` in row m.
tensor eot_rows(std::int64_t eot) {
    const tensor ids = tensor::full({4, 77}, 7, clip::dtype::i64);
    for (std::int64_t m = 0; m < 4; ++m) ids.select(0, m).select(0, eot + m).copy_from(tensor::full({}, 999, clip::dtype::i64));
    return ids;
}

/// One OpenCLIP training step on (images, ids): zero_grad, forward, backward, clipping, AdamW,
/// the logit_scale clamp. Returns the loss.
float train_step(const train::parameter_store& store, train::clip_model& model, train::adamw& optimizer, const tensor& images,
                 const tensor& ids) {
    store.zero_grad();
    const float loss = model.forward(images, ids);
    model.backward();
    train::clip_grad_norm(store, 1.0);
    optimizer.step();
    train::clamp_logit_scale(store);
    return loss;
}

/// Five steps on one batch; the last three must allocate no tensor memory and create no oneDNN
/// plan. Returns the first and the last loss.
std::pair<float, float> five_steady_steps(const train::parameter_store& store, train::clip_model& model, train::adamw& optimizer,
                                          const tensor& images, const tensor& ids) {
    const float first = train_step(store, model, optimizer, images, ids);
    (void)train_step(store, model, optimizer, images, ids);
    const std::int64_t allocations = clip::detail::allocation_counter().load();
#if defined(CLIP_WITH_ONEDNN)
    const std::int64_t plans = clip::detail::onednn::plan_creations();
#endif
    float last = 0.0f;
    for (int i = 0; i < 3; ++i) last = train_step(store, model, optimizer, images, ids);
    CHECK(clip::detail::allocation_counter().load() == allocations);
#if defined(CLIP_WITH_ONEDNN)
    CHECK(clip::detail::onednn::plan_creations() == plans);
#endif
    return {first, last};
}

} // namespace

TEST_CASE("the weight-decay groups are OpenCLIP's (train_step.json lists them)") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::safetensors io = clip::safetensors::open(*dir / "train_step.safetensors");
    prefixed_source source(io, "param.");
    const train::parameter_store store = train::parameter_store::from(fixture_config(), source);
    const train::adamw optimizer(store, fixture_optimizer());
    std::ifstream in(*dir / "train_step.json");
    const nlohmann::json expected = nlohmann::json::parse(in)["weight_decay_applied"];
    CHECK(expected.size() == store.size());
    for (const auto& [name, decayed] : expected.items()) {
        CAPTURE(name);
        CHECK((optimizer.weight_decay(name) == 0.2) == decayed.get<bool>());
    }
}

TEST_CASE("two OpenCLIP training steps match PyTorch: loss, features, logits, every gradient, AdamW") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::safetensors io = clip::safetensors::open(*dir / "train_step.safetensors");
    prefixed_source source(io, "param.");
    const train::parameter_store store = train::parameter_store::from(fixture_config(), source);
    train::clip_model model(store);
    train::adamw optimizer(store, fixture_optimizer());

    // Step 1 with our gradients.
    store.zero_grad();
    const float loss = model.forward(io.get("image"), io.get("text"));
    const float expected_loss = io.get("loss").item<float>();
    MESSAGE("loss " << loss << ", PyTorch " << expected_loss << ", relative error "
                    << std::abs(loss - expected_loss) / std::abs(expected_loss));
    CHECK(std::abs(loss - expected_loss) <= 1e-5 * std::abs(expected_loss));
    check_forward("image_features", model.image_features(), io.get("image_features"));
    check_forward("text_features", model.text_features(), io.get("text_features"));
    check_forward("logits_per_image", model.logits(), io.get("logits_per_image"));
    model.backward();
    check_gradients(store, io, "grad.");
    optimizer.step();
    train::clamp_logit_scale(store);
    check_values(store, io, "param_after.", 1e-4);

    // Step 2 from PyTorch's parameters after step 1, with the optimiser state of our step 1.
    set_from(store, io, "param_after.");
    store.zero_grad();
    const float loss2 = model.forward(io.get("image2"), io.get("text2"));
    const float expected_loss2 = io.get("loss2").item<float>();
    MESSAGE("loss2 " << loss2 << ", PyTorch " << expected_loss2);
    CHECK(std::abs(loss2 - expected_loss2) <= 1e-5 * std::abs(expected_loss2));
    check_forward("image_features2", model.image_features(), io.get("image_features2"));
    check_forward("text_features2", model.text_features(), io.get("text_features2"));
    check_forward("logits_per_image2", model.logits(), io.get("logits_per_image2"));
    model.backward();
    check_gradients(store, io, "grad2.");
    optimizer.step();
    train::clamp_logit_scale(store);
    check_values(store, io, "param_after2.", 1e-4);
}

TEST_CASE("AdamW on PyTorch's stored gradients reproduces param_after and param_after2 to 1e-6") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::safetensors io = clip::safetensors::open(*dir / "train_step.safetensors");
    prefixed_source source(io, "param.");
    const train::parameter_store store = train::parameter_store::from(fixture_config(), source);
    train::adamw optimizer(store, fixture_optimizer());
    set_from(store, io, "grad.", true);
    optimizer.step();
    train::clamp_logit_scale(store);
    check_values(store, io, "param_after.", 1e-6);
    set_from(store, io, "param_after.");
    set_from(store, io, "grad2.", true);
    optimizer.step();
    train::clamp_logit_scale(store);
    check_values(store, io, "param_after2.", 1e-6);
    CHECK(optimizer.steps() == 2);
}

TEST_CASE("the trainable towers give the inference model's features") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::safetensors io = clip::safetensors::open(*dir / "train_step.safetensors");
    prefixed_source source(io, "param.");
    train::parameter_store store = train::parameter_store::from(fixture_config(), source);
    const clip::model inference = clip::model::build(fixture_config(), store);
    CHECK(inference.parameter_count() == store.numel());
    train::clip_model model(store);
    (void)model.forward(io.get("image"), io.get("text"));
    check_forward("image_features", model.image_features(), inference.encode_image(io.get("image")), 1e-5);
    check_forward("text_features", model.text_features(), inference.encode_text(io.get("text")), 1e-5);
    check_forward("logits", model.logits(), inference.logits(io.get("image"), io.get("text")).per_image, 1e-5);
}

TEST_CASE("a steady-state step allocates no tensor memory and creates no oneDNN plan") {
    clip::clip_config c = fixture_config();
    c.act = clip::activation::gelu;
    const train::parameter_store store = train::parameter_store::random(c, 3);
    train::clip_model model(store);
    train::adamw optimizer(store);
    const tensor images = clip::rand_normal({4, 3, 32, 32}, 1);
    const tensor ids = eot_rows(5);
    const auto [first, last] = five_steady_steps(store, model, optimizer, images, ids);
    // Five steps on one batch with lr 1e-3 lower its loss.
    MESSAGE("loss " << first << " -> " << last);
    CHECK(last < first);
    // Shorter captions run on fewer positions, in the memory the longer ones left.
    ids.copy_from(tensor::full({4, 77}, 7, clip::dtype::i64));
    for (std::int64_t m = 0; m < 4; ++m) ids.select(0, m).select(0, 2).copy_from(tensor::full({}, 999, clip::dtype::i64));
    const std::int64_t before_short = clip::detail::allocation_counter().load();
    (void)train_step(store, model, optimizer, images, ids);
    CHECK(clip::detail::allocation_counter().load() == before_short);
}

TEST_CASE("a SigLIP step: the loss falls, logit_bias learns, and the gradients match a finite difference") {
    clip::clip_config c = fixture_config();
    c.vision.layers = 1;
    c.text.layers = 1;
    const train::parameter_store store = train::parameter_store::random(c, 5, train::objective::siglip);
    CHECK(store.at("logit_scale").value.item<float>() == doctest::Approx(std::log(10.0)));
    CHECK(store.at("logit_bias").value.item<float>() == -10.0f);
    train::clip_model model(store);
    const tensor images = clip::rand_normal({3, 3, 32, 32}, 2);
    tensor ids = tensor::zeros({3, 77}, clip::dtype::i64);
    for (std::int64_t m = 0; m < 3; ++m) {
        ids.select(0, m).select(0, 0).copy_from(tensor::full({}, 998, clip::dtype::i64));
        ids.select(0, m).select(0, 1).copy_from(tensor::full({}, 5 + m, clip::dtype::i64));
        ids.select(0, m).select(0, 2 + m).copy_from(tensor::full({}, 999, clip::dtype::i64));
    }
    store.zero_grad();
    (void)model.forward(images, ids);
    model.backward();
    // Central differences in f32 on a few parameters with large gradients.
    for (const char* name : {"logit_bias", "logit_scale", "visual.proj", "ln_final.bias", "visual.conv1.weight"}) {
        const train::parameter& p = store.at(name);
        const std::vector<float> g = p.grad.to_vector<float>();
        const std::size_t k = static_cast<std::size_t>(std::max_element(g.begin(), g.end(), [](float a, float b) {
                                                          return std::abs(a) < std::abs(b);
                                                      }) - g.begin());
        float* v = p.value.data<float>() + k;
        const float saved = *v, h = 1e-2f * std::max(1.0f, std::abs(saved));
        *v = saved + h;
        const double up = model.forward(images, ids);
        *v = saved - h;
        const double down = model.forward(images, ids);
        *v = saved;
        const double numeric = (up - down) / (2.0 * h);
        INFO(name << "[" << k << "]: analytic " << g[k] << ", numeric " << numeric);
        CHECK(std::abs(numeric - g[k]) <= 2e-2 * std::abs(g[k]) + 1e-4);
    }
}

TEST_CASE("gradient accumulation over micro-batches gives the whole batch's loss and gradients") {
    for (const train::objective kind : {train::objective::clip, train::objective::siglip}) {
        CAPTURE(static_cast<int>(kind));
        const train::parameter_store store = train::parameter_store::random(fixture_config(), 5, kind);
        train::clip_model model(store);
        const tensor images = clip::rand_normal({6, 3, 32, 32}, 2);
        const tensor ids = tensor::full({6, 77}, 11, clip::dtype::i64);
        for (std::int64_t m = 0; m < 6; ++m) ids.select(0, m).select(0, 3 + 2 * m).copy_from(tensor::full({}, 999, clip::dtype::i64));
        store.zero_grad();
        const float whole = model.forward(images, ids);
        model.backward();
        std::vector<tensor> expected;
        for (const auto& p : store.parameters()) expected.push_back(p.grad.clone());
        for (const std::int64_t parts : {1, 2, 3, 6}) {
            CAPTURE(parts);
            store.zero_grad();
            const float loss = model.forward_backward_accumulated(images, ids, parts);
            CHECK(loss == doctest::Approx(whole).epsilon(1e-6));
            std::size_t k = 0;
            for (const auto& p : store.parameters()) {
                const difference d = compare(p.grad, expected[k++]);
                INFO(p.name << ": max abs difference " << d.max_error << " of " << d.max_reference);
                CHECK(d.max_error <= 1e-4 * std::max(1e-3, d.max_reference));
            }
        }
        CHECK_THROWS_AS((void)model.forward_backward_accumulated(images, ids, 7), clip::error);
    }
}

TEST_CASE("a ResNet CLIP trains: no allocation or plan in steady state, the loss falls, eval mode is inference") {
    clip::clip_config c = clip::detail::make_resnet(32, 64, {1, 1, 1, 1}, 8, 64, 1);
    c.text.vocab_size = 1000;
    const train::parameter_store store = train::parameter_store::random(c, 9);
    train::clip_model model(store);
    CHECK(model.training()); // as OpenCLIP trains ResNets: BatchNorm in train mode
    CHECK(std::holds_alternative<train::modified_resnet>(model.visual()));
    train::adamw optimizer(store, {.lr = 1e-3});
    const tensor images = clip::rand_normal({4, 3, 64, 64}, 1);
    const tensor ids = eot_rows(5);
    const auto [first, last] = five_steady_steps(store, model, optimizer, images, ids);
    MESSAGE("ResNet loss " << first << " -> " << last);
    CHECK(last < first);
    CHECK(store.buffer("visual.layer2.0.bn1.num_batches_tracked").value.item<std::int64_t>() == 5);

    // Eval mode: the running statistics normalise and stay; the features are the inference model's.
    model.set_training(false);
    CHECK(!model.training());
    const std::vector<float> mean = store.buffer("visual.bn1.running_mean").value.to_vector<float>();
    (void)model.forward(images, ids);
    CHECK(store.buffer("visual.bn1.running_mean").value.to_vector<float>() == mean);
    const clip::model inference = clip::model::build(c, const_cast<train::parameter_store&>(store));
    check_forward("image_features (eval)", model.image_features(), inference.encode_image(images), 1e-5);
    check_forward("logits (eval)", model.logits(), inference.logits(images, ids).per_image, 1e-5);
}

TEST_CASE("in eval mode a ResNet clip_model reproduces the PyTorch fixture's features and logits") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const train::parameter_store store = train::parameter_store::load(*dir / "resnet.safetensors");
    const clip::safetensors io = clip::safetensors::open(*dir / "resnet_io.safetensors");
    train::clip_model model(store);
    model.set_training(false);
    const tensor images = io.get("image"), ids = io.get("text").slice(0, 0, 3); // three images, three texts
    (void)model.forward(images, ids);
    check_forward("image_features", model.image_features(), io.get("image_features"));
    check_forward("text_features", model.text_features(), io.get("text_features").slice(0, 0, 3).contiguous());
    check_forward("logits_per_image", model.logits(), io.get("logits_per_image").slice(1, 0, 3).contiguous());
}

} // namespace train_model_test
