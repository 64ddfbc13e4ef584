// Tests for clip/ops/matmul.hpp: the dispatched product (oneDNN when built with it) against the
// Eigen reference on random shapes, views and post-ops; the reference against plain double
// loops; the plan cache; packed weights; error messages.
#include "../support.hpp"

#include <random>

namespace ops_matmul_test {

using clip::activation;
using clip::matmul_options;
using clip::shape;
using clip::tensor;

namespace {

tensor reference(const tensor& a, const tensor& b, const matmul_options& o) {
    const tensor out = tensor::empty(clip::detail::check_matmul(a, b, o, "matmul").out());
    clip::detail::reference::matmul(out, a, b, o);
    return out;
}

} // namespace

TEST_CASE("the reference product equals a double-precision triple loop") {
    const tensor a = clip::rand_normal({2, 5, 7}, 1), b = clip::rand_normal({7, 3}, 2), bias = clip::rand_normal({3}, 3);
    const tensor y = reference(a, b, {.bias = bias, .act = activation::gelu, .scale = 0.5f});
    const std::vector<float> av = a.to_vector<float>(), bv = b.to_vector<float>(), biasv = bias.to_vector<float>();
    std::vector<float> expected;
    for (int batch = 0; batch < 2; ++batch)
        for (int i = 0; i < 5; ++i)
            for (int j = 0; j < 3; ++j) {
                double s = 0;
                for (int k = 0; k < 7; ++k) s += static_cast<double>(av[static_cast<std::size_t>((batch * 5 + i) * 7 + k)]) * bv[static_cast<std::size_t>(k * 3 + j)];
                const double x = 0.5 * s + biasv[static_cast<std::size_t>(j)];
                expected.push_back(static_cast<float>(0.5 * x * (1 + std::erf(x / std::sqrt(2.0)))));
            }
    clip::test::check_close(y, tensor::from(expected, shape{2, 5, 3}), 1e-5);
}

TEST_CASE("matmul matches the reference on random shapes, views and post-ops") {
    std::mt19937 rng(5);
    const std::vector<std::int64_t> extents{1, 3, 16, 17, 64, 129};
    auto pick = [&] { return extents[std::uniform_int_distribution<std::size_t>(0, extents.size() - 1)(rng)]; };
    for (int trial = 0; trial < 120; ++trial) {
        const std::int64_t m = pick(), k = pick(), n = pick();
        const int batch_kind = trial % 4; // none, both batched, weights shared, broadcast 1 vs 3
        shape sa{m, k}, sb{k, n};
        if (batch_kind == 1) sa.insert(0, 2), sb.insert(0, 2);
        if (batch_kind == 2) sa.insert(0, 3);
        if (batch_kind == 3) sa.insert(0, 3), sb.insert(0, 1), sa.insert(0, 2), sb.insert(0, 1);
        const bool transpose_a = trial % 3 == 1, transpose_b = trial % 2 == 1;
        tensor a = clip::rand_normal(sa, 100 + static_cast<std::uint64_t>(trial));
        tensor b = clip::rand_normal(sb, 200 + static_cast<std::uint64_t>(trial));
        if (transpose_a) a = a.t().contiguous().t(); // same values, column-major layout
        if (transpose_b) b = b.t().contiguous().t();
        matmul_options o;
        o.act = static_cast<activation>(trial % 4);
        if (trial % 5 != 0) o.bias = clip::rand_normal({n}, 300 + static_cast<std::uint64_t>(trial));
        if (trial % 3 == 0) o.scale = 0.125f;
        const shape out_shape = clip::detail::check_matmul(a, b, o, "matmul").out();
        if (trial % 7 < 3) o.residual = clip::rand_normal(trial % 2 ? out_shape : shape{n}, 400 + static_cast<std::uint64_t>(trial));
        CAPTURE(a.shape());
        CAPTURE(b.shape());
        CAPTURE(transpose_a);
        CAPTURE(transpose_b);
        CAPTURE(static_cast<int>(o.act));
        clip::test::check_close(clip::matmul(a, b, o), reference(a, b, o), 2e-5);
    }
}

TEST_CASE("a residual that is the output itself accumulates in place") {
    const tensor x = clip::rand_normal({8, 32}, 1), w = clip::rand_normal({32, 32}, 2), b = clip::rand_normal({32}, 3);
    const tensor expected = reference(x, w.t(), {.bias = b, .act = activation::quick_gelu, .residual = x.clone()});
    clip::matmul_into(x, x.clone(), w.t(), {.bias = b, .act = activation::quick_gelu, .residual = x});
    clip::test::check_close(x, expected, 2e-5);
}

TEST_CASE("an empty inner dimension gives act(bias) + residual") {
    const tensor a = tensor::zeros({3, 0}), b = tensor::zeros({0, 2});
    const tensor y = clip::matmul(a, b, {.bias = tensor::from<float>({1, -1}), .act = activation::relu});
    CHECK(y.to_vector<float>() == std::vector<float>{1, 0, 1, 0, 1, 0});
    CHECK(clip::matmul(tensor::zeros({0, 4}), tensor::zeros({4, 2})).shape() == shape{0, 2});
}

TEST_CASE("packed weights give the same product and are packed once per layout") {
    const tensor w = clip::rand_normal({96, 64}, 1); // PyTorch Linear layout [out, in]
    const clip::packed_weights packed(w.t());
    for (std::int64_t rows : {1, 50, 50, 400}) {
        const tensor x = clip::rand_normal({rows, 64}, static_cast<std::uint64_t>(rows));
        const matmul_options o{.bias = clip::rand_normal({96}, 2), .act = activation::gelu};
        clip::test::check_close(clip::matmul(x, packed, o), reference(x, w.t(), o), 2e-5);
    }
    CHECK(packed.packed_count() <= 3); // at most one copy per distinct layout oneDNN asked for
}

#if defined(CLIP_WITH_ONEDNN)
TEST_CASE("a steady-state loop creates no oneDNN primitive and allocates nothing") {
    const tensor x = clip::rand_normal({50, 128}, 1), w = clip::rand_normal({384, 128}, 2), b = clip::rand_normal({384}, 3);
    const tensor r = clip::rand_normal({50, 384}, 4);
    tensor out = tensor::empty({50, 384});
    const matmul_options o{.bias = b, .act = activation::quick_gelu, .residual = r};
    clip::matmul_into(out, x, w.t(), o); // first call builds the plan
    const std::int64_t plans = clip::detail::onednn::plan_creations();
    const std::int64_t allocations = clip::detail::allocation_counter().load();
    for (int i = 0; i < 20; ++i) clip::matmul_into(out, x, w.t(), o);
    CHECK(clip::detail::onednn::plan_creations() == plans);
    CHECK(clip::detail::allocation_counter().load() == allocations);
    clip::matmul_into(out, x, w.t(), {.bias = b}); // another spec: one more plan
    CHECK(clip::detail::onednn::plan_creations() == plans + 1);
}

TEST_CASE("the output scale is a run-time value: one plan for every scale") {
    const tensor x = clip::rand_normal({20, 64}, 5), w = clip::rand_normal({48, 64}, 6), b = clip::rand_normal({48}, 7);
    tensor out = tensor::empty({20, 48});
    clip::matmul_into(out, x, w.t(), {.bias = b, .scale = 0.5f});
    const std::int64_t plans = clip::detail::onednn::plan_creations();
    for (float scale : {0.25f, 3.0f, 14.2857f, -2.0f}) {
        clip::matmul_into(out, x, w.t(), {.bias = b, .scale = scale});
        clip::test::check_close(out, reference(x, w.t(), {.bias = b, .scale = scale}), 1e-5);
    }
    CHECK(clip::detail::onednn::plan_creations() == plans);
}
#endif

TEST_CASE("misuse names both operands") {
    const tensor a = tensor::zeros({2, 5, 7}), b = tensor::zeros({3, 7});
    const std::string message = clip::test::error_message([&] { clip::matmul(a, b); });
    CHECK(clip::test::contains(message, "[2, 5, 7]"));
    CHECK(clip::test::contains(message, "[3, 7]"));
    CHECK_THROWS_AS(clip::matmul(a, b), clip::shape_error);
    CHECK_THROWS_AS(clip::matmul(tensor::zeros({2, 3}), tensor::zeros({3, 4}, clip::dtype::bf16)), clip::dtype_error);
    CHECK_THROWS_AS(clip::matmul(tensor::zeros({3}), tensor::zeros({3, 4})), clip::shape_error);
    CHECK_THROWS_AS(clip::matmul(tensor::zeros({2, 3}), tensor::zeros({3, 4}), {.bias = tensor::zeros({3})}), clip::shape_error);
    CHECK_THROWS_AS(clip::matmul(tensor::zeros({2, 3}), tensor::zeros({3, 4}), {.residual = tensor::zeros({3, 4})}), clip::shape_error);
    CHECK_THROWS_AS(clip::matmul(tensor::zeros({2, 2, 3}), tensor::zeros({3, 3, 4})), clip::shape_error);
    float storage[12] = {};
    const tensor on_gpu = tensor::from_blob(storage, {3, 4}, clip::dtype::f32, nullptr, std::nullopt, clip::device::cuda());
    CHECK_THROWS_AS(clip::matmul(tensor::zeros({2, 3}), on_gpu), clip::device_error);
    tensor wrong = tensor::empty({2, 5});
    CHECK_THROWS_AS(clip::matmul_into(wrong, tensor::zeros({2, 3}), tensor::zeros({3, 4})), clip::shape_error);
}

} // namespace ops_matmul_test
