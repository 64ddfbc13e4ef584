// Tests for clip/models/: every reference fixture reproduced layer by layer (ViT, ModifiedResNet,
// the Hugging-Face-named copy, the end-to-end model), with f32 weights and with the same weights
// stored as f16; architecture inference; presets and random initialisation.
#include "../support.hpp"

#include <atomic>
#include <functional>
#include <fstream>
#include <map>
#include <thread>

namespace models_clip_model_test {

using clip::shape;
using clip::tensor;

namespace {

/// The README's tolerance: max |a - b| <= rel · max(1, max |b|).
void check_matches(const std::string& name, const tensor& actual, const tensor& expected, double rel = 1e-4) {
    INFO("tensor " << name);
    REQUIRE(actual.shape() == expected.shape());
    const std::vector<float> a = actual.to_vector<float>(), b = expected.to_vector<float>();
    double worst = 0.0, scale = 1.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
        scale = std::max(scale, std::abs(static_cast<double>(b[i])));
    }
    INFO("max abs error " << worst << ", allowed " << rel * scale);
    CHECK(worst <= rel * scale);
}

struct fixture_run {
    std::map<std::string, tensor> seen;
    clip::nn::trace observer = [this](const std::string& name, const tensor& value) { seen[name] = value.clone(); };
};

/// Runs `model` on the inputs of `<name>_io.safetensors` and compares every output and
/// every intermediate the fixture has.
void check_against_fixture(const clip::model& model, const std::filesystem::path& io_path, double rel) {
    const clip::safetensors io = clip::safetensors::open(io_path);
    fixture_run image_run, text_run;
    const tensor image = io.get("image"), text = io.get("text");
    const tensor image_features = model.encode_image(image, &image_run.observer);
    const tensor text_features = model.encode_text(text, &text_run.observer);
    check_matches("image_features", image_features, io.get("image_features"), rel);
    check_matches("text_features", text_features, io.get("text_features"), rel);
    // Untraced, the text tower runs only up to the batch's last EOT: the same features.
    check_matches("text_features (up to the last EOT)", model.encode_text(text), io.get("text_features"), rel);
    check_matches("image_features_normalized", clip::l2_normalize(image_features), io.get("image_features_normalized"), rel);
    const auto logits = model.logits(image, text);
    check_matches("logits_per_image", logits.per_image, io.get("logits_per_image"), rel);
    check_matches("logits_per_text", logits.per_text, io.get("logits_per_text"), rel);
    int intermediates = 0;
    for (const std::string& key : io.names()) {
        if (key.rfind("vis.", 0) != 0 && key.rfind("txt.", 0) != 0) continue;
        const auto& seen = key[0] == 'v' ? image_run.seen : text_run.seen;
        const auto it = seen.find(key);
        INFO("intermediate " << key);
        REQUIRE(it != seen.end());
        check_matches(key, it->second, io.get(key), rel);
        ++intermediates;
    }
    CHECK(intermediates > 0);
}

/// A copy of a checkpoint with every f32 tensor stored as f16, in a temporary file.
std::filesystem::path as_f16(const std::filesystem::path& weights) {
    const clip::safetensors file = clip::safetensors::open(weights);
    std::vector<std::pair<std::string, tensor>> tensors;
    for (const std::string& name : file.names()) {
        const tensor t = file.get(name);
        tensors.emplace_back(name, t.dtype() == clip::dtype::f32 ? t.to(clip::dtype::f16) : t);
    }
    const auto path = std::filesystem::temp_directory_path() / ("clip-f16-" + weights.filename().string());
    clip::save_safetensors(path, tensors);
    return path;
}

} // namespace

TEST_CASE("the ViT fixture, layer by layer") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::model model = clip::model::load(*dir / "vit.safetensors");
    CHECK(model.scheme() == clip::naming_scheme::openai);
    const clip::clip_config& c = model.config();
    CHECK(c.vision.kind == clip::vision_kind::vit);
    CHECK(c.vision.image_size == 32);
    CHECK(c.vision.patch_size == 8);
    CHECK(c.vision.width == 128);
    CHECK(c.vision.layers == 2);
    CHECK(c.vision.heads == 2);
    CHECK(c.text.layers == 2);
    CHECK(c.text.vocab_size == 1000);
    CHECK(c.embed_dim == 64);
    CHECK(model.logit_scale() == doctest::Approx(3.2));
    check_against_fixture(model, *dir / "vit_io.safetensors", 1e-4);
}

TEST_CASE("the ModifiedResNet fixture, layer by layer") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::model model = clip::model::load(*dir / "resnet.safetensors");
    const clip::clip_config& c = model.config();
    CHECK(c.vision.kind == clip::vision_kind::resnet);
    CHECK(c.vision.image_size == 64);
    CHECK(c.vision.width == 8);
    CHECK(c.vision.resnet_layers == std::array<std::int64_t, 4>{1, 1, 1, 1});
    CHECK(c.vision.heads == 4);
    CHECK(c.text.width == 64);
    CHECK(c.text.heads == 1);
    check_against_fixture(model, *dir / "resnet_io.safetensors", 1e-4);
}

TEST_CASE("the Hugging Face copy of the ViT, with and without its config.json") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::model inferred = clip::model::load(*dir / "vit_hf.safetensors");
    CHECK(inferred.scheme() == clip::naming_scheme::huggingface);
    check_against_fixture(inferred, *dir / "vit_io.safetensors", 1e-4);
    const clip::model configured = clip::model::load(*dir / "vit_hf.safetensors", *dir / "vit_hf_config.json");
    CHECK(configured.config().act == clip::activation::quick_gelu);
    CHECK(configured.config().vision.heads == 2);
    check_against_fixture(configured, *dir / "vit_io.safetensors", 1e-4);
    CHECK(configured.parameter_count() == clip::model::load(*dir / "vit.safetensors").parameter_count());
}

TEST_CASE("the end-to-end model on real captions and photos") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::model model = clip::model::load(*dir / "e2e.safetensors");
    CHECK(model.config().vision.image_size == 224);
    CHECK(model.config().text.vocab_size == 49408);
    check_against_fixture(model, *dir / "e2e_io.safetensors", 1e-4);
}

TEST_CASE("the text tower stops at the last EOT of the batch, with the full-context result") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::model model = clip::model::load(*dir / "e2e.safetensors");
    const clip::safetensors io = clip::safetensors::open(*dir / "e2e_io.safetensors");
    const tensor text = io.get("text"); // 5 captions of 5 to 12 tokens
    fixture_run full;
    const tensor everything = model.encode_text(text, &full.observer); // traced: all 77 positions
    REQUIRE(full.seen.at("txt.block.0").size(1) == 77);
    const tensor truncated = model.encode_text(text);
    // Rows of a product do not depend on the other rows, so fewer positions give the same numbers
    // up to the GEMM's blocking: equal within float rounding of the reduction order.
    check_matches("batch", truncated, everything, 1e-6);
    // Each caption alone runs to its own EOT and gives its row of the batch.
    for (std::int64_t m = 0; m < text.size(0); ++m)
        check_matches("caption " + std::to_string(m), model.encode_text(text.slice(0, m, m + 1)), everything.slice(0, m, m + 1), 1e-6);
    check_matches("reference", truncated, io.get("text_features"), 1e-4);
}

TEST_CASE("the ViT's last block runs for the class token alone, with the full result") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::model model = clip::model::load(*dir / "vit.safetensors");
    const clip::safetensors io = clip::safetensors::open(*dir / "vit_io.safetensors");
    const tensor images = io.get("image");
    fixture_run full;
    const tensor everything = model.encode_image(images, &full.observer); // traced: every position
    const std::int64_t last = model.config().vision.layers - 1;
    REQUIRE(full.seen.at("vis.block." + std::to_string(last)).size(1) == model.config().vision.tokens());
    const tensor pooled = model.encode_image(images);
    check_matches("batch", pooled, everything, 1e-6);
    check_matches("reference", pooled, io.get("image_features"), 1e-4);
}

TEST_CASE("f16 checkpoints load and stay close to the reference") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    // Rounding every weight to f16 (relative error up to 2^-11) moves the outputs by about
    // 1e-3 of their scale on these models; 1e-2 leaves a margin while still catching any
    // wrongly mapped or unconverted tensor (those give errors of order 1).
    for (const char* name : {"vit", "resnet"}) {
        CAPTURE(name);
        const auto path = as_f16(*dir / (std::string(name) + ".safetensors"));
        const clip::model model = clip::model::load(path);
        check_against_fixture(model, *dir / (std::string(name) + "_io.safetensors"), 1e-2);
        std::filesystem::remove(path);
    }
}

TEST_CASE("inputs of the wrong shape or dtype are rejected with the expected shape") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::model model = clip::model::load(*dir / "vit.safetensors");
    const std::string message = clip::test::error_message([&] { model.encode_image(tensor::zeros({2, 3, 64, 64})); });
    CHECK(clip::test::contains(message, "[N, 3, 32, 32]"));
    CHECK(clip::test::contains(message, "[2, 3, 64, 64]"));
    CHECK_THROWS_AS(model.encode_text(tensor::zeros({2, 76}, clip::dtype::i64)), clip::shape_error);
    CHECK_THROWS_AS(model.encode_text(tensor::zeros({2, 77})), clip::dtype_error);
    CHECK_THROWS_AS(model.encode_text(tensor::full({1, 77}, 1000, clip::dtype::i64)), clip::index_error);
}

TEST_CASE("presets and random initialisation") {
    const clip::clip_config b32 = clip::preset("ViT-B/32");
    CHECK(b32.vision.width == 768);
    CHECK(b32.vision.heads == 12);
    CHECK(b32.vision.tokens() == 50);
    CHECK(clip::preset("RN50").vision.resnet_layers == std::array<std::int64_t, 4>{3, 4, 6, 3});
    CHECK(clip::preset("RN50x4").vision.image_size == 288);
    CHECK(clip::preset("ViT-L/14@336px").vision.image_size == 336);
    CHECK_THROWS_AS(clip::preset("ViT-H/14"), clip::error);

    // A small ViT and ResNet build, run, and give finite, deterministic features.
    clip::clip_config small = clip::detail::make_vit(32, 32, 2, 64, 8, 64, 2);
    small.text.vocab_size = 100;
    const clip::model a = clip::model::random(small, 7), b = clip::model::random(small, 7);
    const tensor images = clip::rand_normal({2, 3, 32, 32}, 1);
    const tensor ids = tensor::full({2, 77}, 5, clip::dtype::i64);
    const tensor fa = a.encode_image(images), fb = b.encode_image(images);
    CHECK(fa.to_vector<float>() == fb.to_vector<float>());
    for (float v : a.encode_text(ids).to_vector<float>()) REQUIRE(std::isfinite(v));
    CHECK(a.logit_scale() == doctest::Approx(std::log(1 / 0.07)));
    CHECK(a.parameter_count() > 0);

    clip::clip_config resnet = clip::detail::make_resnet(32, 64, {1, 1, 1, 1}, 8, 64, 1);
    resnet.text.vocab_size = 100;
    const clip::model r = clip::model::random(resnet, 3);
    for (float v : r.encode_image(clip::rand_normal({1, 3, 64, 64}, 2)).to_vector<float>()) REQUIRE(std::isfinite(v));
}

namespace {

/// Writes `tensors` to a fresh temporary safetensors file and returns its path.
std::filesystem::path write_temporary(const std::string& stem, const std::vector<std::pair<std::string, tensor>>& tensors) {
    const auto path = std::filesystem::temp_directory_path() / ("clip-model-test-" + stem + ".safetensors");
    clip::save_safetensors(path, tensors);
    return path;
}

std::vector<std::pair<std::string, tensor>> all_tensors(const std::filesystem::path& weights) {
    const clip::safetensors file = clip::safetensors::open(weights);
    std::vector<std::pair<std::string, tensor>> out;
    for (const std::string& name : file.names()) out.emplace_back(name, file.get(name));
    return out;
}

} // namespace

TEST_CASE("checkpoints that do not fit the architecture name the file and the tensor") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const auto base = all_tensors(*dir / "vit.safetensors");
    struct row {
        std::string stem;
        std::function<void(std::vector<std::pair<std::string, tensor>>&)> mutate;
        std::string expected_tensor;
        std::string expected_problem;
    };
    const std::vector<row> rows{
        {"missing", [](auto& t) { std::erase_if(t, [](const auto& p) { return p.first == "visual.ln_post.bias"; }); },
         "visual.ln_post.bias", "missing"},
        {"wrong-shape", [](auto& t) {
             for (auto& p : t) if (p.first == "transformer.resblocks.1.mlp.c_fc.weight") p.second = tensor::zeros({512, 127});
         }, "transformer.resblocks.1.mlp.c_fc.weight", "expects [512, 128]"},
        {"unknown-scheme", [](auto& t) {
             for (auto& p : t) p.first = "model." + p.first;
         }, "model.", "unknown naming scheme"},
        // Tensors nothing reads: a part of the network clip does not implement (OpenCLIP's layer
        // scale here), which ignoring would silently change every output.
        {"extra", [](auto& t) { t.emplace_back("visual.transformer.resblocks.0.ls_1.gamma", tensor::ones({128})); },
         "visual.transformer.resblocks.0.ls_1.gamma", "does not use"},
        // Found by fuzzing: a 20-digit layer index threw std::out_of_range from std::stoll; a
        // scalar where infer_config reads a shape's last extent read outside the shape; an empty
        // positional embedding gave sqrt(-1) and an overflowing image size.
        {"huge-layer-index", [](auto& t) { t.emplace_back("visual.transformer.resblocks.99999999999999999999.x", tensor::ones({1})); },
         "visual.transformer.resblocks.2.", "missing"},
        {"scalar-conv", [](auto& t) {
             for (auto& p : t) if (p.first == "visual.conv1.weight") p.second = tensor::zeros({});
         }, "visual.conv1.weight", "has shape []; a CLIP model's has 4 dimensions"},
        {"empty-positional", [](auto& t) {
             for (auto& p : t) if (p.first == "visual.positional_embedding") p.second = tensor::zeros({0, 128});
         }, "inferred from the tensor shapes is invalid", "vision.image_size must be positive, got 0"},
        {"hf-missing-q", [&](auto& t) {
             t = all_tensors(*dir / "vit_hf.safetensors");
             std::erase_if(t, [](const auto& p) { return p.first == "text_model.encoder.layers.0.self_attn.q_proj.bias"; });
         }, "text_model.encoder.layers.0.self_attn.q_proj.bias", "missing"},
    };
    for (const row& r : rows) {
        CAPTURE(r.stem);
        auto tensors = base;
        r.mutate(tensors);
        const auto path = write_temporary(r.stem, tensors);
        std::string message;
        try {
            (void)clip::model::load(path);
        } catch (const clip::io_error& e) {
            message = e.what();
        }
        std::filesystem::remove(path);
        INFO("message: " << message);
        CHECK(clip::test::contains(message, path.filename().string()));
        CHECK(clip::test::contains(message, r.expected_tensor));
        CHECK(clip::test::contains(message, r.expected_problem));
    }
}

TEST_CASE("a loaded model is safe to call from several threads at once") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::model model = clip::model::load(*dir / "vit.safetensors");
    const clip::safetensors io = clip::safetensors::open(*dir / "vit_io.safetensors");
    const tensor image = io.get("image"), text = io.get("text");
    const std::vector<float> expected_image = model.encode_image(image).to_vector<float>();
    const std::vector<float> expected_text = model.encode_text(text).to_vector<float>();
    std::vector<std::thread> threads;
    std::atomic<int> mismatches{0};
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 5; ++i) {
                if (model.encode_image(image).to_vector<float>() != expected_image) ++mismatches;
                if (model.encode_text(text).to_vector<float>() != expected_text) ++mismatches;
            }
        });
    for (std::thread& t : threads) t.join();
    CHECK(mismatches.load() == 0);
}

TEST_CASE("an OpenCLIP model config gives the architecture and the activation") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const auto config_path = [](const std::string& stem, const std::string& text) {
        const auto path = std::filesystem::temp_directory_path() / ("clip-model-test-" + stem + ".json");
        std::ofstream(path) << text;
        return path;
    };
    const std::string vision = R"("vision_cfg": {"image_size": 32, "layers": 2, "width": 128, "patch_size": 8})";
    const std::string text = R"("text_cfg": {"context_length": 77, "vocab_size": 1000, "width": 128, "heads": 2, "layers": 2})";
    const auto quick = config_path("quick", "{\"embed_dim\": 64, \"quick_gelu\": true, " + vision + ", " + text + "}");
    const clip::model model = clip::model::load(*dir / "vit.safetensors", quick);
    CHECK(model.config().act == clip::activation::quick_gelu);
    check_against_fixture(model, *dir / "vit_io.safetensors", 1e-4);

    // OpenCLIP's default activation is GELU: the same weights then give other features.
    const auto plain = config_path("gelu", "{\"embed_dim\": 64, " + vision + ", " + text + "}");
    const clip::model gelu = clip::model::load(*dir / "vit.safetensors", plain);
    CHECK(gelu.config().act == clip::activation::gelu);
    const clip::safetensors io = clip::safetensors::open(*dir / "vit_io.safetensors");
    CHECK(clip::test::max_relative_error(gelu.encode_image(io.get("image")), io.get("image_features")) > 1e-3);

    const auto wrong = config_path("wrong", "{\"embed_dim\": 64, \"quick_gelu\": true, " + vision +
                                                ", \"text_cfg\": {\"width\": 256, \"heads\": 4, \"layers\": 2, \"vocab_size\": 1000}}");
    const std::string message = clip::test::error_message([&] { (void)clip::model::load(*dir / "vit.safetensors", wrong); });
    CHECK(clip::test::contains(message, "vit.safetensors"));
    CHECK(clip::test::contains(message, "expects"));
    const auto broken = config_path("broken", "{\"embed_dim\": 64, ");
    CHECK_THROWS_AS(clip::model::load(*dir / "vit.safetensors", broken), clip::io_error);

    // The Hub's open_clip_config.json: the model config under "model_cfg".
    const auto hub = config_path("hub", "{\"model_cfg\": {\"embed_dim\": 64, \"quick_gelu\": true, " + vision + ", " + text +
                                            "}, \"preprocess_cfg\": {\"mean\": [0.5, 0.5, 0.5]}}");
    check_against_fixture(clip::model::load(*dir / "vit.safetensors", hub), *dir / "vit_io.safetensors", 1e-4);
    // Options that change the network are refused, not ignored.
    const std::string scaled_vision = R"("vision_cfg": {"image_size": 32, "layers": 2, "width": 128, "patch_size": 8, "ls_init_value": 0.1})";
    const auto scaled = config_path("ls", "{\"embed_dim\": 64, " + scaled_vision + ", " + text + "}");
    const std::string refused = clip::test::error_message([&] { (void)clip::model::load(*dir / "vit.safetensors", scaled); });
    CHECK(clip::test::contains(refused, "vision_cfg.ls_init_value = 0.1 is not supported"));
    const std::string pooled_text = R"("text_cfg": {"vocab_size": 1000, "width": 128, "heads": 2, "layers": 2, "pool_type": "last"})";
    const auto last = config_path("pool", "{\"embed_dim\": 64, " + vision + ", " + pooled_text + "}");
    CHECK(clip::test::contains(clip::test::error_message([&] { (void)clip::model::load(*dir / "vit.safetensors", last); }),
                               "text_cfg.pool_type = \"last\" is not supported"));
    // Defaults written out are fine.
    const std::string explicit_text = R"("text_cfg": {"vocab_size": 1000, "width": 128, "heads": 2, "layers": 2, "pool_type": "argmax", "ls_init_value": null, "embed_cls": false, "hf_model_name": null})";
    const auto defaults = config_path("defaults", "{\"embed_dim\": 64, \"quick_gelu\": true, " + vision + ", " + explicit_text + "}");
    check_against_fixture(clip::model::load(*dir / "vit.safetensors", defaults), *dir / "vit_io.safetensors", 1e-4);
    // Found by fuzzing: sizes that overflowed or divided by zero while the head counts were
    // computed, before validate(), and a float beyond float's range (undefined conversions).
    const std::vector<std::pair<std::string, std::string>> bad_numbers{
        {R"("vision_cfg": {"image_size": 32, "layers": 2, "width": 128, "patch_size": 8, "head_width": 0})", "'head_width' must be an integer from 1 to 16777216, it is 0"},
        {R"("vision_cfg": {"image_size": 32, "layers": 2, "width": -9223372036854775808, "patch_size": 8})", "'width' must be an integer from 1 to 16777216"},
        {R"("vision_cfg": {"image_size": 64, "layers": [1, 1e20, 1, 1], "width": 32})", "'layers' must be an integer from 1 to 16777216, it is 1e+20"},
        {R"("vision_cfg": {"image_size": 4611686018427387904, "layers": 2, "width": 128, "patch_size": 1})", "'image_size' must be an integer"},
    };
    std::vector<std::filesystem::path> bad_paths;
    for (const auto& [bad_vision, expected] : bad_numbers) {
        bad_paths.push_back(config_path("bad" + std::to_string(bad_paths.size()), "{\"embed_dim\": 64, " + bad_vision + ", " + text + "}"));
        const std::string bad_message = clip::test::error_message([&] { (void)clip::read_config(bad_paths.back()); });
        INFO(bad_message);
        CHECK(clip::test::contains(bad_message, bad_paths.back().string()));
        CHECK(clip::test::contains(bad_message, expected));
        CHECK_THROWS_AS((void)clip::read_config(bad_paths.back()), clip::io_error);
    }
    bad_paths.push_back(config_path("twice", "{\"embed_dim\": 64, \"embed_dim\": 32, " + vision + ", " + text + "}"));
    CHECK(clip::test::contains(clip::test::error_message([&] { (void)clip::read_config(bad_paths.back()); }),
                               "duplicate key \"embed_dim\""));
    bad_paths.push_back(config_path("eps", R"({"vision_config": {}, "text_config": {"layer_norm_eps": 1e300}})"));
    CHECK(clip::test::contains(clip::test::error_message([&] { (void)clip::read_config(bad_paths.back()); }),
                               "layer_norm_eps must be in (0, 1), it is 1e+300"));
    for (const auto& p : bad_paths) std::filesystem::remove(p);
    for (const auto& p : {quick, plain, wrong, broken, hub, scaled, last, defaults}) std::filesystem::remove(p);
}

} // namespace models_clip_model_test
