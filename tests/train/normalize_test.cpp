// Tests for clip/train/normalize.hpp: forward as clip::l2_normalize; the gradient against finite
// differences, in place, and past the eps clamp.
#include "gradient_check.hpp"

#include "clip/train/normalize.hpp"

namespace train_normalize_test {

using clip::tensor;
using clip::test::check_gradient;
using clip::test::weighted_sum;
namespace train = clip::train;

TEST_CASE("l2_normalize: forward and gradient") {
    const tensor x = clip::rand_normal({4, 19}, 1, 0.3f, 1.0f);
    const tensor weights = clip::rand_normal({4, 19}, 2);
    const train::l2_normalize layer;
    train::l2_normalize::cache c;
    const auto objective = [&] { return weighted_sum(layer.forward(x, c), weights); };
    (void)objective();
    CHECK(c.output.to_vector<float>() == clip::l2_normalize(x).to_vector<float>());
    const tensor dx = weights.clone();
    layer.backward(dx, c, dx);
    check_gradient("input", x, dx, objective, 2e-3, 1e-3f);
}

TEST_CASE("l2_normalize: below eps the clamp is constant, dx = dy / eps") {
    const train::l2_normalize layer{1e-3f};
    const tensor x = tensor::full({1, 3}, 1e-4);
    train::l2_normalize::cache c;
    (void)layer.forward(x, c);
    const tensor dy = tensor::from<float>({1.0f, 2.0f, -1.0f}, clip::shape{1, 3});
    const tensor dx = tensor::empty({1, 3});
    layer.backward(dy, c, dx);
    clip::test::check_close(dx, clip::eval(dy * 1e3f), 1e-6);
}

} // namespace train_normalize_test
