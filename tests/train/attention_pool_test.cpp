// Tests for clip/train/attention_pool.hpp: the forward pass gives the inference model's
// attention_pool (models/modified_resnet.hpp), and the gradients of the positional embedding,
// the four projections and the input match finite differences, for one and several heads (the
// key bias's is exactly zero: the softmax ignores it).
#include "gradient_check.hpp"

#include "clip/train/attention_pool.hpp"

namespace train_attention_pool_test {

using clip::shape;
using clip::tensor;
using clip::test::check_gradient;
using clip::test::test_parameter;
using clip::test::weighted_sum;
namespace train = clip::train;

namespace {

struct pool_case {
    std::int64_t N, side, C, E, heads;
};

} // namespace

TEST_CASE("attention_pool: forward as the inference layer, gradients against finite differences") {
    for (const pool_case& k : {pool_case{2, 2, 8, 6, 1}, pool_case{3, 3, 12, 5, 3}, pool_case{1, 1, 16, 16, 2}}) {
        CAPTURE(k.side);
        CAPTURE(k.heads);
        const std::int64_t C = k.C, S = k.side * k.side + 1;
        test_parameter pos({S, C}, 1, 0.0f, 0.5f);
        test_parameter qw({C, C}, 2, 0.0f, 0.4f), qb({C}, 3, 0.0f, 0.2f), kw({C, C}, 4, 0.0f, 0.4f), kb({C}, 5, 0.0f, 0.2f);
        test_parameter vw({C, C}, 6, 0.0f, 0.4f), vb({C}, 7, 0.0f, 0.2f), cw({k.E, C}, 8, 0.0f, 0.4f), cb({k.E}, 9);
        const auto lin = [](test_parameter& w, test_parameter& b) {
            return train::linear{w.value, w.grad, b.value, b.grad, clip::activation::none};
        };
        const train::attention_pool layer{pos.value, pos.grad, lin(qw, qb), lin(kw, kb), lin(vw, vb), lin(cw, cb), k.heads};
        const tensor x = clip::rand_normal({k.N, k.side, k.side, C}, 10);
        const tensor weights = clip::rand_normal({k.N, k.E}, 11);
        train::attention_pool::cache c;
        const auto objective = [&] { return weighted_sum(layer.forward(x, c), weights); };
        (void)objective();

        const clip::attention_pool inference{pos.value,
                                             clip::nn::linear::from(qw.value, qb.value),
                                             clip::nn::linear::from(kw.value, kb.value),
                                             clip::nn::linear::from(vw.value, vb.value),
                                             clip::nn::linear::from(cw.value, cb.value),
                                             k.heads};
        clip::test::check_close(c.c.output, inference(x.permute({0, 3, 1, 2})), 1e-5);

        const tensor dx = tensor::full(x.shape(), 3.0);
        layer.backward(weights, c, dx);
        check_gradient("positional_embedding", pos.value, pos.grad, objective);
        check_gradient("q_proj.weight", qw.value, qw.grad, objective);
        check_gradient("q_proj.bias", qb.value, qb.grad, objective);
        check_gradient("k_proj.weight", kw.value, kw.grad, objective);
        // The key bias adds q·b_k to every score of a row, which the softmax ignores: its
        // gradient is exactly zero (a difference quotient would be all noise).
        const std::vector<float> gk = kb.grad.to_vector<float>();
        CHECK(std::all_of(gk.begin(), gk.end(), [](float g) { return g == 0.0f; }));
        check_gradient("v_proj.weight", vw.value, vw.grad, objective);
        check_gradient("v_proj.bias", vb.value, vb.grad, objective);
        check_gradient("c_proj.weight", cw.value, cw.grad, objective);
        check_gradient("c_proj.bias", cb.value, cb.grad, objective);
        check_gradient("input", x, dx, objective);
    }
}

TEST_CASE("attention_pool: the gradients do not depend on the thread count") {
    const std::int64_t C = 64, S = 50;
    test_parameter pos({S, C}, 1), qw({C, C}, 2, 0.0f, 0.2f), qb({C}, 3), kw({C, C}, 4, 0.0f, 0.2f), kb({C}, 5);
    test_parameter vw({C, C}, 6, 0.0f, 0.2f), vb({C}, 7), cw({32, C}, 8, 0.0f, 0.2f), cb({32}, 9);
    const auto lin = [](test_parameter& w, test_parameter& b) {
        return train::linear{w.value, w.grad, b.value, b.grad, clip::activation::none};
    };
    const train::attention_pool layer{pos.value, pos.grad, lin(qw, qb), lin(kw, kb), lin(vw, vb), lin(cw, cb), 4};
    const tensor x = clip::rand_normal({16, 7, 7, C}, 10);
    const tensor dy = clip::rand_normal({16, 32}, 11);
    const auto run = [&](int threads) {
        const int saved = clip::num_threads();
        clip::set_num_threads(threads);
        train::attention_pool::cache c;
        (void)layer.forward(x, c);
        const tensor dx = tensor::empty(x.shape());
        layer.backward(dy, c, dx);
        clip::set_num_threads(saved);
        std::vector<float> out = dx.to_vector<float>();
        for (const tensor& t : std::initializer_list<tensor>{c.grad_k, c.grad_v, c.grad_q}) {
            const std::vector<float> v = t.to_vector<float>();
            out.insert(out.end(), v.begin(), v.end());
        }
        return out;
    };
    CHECK(run(1) == run(4));
}

} // namespace train_attention_pool_test
