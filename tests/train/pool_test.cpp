// Tests for clip/train/pool.hpp: average pooling with kernel = stride gives clip::avg_pool2d's
// output (including the floor for sizes that are not multiples of the kernel), and its backward
// pass is the exact adjoint, written or added.
#include "gradient_check.hpp"

#include "clip/train/pool.hpp"

namespace train_pool_test {

using clip::tensor;
using clip::test::weighted_sum;
namespace train = clip::train;

TEST_CASE("avg_pool: forward as avg_pool2d, backward as its adjoint") {
    for (const std::int64_t k : {2, 3}) {
        CAPTURE(k);
        const train::avg_pool pool{k};
        const tensor x = clip::rand_normal({2, 7, 8, 19}, 1); // 19 channels: full registers and a tail
        train::avg_pool::cache c;
        const tensor& y = pool.forward(x, c);
        const tensor expected = clip::avg_pool2d(x.permute({0, 3, 1, 2}).contiguous(), {.kernel = {k, k}});
        clip::test::check_close(y, expected.permute({0, 2, 3, 1}), 1e-6);
        // <dy, pool(x)> = <pool_backward(dy), x> for every x: the backward pass is the adjoint.
        const tensor dy = clip::rand_normal(y.shape(), 2);
        const tensor dx = tensor::full(x.shape(), 5.0);
        pool.backward(dy, c, dx);
        CHECK(weighted_sum(dx, x) == doctest::Approx(weighted_sum(y, dy)).epsilon(1e-5));
        // Rows and columns past the last whole window get no gradient.
        const std::vector<float> g = dx.to_vector<float>();
        CHECK(g[static_cast<std::size_t>(((0 * 7 + 6) * 8 + 0) * 19)] == 0.0f);
        if (k == 3) CHECK(g[static_cast<std::size_t>(((1 * 7 + 0) * 8 + 7) * 19 + 3)] == 0.0f);
        const tensor once = dx.clone();
        pool.backward(dy, c, dx, true);
        clip::test::check_close(dx, clip::eval(once * 2.0f), 1e-6);
    }
    const train::avg_pool pool{2};
    train::avg_pool::cache c;
    (void)pool.forward(tensor::zeros({1, 4, 4, 3}), c);
    CHECK_THROWS_AS(pool.backward(tensor::zeros({1, 2, 2, 2}), c, tensor::zeros({1, 4, 4, 3})), clip::shape_error);
    CHECK_THROWS_AS(pool.forward(tensor::zeros({1, 1, 4, 3}), c), clip::shape_error);
}

} // namespace train_pool_test
