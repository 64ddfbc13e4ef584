// Tests for clip/ops/reduce.hpp: sum, mean, max, argmax along any axis against a double oracle.
#include "../support.hpp"

#include <limits>

namespace ops_reduce_test {

using clip::shape;
using clip::tensor;

namespace {

/// Reduces axis `axis` of x with `f` over the values of each fibre, in double.
template <class F>
tensor oracle(const tensor& x, int axis, F&& f) {
    const std::vector<float> v = x.to_vector<float>();
    const shape s = x.shape();
    std::int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= s[i];
    for (int i = axis + 1; i < s.size(); ++i) inner *= s[i];
    const std::int64_t n = s[axis];
    std::vector<float> out;
    for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t i = 0; i < inner; ++i) {
            std::vector<double> fibre;
            for (std::int64_t r = 0; r < n; ++r) fibre.push_back(v[static_cast<std::size_t>((o * n + r) * inner + i)]);
            out.push_back(static_cast<float>(f(fibre)));
        }
    shape out_shape = s;
    out_shape.erase(axis);
    return tensor::from(out, out_shape);
}

double sum_of(const std::vector<double>& f) {
    double s = 0;
    for (double v : f) s += v;
    return s;
}

} // namespace

TEST_CASE("reductions along every axis, contiguous and strided") {
    for (const shape& s : {shape{7}, shape{3, 1030}, shape{4, 5, 6}, shape{2, 3, 17, 9}}) {
        const tensor base = clip::rand_normal(s, static_cast<std::uint64_t>(s.numel()));
        for (const tensor& x : {base, base.ndim() > 1 ? base.transpose(0, -1) : base}) {
            for (int axis = 0; axis < x.ndim(); ++axis) {
                CAPTURE(x.shape());
                CAPTURE(axis);
                clip::test::check_close(clip::sum(x, axis), oracle(x, axis, sum_of), 1e-5);
                clip::test::check_close(clip::mean(x, axis),
                                        oracle(x, axis, [](const auto& f) { return sum_of(f) / static_cast<double>(f.size()); }), 1e-5);
                clip::test::check_close(clip::max(x, axis),
                                        oracle(x, axis, [](const auto& f) { return *std::max_element(f.begin(), f.end()); }), 0);
                const tensor expected_index = oracle(x, axis, [](const auto& f) {
                    return static_cast<double>(std::max_element(f.begin(), f.end()) - f.begin());
                });
                const tensor index = clip::argmax(x, axis);
                CHECK(index.dtype() == clip::dtype::i64);
                clip::test::check_close(index, expected_index, 0);
            }
        }
    }
}

TEST_CASE("keepdim, negative axes, expressions and whole-tensor sums") {
    const tensor x = clip::rand_normal({3, 4, 5}, 1);
    CHECK(clip::sum(x, -1, true).shape() == shape{3, 4, 1});
    CHECK(clip::mean(x, 1).shape() == shape{3, 5});
    clip::test::check_close(clip::sum(x * 2.0f, 0), (clip::sum(x, 0) * 2.0f).eval(), 1e-6);
    CHECK(clip::sum(tensor::ones({10, 10})).item<float>() == 100.0f);
    CHECK(clip::sum(tensor::ones({10, 10})).ndim() == 0);
    CHECK(clip::argmax(tensor::from<float>({1, 5, 5, 2}), 0).item<std::int64_t>() == 1); // first maximum
}

TEST_CASE("empty axes") {
    CHECK(clip::sum(tensor::zeros({3, 0}), 1).to_vector<float>() == std::vector<float>{0, 0, 0});
    CHECK(std::isnan(clip::mean(tensor::zeros({0}), 0).item<float>()));
    CHECK_THROWS_AS(clip::max(tensor::zeros({2, 0}), 1), clip::shape_error);
    CHECK(clip::sum(tensor::zeros({0, 3}), 1).numel() == 0);
    CHECK_THROWS_AS(clip::sum(tensor::zeros({2}), 1), clip::index_error);
}

} // namespace ops_reduce_test
