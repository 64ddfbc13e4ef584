// Tests for clip/train/checkpoint.hpp: weights saved under either naming scheme load as the
// same model; a checkpoint restores parameters, moments and step (and a ResNet's running
// statistics), and training continues exactly as the uninterrupted run; the `latest` pointer;
// damaged checkpoints are refused.
#include "../support.hpp"

#include <clip/train/checkpoint.hpp>
#include <clip/train/model.hpp>

namespace train_checkpoint_test {

using clip::test::contains;
using clip::test::error_message;
namespace fs = std::filesystem;

namespace {

clip::clip_config tiny() {
    clip::clip_config c;
    c.embed_dim = 16;
    c.vision.kind = clip::vision_kind::vit;
    c.vision.image_size = 16;
    c.vision.patch_size = 8;
    c.vision.width = 64;
    c.vision.layers = 1;
    c.vision.heads = 1;
    c.text.context_length = 12;
    c.text.vocab_size = 50;
    c.text.width = 64;
    c.text.heads = 1;
    c.text.layers = 1;
    return c;
}

struct batch {
    clip::tensor images, ids;
};

batch make_batch(const clip::clip_config& c, std::uint64_t seed) {
    const std::int64_t n = 4, ctx = c.text.context_length;
    batch b{clip::rand_normal({n, 3, c.vision.image_size, c.vision.image_size}, seed), clip::tensor::zeros({n, ctx}, clip::dtype::i64)};
    for (std::int64_t i = 0; i < n; ++i) {
        std::int64_t* row = b.ids.data<std::int64_t>() + i * ctx;
        row[0] = c.text.vocab_size - 2;
        for (std::int64_t j = 1; j < 3 + i; ++j) row[j] = 1 + static_cast<std::int64_t>((seed * 7 + i * 5 + j * 3) % 40);
        row[3 + i] = c.text.vocab_size - 1;
    }
    return b;
}

void train_steps(clip::train::parameter_store& store, clip::train::adamw& optimizer, std::int64_t first, std::int64_t last) {
    clip::train::clip_model model(store);
    for (std::int64_t step = first; step < last; ++step) {
        const batch b = make_batch(store.config(), 100 + static_cast<std::uint64_t>(step));
        store.zero_grad();
        (void)model.forward(b.images, b.ids);
        model.backward();
        optimizer.step();
        clip::train::clamp_logit_scale(store);
    }
}

std::vector<float> all_values(const clip::train::parameter_store& store) {
    std::vector<float> out;
    for (const auto& p : store.parameters()) {
        const std::vector<float> v = p.value.to_vector<float>();
        out.insert(out.end(), v.begin(), v.end());
    }
    return out;
}

} // namespace

TEST_CASE("saved weights load as the same model in both naming schemes") {
    clip::test::temp_dir tmp;
    const clip::train::parameter_store store = clip::train::parameter_store::random(tiny(), 3);
    const batch b = make_batch(tiny(), 1);
    const clip::model reference = clip::model::build(store.config(), const_cast<clip::train::parameter_store&>(store));
    for (const clip::naming_scheme scheme : {clip::naming_scheme::openai, clip::naming_scheme::huggingface}) {
        const fs::path file = tmp / (std::string(clip::naming_scheme_name(scheme)) + ".safetensors");
        clip::train::save_weights(file, store, scheme);
        const clip::model loaded = clip::model::load(file);
        CHECK(loaded.scheme() == scheme);
        CHECK(clip::test::max_relative_error(loaded.encode_image(b.images), reference.encode_image(b.images)) == 0);
        CHECK(clip::test::max_relative_error(loaded.encode_text(b.ids), reference.encode_text(b.ids)) == 0);
        // A store loaded from the file holds the same bits.
        CHECK(all_values(clip::train::parameter_store::load(file)) == all_values(store));
    }
    const clip::train::parameter_store siglip = clip::train::parameter_store::random(tiny(), 3, clip::train::objective::siglip);
    CHECK(contains(error_message([&] { clip::train::save_weights(tmp / "x.safetensors", siglip, clip::naming_scheme::huggingface); }),
                   "logit_bias"));
}

TEST_CASE("a resumed run continues bit for bit") {
    clip::test::temp_dir tmp;
    const clip::train::adamw_options options{.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-6, .weight_decay = 0.2};

    // Six steps in one go.
    clip::train::parameter_store straight = clip::train::parameter_store::random(tiny(), 7);
    clip::train::adamw straight_opt(straight, options);
    train_steps(straight, straight_opt, 0, 6);

    // Three steps, a checkpoint, then three more in a fresh store and optimiser.
    {
        clip::train::parameter_store first = clip::train::parameter_store::random(tiny(), 7);
        clip::train::adamw first_opt(first, options);
        train_steps(first, first_opt, 0, 3);
        const fs::path saved = clip::train::save_checkpoint(tmp.path(), first, first_opt, clip::naming_scheme::openai,
                                                            {{"data.position", "3"}});
        CHECK(saved.filename() == "step-00000003");
        train_steps(first, first_opt, 3, 4); // work after the checkpoint is lost with the process
    }
    const auto latest = clip::train::latest_checkpoint(tmp.path());
    REQUIRE(latest);
    CHECK(latest->filename() == "step-00000003");
    clip::train::parameter_store resumed = clip::train::parameter_store::random(tiny(), 99); // other values, overwritten
    clip::train::adamw resumed_opt(resumed, options);
    const clip::train::run_state state = clip::train::load_checkpoint(*latest, resumed, resumed_opt);
    CHECK(state.at("data.position") == "3");
    CHECK(resumed_opt.steps() == 3);
    train_steps(resumed, resumed_opt, 3, 6);
    CHECK(all_values(resumed) == all_values(straight));

    // The next checkpoint moves `latest`; the old step stays.
    clip::train::save_checkpoint(tmp.path(), resumed, resumed_opt, clip::naming_scheme::openai, {});
    CHECK(clip::train::latest_checkpoint(tmp.path())->filename() == "step-00000006");
    CHECK(fs::exists(tmp / "step-00000003" / "weights.safetensors"));
}

TEST_CASE("a ModifiedResNet's running statistics are saved with its weights and restored on resume") {
    clip::test::temp_dir tmp;
    const clip::clip_config c = clip::detail::make_resnet(16, 64, {1, 1, 1, 1}, 8, 64, 1);
    const clip::train::adamw_options options{.lr = 1e-3, .weight_decay = 0.1};
    const auto buffers = [](const clip::train::parameter_store& s) {
        std::vector<float> out;
        for (const clip::train::model_buffer& b : s.buffers()) {
            const std::vector<float> v = b.value.to(clip::dtype::f32).to_vector<float>();
            out.insert(out.end(), v.begin(), v.end());
        }
        return out;
    };
    clip::train::parameter_store straight = clip::train::parameter_store::random(c, 5);
    clip::train::adamw straight_opt(straight, options);
    train_steps(straight, straight_opt, 0, 4);
    CHECK(straight.buffer("visual.bn1.num_batches_tracked").value.item<std::int64_t>() == 4);

    clip::train::parameter_store first = clip::train::parameter_store::random(c, 5);
    clip::train::adamw first_opt(first, options);
    train_steps(first, first_opt, 0, 2);
    const fs::path saved = clip::train::save_checkpoint(tmp.path(), first, first_opt, clip::naming_scheme::openai, {});
    // The weights file alone is a whole model: it loads for inference and as a store.
    const clip::train::parameter_store loaded = clip::train::parameter_store::load(saved / "weights.safetensors");
    CHECK(buffers(loaded) == buffers(first));
    CHECK_NOTHROW((void)clip::model::load(saved / "weights.safetensors"));

    clip::train::parameter_store resumed = clip::train::parameter_store::random(c, 6);
    clip::train::adamw resumed_opt(resumed, options);
    (void)clip::train::load_checkpoint(saved, resumed, resumed_opt);
    CHECK(buffers(resumed) == buffers(first));
    train_steps(resumed, resumed_opt, 2, 4);
    CHECK(all_values(resumed) == all_values(straight));
    CHECK(buffers(resumed) == buffers(straight));
}

TEST_CASE("damaged or mismatched checkpoints are refused") {
    clip::test::temp_dir tmp;
    CHECK(!clip::train::latest_checkpoint(tmp.path()));
    clip::test::write_file(tmp / "latest", "step-00000042\n");
    CHECK(contains(error_message([&] { (void)clip::train::latest_checkpoint(tmp.path()); }), "not a directory"));

    clip::train::parameter_store store = clip::train::parameter_store::random(tiny(), 1);
    clip::train::adamw opt(store, {});
    const fs::path dir = clip::train::save_checkpoint(tmp / "run", store, opt, clip::naming_scheme::openai, {});
    // Another architecture.
    clip::clip_config wider = tiny();
    wider.embed_dim = 32;
    clip::train::parameter_store other = clip::train::parameter_store::random(wider, 1);
    clip::train::adamw other_opt(other, {});
    CHECK(contains(error_message([&] { (void)clip::train::load_checkpoint(dir, other, other_opt); }), "expects"));
    // Weights of one step with the state of another.
    opt.resume_at(5);
    const fs::path later = clip::train::save_checkpoint(tmp / "run", store, opt, clip::naming_scheme::openai, {});
    fs::copy_file(later / "state.safetensors", dir / "state.safetensors", fs::copy_options::overwrite_existing);
    CHECK(contains(error_message([&] { (void)clip::train::load_checkpoint(dir, store, opt); }), "different steps"));
    fs::remove(dir / "state.safetensors");
    CHECK_THROWS_AS((void)clip::train::load_checkpoint(dir, store, opt), clip::io_error);
}

} // namespace train_checkpoint_test
