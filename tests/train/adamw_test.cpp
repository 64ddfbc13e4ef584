// Tests for clip/train/adamw.hpp: OpenCLIP's weight-decay exclusion rule, and several AdamW
// steps against the update written out in double (PyTorch's formula; the fixture comparison is
// in model_test.cpp).
#include "gradient_check.hpp"

#include "clip/train/adamw.hpp"

namespace train_adamw_test {

using clip::shape;
using clip::tensor;
namespace train = clip::train;

namespace {

clip::clip_config tiny() {
    clip::clip_config c = clip::detail::make_vit(16, 32, 1, 64, 16, 64, 1);
    c.text.vocab_size = 10;
    return c;
}

} // namespace

TEST_CASE("the weight-decay exclusion rule") {
    CHECK(train::excluded_from_weight_decay("logit_scale", {}));
    CHECK(train::excluded_from_weight_decay("visual.class_embedding", {768}));
    CHECK(train::excluded_from_weight_decay("visual.ln_pre.weight", {768}));
    CHECK(train::excluded_from_weight_decay("transformer.resblocks.0.attn.in_proj_bias", {1536}));
    CHECK(train::excluded_from_weight_decay("visual.layer1.0.bn1.weight", {64}));
    CHECK(!train::excluded_from_weight_decay("visual.transformer.resblocks.0.attn.in_proj_weight", {2304, 768}));
    CHECK(!train::excluded_from_weight_decay("token_embedding.weight", {49408, 512}));
    CHECK(!train::excluded_from_weight_decay("positional_embedding", {77, 512}));
    CHECK(!train::excluded_from_weight_decay("visual.conv1.weight", {768, 3, 32, 32}));
    const train::parameter_store store(tiny());
    const train::adamw optimizer(store, {.weight_decay = 0.1});
    CHECK(optimizer.weight_decay("visual.proj") == 0.1);
    CHECK(optimizer.weight_decay("ln_final.bias") == 0.0);
    CHECK_THROWS_AS(optimizer.weight_decay("nope"), clip::index_error);
}

TEST_CASE("AdamW steps follow PyTorch's update, with and without weight decay") {
    const train::parameter_store store = train::parameter_store::random(tiny(), 1);
    const train::adamw_options options{.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-6, .weight_decay = 0.2};
    train::adamw optimizer(store, options);
    for (const char* name : {"visual.proj", "visual.ln_post.bias"}) {
        const train::parameter& p = store.at(name);
        const std::vector<float> start = p.value.to_vector<float>();
        std::vector<double> value(start.begin(), start.end());
        std::vector<double> m(value.size(), 0.0), v(value.size(), 0.0);
        const double wd = optimizer.weight_decay(name);
        for (int t = 1; t <= 3; ++t) {
            const tensor g = clip::rand_normal(p.grad.shape(), static_cast<std::uint64_t>(t), 0.0f, 0.1f);
            p.grad.copy_from(g);
            const std::vector<float> gv = g.to_vector<float>();
            for (std::size_t i = 0; i < value.size(); ++i) {
                value[i] *= 1.0 - options.lr * wd;
                m[i] = options.beta1 * m[i] + (1 - options.beta1) * gv[i];
                v[i] = options.beta2 * v[i] + (1 - options.beta2) * gv[i] * gv[i];
                const double denom = std::sqrt(v[i]) / std::sqrt(1 - std::pow(options.beta2, t)) + options.eps;
                value[i] -= options.lr / (1 - std::pow(options.beta1, t)) * m[i] / denom;
            }
            optimizer.step();
        }
        CAPTURE(name);
        clip::test::check_close(p.value, tensor::from(std::vector<float>(value.begin(), value.end()), p.value.shape()), 1e-6);
        store.zero_grad();
        optimizer = train::adamw(store, options);
    }
    CHECK(optimizer.steps() == 0);
    optimizer.step(0.0); // a zero learning rate leaves the parameters as they are
    CHECK(optimizer.steps() == 1);
}

TEST_CASE("a ResNet's groups: BatchNorm gains and biases are not decayed, running statistics not optimised") {
    const train::parameter_store store =
        train::parameter_store::random(clip::detail::make_resnet(16, 64, {1, 1, 1, 1}, 8, 64, 1), 2);
    train::adamw optimizer(store, {.weight_decay = 0.2});
    for (const char* name : {"visual.bn1.weight", "visual.bn1.bias", "visual.layer1.0.bn3.weight",
                             "visual.layer2.0.downsample.1.weight", "visual.layer2.0.downsample.1.bias",
                             "visual.attnpool.q_proj.bias"}) {
        CAPTURE(name);
        CHECK(optimizer.weight_decay(name) == 0.0);
    }
    for (const char* name : {"visual.conv1.weight", "visual.layer3.0.conv2.weight", "visual.layer2.0.downsample.0.weight",
                             "visual.attnpool.positional_embedding", "visual.attnpool.k_proj.weight"}) {
        CAPTURE(name);
        CHECK(optimizer.weight_decay(name) == 0.2);
    }
    for (const train::parameter& p : store.parameters()) p.grad.copy_from(tensor::ones(p.grad.shape()));
    std::vector<std::vector<float>> buffers;
    for (const train::model_buffer& b : store.buffers()) buffers.push_back(b.value.to(clip::dtype::f32).to_vector<float>());
    optimizer.step();
    for (std::size_t i = 0; i < buffers.size(); ++i)
        CHECK(store.buffers()[i].value.to(clip::dtype::f32).to_vector<float>() == buffers[i]);
}

} // namespace train_adamw_test
