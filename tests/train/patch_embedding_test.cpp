// Tests for clip/train/patch_embedding.hpp: the patch GEMM gives oneDNN's strided convolution
// (and the inference tower's embedding), and the kernel, class and positional gradients are the
// exact sums of a double reference (the op is linear in each).
#include "gradient_check.hpp"

#include "clip/train/patch_embedding.hpp"

namespace train_patch_embedding_test {

using clip::shape;
using clip::tensor;
using clip::test::check_gradient;
using clip::test::test_parameter;
using clip::test::weighted_sum;
namespace train = clip::train;

TEST_CASE("patch embedding: forward as conv2d + class token + positions") {
    const std::int64_t N = 2, W = 12, P = 4, R = 12, g = R / P, T = g * g + 1;
    test_parameter kernel({W, 3, P, P}, 1, 0.0f, 0.2f), cls({W}, 2), pos({T, W}, 3);
    const train::patch_embedding layer{kernel.value, kernel.grad, cls.value, cls.grad, pos.value, pos.grad};
    const tensor images = clip::rand_normal({N, 3, R, R}, 4);
    train::patch_embedding::cache c;
    const tensor& x = layer.forward(images, c);
    const tensor conv = clip::conv2d(images, kernel.value, {.stride = {P, P}}); // [N, W, g, g]
    const tensor expected = tensor::empty({N, T, W});
    expected.slice(1, 0, 1).copy_from(cls.value);
    expected.slice(1, 1, T).copy_from(conv.view({N, W, T - 1}).transpose(1, 2));
    clip::assign(expected, expected + pos.value);
    clip::test::check_close(x, expected, 1e-5);
    CHECK_THROWS_AS(layer.forward(clip::rand_normal({N, 3, 16, 16}, 5), c), clip::shape_error);
}

TEST_CASE("patch embedding: gradients against finite differences") {
    const std::int64_t N = 3, W = 5, P = 2, R = 6, g = R / P, T = g * g + 1;
    test_parameter kernel({W, 3, P, P}, 1, 0.0f, 0.3f), cls({W}, 2), pos({T, W}, 3);
    const train::patch_embedding layer{kernel.value, kernel.grad, cls.value, cls.grad, pos.value, pos.grad};
    const tensor images = clip::rand_normal({N, 3, R, R}, 4);
    const tensor weights = clip::rand_normal({N, T, W}, 5);
    train::patch_embedding::cache c;
    const auto objective = [&] { return weighted_sum(layer.forward(images, c), weights); };
    (void)objective();
    layer.backward(weights, c);
    // The objective is linear in every parameter: the differences are exact up to rounding.
    check_gradient("conv1.weight", kernel.value, kernel.grad, objective, 1e-4);
    check_gradient("class_embedding", cls.value, cls.grad, objective, 1e-4);
    check_gradient("positional_embedding", pos.value, pos.grad, objective, 1e-4);
}

} // namespace train_patch_embedding_test
