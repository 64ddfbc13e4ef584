// Tests for clip/ops/rowwise.hpp: softmax, log_softmax, layer_norm, l2_normalize vs double math.
#include "../support.hpp"

namespace ops_rowwise_test {

using clip::shape;
using clip::tensor;

namespace {

/// Applies `f(row) -> row` in double to each row of the last axis.
template <class F>
tensor per_row(const tensor& x, F&& f) {
    const std::vector<float> v = x.to_vector<float>();
    const std::int64_t width = x.shape().back();
    std::vector<float> out(v.size());
    for (std::size_t r = 0; width && r < v.size() / static_cast<std::size_t>(width); ++r) {
        std::vector<double> row(v.begin() + static_cast<std::ptrdiff_t>(r * width),
                                v.begin() + static_cast<std::ptrdiff_t>((r + 1) * width));
        row = f(row);
        for (std::int64_t i = 0; i < width; ++i) out[r * static_cast<std::size_t>(width) + static_cast<std::size_t>(i)] = static_cast<float>(row[static_cast<std::size_t>(i)]);
    }
    return tensor::from(out, x.shape());
}

std::vector<double> softmax_ref(std::vector<double> r) {
    const double m = *std::max_element(r.begin(), r.end());
    double s = 0;
    for (double& v : r) s += (v = std::exp(v - m));
    for (double& v : r) v /= s;
    return r;
}

} // namespace

TEST_CASE("softmax and log_softmax, including large logits") {
    for (const shape& s : {shape{1}, shape{5, 7}, shape{3, 4, 77}, shape{2, 1029}}) {
        CAPTURE(s);
        const tensor x = clip::rand_normal(s, 3, 0.0f, 30.0f); // exp would overflow without the max shift
        clip::test::check_close(clip::softmax(x), per_row(x, softmax_ref), 1e-6);
        clip::test::check_close(clip::log_softmax(x), per_row(x, [](std::vector<double> r) {
                                    const auto p = softmax_ref(r);
                                    for (std::size_t i = 0; i < r.size(); ++i) r[i] = std::log(p[i]);
                                    return r;
                                }), 2e-5);
        const tensor p = clip::softmax(x);
        clip::test::check_close(clip::sum(p, -1), tensor::ones(clip::sum(p, -1).shape()), 1e-6);
    }
    const tensor strided = clip::rand_normal({9, 6}, 4).t(); // rows are not contiguous
    clip::test::check_close(clip::softmax(strided), per_row(strided, softmax_ref), 1e-6);
    CHECK(clip::softmax(tensor::zeros({0, 3})).shape() == shape{0, 3});
}

TEST_CASE("layer_norm with and without affine parameters") {
    const tensor x = clip::rand_normal({6, 768}, 5, 3.0f, 2.0f);
    const tensor w = clip::rand_uniform({768}, 6, 0.5f, 1.5f), b = clip::rand_normal({768}, 7);
    const auto normalise = [](std::vector<double> r, double eps) {
        double mean = 0, var = 0;
        for (double v : r) mean += v;
        mean /= static_cast<double>(r.size());
        for (double v : r) var += (v - mean) * (v - mean);
        var /= static_cast<double>(r.size());
        for (double& v : r) v = (v - mean) / std::sqrt(var + eps);
        return r;
    };
    const tensor plain = per_row(x, [&](auto r) { return normalise(r, 1e-5); });
    clip::test::check_close(clip::layer_norm(x), plain, 1e-5);
    clip::test::check_close(clip::layer_norm(x, w, b), (plain * w + b).eval(), 1e-5);
    clip::test::check_close(clip::layer_norm(x, w, b, 0.1f), (per_row(x, [&](auto r) { return normalise(r, 0.1); }) * w + b).eval(), 1e-5);
    const std::string message = clip::test::error_message([&] { clip::layer_norm(x, tensor::ones({767})); });
    CHECK(clip::test::contains(message, "[767]"));
    CHECK(clip::test::contains(message, "[6, 768]"));
}

TEST_CASE("l2_normalize gives unit rows") {
    const tensor x = clip::rand_normal({10, 33}, 8);
    const tensor y = clip::l2_normalize(x);
    clip::test::check_close(clip::sum(clip::square(y), -1), tensor::ones({10}), 1e-6);
    clip::test::check_close(y, per_row(x, [](std::vector<double> r) {
                                double n = 0;
                                for (double v : r) n += v * v;
                                for (double& v : r) v /= std::sqrt(n);
                                return r;
                            }), 1e-6);
    CHECK(clip::l2_normalize(tensor::zeros({1, 4})).to_vector<float>() == std::vector<float>(4, 0.0f));
}

} // namespace ops_rowwise_test
