// Tests for clip/train/text_transformer.hpp: the trainable tower gives the inference tower's
// features; gradients through the embedding, the causal blocks, EOT pooling, ln_final and the
// projection match finite differences; positions after a sequence's EOT and unused tokens get
// exactly zero gradient.
#include "gradient_check.hpp"

#include "clip/train/text_transformer.hpp"

namespace train_text_transformer_test {

using clip::shape;
using clip::tensor;
using clip::test::check_gradient;
using clip::test::weighted_sum;
namespace train = clip::train;

TEST_CASE("text tower: forward as the inference model, gradients against finite differences") {
    clip::clip_config c = clip::detail::make_vit(16, 16, 1, 32, 8, 32, 2);
    c.vision.heads = 1;
    c.text.heads = 2;
    c.text.context_length = 9;
    c.text.vocab_size = 20;
    train::parameter_store store = train::parameter_store::random(c, 5);
    std::uint64_t seed = 100;
    for (const train::parameter& p : store.parameters())
        clip::assign(p.value, p.value + clip::rand_normal(p.value.shape(), seed++, 0.0f, 0.05f));
    const train::text_transformer tower = train::text_transformer::bind(store);
    // [SOT = 18, tokens, EOT = 19, 0 ...]; the longest sequence ends at position 6.
    const tensor ids = tensor::from<std::int64_t>({18, 3, 4, 5, 19, 0, 0, 0, 0,   //
                                                   18, 19, 0, 0, 0, 0, 0, 0, 0,   //
                                                   18, 7, 7, 3, 2, 1, 19, 0, 0},
                                                  shape{3, 9});
    const tensor weights = clip::rand_normal({3, 16}, 2);
    train::text_transformer::cache cache;
    const auto objective = [&] { return weighted_sum(tower.forward(ids, cache), weights); };
    (void)objective();
    const clip::model inference = clip::model::build(store.config(), store);
    clip::test::check_close(cache.proj.output, inference.encode_text(ids), 1e-5);
    tower.backward(weights, cache);

    // Only ids that occur get a gradient; positions 7 and 8 follow every EOT.
    const std::vector<float> table = store.at("token_embedding.weight").grad.to_vector<float>();
    for (std::int64_t id : {6, 8, 10, 17})
        for (std::int64_t i = 0; i < 32; ++i) REQUIRE(table[static_cast<std::size_t>(id * 32 + i)] == 0.0f);
    const std::vector<float> positions = store.at("positional_embedding").grad.to_vector<float>();
    for (std::int64_t t : {7, 8})
        for (std::int64_t i = 0; i < 32; ++i) REQUIRE(positions[static_cast<std::size_t>(t * 32 + i)] == 0.0f);

    for (const char* name : {"token_embedding.weight", "positional_embedding", "transformer.resblocks.0.ln_1.weight",
                             "transformer.resblocks.0.attn.in_proj_weight", "transformer.resblocks.1.attn.out_proj.bias",
                             "transformer.resblocks.1.mlp.c_proj.weight", "ln_final.weight", "ln_final.bias",
                             "text_projection"}) {
        const train::parameter& p = store.at(name);
        // The embeddings start at N(0, 0.02²) and N(0, 0.01²), and ln_1 divides by their small
        // spread: a step of 1e-2 would not be small against them.
        const bool embedding = std::string(name).find("embedding") != std::string::npos;
        check_gradient(name, p.value, p.grad, objective, 2e-3, embedding ? 1e-3f : 1e-2f);
    }
}

TEST_CASE("text tower: running only up to the last EOT changes nothing") {
    clip::clip_config c = clip::detail::make_vit(16, 16, 1, 32, 8, 32, 2);
    c.vision.heads = 1;
    c.text.heads = 2;
    c.text.context_length = 9;
    c.text.vocab_size = 20;
    const train::parameter_store store = train::parameter_store::random(c, 6);
    const train::text_transformer tower = train::text_transformer::bind(store);
    const std::vector<std::int64_t> short_rows{18, 3, 4, 19, 0, 0, 0, 0, 0, //
                                               18, 19, 0, 0, 0, 0, 0, 0, 0};
    std::vector<std::int64_t> with_long_row = short_rows;
    for (std::int64_t v : {18, 1, 2, 3, 4, 5, 6, 7, 19}) with_long_row.push_back(v);
    const tensor weights = clip::rand_normal({2, 16}, 3);
    const tensor padded_weights = tensor::zeros({3, 16});
    padded_weights.slice(0, 0, 2).copy_from(weights);

    // Two short captions run on 4 positions; with a full-length third caption (whose features
    // get no gradient) on all 9. Features and gradients of the short ones must agree.
    train::text_transformer::cache a, b;
    const tensor short_features = tower.forward(tensor::from(short_rows, shape{2, 9}), a).clone();
    CHECK(a.pool.input == shape{2, 4, 32});
    tower.backward(weights, a);
    std::vector<std::vector<float>> short_grads;
    for (const train::parameter& p : store.parameters()) short_grads.push_back(p.grad.to_vector<float>());
    store.zero_grad();
    const tensor& long_features = tower.forward(tensor::from(with_long_row, shape{3, 9}), b);
    CHECK(b.pool.input == shape{3, 9, 32});
    clip::test::check_close(long_features.slice(0, 0, 2), short_features, 1e-5);
    tower.backward(padded_weights, b);
    std::size_t k = 0;
    for (const train::parameter& p : store.parameters()) {
        CAPTURE(p.name);
        clip::test::check_close(p.grad, tensor::from(short_grads[k++], p.grad.shape()), 1e-5);
    }
}

} // namespace train_text_transformer_test
