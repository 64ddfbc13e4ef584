// Tests for clip/train/linear.hpp: linear and projection gradients against finite differences
// for every activation, with a residual; the forward pass against clip::matmul's fused one; the
// accumulation rules (parameter gradients add up, dx is written or added to).
#include "gradient_check.hpp"

#include "clip/train/linear.hpp"

namespace train_linear_test {

using clip::shape;
using clip::tensor;
using clip::test::check_gradient;
using clip::test::test_parameter;
using clip::test::weighted_sum;
namespace train = clip::train;

TEST_CASE("linear: weight, bias and input gradients for each activation") {
    for (const clip::activation act : {clip::activation::none, clip::activation::quick_gelu, clip::activation::gelu}) {
        CAPTURE(static_cast<int>(act));
        test_parameter w({6, 5}, 1, 0.0f, 0.5f), b({6}, 2, 0.0f, 0.5f);
        const tensor x = clip::rand_normal({2, 3, 5}, 3);
        const tensor residual = clip::rand_normal({2, 3, 6}, 4);
        const tensor weights = clip::rand_normal({2, 3, 6}, 5);
        const train::linear layer{w.value, w.grad, b.value, b.grad, act};
        train::linear::cache c;
        const auto objective = [&] { return weighted_sum(layer.forward(x, c, residual), weights); };
        (void)objective();
        clip::test::check_close(c.output, clip::matmul(x, w.value.t(), {.bias = b.value, .act = act, .residual = residual}),
                                1e-6);
        const tensor dx = tensor::empty(x.shape());
        layer.backward(weights.clone(), c, dx);
        check_gradient("weight", w.value, w.grad, objective);
        check_gradient("bias", b.value, b.grad, objective);
        check_gradient("input", x, dx, objective);
    }
}

TEST_CASE("linear: parameter gradients accumulate, dx is written or added to") {
    test_parameter w({4, 3}, 1), b({4}, 2);
    const tensor x = clip::rand_normal({5, 3}, 3);
    const train::linear layer{w.value, w.grad, b.value, b.grad, clip::activation::none};
    train::linear::cache c;
    (void)layer.forward(x, c);
    const tensor dy = clip::rand_normal({5, 4}, 4);
    const tensor dx = tensor::empty({5, 3});
    layer.backward(dy, c, dx);
    const tensor once_w = w.grad.clone(), once_b = b.grad.clone(), once_x = dx.clone();
    layer.backward(dy, c, dx, true);
    clip::test::check_close(w.grad, clip::eval(once_w * 2.0f), 1e-6);
    clip::test::check_close(b.grad, clip::eval(once_b * 2.0f), 1e-6);
    clip::test::check_close(dx, clip::eval(once_x * 2.0f), 1e-6);
    // The input gradient is optional, and a layer may have no bias.
    const train::linear plain{w.value, w.grad, {}, {}, clip::activation::none};
    train::linear::cache pc;
    (void)plain.forward(x, pc);
    plain.backward(dy, pc);
    clip::test::check_close(w.grad, clip::eval(once_w * 3.0f), 1e-6);
    CHECK_THROWS_AS(layer.backward(tensor::zeros({5, 3}), c, dx), clip::shape_error);
}

TEST_CASE("projection: weight and input gradients") {
    test_parameter p({5, 3}, 7);
    const tensor x = clip::rand_normal({4, 5}, 8);
    const tensor weights = clip::rand_normal({4, 3}, 9);
    const train::projection layer{p.value, p.grad};
    train::projection::cache c;
    const auto objective = [&] { return weighted_sum(layer.forward(x, c), weights); };
    (void)objective();
    clip::test::check_close(c.output, clip::matmul(x, p.value), 1e-6);
    const tensor dx = tensor::empty(x.shape());
    layer.backward(weights, c, dx);
    check_gradient("weight", p.value, p.grad, objective);
    check_gradient("input", x, dx, objective);
}

} // namespace train_linear_test
