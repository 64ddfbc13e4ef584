// Tests for clip/train/transformer.hpp: a stack of residual blocks gives nn::transformer's
// output, and its parameter and input gradients match finite differences (causal and not,
// QuickGELU and GELU).
#include "gradient_check.hpp"

#include "clip/train/transformer.hpp"

#include <map>

namespace train_transformer_test {

using clip::shape;
using clip::tensor;
using clip::test::check_gradient;
using clip::test::weighted_sum;
namespace train = clip::train;

namespace {

/// The parameters of `layers` blocks of width W, randomly drawn, as a parameter source too.
struct block_parameters : clip::nn::parameter_source {
    std::map<std::string, clip::test::test_parameter> all;
    block_parameters(std::int64_t W, std::int64_t layers) {
        std::uint64_t seed = 10;
        const auto add = [&](const std::string& name, shape s, float mean, float stddev) {
            all.emplace(name, clip::test::test_parameter(s, seed++, mean, stddev));
        };
        for (std::int64_t i = 0; i < layers; ++i) {
            const std::string p = "t.resblocks." + std::to_string(i) + ".";
            add(p + "attn.in_proj_weight", {3 * W, W}, 0.0f, 0.3f);
            add(p + "attn.in_proj_bias", {3 * W}, 0.0f, 0.1f);
            add(p + "attn.out_proj.weight", {W, W}, 0.0f, 0.3f);
            add(p + "attn.out_proj.bias", {W}, 0.0f, 0.1f);
            add(p + "ln_1.weight", {W}, 1.0f, 0.2f);
            add(p + "ln_1.bias", {W}, 0.0f, 0.1f);
            add(p + "mlp.c_fc.weight", {4 * W, W}, 0.0f, 0.3f);
            add(p + "mlp.c_fc.bias", {4 * W}, 0.0f, 0.1f);
            add(p + "mlp.c_proj.weight", {W, 4 * W}, 0.0f, 0.2f);
            add(p + "mlp.c_proj.bias", {W}, 0.0f, 0.1f);
            add(p + "ln_2.weight", {W}, 1.0f, 0.2f);
            add(p + "ln_2.bias", {W}, 0.0f, 0.1f);
        }
    }
    tensor get(const std::string& name, const shape&) override { return all.at(name).value; }
    bool contains(const std::string& name) const override { return all.count(name) != 0; }

    /// The trainable stack over these tensors.
    train::transformer trainable(std::int64_t layers, std::int64_t heads, bool causal, clip::activation act) const {
        train::transformer t;
        for (std::int64_t i = 0; i < layers; ++i) {
            const std::string p = "t.resblocks." + std::to_string(i) + ".";
            const auto& at = [&](const std::string& n) -> const clip::test::test_parameter& { return all.at(p + n); };
            const auto ln = [&](const std::string& n) {
                return train::layer_norm{at(n + ".weight").value, at(n + ".weight").grad, at(n + ".bias").value,
                                         at(n + ".bias").grad, 1e-5f};
            };
            const auto lin = [&](const std::string& n, clip::activation a) {
                return train::linear{at(n + ".weight").value, at(n + ".weight").grad, at(n + ".bias").value,
                                     at(n + ".bias").grad, a};
            };
            t.blocks.push_back({ln("ln_1"),
                                {train::linear{at("attn.in_proj_weight").value, at("attn.in_proj_weight").grad,
                                               at("attn.in_proj_bias").value, at("attn.in_proj_bias").grad,
                                               clip::activation::none},
                                 lin("attn.out_proj", clip::activation::none), heads, causal},
                                ln("ln_2"), lin("mlp.c_fc", act), lin("mlp.c_proj", clip::activation::none)});
        }
        return t;
    }
};

} // namespace

TEST_CASE("transformer: forward as nn::transformer, every gradient against finite differences") {
    for (const bool causal : {false, true}) {
        const clip::activation act = causal ? clip::activation::quick_gelu : clip::activation::gelu;
        CAPTURE(causal);
        const std::int64_t W = 8, layers = 2, heads = 2;
        block_parameters params(W, layers);
        const train::transformer stack = params.trainable(layers, heads, causal, act);
        const tensor x = clip::rand_normal({2, 5, W}, 1);
        const tensor weights = clip::rand_normal({2, 5, W}, 2);
        train::transformer::cache c;
        const auto objective = [&] { return weighted_sum(stack.forward(x, c), weights); };
        (void)objective();
        const clip::nn::transformer inference = clip::nn::transformer::load(params, "t", W, layers, heads, act, 1e-5f);
        clip::test::check_close(stack.forward(x, c), inference(x, causal), 2e-6);

        const tensor d = weights.clone();
        stack.backward(d, c);
        for (const auto& [name, p] : params.all) check_gradient(name, p.value, p.grad, objective);
        check_gradient("input", x, d, objective);
    }
}

} // namespace train_transformer_test
