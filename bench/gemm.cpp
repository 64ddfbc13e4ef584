// bench/gemm.cpp: clip's matrix products against oneDNN's own sgemm, on ViT-B/32's shapes.
//
// The four linear layers of a ViT-B/32 block, x [M, K] times a PyTorch-layout weight w [N, K]:
//   qkv in_proj  768 -> 2304,  out_proj 768 -> 768,  c_fc 768 -> 3072,  c_proj 3072 -> 768,
// at M = 2464 rows (32 texts × 77 tokens), 400 (8 images × 50 tokens) and 50 (one image). Per shape, in
// the same run:
//   clip_plain    matmul_into(out, x, w.t())                        (weights as strides, no copy)
//   clip_packed   matmul_into(out, x, packed_weights(w.t()))        (weights reordered once: clip's
//                 own kernel, backend/cpu/gemm.hpp, at every row count; by default clip runs it
//                 up to 64 rows and leaves more to oneDNN)
//   onednn_packed the same with the own kernel switched off: oneDNN's matmul on its packed layout
//   clip_fused    matmul_into(out, x, packed, {bias, quick_gelu})   (the c_fc layer as CLIP runs it)
//   dnnl_sgemm    dnnl_sgemm('N', 'T', ...) on the same x and w     (the peer; needs oneDNN)
//
// gemm_overhead/* runs the same variants on a 1×16×16 product: the fixed cost of one call.
// train_{forward,input_grad,weight_grad}/{own,onednn} time a linear layer's training products
// (nothing packed ahead) through clip's dispatch and with the own kernels off.
//
// Counters: GFLOP/s (2·M·N·K per iteration; the fused variant counts the product only),
// cold_ms (the first call of that configuration in the process: plan creation, weight packing,
// JIT), plans (oneDNN plans clip created inside the timed loop: must be 0), threads.
// Every configuration is checked once against dnnl_sgemm (plus bias and QuickGELU done by hand);
// a mismatch marks the benchmark as failed.
//
// Defaults: --benchmark_min_time=0.2 unless given; the thread count is clip's (OpenMP's default,
// or CLIP_NUM_THREADS), used by clip and by dnnl_sgemm alike.
#include <benchmark/benchmark.h>

#include <clip/clip.hpp>

#if defined(CLIP_WITH_ONEDNN)
#include <oneapi/dnnl/dnnl.h>
#endif

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace {

enum class variant { clip_plain, clip_packed, onednn_packed, clip_fused, dnnl_sgemm };

const char* name_of(variant v) {
    switch (v) {
    case variant::clip_plain: return "clip_plain";
    case variant::clip_packed: return "clip_packed";
    case variant::onednn_packed: return "onednn_packed";
    case variant::clip_fused: return "clip_fused";
    case variant::dnnl_sgemm: return "dnnl_sgemm";
    }
    return "?";
}

/// Operands of one shape; weights get a fresh packed_weights per benchmark run, so the cold
/// time of the packed variants includes the reorder.
struct operands {
    std::int64_t m, k, n;
    clip::tensor x, w, bias, out;

    operands(std::int64_t m_, std::int64_t k_, std::int64_t n_) : m(m_), k(k_), n(n_) {
        const auto seed = static_cast<std::uint64_t>(m * 1000003 + k * 1009 + n);
        x = clip::rand_normal(clip::shape{m, k}, seed);
        // Scaled like an initialised linear layer so the outputs stay O(1).
        w = clip::rand_normal(clip::shape{n, k}, seed + 1, 0.0f, 1.0f / std::sqrt(static_cast<float>(k)));
        bias = clip::rand_uniform(clip::shape{n}, seed + 2, -0.1f, 0.1f);
        out = clip::tensor::zeros(clip::shape{m, n});
    }
};

#if defined(CLIP_WITH_ONEDNN)
/// out = x · wᵀ with oneDNN's row-major sgemm.
void sgemm(const operands& o, float* out) {
    const dnnl_status_t st = dnnl_sgemm('N', 'T', o.m, o.n, o.k, 1.0f, o.x.data<float>(), o.k, o.w.data<float>(),
                                        o.k, 0.0f, out, o.n);
    if (st != dnnl_success) {
        std::fprintf(stderr, "dnnl_sgemm failed with status %d\n", static_cast<int>(st));
        std::abort();
    }
}
#endif

/// The first-call time of each configuration, so repeated runs of a benchmark (Google Benchmark
/// calls the function several times while it sizes the iteration count) report the same one.
std::map<std::string, double>& cold_times() {
    static std::map<std::string, double> m;
    return m;
}

template <class F>
double time_ms(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/// Largest |got - want| relative to max(1, |want|); empty string when within tolerance.
std::string compare(const float* got, const std::vector<float>& want, std::int64_t k) {
    double worst = 0.0;
    std::size_t at = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        const double e = std::abs(static_cast<double>(got[i]) - want[i]) / std::max(1.0, std::abs(double(want[i])));
        if (!(e <= worst)) {
            worst = e;
            at = i;
        }
    }
    // Both sides are f32 sums of K products with different blocking: allow a few ulps per term.
    const double tolerance = 1e-6 * static_cast<double>(k) + 1e-5;
    if (worst <= tolerance) return {};
    char buf[160];
    std::snprintf(buf, sizeof buf, "mismatch vs dnnl_sgemm: rel. error %.3g at %zu (got %g, want %g)", worst, at,
                  double(got[at]), double(want[at]));
    return buf;
}

/// The expected output, from a trusted product plus the epilogue done by hand.
std::vector<float> expected(const operands& o, bool fused) {
    std::vector<float> want(static_cast<std::size_t>(o.m * o.n));
#if defined(CLIP_WITH_ONEDNN)
    sgemm(o, want.data());
#else
    clip::tensor ref = clip::tensor::empty(clip::shape{o.m, o.n});
    clip::detail::reference::matmul(ref, o.x, o.w.t(), {});
    std::memcpy(want.data(), ref.data<float>(), want.size() * sizeof(float));
#endif
    if (fused) {
        const float* b = o.bias.data<float>();
        for (std::int64_t i = 0; i < o.m; ++i)
            for (std::int64_t j = 0; j < o.n; ++j) {
                float& v = want[static_cast<std::size_t>(i * o.n + j)];
                v = clip::detail::activate(clip::activation::quick_gelu, v + b[j]);
            }
    }
    return want;
}

/// oneDNN plans clip has created so far (0 without oneDNN, where there is no plan cache).
std::int64_t plan_creations() {
#if defined(CLIP_WITH_ONEDNN)
    return clip::detail::onednn::plan_creations();
#else
    return 0;
#endif
}

void BM_gemm(benchmark::State& state, variant v) {
    const std::int64_t m = state.range(0), k = state.range(1), n = state.range(2);
    operands o(m, k, n);
    const clip::packed_weights packed(o.w.t());
    const clip::matmul_options fused{.bias = o.bias, .act = clip::activation::quick_gelu};

    // The packed variants measure the own kernel at every row count, past the dispatch's limit.
    clip::detail::cpu_gemm::row_limit() = std::numeric_limits<std::int64_t>::max();
    auto call = [&] {
        switch (v) {
        case variant::clip_plain: clip::matmul_into(o.out, o.x, o.w.t()); break;
        case variant::clip_packed: clip::matmul_into(o.out, o.x, packed); break;
        case variant::onednn_packed: {
            clip::detail::cpu_gemm::enabled() = false;
            clip::matmul_into(o.out, o.x, packed);
            clip::detail::cpu_gemm::enabled() = true;
            break;
        }
        case variant::clip_fused: clip::matmul_into(o.out, o.x, packed, fused); break;
        case variant::dnnl_sgemm:
#if defined(CLIP_WITH_ONEDNN)
            sgemm(o, o.out.data<float>());
#endif
            break;
        }
    };

    const std::string key = std::string(name_of(v)) + "/" + std::to_string(m) + "/" + std::to_string(k) + "/" +
                            std::to_string(n);
    double cold = 0.0;
    bool first_time = false;
    {
        auto& times = cold_times();
        if (auto it = times.find(key); it != times.end()) {
            cold = it->second;
            call(); // this run's packed_weights is new: pack outside the timed loop
        } else {
            cold = times[key] = time_ms(call);
            first_time = true;
        }
    }
    if (first_time) {
        const std::string error = compare(o.out.data<float>(), expected(o, v == variant::clip_fused), k);
        if (!error.empty()) {
            state.SkipWithError(error.c_str());
            return;
        }
    }

    const std::int64_t plans_before = plan_creations();
    for (auto _ : state) {
        call();
        benchmark::ClobberMemory();
    }
    const std::int64_t plans_in_loop = plan_creations() - plans_before;

    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(m) * double(n) * double(k) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
    state.counters["cold_ms"] = cold;
    state.counters["plans"] = static_cast<double>(plans_in_loop);
    state.counters["threads"] = clip::num_threads();
}

/// A linear layer's training products, x [M, in], W [out, in], dz [M, out]: the forward x · Wᵀ,
/// the input gradient dz · W and the accumulated weight gradient dW += dzᵀ · x, each through
/// clip's dispatch (`own`: the own kernel where unpacked_wins, oneDNN elsewhere) or with the own
/// kernels switched off (`onednn`). Nothing is packed ahead: the weights change every step.
enum class train_product { forward, input_grad, weight_grad };

void BM_train(benchmark::State& state, train_product p, bool own) {
    const std::int64_t m = state.range(0), in = state.range(1), out = state.range(2);
    const clip::tensor x = clip::rand_normal({m, in}, 1), dz = clip::rand_normal({m, out}, 2);
    const clip::tensor w = clip::rand_normal({out, in}, 3, 0.0f, 0.03f);
    const clip::tensor y = clip::tensor::zeros({m, out}), dx = clip::tensor::zeros({m, in}),
                       dw = clip::tensor::zeros({out, in});
    auto call = [&] {
        switch (p) {
        case train_product::forward: clip::matmul_into(y, x, w.t()); break;
        case train_product::input_grad: clip::matmul_into(dx, dz, w); break;
        case train_product::weight_grad: clip::matmul_into(dw, dz.t(), x, {.residual = dw}); break;
        }
    };
    clip::detail::cpu_gemm::enabled() = own;
    call();
    for (auto _ : state) {
        call();
        benchmark::ClobberMemory();
    }
    clip::detail::cpu_gemm::enabled() = true;
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(m) * double(in) * double(out) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

struct layer {
    std::int64_t k, n;
};
constexpr layer vit_b32_layers[] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};
constexpr std::int64_t rows[] = {2464, 400, 50};

void register_all() {
    std::vector<variant> variants{variant::clip_plain, variant::clip_packed, variant::onednn_packed, variant::clip_fused};
#if defined(CLIP_WITH_ONEDNN)
    variants.push_back(variant::dnnl_sgemm);
#endif
    // Grouped by shape so that every variant of one shape runs back to back (same cache state,
    // same machine load); the report compares within a group.
    for (const std::int64_t m : rows)
        for (const layer& l : vit_b32_layers)
            for (const variant v : variants)
                benchmark::RegisterBenchmark((std::string("gemm/") + name_of(v)).c_str(), BM_gemm, v)
                    ->ArgNames({"M", "K", "N"})
                    ->Args({m, l.k, l.n})
                    ->Unit(benchmark::kMicrosecond)
                    ->UseRealTime();
    const std::pair<train_product, const char*> products[] = {
        {train_product::forward, "forward"}, {train_product::input_grad, "input_grad"}, {train_product::weight_grad, "weight_grad"}};
    for (const std::int64_t m : {std::int64_t{2464}, std::int64_t{400}})
        for (const layer& l : vit_b32_layers)
            for (const auto& [p, name] : products)
                for (const bool own : {true, false})
                    benchmark::RegisterBenchmark((std::string("train_") + name + (own ? "/own" : "/onednn")).c_str(),
                                                 BM_train, p, own)
                        ->ArgNames({"M", "in", "out"})
                        ->Args({m, l.k, l.n})
                        ->Unit(benchmark::kMicrosecond)
                        ->UseRealTime();
    // A product too small to measure anything but the fixed cost of a call (checks, plan lookup,
    // oneDNN memory objects, thread wake-up).
    for (const variant v : variants)
        benchmark::RegisterBenchmark((std::string("gemm_overhead/") + name_of(v)).c_str(), BM_gemm, v)
            ->ArgNames({"M", "K", "N"})
            ->Args({1, 16, 16})
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
}

/// Warms up what every configuration shares (the oneDNN engine and stream, sgemm's dispatch,
/// OpenMP's thread pool), so cold_ms measures only what is specific to a shape.
void warm_up() {
    operands o(8, 16, 24);
    clip::matmul_into(o.out, o.x, o.w.t());
#if defined(CLIP_WITH_ONEDNN)
    sgemm(o, o.out.data<float>());
#endif
}

} // namespace

int main(int argc, char** argv) {
    // A default minimum time that keeps the whole run short; a --benchmark_min_time given on the
    // command line comes later in argv and wins.
    std::vector<char*> args(argv, argv + argc);
    static char default_min_time[] = "--benchmark_min_time=0.2";
    args.insert(args.begin() + 1, default_min_time);
    int count = static_cast<int>(args.size());
    benchmark::Initialize(&count, args.data());
    if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
#if !defined(CLIP_WITH_ONEDNN)
    std::fprintf(stderr, "bench-gemm: built without oneDNN: no dnnl_sgemm peer, clip runs the Eigen reference\n");
#endif
    warm_up();
    register_all();
    benchmark::AddCustomContext("clip_threads", std::to_string(clip::num_threads()));
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
