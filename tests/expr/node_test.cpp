// Tests for clip/expr/node.hpp and evaluate.hpp: every element-wise op against a scalar oracle,
// with broadcasting, non-contiguous views, odd and empty sizes, dtype conversion and aliasing.
#include "../support.hpp"

#include <functional>
#include <random>

namespace expr_node_test {

using clip::shape;
using clip::tensor;
using clip::test::check_close;
using clip::test::map_scalar;

namespace {

double gelu_ref(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double quick_gelu_ref(double x) { return x / (1.0 + std::exp(-1.702 * x)); }
double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }

/// The oracle for a binary op: both operands broadcast (by the copy kernel) then combined.
tensor binary_oracle(const tensor& a, const tensor& b, const std::function<float(float, float)>& f) {
    const shape s = clip::detail::broadcast_shapes(a.shape(), b.shape());
    const std::vector<float> x = a.expand(s).to_vector<float>(), y = b.expand(s).to_vector<float>();
    std::vector<float> out(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = f(x[i], y[i]);
    return tensor::from(out, s);
}

/// A random shape of rank <= 4 with extents in [0, 9], and a shape that broadcasts against it.
std::pair<shape, shape> random_broadcast_pair(std::mt19937& rng) {
    std::uniform_int_distribution<int> rank(0, 4), extent(0, 9), coin(0, 3);
    shape a;
    const int r = rank(rng);
    for (int i = 0; i < r; ++i) a.push_back(extent(rng) == 0 && coin(rng) ? 0 : 1 + extent(rng));
    shape b;
    const int drop = std::uniform_int_distribution<int>(0, r)(rng);
    for (int i = drop; i < r; ++i) b.push_back(coin(rng) == 0 ? 1 : a[i]);
    if (coin(rng) == 0) std::swap(a, b);
    return {a, b};
}

} // namespace

TEST_CASE("unary functions match the scalar formulas") {
    const tensor x = clip::rand_uniform({3, 1037}, 1, -8.0f, 8.0f);
    const tensor pos = clip::rand_uniform({1037}, 2, 0.01f, 50.0f);
    check_close(clip::exp(x), map_scalar(x, [](float v) { return std::exp(v); }), 2e-6);
    check_close(clip::log(pos), map_scalar(pos, [](float v) { return std::log(v); }), 2e-6);
    check_close(clip::sqrt(pos), map_scalar(pos, [](float v) { return std::sqrt(v); }), 1e-6);
    check_close(clip::rsqrt(pos), map_scalar(pos, [](float v) { return 1.0f / std::sqrt(v); }), 1e-6);
    check_close(clip::tanh(x), map_scalar(x, [](float v) { return std::tanh(v); }), 2e-6);
    check_close(clip::erf(x), map_scalar(x, [](float v) { return std::erf(v); }), 2e-6);
    check_close(clip::sigmoid(x), map_scalar(x, [](float v) { return static_cast<float>(sigmoid_ref(v)); }), 2e-6);
    check_close(clip::relu(x), map_scalar(x, [](float v) { return v > 0 ? v : 0.0f; }), 0);
    check_close(clip::gelu(x), map_scalar(x, [](float v) { return static_cast<float>(gelu_ref(v)); }), 2e-6);
    check_close(clip::quick_gelu(x), map_scalar(x, [](float v) { return static_cast<float>(quick_gelu_ref(v)); }), 2e-6);
    check_close(clip::abs(x), map_scalar(x, [](float v) { return std::abs(v); }), 0);
    check_close(clip::square(x), map_scalar(x, [](float v) { return v * v; }), 0);
    check_close(-x, map_scalar(x, [](float v) { return -v; }), 0);
    check_close(clip::clamp(x, -1.0f, 2.0f), map_scalar(x, [](float v) { return std::clamp(v, -1.0f, 2.0f); }), 0);
    check_close(clip::scale(x, 0.25f), map_scalar(x, [](float v) { return v * 0.25f; }), 0);
    CHECK_THROWS_AS(clip::clamp(x, 2.0f, 1.0f), clip::error);
}

TEST_CASE("binary and ternary functions broadcast like NumPy on random shapes") {
    std::mt19937 rng(3);
    for (int trial = 0; trial < 200; ++trial) {
        const auto [sa, sb] = random_broadcast_pair(rng);
        CAPTURE(sa);
        CAPTURE(sb);
        const tensor a = clip::rand_uniform(sa, 10 + trial, -3.0f, 3.0f);
        const tensor b = clip::rand_uniform(sb, 1000 + trial, 0.5f, 3.0f);
        check_close(a + b, binary_oracle(a, b, std::plus<float>()), 0);
        check_close(a - b, binary_oracle(a, b, std::minus<float>()), 0);
        check_close(a * b, binary_oracle(a, b, std::multiplies<float>()), 0);
        check_close(a / b, binary_oracle(a, b, std::divides<float>()), 1e-6);
        check_close(clip::maximum(a, b), binary_oracle(a, b, [](float x, float y) { return std::max(x, y); }), 0);
        check_close(clip::minimum(a, b), binary_oracle(a, b, [](float x, float y) { return std::min(x, y); }), 0);
        check_close(clip::less(a, b), binary_oracle(a, b, [](float x, float y) { return x < y ? 1.0f : 0.0f; }), 0);
        check_close(clip::where(clip::greater(a, 0.0f), a, b),
                    binary_oracle(a, b, [](float x, float y) { return x > 0 ? x : y; }), 0);
        check_close(clip::fma(a, b, 1.0f), binary_oracle(a, b, [](float x, float y) { return std::fma(x, y, 1.0f); }), 0);
    }
    check_close(clip::pow(tensor::from<float>({2, 3}), 2.0f), tensor::from<float>({4, 9}), 1e-6);
    check_close(clip::equal(tensor::from<float>({1, 2}), 2), tensor::from<float>({0, 1}), 0);
}

TEST_CASE("scalars combine on either side") {
    const tensor a = clip::rand_uniform({5, 3}, 4, 1.0f, 2.0f);
    check_close(2.0f * a - 1, map_scalar(a, [](float v) { return 2 * v - 1; }), 0);
    check_close(1.0 / a, map_scalar(a, [](float v) { return 1 / v; }), 1e-6);
    check_close(a + 3, map_scalar(a, [](float v) { return v + 3; }), 0);
}

TEST_CASE("non-contiguous operands and odd sizes") {
    for (std::int64_t n : {1, 7, 8, 9, 1023, 1024, 1025, 3001}) {
        CAPTURE(n);
        const tensor base = clip::rand_uniform({n, 6}, static_cast<std::uint64_t>(n), -2.0f, 2.0f);
        const tensor column = base.select(1, 2);          // stride 6
        const tensor every_other = base.slice(1, 0, 6, 2); // [n, 3], strides (6, 2)
        const tensor transposed = every_other.t();         // [3, n]
        check_close(clip::gelu(column * 2.0f + 1.0f),
                    map_scalar(column, [](float v) { return static_cast<float>(gelu_ref(2.0 * v + 1.0)); }), 2e-6);
        check_close(transposed + transposed.slice(0, 0, 1),
                    binary_oracle(transposed, transposed.slice(0, 0, 1), std::plus<float>()), 0);
    }
}

TEST_CASE("empty tensors evaluate to empty results") {
    const tensor a = tensor::zeros({0, 5});
    const tensor y = a * 2.0f + a;
    CHECK(y.shape() == shape{0, 5});
    CHECK(clip::eval(clip::exp(tensor::zeros({3, 0}))).numel() == 0);
}

TEST_CASE("operands of any dtype compute in float; assignment converts to the destination") {
    const tensor h = clip::rand_uniform({4, 33}, 5, -4.0f, 4.0f).to(clip::dtype::f16);
    const tensor i = tensor::full({33}, 3, clip::dtype::i64);
    const tensor y = h * i;
    CHECK(y.dtype() == clip::dtype::f32);
    check_close(y, binary_oracle(h, i, std::multiplies<float>()), 0);

    tensor out_bf16 = tensor::empty({4, 33}, clip::dtype::bf16);
    clip::assign(out_bf16, h + 0.5f);
    check_close(out_bf16, binary_oracle(h, tensor::full({}, 0.5), std::plus<float>()).to(clip::dtype::bf16), 0);

    tensor out_i32 = tensor::empty({3}, clip::dtype::i32);
    clip::assign(out_i32, tensor::from<float>({1.5f, -2.5f, 7.0f}) * 2);
    CHECK(out_i32.to_vector<std::int32_t>() == std::vector<std::int32_t>{3, -5, 14});

    tensor strided = tensor::zeros({4, 6}).slice(1, 0, 6, 2);
    clip::assign(strided, tensor::ones({3}) * 5); // broadcast into a strided destination
    CHECK(strided.to_vector<float>() == std::vector<float>(12, 5.0f));
}

TEST_CASE("a stored expression keeps its operands alive") {
    auto make = [] {
        const tensor a = tensor::from<float>({1, 2, 3});
        const tensor b = tensor::from<float>({10, 20, 30});
        return clip::relu(a * b - 25.0f); // a and b go out of scope here
    };
    const auto expression = make();
    CHECK(expression.eval().to_vector<float>() == std::vector<float>{0, 15, 65});
}

TEST_CASE("assignment into an operand is safe, aliased or not") {
    tensor x = clip::test::generate({3, 3}, [](std::int64_t i) { return static_cast<float>(i); });
    const std::vector<float> before = x.to_vector<float>();
    const std::int64_t allocations = clip::detail::allocation_counter().load();
    clip::assign(x, x * 2.0f + 1.0f); // same layout: in place, no temporary
    CHECK(clip::detail::allocation_counter().load() == allocations);
    for (std::size_t i = 0; i < before.size(); ++i) CHECK(x.to_vector<float>()[i] == before[i] * 2 + 1);
    const tensor expected = (x.t() + x).eval();
    clip::assign(x, x.t() + x); // reads x transposed while writing x: goes through a temporary
    check_close(x, expected, 0);
}

TEST_CASE("mismatches throw errors that name the shapes, devices and op") {
    const tensor a = tensor::zeros({2, 3}), b = tensor::zeros({4});
    const std::string message = clip::test::error_message([&] { (void)(a * b); });
    CHECK(clip::test::contains(message, "mul"));
    CHECK(clip::test::contains(message, "[2, 3]"));
    CHECK(clip::test::contains(message, "[4]"));
    CHECK_THROWS_AS(a + b, clip::shape_error);

    tensor small = tensor::zeros({3});
    CHECK_THROWS_AS(clip::assign(small, a + 1), clip::shape_error);

    float storage[4] = {};
    const tensor on_gpu = tensor::from_blob(storage, {2, 2}, clip::dtype::f32, nullptr, std::nullopt, clip::device::cuda());
    const std::string device_message = clip::test::error_message([&] { (void)(on_gpu + tensor::zeros({2, 2})); });
    CHECK(clip::test::contains(device_message, "cuda:0"));
    CHECK(clip::test::contains(device_message, "cpu"));
    CHECK_THROWS_AS(on_gpu + tensor::zeros({2, 2}), clip::device_error);
    CHECK_THROWS_AS(clip::eval(on_gpu * 2.0f), clip::device_error);
    CHECK_THROWS_AS(tensor() + 1, clip::error);
}

TEST_CASE("large expressions split across threads give the same result as one thread") {
    const tensor a = clip::rand_normal({1 << 20}, 8), b = clip::rand_normal({1 << 20}, 9);
    const int threads = clip::num_threads();
    clip::set_num_threads(1);
    const tensor one = clip::gelu(a * b + 1.0f);
    clip::set_num_threads(std::max(2, threads));
    const tensor many = clip::gelu(a * b + 1.0f);
    clip::set_num_threads(threads);
    CHECK(one.to_vector<float>() == many.to_vector<float>());
}

} // namespace expr_node_test
