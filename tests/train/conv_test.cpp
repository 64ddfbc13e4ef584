// Tests for clip/train/conv.hpp: the channels-last layer gives clip::conv2d's output, and its
// kernel and input gradients match finite differences (the stem's stride-2 3×3, a padded 3×3,
// 1×1 projections); kernel gradients accumulate across calls.
#include "gradient_check.hpp"

#include "clip/train/conv.hpp"

namespace train_conv_test {

using clip::shape;
using clip::tensor;
using clip::test::check_gradient;
using clip::test::test_parameter;
using clip::test::weighted_sum;
namespace train = clip::train;

namespace {

struct conv_case {
    shape x; // [N, H, W, C]
    std::int64_t out, kernel, stride, padding;
};

} // namespace

TEST_CASE("conv2d: forward as clip::conv2d, kernel and input gradients against finite differences") {
    for (const conv_case& k : {conv_case{{2, 9, 9, 3}, 4, 3, 2, 1}, conv_case{{2, 6, 5, 4}, 6, 3, 1, 1},
                               conv_case{{3, 4, 4, 8}, 16, 1, 1, 0}, conv_case{{2, 3, 3, 20}, 5, 1, 1, 0}}) {
        CAPTURE(k.x);
        CAPTURE(k.kernel);
        CAPTURE(k.stride);
        const std::int64_t C = k.x[3];
        test_parameter w({k.out, C, k.kernel, k.kernel}, 1, 0.0f, 0.5f);
        const train::conv2d layer{w.value, w.grad, k.stride, k.padding};
        const tensor x = clip::rand_normal(k.x, 2);
        train::conv2d::cache c;
        const tensor& y = layer.forward(x, c);
        const tensor expected = clip::conv2d(x.permute({0, 3, 1, 2}).contiguous(), w.value, layer.options());
        clip::test::check_close(y, expected.permute({0, 2, 3, 1}), 1e-5);
        const tensor weights = clip::rand_normal(y.shape(), 3);
        const auto objective = [&] { return weighted_sum(layer.forward(x, c), weights); };
        const tensor dx = tensor::empty(x.shape());
        layer.backward(weights, c, dx);
        // The objective is linear in the kernel and in the input: differences are exact up to rounding.
        check_gradient("weight", w.value, w.grad, objective, 1e-4);
        check_gradient("input", x, dx, objective, 1e-4);
    }
}

TEST_CASE("conv2d: kernel gradients accumulate, the input gradient is optional") {
    test_parameter w({4, 3, 3, 3}, 1);
    const train::conv2d layer{w.value, w.grad, 1, 1};
    const tensor x = clip::rand_normal({2, 5, 5, 3}, 2);
    train::conv2d::cache c;
    const tensor dy = clip::rand_normal(layer.forward(x, c).shape(), 3);
    layer.backward(dy, c);
    const tensor once = w.grad.clone();
    layer.backward(dy, c);
    clip::test::check_close(w.grad, clip::eval(once * 2.0f), 1e-6);
    CHECK_THROWS_AS(layer.forward(clip::rand_normal({2, 5, 5, 4}, 4), c), clip::shape_error);
    CHECK_THROWS_AS(layer.backward(tensor::zeros({2, 4, 4, 4}), c), clip::shape_error);
}

} // namespace train_conv_test
