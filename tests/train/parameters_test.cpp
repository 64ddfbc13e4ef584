// Tests for clip/train/parameters.hpp: the store holds exactly the inference model's parameters
// (names, shapes, count; ViT and ModifiedResNet, whose BatchNorm statistics are buffers), copies
// checkpoints in either naming scheme, initialises like models/initialize.hpp (and SigLIP's
// scale and bias), and keeps values and gradients in two aligned blocks.
#include "gradient_check.hpp"

#include "clip/train/parameters.hpp"

#include <set>

namespace train_parameters_test {

using clip::shape;
using clip::tensor;
namespace train = clip::train;

namespace {

clip::clip_config tiny() {
    clip::clip_config c = clip::detail::make_vit(16, 32, 2, 64, 16, 64, 1);
    c.text.vocab_size = 10;
    return c;
}

} // namespace

TEST_CASE("a store holds the inference model's parameters, in two aligned blocks") {
    const train::parameter_store store = train::parameter_store::random(tiny(), 4);
    const clip::model inference = clip::model::build(tiny(), const_cast<train::parameter_store&>(store));
    CHECK(inference.parameter_count() == store.numel());
    CHECK(store.parameters().front().name == "positional_embedding");
    CHECK(store.parameters().back().name == "ln_final.bias");
    std::int64_t previous_end = 0;
    for (const train::parameter& p : store.parameters()) {
        CAPTURE(p.name);
        CHECK(p.value.is_contiguous());
        CHECK(reinterpret_cast<std::uintptr_t>(p.value.data_ptr()) % 64 == 0);
        CHECK(p.value.offset() >= previous_end);
        CHECK(p.grad.storage() == store.parameters().front().grad.storage());
        previous_end = p.value.offset() + p.value.numel();
        for (float g : p.grad.to_vector<float>()) REQUIRE(g == 0.0f);
    }
    // The values are OpenAI's initialisation, seeded by name.
    clip::random_initialization source(tiny(), 4);
    CHECK(store.at("visual.proj").value.to_vector<float>() == source.get("visual.proj", {64, 16}).to_vector<float>());
    CHECK(store.at("logit_scale").value.item<float>() == doctest::Approx(std::log(1 / 0.07)));
    store.at("visual.proj").grad.copy_from(tensor::ones({64, 16}));
    store.zero_grad();
    for (float g : store.at("visual.proj").grad.to_vector<float>()) REQUIRE(g == 0.0f);

    CHECK_THROWS_AS(store.at("visual.nope"), clip::index_error);
    auto& source_view = const_cast<train::parameter_store&>(store);
    CHECK_THROWS_AS(source_view.get("visual.proj", {16, 64}), clip::shape_error);
    CHECK(source_view.contains("visual.proj"));
    CHECK(!source_view.contains("logit_bias"));
}

TEST_CASE("SigLIP adds logit_bias, starting from t' = ln 10 and b = -10") {
    const train::parameter_store store = train::parameter_store::random(tiny(), 1, train::objective::siglip);
    CHECK(store.kind() == train::objective::siglip);
    CHECK(store.at("logit_bias").value.item<float>() == -10.0f);
    CHECK(store.at("logit_scale").value.item<float>() == doctest::Approx(std::log(10.0)));
    CHECK(store.numel() == train::parameter_store::random(tiny(), 1).numel() + 1);
}

TEST_CASE("a ResNet store: parameters in named_parameters() order, BatchNorm statistics as buffers") {
    const clip::clip_config c = clip::detail::make_resnet(32, 64, {2, 1, 1, 1}, 8, 64, 1);
    const train::parameter_store store = train::parameter_store::random(c, 3);
    const clip::model inference = clip::model::build(c, const_cast<train::parameter_store&>(store));
    CHECK(inference.parameter_count() == store.numel());
    std::vector<std::string> names;
    for (const train::parameter& p : store.parameters()) names.push_back(p.name);
    const std::vector<std::string> head(names.begin(), names.begin() + 7);
    CHECK(head == std::vector<std::string>{"positional_embedding", "text_projection", "logit_scale", "visual.conv1.weight",
                                           "visual.bn1.weight", "visual.bn1.bias", "visual.conv2.weight"});
    const auto at = [&](const std::string& name) { return std::find(names.begin(), names.end(), name) - names.begin(); };
    // A Bottleneck's downsample comes after its conv3/bn3; layer1.1 has none; AttentionPool2d
    // declares k_proj before q_proj.
    CHECK(at("visual.layer1.0.bn3.bias") + 1 == at("visual.layer1.0.downsample.0.weight"));
    CHECK(at("visual.layer1.0.downsample.1.bias") + 1 == at("visual.layer1.1.conv1.weight"));
    CHECK(at("visual.layer1.1.downsample.0.weight") == static_cast<std::ptrdiff_t>(names.size()));
    CHECK(at("visual.attnpool.positional_embedding") + 1 == at("visual.attnpool.k_proj.weight"));
    CHECK(at("visual.attnpool.k_proj.bias") + 1 == at("visual.attnpool.q_proj.weight"));
    CHECK(at("visual.attnpool.c_proj.bias") + 1 == at("transformer.resblocks.0.attn.in_proj_weight"));
    CHECK(store.at("visual.layer2.0.conv2.weight").value.shape() == shape{16, 16, 3, 3});
    CHECK(store.at("visual.attnpool.c_proj.weight").value.shape() == shape{32, 256});
    // 3 stem + 3·5 Bottleneck + 4 downsample BatchNorms, three buffers each.
    CHECK(store.buffers().size() == 3 * (3 + 15 + 4));
    for (const train::model_buffer& b : store.buffers()) {
        CAPTURE(b.name);
        CHECK(!store.contains(b.name + ".nope"));
        CHECK(store.contains(b.name));
        CHECK_THROWS_AS(store.at(b.name), clip::index_error); // a buffer, not a parameter
        const double start = b.name.ends_with("running_var") ? 1.0 : 0.0;
        for (float v : b.value.to(clip::dtype::f32).to_vector<float>()) REQUIRE(v == start);
    }
    CHECK(store.buffer("visual.layer1.0.downsample.1.num_batches_tracked").value.dtype() == clip::dtype::i64);
    CHECK(store.buffer("visual.bn3.running_mean").value.shape() == shape{8});
    CHECK_THROWS_AS(store.buffer("visual.bn1.weight"), clip::index_error);
    CHECK(const_cast<train::parameter_store&>(store).get("visual.bn2.running_var", {4}).data_ptr() ==
          store.buffer("visual.bn2.running_var").value.data_ptr());
    // A ViT has none.
    CHECK(train::parameter_store(tiny()).buffers().empty());
}

TEST_CASE("a random ResNet: only the Bottlenecks' bn3 start at 0, so the features depend on the image") {
    const clip::clip_config c = clip::detail::make_resnet(32, 64, {1, 1, 1, 1}, 8, 64, 1);
    train::parameter_store store = train::parameter_store::random(c, 5);
    for (const train::parameter& p : store.parameters()) {
        if (!p.name.ends_with("bn3.weight")) continue;
        CAPTURE(p.name);
        const float expected = p.name.find(".layer") != std::string::npos ? 0.0f : 1.0f; // the stem's visual.bn3: 1
        for (float v : p.value.to_vector<float>()) REQUIRE(v == expected);
    }
    const clip::model inference = clip::model::build(c, store);
    const tensor images = clip::rand_normal({2, 3, 64, 64}, 9);
    const std::vector<float> f = inference.encode_image(images).contiguous().to_vector<float>();
    double difference = 0;
    for (std::size_t e = 0; e < f.size() / 2; ++e) difference += std::abs(f[e] - f[f.size() / 2 + e]);
    CHECK(difference > 1e-3);
}

TEST_CASE("the ResNet fixture is copied whole: parameters and buffers") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const train::parameter_store store = train::parameter_store::load(*dir / "resnet.safetensors");
    CHECK(store.numel() == 466013); // models.json: n_parameters
    const clip::safetensors file = clip::safetensors::open(*dir / "resnet.safetensors");
    const std::vector<std::string> names = file.names();
    CHECK(names.size() == store.size() + store.buffers().size());
    for (const std::string& name : names) {
        CAPTURE(name);
        const bool buffer = name.find("running_") != std::string::npos || name.ends_with("num_batches_tracked");
        const tensor value = buffer ? store.buffer(name).value : store.at(name).value;
        CHECK(value.to(clip::dtype::f32).to_vector<float>() == file.get(name).to(clip::dtype::f32).to_vector<float>());
    }
}

TEST_CASE("checkpoints are copied, in the OpenAI and the Hugging Face naming") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const train::parameter_store openai = train::parameter_store::load(*dir / "vit.safetensors");
    const train::parameter_store hf = train::parameter_store::load(*dir / "vit_hf.safetensors");
    const clip::safetensors file = clip::safetensors::open(*dir / "vit.safetensors");
    const std::vector<std::string> names = file.names();
    CHECK(std::set<std::string>(names.begin(), names.end()).size() == openai.size());
    for (const train::parameter& p : openai.parameters()) {
        CAPTURE(p.name);
        const tensor stored = file.get(p.name);
        CHECK(p.value.data_ptr() != stored.data_ptr()); // a copy: the mapping is read-only
        CHECK(p.value.to_vector<float>() == stored.to_vector<float>());
        CHECK(hf.at(p.name).value.to_vector<float>() == stored.to_vector<float>());
    }
    // A SigLIP store from a CLIP checkpoint starts its bias at -10 and keeps the scale.
    const train::parameter_store siglip = train::parameter_store::load(*dir / "vit.safetensors", {}, train::objective::siglip);
    CHECK(siglip.at("logit_bias").value.item<float>() == -10.0f);
    CHECK(siglip.at("logit_scale").value.item<float>() == doctest::Approx(3.2));
}

} // namespace train_parameters_test
