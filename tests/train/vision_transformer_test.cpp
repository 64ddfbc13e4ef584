// Tests for clip/train/vision_transformer.hpp: the trainable tower gives the inference tower's
// features, and gradients through the whole tower (patch GEMM, class token, positions, ln_pre,
// blocks, class-token pooling, ln_post, proj) match finite differences.
#include "gradient_check.hpp"

#include "clip/train/vision_transformer.hpp"

namespace train_vision_transformer_test {

using clip::tensor;
using clip::test::check_gradient;
using clip::test::weighted_sum;
namespace train = clip::train;

namespace {

/// A small ViT (image 16, patch 4: 17 tokens; width 32, two heads, two layers), random values
/// with every gain and bias away from its initial 1 or 0.
train::parameter_store small_store(clip::activation act) {
    clip::clip_config c = clip::detail::make_vit(16, 16, 2, 32, 4, 32, 1);
    c.vision.heads = 2;
    c.text.heads = 1;
    c.text.vocab_size = 10;
    c.act = act;
    train::parameter_store store = train::parameter_store::random(c, 11);
    std::uint64_t seed = 100;
    for (const train::parameter& p : store.parameters())
        clip::assign(p.value, p.value + clip::rand_normal(p.value.shape(), seed++, 0.0f, 0.05f));
    return store;
}

} // namespace

TEST_CASE("vision tower: forward as the inference model, gradients against finite differences") {
    for (const clip::activation act : {clip::activation::quick_gelu, clip::activation::gelu}) {
        CAPTURE(static_cast<int>(act));
        train::parameter_store store = small_store(act);
        const train::vision_transformer tower = train::vision_transformer::bind(store);
        const tensor images = clip::rand_normal({3, 3, 16, 16}, 1);
        const tensor weights = clip::rand_normal({3, 16}, 2);
        train::vision_transformer::cache c;
        const auto objective = [&] { return weighted_sum(tower.forward(images, c), weights); };
        (void)objective();
        const clip::model inference = clip::model::build(store.config(), store);
        clip::test::check_close(c.proj.output, inference.encode_image(images), 1e-5);
        tower.backward(weights, c);
        for (const char* name : {"visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding",
                                 "visual.ln_pre.weight", "visual.ln_pre.bias",
                                 "visual.transformer.resblocks.0.attn.in_proj_weight",
                                 "visual.transformer.resblocks.1.mlp.c_fc.bias", "visual.ln_post.weight",
                                 "visual.ln_post.bias", "visual.proj"}) {
            const train::parameter& p = store.at(name);
            check_gradient(name, p.value, p.grad, objective);
        }
        // The text tower's parameters are untouched.
        for (float g : store.at("text_projection").grad.to_vector<float>()) REQUIRE(g == 0.0f);
    }
}

} // namespace train_vision_transformer_test
