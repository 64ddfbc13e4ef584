// Tests for clip/backend/cpu/gemm.hpp: clip's products with packed weights (the AVX-512 kernel where
// the CPU has it, and the portable one everywhere) against a
// double-precision product, over tile, chunk and panel edges, every fused epilogue, strided and
// batched rows, an in-place residual, outputs written with non-temporal stores; and the dispatch
// (which products take it, which do not).
#include "../support.hpp"

#include <limits>
#include <random>

namespace backend_gemm_test {

using clip::activation;
using clip::matmul_options;
using clip::shape;
using clip::tensor;

namespace {

using clip::detail::cpu_gemm::kernel;

/// Selects the portable kernel (or not) for its lifetime, for products of any number of rows.
struct use_kernel {
    bool saved = clip::detail::cpu_gemm::portable();
    std::int64_t saved_rows = clip::detail::cpu_gemm::row_limit();
    explicit use_kernel(kernel k) {
        clip::detail::cpu_gemm::portable() = k == kernel::portable;
        clip::detail::cpu_gemm::row_limit() = std::numeric_limits<std::int64_t>::max();
    }
    ~use_kernel() {
        clip::detail::cpu_gemm::portable() = saved;
        clip::detail::cpu_gemm::row_limit() = saved_rows;
    }
    use_kernel(const use_kernel&) = delete;
    use_kernel& operator=(const use_kernel&) = delete;
};

/// The kernels this CPU runs: AVX-512 where it has AVX-512F, and the portable one.
std::vector<kernel> kernels() {
    std::vector<kernel> out;
    for (const kernel k : {kernel::avx512, kernel::portable}) {
        const use_kernel use(k);
        if (clip::detail::cpu_gemm::chosen() == k) out.push_back(k);
    }
    if (out.empty()) MESSAGE("skipped: no kernel of clip's own here (CLIP_CPU_GEMM=onednn?); oneDNN runs these products");
    return out;
}

const char* name_of(kernel k) { return k == kernel::avx512 ? "AVX-512" : "portable"; }

/// act(scale·(x·wᵀ) + bias) + residual in double precision; x [M, K], w [N, K].
tensor expected(const tensor& x, const tensor& w, const matmul_options& o) {
    const std::int64_t m = x.size(0), k = x.size(1), n = w.size(0);
    const std::vector<float> xv = x.contiguous().to_vector<float>(), wv = w.contiguous().to_vector<float>();
    const std::vector<float> bias = o.bias.defined() ? o.bias.to_vector<float>() : std::vector<float>(static_cast<std::size_t>(n));
    const std::vector<float> residual =
        o.residual.defined() ? o.residual.expand({m, n}).contiguous().to_vector<float>() : std::vector<float>(static_cast<std::size_t>(m * n));
    std::vector<float> y(static_cast<std::size_t>(m * n));
    for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (std::int64_t l = 0; l < k; ++l)
                s += static_cast<double>(xv[static_cast<std::size_t>(i * k + l)]) * wv[static_cast<std::size_t>(j * k + l)];
            const double v = o.scale * s + bias[static_cast<std::size_t>(j)];
            const double a = o.act == activation::relu         ? std::max(v, 0.0)
                             : o.act == activation::quick_gelu ? v / (1.0 + std::exp(-1.702 * v))
                                                               : v;
            y[static_cast<std::size_t>(i * n + j)] = static_cast<float>(a + residual[static_cast<std::size_t>(i * n + j)]);
        }
    return tensor::from(y, shape{m, n});
}

} // namespace

TEST_CASE("the product matches double precision across tiles, chunks, panels and epilogues") {
    for (const kernel which : kernels()) {
        const use_kernel use(which);
        INFO("kernel " << name_of(which));
        std::mt19937 rng(11);
        const std::vector<std::int64_t> rows{1, 3, 9, 10, 11, 50, 400, 523};
        const std::vector<std::int64_t> depths{1, 7, 383, 384, 385, 800};
        const std::vector<std::int64_t> columns{1, 15, 16, 17, 32, 33, 100};
        const activation acts[] = {activation::none, activation::relu, activation::quick_gelu};
        auto pick = [&](const auto& v) { return v[std::uniform_int_distribution<std::size_t>(0, v.size() - 1)(rng)]; };
        for (int trial = 0; trial < 60; ++trial) {
            const std::int64_t m = pick(rows), k = pick(depths), n = pick(columns);
            const auto seed = static_cast<std::uint64_t>(trial * 7);
            const tensor x = clip::rand_normal({m, k}, seed + 1), w = clip::rand_normal({n, k}, seed + 2);
            matmul_options o{.act = acts[trial % 3], .scale = trial % 4 == 1 ? 0.5f : 1.0f};
            if (trial % 2 == 0) o.bias = clip::rand_normal({n}, seed + 3);
            if (trial % 5 == 1) o.residual = clip::rand_normal({m, n}, seed + 4);
            if (trial % 5 == 2) o.residual = clip::rand_normal({n}, seed + 4); // broadcast over rows
            INFO("trial " << trial << ": M " << m << ", K " << k << ", N " << n);
            const clip::packed_weights packed(w.t());
            clip::test::check_close(clip::matmul(x, packed, o), expected(x, w, o), 4e-6 * std::sqrt(static_cast<double>(k)));
            CHECK(packed.packed_count() == 1);
        }
    }
}

TEST_CASE("threads in pairs that meet in the middle cover every panel once, at any team size") {
    const int saved = clip::num_threads();
    for (const kernel which : kernels()) {
        const use_kernel use(which);
        for (const std::int64_t n : {std::int64_t{64}, std::int64_t{229}})
            for (const int threads : {1, 2, 3, 4, 5}) {
                INFO("kernel " << name_of(which) << ", N " << n << ", threads " << threads);
                clip::set_num_threads(threads);
                const tensor x = clip::rand_normal({50, 385}, 1), w = clip::rand_normal({n, 385}, 2);
                const matmul_options o{.bias = clip::rand_normal({n}, 3), .act = activation::quick_gelu,
                                       .residual = clip::rand_normal({50, n}, 4)};
                const clip::packed_weights packed(w.t());
                clip::test::check_close(clip::matmul(x, packed, o), expected(x, w, o), 4e-6 * std::sqrt(385.0));
            }
    }
    clip::set_num_threads(saved);
}

TEST_CASE("QuickGELU in the epilogue saturates like the reference at large magnitudes") {
    for (const kernel which : kernels()) {
        const use_kernel use(which);
        INFO("kernel " << name_of(which));
        // x·wᵀ with w = identity-like columns gives the chosen pre-activations exactly.
        const std::vector<float> values{-200.0f, -90.0f, -60.0f, -20.0f, -1.0f, -1e-3f, 0.0f, 1e-3f, 0.5f, 3.0f, 50.0f, 100.0f, 300.0f};
        const auto count = static_cast<std::int64_t>(values.size());
        const tensor x = tensor::from(values, shape{count, 1});
        const clip::packed_weights one(tensor::ones({1, 1}));
        const tensor y = clip::matmul(x, one, {.act = activation::quick_gelu});
        const std::vector<float> got = y.to_vector<float>();
        for (std::size_t i = 0; i < values.size(); ++i) {
            const float v = values[i], want = clip::detail::activate(activation::quick_gelu, v);
            INFO("x = " << v << ": got " << got[i] << ", want " << want);
            CHECK(std::abs(got[i] - want) <= 2e-6f * std::max(1.0f, std::abs(want)));
            CHECK(!std::isnan(got[i]));
        }
    }
}

TEST_CASE("strided and batched rows, and a residual that is the output itself") {
    for (const kernel which : kernels()) {
        const use_kernel use(which);
        INFO("kernel " << name_of(which));
        const tensor wide = clip::rand_normal({2, 25, 900}, 1);
        const tensor x = wide.slice(2, 0, 800); // rows 900 floats apart
        const tensor w = clip::rand_normal({70, 800}, 2), b = clip::rand_normal({70}, 3);
        const clip::packed_weights packed(w.t());
        const tensor y = clip::matmul(x, packed, {.bias = b, .act = activation::quick_gelu});
        CHECK(y.shape() == shape{2, 25, 70});
        clip::test::check_close(y.reshape({50, 70}), expected(x.contiguous().reshape({50, 800}), w, {.bias = b, .act = activation::quick_gelu}),
                                1e-4);

        // x += x·Wᵀ: the residual is read before its tile is written (K spans three chunks).
        const tensor square = clip::rand_normal({1000, 1000}, 4), h = clip::rand_normal({37, 1000}, 5);
        const tensor want = expected(h, square, {.residual = h});
        const clip::packed_weights sq(square.t());
        tensor out = h.clone();
        clip::matmul_into(out, out.clone(), sq, {.residual = out});
        clip::test::check_close(out, want, 1e-3);
    }
}

TEST_CASE("outputs with rows 4 KB apart, written with non-temporal stores") {
    for (const kernel which : kernels()) {
        const use_kernel use(which);
        INFO("kernel " << name_of(which));
        const tensor x = clip::rand_normal({520, 200}, 1), w = clip::rand_normal({1024, 200}, 2), b = clip::rand_normal({1024}, 3);
        const clip::packed_weights packed(w.t());
        const tensor y = clip::matmul(x, packed, {.bias = b, .act = activation::quick_gelu});
        CHECK(clip::detail::cpu_gemm::streamed(520, 1024, y.data<float>()));
        clip::test::check_close(y, expected(x, w, {.bias = b, .act = activation::quick_gelu}), 1e-4);

        // In place, K over three chunks: every tile reads its residual before the stores.
        const tensor square = clip::rand_normal({1024, 1024}, 4), h = clip::rand_normal({512, 1024}, 5);
        const tensor want = expected(h, square, {.residual = h});
        const clip::packed_weights sq(square.t());
        tensor out = h.clone();
        CHECK(clip::detail::cpu_gemm::streamed(512, 1024, out.data<float>()));
        clip::matmul_into(out, out.clone(), sq, {.residual = out});
        clip::test::check_close(out, want, 1e-3);
        // Below 2 MB the output stays cached.
        CHECK(!clip::detail::cpu_gemm::streamed(400, 1024, y.data<float>()));
    }
}

TEST_CASE("which products take the kernel") {
    for (const kernel which : kernels()) {
        const use_kernel use(which);
        INFO("kernel " << name_of(which));
        const tensor x = clip::rand_normal({50, 64}, 1), w = clip::rand_normal({96, 64}, 2);
        const clip::packed_weights packed(w.t());
        (void)clip::matmul(x, packed, {.act = activation::quick_gelu});
        CHECK(packed.packed_count() == 1);
        CHECK(clip::detail::cpu_gemm::supports(activation::quick_gelu));
        CHECK(!clip::detail::cpu_gemm::supports(activation::gelu)); // erf: oneDNN's
        // Switched off, the same product goes to oneDNN and agrees.
        const tensor own = clip::matmul(x, packed, {.act = activation::relu});
        clip::detail::cpu_gemm::enabled() = false;
        const tensor other = clip::matmul(x, packed, {.act = activation::relu});
        clip::detail::cpu_gemm::enabled() = true;
        clip::test::check_close(own, other, 1e-5);
    }
}

TEST_CASE("unpacked operands with rows 4 KB apart: packed panel by panel on the way") {
    using clip::detail::cpu_gemm::unpacked_wins;
    CHECK(!unpacked_wins(clip::rand_normal({40, 768}, 1)));
    CHECK(!unpacked_wins(clip::rand_normal({1024, 40}, 1).t())); // a transposed weight: columns 4 KB apart
    for (const kernel which : kernels()) {
        const use_kernel use(which);
        INFO("kernel " << name_of(which));
        // c_proj's input gradient dz · W, W [out, in] with in a multiple of 1024; a ragged last
        // panel and tile, K over three chunks, more rows than one block, bias and QuickGELU.
        const tensor w = clip::rand_normal({800, 1056}, 4).slice(1, 0, 1040), dz = clip::rand_normal({230, 800}, 5);
        REQUIRE(!unpacked_wins(w)); // rows 1056 floats apart
        const tensor w4k = clip::rand_normal({800, 2048}, 4).slice(1, 0, 1040);
        REQUIRE(unpacked_wins(w4k));
        const tensor bias = clip::rand_uniform({1040}, 6, -0.5f, 0.5f);
        const tensor dx = clip::tensor::zeros({230, 1040});
        clip::matmul_into(dx, dz, w4k, {.bias = bias, .act = activation::quick_gelu});
        clip::test::check_close(dx, expected(dz, w4k.t(), {.bias = bias, .act = activation::quick_gelu}), 1e-4);
        // Its weight gradient dW += dzᵀ · x, x [rows, 2048]: a transposed left operand, gathered
        // once, and the gradient accumulated in place.
        const tensor x = clip::rand_normal({37, 2048}, 7), g = clip::rand_normal({37, 96}, 8);
        REQUIRE(unpacked_wins(x));
        const tensor dw = clip::rand_normal({96, 2048}, 9), before = dw.clone();
        clip::matmul_into(dw, g.t(), x, {.residual = dw});
        clip::test::check_close(dw, expected(g.t(), x.t(), {.residual = before}), 1e-4);
    }
}

TEST_CASE("the first product on a weight picks its kernel by rows; later ones keep to that copy") {
    if (kernels().empty()) return;
    const std::int64_t limit = clip::detail::cpu_gemm::default_row_limit;
    if (clip::detail::cpu_gemm::row_limit() != limit) {
        MESSAGE("skipped: CLIP_CPU_GEMM=own lifts the row limit");
        return;
    }
    const tensor w = clip::rand_normal({96, 64}, 2);
    const tensor few = clip::rand_normal({limit, 64}, 1), many = clip::rand_normal({limit + 1, 64}, 3);
    const clip::packed_weights first_few(w.t());
    clip::test::check_close(clip::matmul(few, first_few), expected(few, w, {}), 1e-4);
    CHECK(first_few.packed_count() == 1); // the own kernel's panels
    CHECK(!first_few.has_other_than("clip-gemm/"));
    clip::test::check_close(clip::matmul(many, first_few), expected(many, w, {}), 1e-4);
    CHECK(first_few.packed_count() == 1); // more rows, the same copy
#if defined(CLIP_WITH_ONEDNN)
    const clip::packed_weights first_many(w.t());
    clip::test::check_close(clip::matmul(many, first_many), expected(many, w, {}), 1e-4);
    CHECK(first_many.packed_count() == 1); // oneDNN's layout
    CHECK(first_many.has_other_than("clip-gemm/"));
    clip::test::check_close(clip::matmul(few, first_many), expected(few, w, {}), 1e-4);
    CHECK(first_many.packed_count() == 1); // fewer rows, still oneDNN's copy
#endif
}

} // namespace backend_gemm_test
