// Tests for clip/train/embedding.hpp: the forward pass is clip::embedding + positions; the
// gradients are exact sums (the op is linear), checked against a double scatter-add with
// repeated ids and unused rows, and independent of the thread count.
#include "gradient_check.hpp"

#include "clip/train/embedding.hpp"

namespace train_embedding_test {

using clip::shape;
using clip::tensor;
using clip::test::test_parameter;
namespace train = clip::train;

TEST_CASE("token embedding: forward, scatter-add of the gradient, positional sums") {
    const std::int64_t V = 11, W = 37, ctx = 6, M = 3;
    test_parameter table({V, W}, 1), positions({ctx, W}, 2);
    const train::token_embedding layer{table.value, table.grad, positions.value, positions.grad};
    // Ids repeat (3 appears often) and rows 0, 9 are never used.
    const std::vector<std::int64_t> id_values{3, 1, 3, 10, 3, 2, 4, 3, 5, 6, 7, 8, 1, 1, 3, 2, 5, 10};
    const tensor ids = tensor::from(id_values, shape{M, ctx});
    train::token_embedding::cache c;
    const tensor& x = layer.forward(ids.to(clip::dtype::i32), c);
    clip::test::check_close(x, clip::eval(clip::embedding(table.value, ids) + positions.value), 0.0);

    const tensor dx = clip::rand_normal({M, ctx, W}, 3);
    layer.backward(dx, c);
    const std::vector<float> g = dx.to_vector<float>();
    std::vector<double> expected_table(static_cast<std::size_t>(V * W), 0.0), expected_positions(static_cast<std::size_t>(ctx * W), 0.0);
    for (std::int64_t r = 0; r < M * ctx; ++r)
        for (std::int64_t i = 0; i < W; ++i) {
            const double v = g[static_cast<std::size_t>(r * W + i)];
            expected_table[static_cast<std::size_t>(id_values[static_cast<std::size_t>(r)] * W + i)] += v;
            expected_positions[static_cast<std::size_t>((r % ctx) * W + i)] += v;
        }
    const auto as_tensor = [](const std::vector<double>& v, shape s) {
        return tensor::from(std::vector<float>(v.begin(), v.end()), s);
    };
    clip::test::check_close(table.grad, as_tensor(expected_table, {V, W}), 1e-6);
    clip::test::check_close(positions.grad, as_tensor(expected_positions, {ctx, W}), 1e-6);
    for (float v : table.grad.select(0, 0).to_vector<float>()) CHECK(v == 0.0f);

    // Four threads give the same bits as one.
    const tensor once = table.grad.clone();
    const int saved = clip::num_threads();
    clip::set_num_threads(1);
    table.grad.copy_from(tensor::zeros({V, W}));
    layer.backward(dx, c);
    clip::set_num_threads(saved);
    CHECK(table.grad.to_vector<float>() == once.to_vector<float>());
}

TEST_CASE("token embedding rejects ids outside the table and batches of the wrong shape") {
    test_parameter table({5, 4}, 1), positions({3, 4}, 2);
    const train::token_embedding layer{table.value, table.grad, positions.value, positions.grad};
    train::token_embedding::cache c;
    CHECK_THROWS_AS(layer.forward(tensor::from<std::int64_t>({1, 5, 0}, shape{1, 3}), c), clip::index_error);
    CHECK_THROWS_AS(layer.forward(tensor::from<std::int64_t>({1, 2, 3, 4}, shape{1, 4}), c), clip::shape_error);
    // Fewer positions than the context use the first rows of the positional embedding.
    const tensor& x = layer.forward(tensor::from<std::int64_t>({4, 2}, shape{1, 2}), c);
    clip::test::check_close(x.select(0, 0).select(0, 1), clip::eval(table.value.select(0, 2) + positions.value.select(0, 1)), 0.0);
    CHECK_THROWS_AS(layer.forward(tensor::zeros({1, 3}), c), clip::dtype_error);
}

} // namespace train_embedding_test
