// Finite-difference gradient checks shared by the tests of clip/train/.
//
// Every op is checked through a scalar objective f = Σ w ⊙ y(θ) with fixed random weights w, so
// the backward pass runs with dy = w. Derivatives are central differences of f computed in
// double from f32 forward passes, at the entries with the largest analytic gradient and at a few
// random ones. With a step h of 1e-2 the f32 rounding of the outputs contributes about
// 1e-7·|f|/h and the truncation O(h²); a wrong formula gives errors of the gradient's own order.
#pragma once

#include "../support.hpp"

#include <algorithm>
#include <numeric>
#include <random>

namespace clip::test {

/// Σ w ⊙ y in double.
inline double weighted_sum(const tensor& y, const tensor& w) {
    REQUIRE(y.shape() == w.shape());
    const std::vector<float> a = y.to_vector<float>(), b = w.to_vector<float>();
    double s = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
    return s;
}

/// Checks `grad` (the analytic gradient of `objective` with respect to `value`, contiguous f32)
/// against central differences; returns the worst |numeric − analytic| / max |analytic|.
template <class F>
double check_gradient(const std::string& name, const tensor& value, const tensor& grad, F&& objective,
                      double tolerance = 2e-3, float step = 1e-2f, int samples = 6) {
    REQUIRE(value.is_contiguous());
    REQUIRE(value.shape() == grad.shape());
    const std::vector<float> g = grad.to_vector<float>();
    double scale = 0.0;
    for (float v : g) scale = std::max(scale, static_cast<double>(std::abs(v)));
    INFO(name << ": max |analytic| " << scale);
    REQUIRE(scale > 0.0);
    std::vector<std::size_t> order(g.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    const std::size_t largest = std::min<std::size_t>(static_cast<std::size_t>(samples), g.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(largest), order.end(),
                      [&](std::size_t a, std::size_t b) { return std::abs(g[a]) > std::abs(g[b]); });
    std::vector<std::size_t> picks(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(largest));
    std::mt19937_64 rng(g.size());
    for (int i = 0; i < samples; ++i) picks.push_back(static_cast<std::size_t>(rng() % g.size()));
    float* v = value.data<float>();
    double worst = 0.0;
    for (std::size_t k : picks) {
        const float saved = v[k];
        const float up = saved + step, down = saved - step;
        v[k] = up;
        const double f_up = objective();
        v[k] = down;
        const double f_down = objective();
        v[k] = saved;
        const double numeric = (f_up - f_down) / (static_cast<double>(up) - down);
        const double error = std::abs(numeric - g[k]) / scale;
        INFO(name << "[" << k << "]: analytic " << g[k] << ", numeric " << numeric << ", error / max|g| " << error);
        CHECK(error <= tolerance);
        worst = std::max(worst, error);
    }
    MESSAGE(name << ": worst |numeric - analytic| / max|analytic| = " << worst);
    return worst;
}

/// A parameter of a layer under test: a value and its zero gradient.
struct test_parameter {
    tensor value, grad;
    test_parameter(const shape& s, std::uint64_t seed, float mean = 0.0f, float stddev = 1.0f)
        : value(rand_normal(s, seed, mean, stddev)), grad(tensor::zeros(s)) {}
};

} // namespace clip::test
