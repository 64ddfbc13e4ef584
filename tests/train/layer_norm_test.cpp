// Tests for clip/train/layer_norm.hpp: the forward pass is clip::layer_norm's bit for bit; the
// weight, bias and input gradients against finite differences; accumulation into dx and dx = dy.
#include "gradient_check.hpp"

#include "clip/train/layer_norm.hpp"

namespace train_layer_norm_test {

using clip::tensor;
using clip::test::check_gradient;
using clip::test::test_parameter;
using clip::test::weighted_sum;
namespace train = clip::train;

TEST_CASE("layer_norm: forward as clip::layer_norm, gradients against finite differences") {
    for (const std::int64_t D : {7, 64, 67}) {
        CAPTURE(D);
        test_parameter w({D}, 1, 1.0f, 0.3f), b({D}, 2, 0.0f, 0.3f);
        const tensor x = clip::rand_normal({3, 4, D}, 3, 0.5f, 2.0f);
        const tensor weights = clip::rand_normal({3, 4, D}, 4);
        const train::layer_norm layer{w.value, w.grad, b.value, b.grad, 1e-5f};
        train::layer_norm::cache c;
        const auto objective = [&] { return weighted_sum(layer.forward(x, c), weights); };
        (void)objective();
        CHECK(c.output.to_vector<float>() == clip::layer_norm(x, w.value, b.value).to_vector<float>());
        const tensor dx = tensor::empty(x.shape());
        layer.backward(weights, c, dx);
        check_gradient("weight", w.value, w.grad, objective);
        check_gradient("bias", b.value, b.grad, objective);
        check_gradient("input", x, dx, objective);

        // dx may be the gradient buffer itself, or be added to (after a forward pass at the
        // unperturbed point: the checks above leave the cache at their last evaluation).
        (void)objective();
        const tensor in_place = weights.clone();
        layer.backward(in_place, c, in_place);
        clip::test::check_close(in_place, dx, 1e-6);
        layer.backward(weights, c, in_place, true);
        clip::test::check_close(in_place, clip::eval(dx * 2.0f), 1e-6);
    }
}

} // namespace train_layer_norm_test
