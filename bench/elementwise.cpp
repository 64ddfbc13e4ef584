// bench/elementwise.cpp: memory bandwidth of clip's fused element-wise and row-wise kernels,
// against memcpy and a hand-written loop moving the same bytes, in the same run.
//
//   ew/clip_gelu_chain   clip::assign(y, clip::gelu(a * b + c))   16M floats: 3 reads + 1 write
//   ew/clip_quick_gelu_chain   the same with quick_gelu (what CLIP's MLP uses)
//   ew/clip_fma_chain    clip::assign(y, a * b + c)               the same traffic, no erf
//   ew/raw_fma           y[i] = a[i]·b[i] + c[i], OpenMP loop      the same traffic, hand-written
//   ew/memcpy            memcpy of 64 MiB (1 read + 1 write), split in `threads` chunks
//   ew/clip_layer_norm   clip::layer_norm(x, w, b) on [8·50, 768]        (ViT-B/32 batch 8)
//   ew/clip_softmax      clip::softmax(x) on [8·12·50, 50]                (its attention rows)
//   ew/dnnl_layer_norm, ew/dnnl_softmax   oneDNN's primitives on the same data (peers; need
//                        oneDNN), into a preallocated output
//
// Each runs with threads:1 and threads:2 (clip::set_num_threads, which the OpenMP loops of the
// peers use too). Counters: GB/s = bytes moved per iteration (reads + writes, counted once each;
// a write-allocate cache reads the destination too, which is not counted) / time, in 1e9 B/s.
// layer_norm and softmax return new tensors, so their timed loop includes that allocation; their
// inputs (1.2 MiB, 0.9 MiB) fit in cache, so theirs is cache, not DRAM, bandwidth.
#include <benchmark/benchmark.h>

#include <clip/clip.hpp>

#include <omp.h>

#if defined(CLIP_WITH_ONEDNN)
#include <oneapi/dnnl/dnnl.hpp>
#endif

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

constexpr std::int64_t big = std::int64_t{16} << 20; // 16M floats = 64 MiB per array
constexpr double big_bytes = static_cast<double>(big) * sizeof(float);

/// The 64 MiB arrays, made once and shared by every benchmark (filling them takes a while).
struct arrays {
    clip::tensor a, b, c, y;
    arrays()
        : a(clip::rand_uniform(clip::shape{big}, 1, -2.0f, 2.0f)), b(clip::rand_uniform(clip::shape{big}, 2, -2.0f, 2.0f)),
          c(clip::rand_uniform(clip::shape{big}, 3, -1.0f, 1.0f)), y(clip::tensor::zeros(clip::shape{big})) {}
};
arrays& data() {
    static arrays d;
    return d;
}

int default_threads = 1;

/// Runs the benchmark with clip (and the OpenMP peers) on state.range(0) threads.
struct thread_scope {
    explicit thread_scope(const benchmark::State& state) { clip::set_num_threads(static_cast<int>(state.range(0))); }
    ~thread_scope() { clip::set_num_threads(default_threads); }
};

void report(benchmark::State& state, double bytes) {
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes * static_cast<double>(state.iterations())));
    state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["threads"] = static_cast<double>(state.range(0));
}

void BM_clip_gelu_chain(benchmark::State& state) {
    thread_scope threads(state);
    arrays& d = data();
    for (auto _ : state) {
        clip::assign(d.y, clip::gelu(d.a * d.b + d.c));
        benchmark::ClobberMemory();
    }
    report(state, 4 * big_bytes);
}

void BM_clip_quick_gelu_chain(benchmark::State& state) {
    thread_scope threads(state);
    arrays& d = data();
    for (auto _ : state) {
        clip::assign(d.y, clip::quick_gelu(d.a * d.b + d.c));
        benchmark::ClobberMemory();
    }
    report(state, 4 * big_bytes);
}

void BM_clip_fma_chain(benchmark::State& state) {
    thread_scope threads(state);
    arrays& d = data();
    for (auto _ : state) {
        clip::assign(d.y, d.a * d.b + d.c);
        benchmark::ClobberMemory();
    }
    report(state, 4 * big_bytes);
}

void BM_raw_fma(benchmark::State& state) {
    thread_scope threads(state);
    arrays& d = data();
    const float* a = d.a.data<float>();
    const float* b = d.b.data<float>();
    const float* c = d.c.data<float>();
    float* y = d.y.data<float>();
    const int t = static_cast<int>(state.range(0));
    for (auto _ : state) {
#pragma omp parallel for simd num_threads(t) schedule(static)
        for (std::int64_t i = 0; i < big; ++i) y[i] = a[i] * b[i] + c[i];
        benchmark::ClobberMemory();
    }
    report(state, 4 * big_bytes);
}

void BM_memcpy(benchmark::State& state) {
    thread_scope threads(state);
    arrays& d = data();
    const auto* src = static_cast<const char*>(d.a.data_ptr());
    auto* dst = static_cast<char*>(d.y.data_ptr());
    const std::int64_t bytes = big * static_cast<std::int64_t>(sizeof(float));
    const int t = static_cast<int>(state.range(0));
    for (auto _ : state) {
        if (t == 1) {
            std::memcpy(dst, src, static_cast<std::size_t>(bytes));
        } else {
#pragma omp parallel num_threads(t)
            {
                const std::int64_t i = omp_get_thread_num(), n = omp_get_num_threads();
                // Chunks on 64-byte boundaries, as a parallel kernel would cut them.
                const std::int64_t begin = bytes * i / n / 64 * 64;
                const std::int64_t end = i + 1 == n ? bytes : bytes * (i + 1) / n / 64 * 64;
                std::memcpy(dst + begin, src + begin, static_cast<std::size_t>(end - begin));
            }
        }
        benchmark::ClobberMemory();
    }
    report(state, 2 * big_bytes);
}

constexpr std::int64_t ln_rows = 8 * 50, ln_width = 768;
constexpr std::int64_t sm_rows = 8 * 12 * 50, sm_width = 50;

void BM_clip_layer_norm(benchmark::State& state) {
    thread_scope threads(state);
    const std::int64_t rows = ln_rows, width = ln_width;
    const clip::tensor x = clip::rand_normal(clip::shape{rows, width}, 4);
    const clip::tensor w = clip::rand_uniform(clip::shape{width}, 5, 0.5f, 1.5f);
    const clip::tensor b = clip::rand_uniform(clip::shape{width}, 6, -0.1f, 0.1f);
    for (auto _ : state) {
        clip::tensor y = clip::layer_norm(x, w, b, 1e-5f);
        benchmark::DoNotOptimize(y.data_ptr());
        benchmark::ClobberMemory();
    }
    report(state, 2.0 * static_cast<double>(rows * width) * sizeof(float));
}

void BM_clip_softmax(benchmark::State& state) {
    thread_scope threads(state);
    const std::int64_t rows = sm_rows, width = sm_width;
    const clip::tensor x = clip::rand_normal(clip::shape{rows, width}, 7);
    for (auto _ : state) {
        clip::tensor y = clip::softmax(x);
        benchmark::DoNotOptimize(y.data_ptr());
        benchmark::ClobberMemory();
    }
    report(state, 2.0 * static_cast<double>(rows * width) * sizeof(float));
}

#if defined(CLIP_WITH_ONEDNN)
// The same operations on oneDNN's own primitives (created once, outside the timed loop), on
// clip's engine and stream.
void run_dnnl(benchmark::State& state, const dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args,
              double bytes) {
    dnnl::stream& s = clip::detail::onednn::stream();
    for (auto _ : state) {
        p.execute(s, args);
        s.wait();
        benchmark::ClobberMemory();
    }
    report(state, bytes);
}

void BM_dnnl_layer_norm(benchmark::State& state) {
    thread_scope threads(state);
    using tag = dnnl::memory::format_tag;
    using dt = dnnl::memory::data_type;
    const dnnl::engine& e = clip::detail::onednn::engine();
    const clip::tensor x = clip::rand_normal(clip::shape{ln_rows, ln_width}, 4);
    const clip::tensor w = clip::rand_uniform(clip::shape{ln_width}, 5, 0.5f, 1.5f);
    const clip::tensor b = clip::rand_uniform(clip::shape{ln_width}, 6, -0.1f, 0.1f);
    const clip::tensor y = clip::tensor::zeros(clip::shape{ln_rows, ln_width});
    const dnnl::memory::desc data_md({ln_rows, ln_width}, dt::f32, tag::ab);
    const dnnl::memory::desc vec_md({ln_width}, dt::f32, tag::a);
    const dnnl::layer_normalization_forward::primitive_desc pd(
        dnnl::layer_normalization_forward::desc(dnnl::prop_kind::forward_inference, data_md, 1e-5f,
                                                dnnl::normalization_flags::use_scale |
                                                    dnnl::normalization_flags::use_shift),
        e);
    const dnnl::layer_normalization_forward p(pd);
    const std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl::memory(data_md, e, x.data_ptr())},
                                                     {DNNL_ARG_DST, dnnl::memory(data_md, e, y.data_ptr())},
                                                     {DNNL_ARG_SCALE, dnnl::memory(vec_md, e, w.data_ptr())},
                                                     {DNNL_ARG_SHIFT, dnnl::memory(vec_md, e, b.data_ptr())}};
    run_dnnl(state, p, args, 2.0 * static_cast<double>(ln_rows * ln_width) * sizeof(float));
}

void BM_dnnl_softmax(benchmark::State& state) {
    thread_scope threads(state);
    const dnnl::engine& e = clip::detail::onednn::engine();
    const clip::tensor x = clip::rand_normal(clip::shape{sm_rows, sm_width}, 7);
    const clip::tensor y = clip::tensor::zeros(clip::shape{sm_rows, sm_width});
    const dnnl::memory::desc md({sm_rows, sm_width}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
    const dnnl::softmax_forward::primitive_desc pd(
        dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, md, 1), e);
    const dnnl::softmax_forward p(pd);
    const std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl::memory(md, e, x.data_ptr())},
                                                     {DNNL_ARG_DST, dnnl::memory(md, e, y.data_ptr())}};
    run_dnnl(state, p, args, 2.0 * static_cast<double>(sm_rows * sm_width) * sizeof(float));
}
#endif

void register_all() {
    const std::vector<std::pair<const char*, void (*)(benchmark::State&)>> all{
        {"ew/clip_gelu_chain", BM_clip_gelu_chain},
        {"ew/clip_quick_gelu_chain", BM_clip_quick_gelu_chain},
        {"ew/clip_fma_chain", BM_clip_fma_chain},
        {"ew/raw_fma", BM_raw_fma},
        {"ew/memcpy", BM_memcpy},
        {"ew/clip_layer_norm", BM_clip_layer_norm},
#if defined(CLIP_WITH_ONEDNN)
        {"ew/dnnl_layer_norm", BM_dnnl_layer_norm},
#endif
        {"ew/clip_softmax", BM_clip_softmax},
#if defined(CLIP_WITH_ONEDNN)
        {"ew/dnnl_softmax", BM_dnnl_softmax},
#endif
    };
    for (const auto& [name, fn] : all)
        benchmark::RegisterBenchmark(name, fn)
            ->ArgName("threads")
            ->Arg(1)
            ->Arg(2)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
}

} // namespace

int main(int argc, char** argv) {
    // A default minimum time that keeps the run short; a --benchmark_min_time given on the
    // command line comes later in argv and wins.
    std::vector<char*> args(argv, argv + argc);
    static char default_min_time[] = "--benchmark_min_time=0.3";
    args.insert(args.begin() + 1, default_min_time);
    int count = static_cast<int>(args.size());
    benchmark::Initialize(&count, args.data());
    if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
    default_threads = clip::num_threads();
    register_all();
    benchmark::AddCustomContext("clip_threads", std::to_string(default_threads));
    benchmark::AddCustomContext("array_MiB", std::to_string(big * sizeof(float) >> 20));
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
