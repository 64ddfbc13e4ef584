// Tests for clip/train/pooling.hpp: class-token and EOT pooling pick OpenAI's rows (first
// maximum on ties), and the backward pass puts each pooled gradient back in its row, zero
// elsewhere.
#include "gradient_check.hpp"

#include "clip/train/pooling.hpp"

namespace train_pooling_test {

using clip::shape;
using clip::tensor;
namespace train = clip::train;

TEST_CASE("EOT pooling takes the first highest id; class pooling takes token 0") {
    const std::int64_t M = 3, T = 5, W = 4;
    const tensor x = clip::rand_normal({M, T, W}, 1);
    const tensor ids = tensor::from<std::int64_t>({9, 2, 9, 0, 0, 1, 7, 0, 0, 0, 4, 4, 4, 8, 8}, shape{M, T});
    train::token_pooling::cache c;
    const tensor& pooled = train::token_pooling::eot_token(x, ids, c);
    const std::vector<std::int64_t> expected{0, 1, 3};
    CHECK(c.positions.to_vector<std::int64_t>() == expected);
    CHECK(clip::argmax(ids, -1).to_vector<std::int64_t>() == expected);
    for (std::int64_t m = 0; m < M; ++m)
        CHECK(pooled.select(0, m).to_vector<float>() == x.select(0, m).select(0, expected[static_cast<std::size_t>(m)]).to_vector<float>());
    CHECK(train::token_pooling::eot_token(x, ids.to(clip::dtype::i32), c).to_vector<float>() == pooled.to_vector<float>());

    const tensor dpooled = clip::rand_normal({M, W}, 2);
    const tensor dx = clip::rand_normal({M, T, W}, 3); // overwritten
    train::token_pooling::backward(dpooled, c, dx);
    for (std::int64_t m = 0; m < M; ++m)
        for (std::int64_t t = 0; t < T; ++t) {
            const std::vector<float> row = dx.select(0, m).select(0, t).to_vector<float>();
            if (t == expected[static_cast<std::size_t>(m)]) CHECK(row == dpooled.select(0, m).to_vector<float>());
            else CHECK(row == std::vector<float>(W, 0.0f));
        }

    const tensor& first = train::token_pooling::class_token(x, c);
    CHECK(first.to_vector<float>() == x.select(1, 0).contiguous().to_vector<float>());
    CHECK_THROWS_AS(train::token_pooling::eot_token(x, tensor::zeros({M, T + 1}, clip::dtype::i64), c), clip::shape_error);
}

} // namespace train_pooling_test
