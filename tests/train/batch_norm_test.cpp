// Tests for clip/train/batch_norm.hpp: training mode normalises with the batch's statistics and
// updates the running ones exactly as PyTorch's BatchNorm2d (momentum 0.1, unbiased variance,
// num_batches_tracked), checked against a double reimplementation of its formulas; eval mode
// uses the running statistics and updates nothing; gradients (γ, β, input, residual) match
// finite differences in both modes, with and without the fused residual + ReLU; the statistics
// and gradients do not depend on the thread count.
#include "gradient_check.hpp"

#include "clip/train/batch_norm.hpp"

namespace train_batch_norm_test {

using clip::shape;
using clip::tensor;
using clip::test::check_gradient;
using clip::test::test_parameter;
using clip::test::weighted_sum;
namespace train = clip::train;

namespace {

/// A BatchNorm over C channels with random γ, β and running statistics.
struct bn_fixture {
    test_parameter gamma, beta;
    tensor running_mean, running_var, steps;
    train::batch_norm layer;

    explicit bn_fixture(std::int64_t C)
        : gamma({C}, 1, 1.0f, 0.3f), beta({C}, 2, 0.0f, 0.3f), running_mean(clip::rand_normal({C}, 3, 0.0f, 0.5f)),
          running_var(clip::rand_uniform({C}, 4, 0.5f, 2.0f)), steps(tensor::zeros({}, clip::dtype::i64)),
          layer{gamma.value, gamma.grad, beta.value, beta.grad, running_mean, running_var, steps} {}
};

/// PyTorch's BatchNorm2d training-mode forward and running-statistics update, in double
/// (torch/nn/modules/batchnorm.py with F.batch_norm on CPU): returns y; updates mean and var.
std::vector<double> pytorch_train_step(const tensor& x, const tensor& gamma, const tensor& beta, std::vector<double>& mean,
                                       std::vector<double>& var, double momentum = 0.1, double eps = 1e-5) {
    const std::int64_t C = x.shape().back(), M = x.numel() / C;
    const std::vector<float> xv = x.to_vector<float>(), g = gamma.to_vector<float>(), b = beta.to_vector<float>();
    std::vector<double> y(xv.size());
    for (std::int64_t c = 0; c < C; ++c) {
        double sum = 0.0;
        for (std::int64_t r = 0; r < M; ++r) sum += xv[static_cast<std::size_t>(r * C + c)];
        const double mu = sum / static_cast<double>(M);
        double squares = 0.0;
        for (std::int64_t r = 0; r < M; ++r) {
            const double d = xv[static_cast<std::size_t>(r * C + c)] - mu;
            squares += d * d;
        }
        const double biased = squares / static_cast<double>(M), unbiased = squares / static_cast<double>(M - 1);
        for (std::int64_t r = 0; r < M; ++r) {
            const auto i = static_cast<std::size_t>(r * C + c);
            y[i] = (xv[i] - mu) / std::sqrt(biased + eps) * g[static_cast<std::size_t>(c)] + b[static_cast<std::size_t>(c)];
        }
        const auto k = static_cast<std::size_t>(c);
        mean[k] = (1.0 - momentum) * mean[k] + momentum * mu;
        var[k] = (1.0 - momentum) * var[k] + momentum * unbiased;
    }
    return y;
}

double max_difference(const tensor& actual, const std::vector<double>& expected) {
    const std::vector<float> a = actual.to_vector<float>();
    REQUIRE(a.size() == expected.size());
    double worst = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - expected[i]));
    return worst;
}

} // namespace

TEST_CASE("batch_norm training mode: batch statistics and PyTorch's running-statistics update") {
    const std::int64_t C = 21; // two full registers and a tail
    bn_fixture f(C);
    const std::vector<float> mean0 = f.running_mean.to_vector<float>(), var0 = f.running_var.to_vector<float>();
    std::vector<double> mean(mean0.begin(), mean0.end()), var(var0.begin(), var0.end());
    train::batch_norm::cache c;
    // Two steps, the second with a shifted batch of another size (the statistics must not cancel).
    for (const auto& [s, shift] : {std::pair{shape{3, 5, 7, C}, 0.0f}, std::pair{shape{2, 4, 4, C}, 100.0f}}) {
        const tensor x = clip::eval(clip::rand_normal(s, 10 + static_cast<std::uint64_t>(shift), 0.0f, 2.0f) + shift);
        const std::vector<double> expected = pytorch_train_step(x, f.gamma.value, f.beta.value, mean, var);
        const tensor& y = f.layer.forward(x, c, true);
        MESSAGE("shift " << shift << ": max |y - y_ref| " << max_difference(y, expected));
        CHECK(max_difference(y, expected) <= 2e-5);
        CHECK(max_difference(f.running_mean, mean) <= 1e-6 * (1.0 + shift));
        CHECK(max_difference(f.running_var, var) <= 2e-6);
    }
    CHECK(f.steps.item<std::int64_t>() == 2);
    // Eval mode normalises with the running statistics and changes nothing.
    const tensor x = clip::rand_normal({2, 3, 3, C}, 20);
    const std::vector<float> saved_mean = f.running_mean.to_vector<float>(), saved_var = f.running_var.to_vector<float>();
    const tensor& y = f.layer.forward(x, c, false);
    const tensor expected = clip::eval((x - f.running_mean) * clip::rsqrt(f.running_var + 1e-5f) * f.gamma.value + f.beta.value);
    clip::test::check_close(y, expected, 1e-6);
    CHECK(f.running_mean.to_vector<float>() == saved_mean);
    CHECK(f.running_var.to_vector<float>() == saved_var);
    CHECK(f.steps.item<std::int64_t>() == 2);
    // The fused residual and ReLU.
    const tensor residual = clip::rand_normal(x.shape(), 21);
    clip::test::check_close(f.layer.forward(x, c, false, residual, true), clip::relu(expected + residual).eval(), 1e-6);
    // PyTorch refuses to train on one value per channel.
    CHECK_THROWS_AS(f.layer.forward(clip::rand_normal({1, 1, 1, C}, 22), c, true), clip::shape_error);
    CHECK_THROWS_AS(f.layer.forward(clip::rand_normal({2, 2, 2, C + 1}, 23), c, true), clip::shape_error);
}

TEST_CASE("batch_norm: gradients against finite differences, both modes, with and without residual + ReLU") {
    const std::int64_t C = 10;
    for (const bool training : {true, false}) {
        for (const bool fused : {false, true}) {
            CAPTURE(training);
            CAPTURE(fused);
            bn_fixture f(C);
            const tensor x = clip::rand_normal({2, 3, 4, C}, 5, 0.5f, 1.5f);
            const tensor residual = fused ? clip::rand_normal(x.shape(), 6) : tensor{};
            const tensor weights = clip::rand_normal(x.shape(), 7);
            train::batch_norm::cache c;
            const auto objective = [&] { return weighted_sum(f.layer.forward(x, c, training, residual, fused), weights); };
            (void)objective();
            const tensor dy = weights.clone(), dx = tensor::empty(x.shape());
            f.layer.backward(dy, c, dx);
            // With the ReLU, a step moves the values of a whole channel: a smaller one keeps them
            // from crossing the kink at 0, where the difference quotient is not the derivative.
            const float step = fused ? 1e-3f : 1e-2f;
            check_gradient("weight", f.gamma.value, f.gamma.grad, objective, 2e-3, step);
            check_gradient("bias", f.beta.value, f.beta.grad, objective, 2e-3, step);
            check_gradient("input", x, dx, objective, 2e-3, step);
            if (fused) check_gradient("residual", residual, dy, objective, 2e-3, step); // dy is now g
        }
    }
}

TEST_CASE("batch_norm: in-place backward, and the same bits for any thread count") {
    const std::int64_t C = 40;
    bn_fixture f(C);
    const tensor x = clip::rand_normal({4, 30, 30, C}, 8, 1.0f, 3.0f);
    const tensor dy = clip::rand_normal(x.shape(), 9);
    const auto run = [&](int threads) {
        const int saved = clip::num_threads();
        clip::set_num_threads(threads);
        f.gamma.grad.copy_from(tensor::zeros({C}));
        train::batch_norm::cache c;
        const std::vector<float> y = f.layer.forward(x, c, true, {}, true).to_vector<float>();
        const tensor g = dy.clone();
        f.layer.backward(g, c, g); // dx over dy
        clip::set_num_threads(saved);
        std::vector<float> out = c.mean.to_vector<float>();
        for (const tensor& t : {static_cast<const tensor&>(c.rstd), f.gamma.grad, g}) {
            const std::vector<float> v = t.to_vector<float>();
            out.insert(out.end(), v.begin(), v.end());
        }
        out.insert(out.end(), y.begin(), y.end());
        return out;
    };
    CHECK(run(1) == run(4));
}

} // namespace train_batch_norm_test
