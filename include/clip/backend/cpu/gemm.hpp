// clip/backend/cpu/gemm.hpp: clip's own product, mainly for constant (packed) weights.
//
//   y = act(scale · (x · W) + bias) + residual,   x [M, K] rows, W [K, N] a packed_weights
//
// It runs products of up to 64 rows (one image, a few texts, the pooled rows of a last block),
// where the weights stream from memory and its prefetching beats oneDNN 2.6's brgemm; more rows
// go to oneDNN, which is as fast or faster there (see default_row_limit).
// - W is packed once into panels of 32 columns, [panel][K][32], zero-padded to a whole panel.
// - A 10×32 tile of y stays in 20 registers over a chunk of 384 k-steps: per step, two loads of W's
//   row and ten broadcasts of x feed 20 FMAs.
// - Each thread takes a contiguous run of panels, so it reads its share of W once and in order;
//   up to 200 rows, two threads take theirs from either end of one run until they meet, so a
//   thread the machine slows does less. At one image the weights come from memory every call
//   (350 MB for ViT-B/32), so the leading tiles also prefetch the next chunk into L2, a slice
//   each: without that the same kernel ran at 350 GFLOP/s on the EPYC, against 500 with it.
// - Partial sums of a K longer than one chunk go to per-thread scratch, so y is written once, with
//   the epilogue fused; a residual may therefore be y itself.
// - Large outputs whose rows are a multiple of 4 KB apart are written with non-temporal stores.
// - Unpacked right-hand operands whose rows lie a multiple of 4 KB apart (training's c_proj
//   gradients), which oneDNN handles poorly, run here too: each thread packs one panel at a time
//   into L2-resident scratch and runs all rows against it (see unpacked_wins).
// The AVX-512 functions carry their own target attribute and run only after a run-time CPU
// check, so the library's -march (x86-64-v3) is unchanged. Other CPUs run the portable kernel:
// the same scheme in xsimd at the build's width, 6×16 tiles with AVX2 (the classic shape for
// 16 registers). CLIP_CPU_GEMM=simd runs it everywhere, CLIP_CPU_GEMM=onednn neither, and
// CLIP_CPU_GEMM=own lifts the row limit.
// Activations other than none, ReLU and QuickGELU, and operands this cannot take as strided
// rows stay on oneDNN.
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clip/backend/cpu/packed.hpp"
#include "clip/core/allocator.hpp"
#include "clip/core/mapped_memory.hpp"
#include "clip/core/parallel.hpp"
#include "clip/core/tensor.hpp"
#include "clip/expr/functors.hpp"
#include "clip/ops/matmul_spec.hpp"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CLIP_HAS_AVX512_GEMM 1
#define CLIP_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif

namespace clip::detail::cpu_gemm {

inline constexpr std::int64_t panel_width = 32; // columns per packed panel: two 16-float registers
inline constexpr int tile_rows = 10;            // rows per register tile
inline constexpr std::int64_t k_chunk = 384;    // k-steps per pass over a tile
inline constexpr std::int64_t m_chunk = 200;    // rows whose slice of x stays in L2 across one thread's panels
                                                // (480 left it to L3: 490 instead of 510 GFLOP/s at 400 rows)

/// Whether CLIP_CPU_GEMM is set to `value`.
inline bool env_selects(std::string_view value) noexcept {
    const char* env = std::getenv("CLIP_CPU_GEMM");
    return env && std::string_view(env) == value;
}

/// Whether products with packed weights may use these kernels: the environment variable
/// CLIP_CPU_GEMM=onednn turns them off, and bench/gemm flips it to compare the two in one run.
inline bool& enabled() noexcept {
    static bool on = !env_selects("onednn");
    return on;
}

/// The most rows of the first product on a packed weight for it to run here (see takes_packed).
/// With few rows a product streams its weights from memory, and these kernels' prefetching wins;
/// with many it is bound by the FMAs, where oneDNN's brgemm is as fast or faster. Chains of
/// ViT-B/32's 48 layer products (weights from memory, 2 threads), own kernel against oneDNN,
/// medians of 16 alternated runs, on a Xeon with AMX (2 MB L2): 1.09x at 50 rows, 1.01 at 64,
/// 0.99 at 77, 0.94 at 100, 0.86 at 200, 0.87 at 400; the whole ViT-B/32 at batch 8 ran 1.11x
/// faster with oneDNN above 100 rows, 77-token texts 1.25x. On the AMD EPYC this kernel was
/// first tuned on, the two tied at 400 rows.
inline constexpr std::int64_t default_row_limit = 64;

/// The row limit in force: CLIP_CPU_GEMM=own lifts it (every product with packed weights runs
/// here), and tests and bench/gemm set it to measure the kernels at any shape.
inline std::int64_t& row_limit() noexcept {
    static std::int64_t rows = env_selects("own") ? std::numeric_limits<std::int64_t>::max() : default_row_limit;
    return rows;
}

/// Whether a product whose right-hand operand is not packed (training's: its weights change every
/// step, and its weight gradients multiply activations) runs here, each panel of b packed on the
/// way: when b's rows have a unit column stride and lie a multiple of 4 KB apart. oneDNN 2.6's
/// matmul handles those poorly (c_proj's input gradient dz · W with W [768, 3072], and its weight
/// gradient dzᵀ · x with x [rows, 3072]: 127-156 GFLOP/s at 400 and 2464 rows against 175-248
/// here); on other training shapes oneDNN is faster than packing per call (bench-gemm's train_*).
inline bool unpacked_wins(const tensor& b) noexcept {
    return b.ndim() == 2 && b.size(1) >= 1024 && b.stride(1) == 1 && b.stride(0) % 1024 == 0;
}

/// Whether the portable kernel (xsimd, the build's vector width) runs even where AVX-512F would:
/// CLIP_CPU_GEMM=simd, to measure on one machine what a CPU without AVX-512 gets.
inline bool& portable() noexcept {
    static bool on = env_selects("simd");
    return on;
}

/// The fused tail of the product; pointers already offset to the tile's first row and column.
struct epilogue {
    const float* bias = nullptr;     // [N] or null
    const float* residual = nullptr; // rows `residual_stride` apart, unit column stride, or null
    std::int64_t residual_stride = 0;
    float scale = 1.0f;
    activation act = activation::none;
    bool stream = false;             // whole panels of y with non-temporal stores (y 64-byte aligned)
};

/// The epilogue of the output block starting at row `row`, column `col`.
inline epilogue at(epilogue e, std::int64_t row, std::int64_t col) noexcept {
    if (e.bias) e.bias += col;
    if (e.residual) e.residual += row * e.residual_stride + col;
    return e;
}

/// Whether the m × n output at y is written with non-temporal stores. Rows a multiple of 4 KB
/// apart put a tile's ten output rows in one L1 set, where their write-allocations evicted the
/// weights (c_fc's 3072 columns at 2464 rows: 450 GFLOP/s, against 500 at 3040 or 3104).
/// Non-temporal stores skip the allocation; an output of 2 MB or more does not stay in this
/// core's caches for the next product anyway.
inline bool streamed(std::int64_t m, std::int64_t n, const float* y) noexcept {
    return n % 1024 == 0 && m * n * static_cast<std::int64_t>(sizeof(float)) >= (std::int64_t{2} << 20) &&
           reinterpret_cast<std::uintptr_t>(y) % 64 == 0;
}

/// Whether CPUs without AVX-512F run the portable kernel rather than oneDNN: yes when it is
/// built for AVX2 and FMA. Measured here with both limited to AVX2 (CLIP_CPU_GEMM=simd against
/// ONEDNN_MAX_CPU_ISA=AVX2): 250 against 218-250 GFLOP/s on ViT-B/32's layers at 400 rows, and
/// ViT-B/32 at one image 27.2 against 20.7 images/s.
inline constexpr bool portable_default() noexcept {
#if defined(__AVX2__) && defined(__FMA__)
    return true;
#else
    return false;
#endif
}

inline bool supports(activation act) noexcept {
    return act == activation::none || act == activation::relu || act == activation::quick_gelu;
}

#if defined(CLIP_HAS_AVX512_GEMM)

inline bool cpu_ready() noexcept {
    static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    return yes;
}

/// The mask of the first n of 16 lanes (none for n <= 0, all for n >= 16).
inline __mmask16 first_lanes(std::int64_t n) noexcept {
    return static_cast<__mmask16>(n <= 0 ? 0u : n >= 16 ? 0xFFFFu : (1u << n) - 1);
}

/// exp(x) to about one ulp (Cephes' polynomial on x - n·ln2), inf above 88.7, 0 below -104.
CLIP_AVX512 inline __m512 exp16(__m512 x) {
    // Zero-masked forms throughout: GCC 12's plain ones read an "undefined" register, which
    // -Werror=maybe-uninitialized rejects.
    x = _mm512_maskz_max_ps(0xFFFF, _mm512_maskz_min_ps(0xFFFF, x, _mm512_set1_ps(89.0f)), _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_maskz_roundscale_ps(0xFFFF, _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_scalef_ps(0xFFFF, p, n);
}

CLIP_AVX512 inline __m512 activate16(__m512 v, activation act) {
    switch (act) {
    case activation::relu: return _mm512_maskz_max_ps(0xFFFF, v, _mm512_setzero_ps());
    case activation::quick_gelu: // x / (1 + exp(-1.702 x)), as the reference writes it
        return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_mul_ps(v, _mm512_set1_ps(-1.702f)))));
    default: return v;
    }
}

/// One R×32 tile over kc k-steps, prefetching into L2 one line at `prefetch` + k · prefetch_step
/// per step. First: start from zero, else from `partial` (R rows of 32).
/// Final: apply the epilogue and store the first `cols` columns to y, else store to `partial`.
template <int R, bool First, bool Final>
CLIP_AVX512 inline void tile(std::int64_t kc, const float* x, std::int64_t x_stride, const float* w,
                             const float* prefetch, std::int64_t prefetch_step, float* partial, float* y,
                             std::int64_t y_stride, std::int64_t cols, const epilogue& e) {
    __m512 acc[R][2];
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < 2; ++v)
            acc[i][v] = First ? _mm512_setzero_ps() : _mm512_loadu_ps(partial + i * panel_width + v * 16);
    for (std::int64_t k = 0; k < kc; ++k) {
        const __m512 w0 = _mm512_loadu_ps(w + k * panel_width), w1 = _mm512_loadu_ps(w + k * panel_width + 16);
        _mm_prefetch(reinterpret_cast<const char*>(prefetch + k * prefetch_step), _MM_HINT_T1);
#pragma GCC unroll 16
        for (int i = 0; i < R; ++i) {
            const __m512 xi = _mm512_set1_ps(x[i * x_stride + k]);
            acc[i][0] = _mm512_fmadd_ps(xi, w0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(xi, w1, acc[i][1]);
        }
    }
    if constexpr (!Final) {
#pragma GCC unroll 16
        for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
            for (int v = 0; v < 2; ++v) _mm512_storeu_ps(partial + i * panel_width + v * 16, acc[i][v]);
    } else {
        const __mmask16 mask[2] = {first_lanes(cols), first_lanes(cols - 16)};
        __m512 bias[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
        if (e.bias)
            for (int v = 0; v < 2; ++v) bias[v] = _mm512_maskz_loadu_ps(mask[v], e.bias + v * 16);
        const __m512 scale = _mm512_set1_ps(e.scale);
#pragma GCC unroll 16
        for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
            for (int v = 0; v < 2; ++v) {
                __m512 out = e.scale == 1.0f ? acc[i][v] : _mm512_mul_ps(acc[i][v], scale);
                out = activate16(_mm512_add_ps(out, bias[v]), e.act);
                if (e.residual)
                    out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask[v], e.residual + i * e.residual_stride + v * 16));
                if (e.stream && cols == panel_width) _mm512_stream_ps(y + i * y_stride + v * 16, out);
                else _mm512_mask_storeu_ps(y + i * y_stride + v * 16, mask[v], out);
            }
    }
}

#endif // CLIP_HAS_AVX512_GEMM

/// The portable kernel, for CPUs without AVX-512F: the same scheme in xsimd at the build's
/// vector width (8 floats with clip's x86-64-v3), with panels two registers wide and tiles of 6
/// rows, so 12 accumulators, two registers of W and a broadcast fit AVX2's 16 registers.
namespace portable_kernel {

inline constexpr std::int64_t width = 2 * simd_width; // columns per panel and tile
inline constexpr int tile_rows = 6;

inline simd activate(simd v, activation act) noexcept {
    switch (act) {
    case activation::relu: return op::relu{}(v);
    case activation::quick_gelu: return op::quick_gelu{}(v);
    default: return v;
    }
}

/// The first n floats at p (zeros past them), as a register.
inline simd load_first(const float* p, std::int64_t n) noexcept {
    return n >= simd_width ? simd::load_unaligned(p) : load_partial(p, n);
}

/// One R × width tile over kc k-steps; First and Final as in the AVX-512 tile.
template <int R, bool First, bool Final>
inline void tile(std::int64_t kc, const float* x, std::int64_t x_stride, const float* w, const float* prefetch,
                 std::int64_t prefetch_step, float* partial, float* y, std::int64_t y_stride, std::int64_t cols,
                 const epilogue& e) {
    simd acc[R][2];
    for (int i = 0; i < R; ++i)
        for (int v = 0; v < 2; ++v)
            acc[i][v] = First ? simd(0.0f) : simd::load_unaligned(partial + i * width + v * simd_width);
    for (std::int64_t k = 0; k < kc; ++k) {
        const simd w0 = simd::load_unaligned(w + k * width), w1 = simd::load_unaligned(w + k * width + simd_width);
        __builtin_prefetch(prefetch + k * prefetch_step, 0, 2); // into L2, as _MM_HINT_T1
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
            const simd xi(x[i * x_stride + k]);
            acc[i][0] = xsimd::fma(xi, w0, acc[i][0]);
            acc[i][1] = xsimd::fma(xi, w1, acc[i][1]);
        }
    }
    if constexpr (!Final) {
        for (int i = 0; i < R; ++i)
            for (int v = 0; v < 2; ++v) acc[i][v].store_unaligned(partial + i * width + v * simd_width);
    } else {
        const std::int64_t lanes[2] = {std::clamp<std::int64_t>(cols, 0, simd_width),
                                       std::clamp<std::int64_t>(cols - simd_width, 0, simd_width)};
        simd bias[2] = {simd(0.0f), simd(0.0f)};
        if (e.bias)
            for (int v = 0; v < 2; ++v) bias[v] = load_first(e.bias + v * simd_width, lanes[v]);
        for (int i = 0; i < R; ++i)
            for (int v = 0; v < 2; ++v) {
                if (lanes[v] == 0) continue;
                simd out = activate((e.scale == 1.0f ? acc[i][v] : acc[i][v] * simd(e.scale)) + bias[v], e.act);
                if (e.residual) out += load_first(e.residual + i * e.residual_stride + v * simd_width, lanes[v]);
                float* to = y + i * y_stride + v * simd_width;
                if (lanes[v] < simd_width) store_partial(to, out, lanes[v]);
                else if (e.stream) stream_store(to, out);
                else out.store_unaligned(to);
            }
    }
}

} // namespace portable_kernel

/// Which kernel runs the tiles.
enum class kernel { avx512, portable };

template <kernel K>
inline constexpr std::int64_t width_of = K == kernel::avx512 ? panel_width : portable_kernel::width;

using tile_fn = void (*)(std::int64_t, const float*, std::int64_t, const float*, const float*, std::int64_t, float*,
                        float*, std::int64_t, std::int64_t, const epilogue&);

/// The kernel's tiles of 1 … tile_rows rows.
template <kernel K, bool First, bool Final, int... R>
constexpr auto tiles(std::integer_sequence<int, R...>) {
#if defined(CLIP_HAS_AVX512_GEMM)
    if constexpr (K == kernel::avx512) return std::array<tile_fn, sizeof...(R)>{&tile<R + 1, First, Final>...};
#endif
    if constexpr (K == kernel::portable)
        return std::array<tile_fn, sizeof...(R)>{&portable_kernel::tile<R + 1, First, Final>...};
}

/// All m rows of one panel for one chunk of kc k-steps. The leading tiles each prefetch one part of
/// the chunk that follows in memory (the next chunk of this panel, or the next panel's first), the
/// later ones its start again (in L2 by then). Quarters when there are four tiles or more, so the
/// reads from memory spread over most of the chunk's time rather than its first two tiles: at one
/// image (five tiles) ViT-B/32 ran 1.08x faster than with halves (40 alternated calls).
template <kernel K, bool First, bool Final>
inline void panel_rows(std::int64_t m, std::int64_t kc, const float* x, std::int64_t x_stride, const float* w,
                       float* partial, float* y, std::int64_t y_stride, std::int64_t cols, epilogue e,
                       const float* next = nullptr) {
    constexpr std::int64_t width = width_of<K>;
    constexpr int rows = K == kernel::avx512 ? tile_rows : portable_kernel::tile_rows;
    static constexpr auto by_rows = tiles<K, First, Final>(std::make_integer_sequence<int, rows>{});
    if (!next) next = w + kc * width;
    const std::int64_t tiles = (m + rows - 1) / rows;
    const std::int64_t parts = tiles >= 4 ? 4 : 2;
    const std::int64_t step = width / parts, slice = kc * step;
    for (std::int64_t i = 0, t = 0; i < m; ++t) {
        const std::int64_t r = std::min<std::int64_t>(m - i, rows);
        by_rows[static_cast<std::size_t>(r - 1)](kc, x + i * x_stride, x_stride, w, next + (t < parts ? t * slice : 0),
                                                 step, partial + i * width, y + i * y_stride, y_stride, cols, e);
        if (e.residual) e.residual += r * e.residual_stride;
        i += r;
    }
}

/// One block of rows of one panel over all of K, chunk by chunk; `w` is the panel, [K][width].
/// The last chunk prefetches `after` (null: what follows the panel in memory).
template <kernel K>
inline void panel_block(std::int64_t rows, std::int64_t k, const float* x, std::int64_t x_stride, const float* w,
                        float* partial, float* y, std::int64_t y_stride, std::int64_t cols, const epilogue& e,
                        const float* after = nullptr) {
    constexpr std::int64_t width = width_of<K>;
    for (std::int64_t k0 = 0; k0 < k; k0 += k_chunk) {
        const std::int64_t kc = std::min(k_chunk, k - k0);
        const bool first = k0 == 0, final = k0 + kc == k;
        const float* xs = x + k0;
        const float* wc = w + k0 * width;
        const float* next = final ? after : nullptr;
        if (first && final) panel_rows<K, true, true>(rows, kc, xs, x_stride, wc, partial, y, y_stride, cols, e, next);
        else if (first) panel_rows<K, true, false>(rows, kc, xs, x_stride, wc, partial, y, y_stride, cols, e, next);
        else if (final) panel_rows<K, false, true>(rows, kc, xs, x_stride, wc, partial, y, y_stride, cols, e, next);
        else panel_rows<K, false, false>(rows, kc, xs, x_stride, wc, partial, y, y_stride, cols, e, next);
    }
}

/// Panels [first, last) of y for all rows: one thread's share.
template <kernel K>
inline void panels(std::int64_t first, std::int64_t last, std::int64_t m, std::int64_t k, std::int64_t n,
                   const float* x, std::int64_t x_stride, const float* packed, float* y, std::int64_t y_stride,
                   const epilogue& e) {
    constexpr std::int64_t width = width_of<K>;
    // Partial sums of one panel's block of rows; sized even when K fits in one chunk, so the
    // pointer handed to the tiles is never null plus an offset.
    thread_local std::vector<float> scratch;
    scratch.resize(static_cast<std::size_t>(std::min(m, m_chunk) * width));
    for (std::int64_t m0 = 0; m0 < m; m0 += m_chunk) {
        const std::int64_t rows = std::min(m_chunk, m - m0);
        for (std::int64_t p = first; p < last; ++p) {
            const std::int64_t col = p * width;
            const epilogue pe = at(e, m0, col);
            panel_block<K>(rows, k, x + m0 * x_stride, x_stride, packed + p * k * width, scratch.data(),
                           y + m0 * y_stride + col, y_stride, std::min(width, n - col), pe);
        }
    }
    if (e.stream) stream_fence(); // non-temporal stores are weakly ordered: visible before the threads join
}

/// Columns [col, col + width) of the rows of b [K, N] (rows `b_stride` apart) as one zero-padded
/// panel, [K][width].
inline void pack_panel(const float* b, std::int64_t b_stride, std::int64_t k, std::int64_t n, std::int64_t col,
                       std::int64_t width, float* dst) {
    const std::int64_t cols = std::min(width, n - col);
    for (std::int64_t i = 0; i < k; ++i) {
        std::memcpy(dst + i * width, b + i * b_stride + col, static_cast<std::size_t>(cols) * sizeof(float));
        std::fill(dst + i * width + cols, dst + (i + 1) * width, 0.0f);
    }
}

/// The m × k matrix at a (strides rs, cs) as contiguous rows at dst, in 16 × 16 blocks.
inline void gather_rows(const float* a, std::int64_t rs, std::int64_t cs, std::int64_t m, std::int64_t k, float* dst) {
    constexpr std::int64_t block = 16;
    parallel_for((m + block - 1) / block, block * k, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i0 = begin * block; i0 < std::min(m, end * block); i0 += block)
            for (std::int64_t j0 = 0; j0 < k; j0 += block)
                for (std::int64_t j = j0; j < std::min(k, j0 + block); ++j)
                    for (std::int64_t i = i0; i < std::min(m, i0 + block); ++i) dst[i * k + j] = a[i * rs + j * cs];
    });
}

/// Panels [first, last) of y for an unpacked b (rows `b_stride` apart): each panel is packed into
/// this thread's scratch once, then runs over all rows, block by block, from L2.
template <kernel K>
inline void panels_unpacked(std::int64_t first, std::int64_t last, std::int64_t m, std::int64_t k, std::int64_t n,
                            const float* x, std::int64_t x_stride, const float* b, std::int64_t b_stride, float* y,
                            std::int64_t y_stride, const epilogue& e) {
    constexpr std::int64_t width = width_of<K>;
    thread_local std::vector<float> scratch, panel;
    scratch.resize(static_cast<std::size_t>(std::min(m, m_chunk) * width));
    panel.resize(static_cast<std::size_t>((k + k_chunk) * width)); // one chunk past the end for the prefetches
    for (std::int64_t p = first; p < last; ++p) {
        const std::int64_t col = p * width, cols = std::min(width, n - col);
        pack_panel(b, b_stride, k, n, col, width, panel.data());
        for (std::int64_t m0 = 0; m0 < m; m0 += m_chunk) {
            const std::int64_t rows = std::min(m_chunk, m - m0);
            const epilogue pe = at(e, m0, col);
            panel_block<K>(rows, k, x + m0 * x_stride, x_stride, panel.data(), scratch.data(), y + m0 * y_stride + col,
                           y_stride, cols, pe);
        }
    }
    if (e.stream) stream_fence();
}

/// W [K, N] (any strides) packed into zero-padded panels `width` columns wide: element (k, n) at
/// ((n / width) · K + k) · width + n % width.
inline std::shared_ptr<void> pack(const tensor& w, std::int64_t width) {
    const std::int64_t k = w.size(0), n = w.size(1), count = (n + width - 1) / width;
    std::shared_ptr<void> bytes = allocate(static_cast<std::size_t>(count * k * width) * sizeof(float), device::cpu());
    float* out = static_cast<float*>(bytes.get());
    const tensor plain = w.to(dtype::f32);
    const float* in = plain.data<float>();
    const std::int64_t sk = plain.stride(0), sn = plain.stride(1);
    parallel_for(count, k * width, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t p = begin; p < end; ++p)
            for (std::int64_t c = 0; c < width; ++c) {
                const std::int64_t col = p * width + c;
                float* dst = out + p * k * width + c;
                for (std::int64_t i = 0; i < k; ++i) dst[i * width] = col < n ? in[i * sk + col * sn] : 0.0f;
            }
    });
    if (plain.storage() == w.storage() && (w.is_contiguous() || w.t().is_contiguous())) // the panels replace it
        release_file_pages(in, static_cast<std::size_t>(plain.numel()) * sizeof(float));
    return bytes;
}

/// The kernel products with packed weights take on this CPU, if any.
inline std::optional<kernel> chosen() noexcept {
    if (!enabled()) return std::nullopt;
#if defined(CLIP_HAS_AVX512_GEMM)
    if (cpu_ready() && !portable()) return kernel::avx512;
#endif
    if (portable() || portable_default()) return kernel::portable;
    return std::nullopt;
}

/// The threads for the `count` panels of an m × n × k product: one inside a parallel region or
/// for a product too small to be worth waking another, else up to one per panel.
inline int panel_threads(std::int64_t count, std::int64_t m, std::int64_t k, std::int64_t n) {
    return omp_in_parallel() || m * n * k < (1 << 18) ? 1 : static_cast<int>(std::min<std::int64_t>(num_threads(), count));
}

/// Splits the `count` panels of an m × n × k product between the threads; `share(first, last)`
/// computes one thread's run of panels.
template <class Share>
inline void split_panels(std::int64_t count, std::int64_t m, std::int64_t k, std::int64_t n, Share&& share) {
    const int threads = panel_threads(count, m, k, n);
    if (threads == 1) {
        share(std::int64_t{0}, count);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        const std::int64_t t = omp_get_thread_num(), parts = omp_get_num_threads();
        share(count * t / parts, count * (t + 1) / parts);
    }
}

/// Panels [0, count) of a product of at most m_chunk rows on `threads` threads, in pairs that meet
/// in the middle: the panels are split between the pairs by their threads, and within a pair one
/// thread takes panels upward from the first, the other downward from the last, one at a time
/// against a shared count. So a thread the machine slows does fewer panels, while each still reads
/// its weights in order and prefetches the panel it takes next. ViT-B/32 at one image on 2
/// threads: 1.02x against the even split (4 runs of 40 alternated calls, medians 1.008-1.059).
inline constexpr int max_pairs = 64; // more threads than 2 · max_pairs split panels evenly

template <kernel K>
inline void meet_in_middle(int threads, std::int64_t count, std::int64_t m, std::int64_t k, std::int64_t n,
                           const float* x, std::int64_t x_stride, const float* packed, float* y, const epilogue& e) {
    constexpr std::int64_t width = width_of<K>;
    std::array<std::atomic<std::int64_t>, max_pairs> left; // on the stack: no allocation per product
#pragma omp parallel num_threads(threads)
    {
        const int team = omp_get_num_threads(); // may be fewer than asked for
        const auto start = [&](int pair) { return count * std::min(2 * pair, team) / team; };
#pragma omp single
        for (int pair = 0; pair < (team + 1) / 2; ++pair) left[static_cast<std::size_t>(pair)] = start(pair + 1) - start(pair);
        thread_local std::vector<float> scratch;
        scratch.resize(static_cast<std::size_t>(m * width));
        const int t = omp_get_thread_num(), pair = t / 2;
        const bool up = t % 2 == 0;
        const std::int64_t first = start(pair), last = start(pair + 1) - 1;
        for (std::int64_t i = 0; left[static_cast<std::size_t>(pair)].fetch_sub(1, std::memory_order_relaxed) > 0; ++i) {
            const std::int64_t p = up ? first + i : last - i, col = p * width;
            const std::int64_t then = up ? std::min(p + 1, count - 1) : std::max(p - 1, first);
            panel_block<K>(m, k, x, x_stride, packed + p * k * width, scratch.data(), y + col, n,
                           std::min(width, n - col), at(e, 0, col), packed + then * k * width);
        }
        if (e.stream) stream_fence();
    }
}

template <kernel K>
inline void run(std::int64_t m, std::int64_t k, std::int64_t n, const float* x, std::int64_t x_stride,
                const float* w, float* y, const epilogue& e) {
    const std::int64_t count = (n + width_of<K> - 1) / width_of<K>;
    const int threads = panel_threads(count, m, k, n);
    if (m <= m_chunk && threads >= 2 && threads <= 2 * max_pairs) {
        meet_in_middle<K>(threads, count, m, k, n, x, x_stride, w, y, e);
        return;
    }
    split_panels(count, m, k, n, [&](std::int64_t first, std::int64_t last) {
        panels<K>(first, last, m, k, n, x, x_stride, w, y, n, e);
    });
}

template <kernel K>
inline void run_unpacked(std::int64_t m, std::int64_t k, std::int64_t n, const float* x, std::int64_t x_stride,
                         const float* b, std::int64_t b_stride, float* y, const epilogue& e) {
    split_panels((n + width_of<K> - 1) / width_of<K>, m, k, n, [&](std::int64_t first, std::int64_t last) {
        panels_unpacked<K>(first, last, m, k, n, x, x_stride, b, b_stride, y, n, e);
    });
}

/// The key of kernel K's panels in a packed_weights.
inline std::string layout_key(kernel k) {
    if (k == kernel::avx512) return "clip-gemm/avx512/32";
    return portable_kernel::width == 8 ? "clip-gemm/portable/8" : portable_kernel::width == 16 ? "clip-gemm/portable/16" : "clip-gemm/portable/32";
}

/// Whether an m-row product with these packed weights runs here. Each weight keeps one packed
/// copy: the first product on it chooses, by row_limit(), and later ones of any size use the copy
/// that exists (one image after batches runs on oneDNN's, batches after one image on ours), so
/// a model never holds its weights twice over.
inline bool takes_packed(const packed_weights& packed, const std::string& key, std::int64_t m) {
    if (packed.has(key)) return true;
    return m <= row_limit() && !packed.has_other_than("clip-gemm/");
}

/// Runs the product here if it can: packed weights (see takes_packed), or a b for which
/// unpacked_wins(); f32 rows (with a unit column stride, for packed weights), a supported
/// activation, and a kernel for this CPU. Returns false to leave it to oneDNN.
/// `out` is contiguous [..., M, N]; `a` is [..., M, K]; `b` [K, N] (the packed weights' plain one).
inline bool matmul(const tensor& out, const tensor& a, const tensor& b, const matmul_options& o,
                   const packed_weights* packed) {
    const std::optional<kernel> which = chosen();
    if (!which || !supports(o.act) || b.ndim() != 2 || a.dtype() != dtype::f32 || b.dtype() != dtype::f32 ||
        !a.device().is_cpu())
        return false;
    const std::int64_t k = b.size(0), n = b.size(1), m = out.numel() / std::max<std::int64_t>(n, 1);
    if (k == 0 || m == 0 || n == 0) return false;
    const std::string key = packed ? layout_key(*which) : std::string();
    if (packed ? !takes_packed(*packed, key, m) : !unpacked_wins(b)) return false;
    const auto rows = view_strides(a.shape(), a.strides(), shape{m, k});
    if (!rows) return false;
    const float* x = a.data<float>();
    std::int64_t x_stride = (*rows)[0];
    if ((*rows)[1] != 1 && k > 1) {
        if (packed) return false;
        // A transposed operand (the dzᵀ of a weight gradient): its rows gathered once, a copy
        // of m·k floats against 2·m·k·n operations.
        thread_local std::vector<float> gathered;
        gathered.resize(static_cast<std::size_t>(m * k));
        gather_rows(x, (*rows)[0], (*rows)[1], m, k, gathered.data());
        x = gathered.data();
        x_stride = k;
    }

    tensor residual;
    epilogue e{.scale = o.scale, .act = o.act};
    if (o.residual.defined()) {
        residual = o.residual.to(dtype::f32).expand(out.shape());
        auto rs = view_strides(residual.shape(), residual.strides(), shape{m, n});
        if (!rs || ((*rs)[1] != 1 && n > 1)) {
            residual = residual.contiguous();
            rs = strides{n, 1};
        }
        e.residual = residual.data<float>();
        e.residual_stride = (*rs)[0];
    }
    tensor bias;
    if (o.bias.defined()) {
        bias = o.bias.to(dtype::f32).contiguous();
        e.bias = bias.data<float>();
    }
    float* y = out.data<float>();
    e.stream = streamed(m, n, y);
    if (!packed) {
        const float* w = b.data<float>();
#if defined(CLIP_HAS_AVX512_GEMM)
        if (*which == kernel::avx512) {
            run_unpacked<kernel::avx512>(m, k, n, x, x_stride, w, b.stride(0), y, e);
            return true;
        }
#endif
        run_unpacked<kernel::portable>(m, k, n, x, x_stride, w, b.stride(0), y, e);
        return true;
    }
#if defined(CLIP_HAS_AVX512_GEMM)
    if (*which == kernel::avx512) {
        const auto layout = packed->packed(key, [&] { return pack(b, panel_width); });
        run<kernel::avx512>(m, k, n, x, x_stride, static_cast<const float*>(layout.get()), y, e);
        return true;
    }
#endif
    const auto layout = packed->packed(key, [&] { return pack(b, portable_kernel::width); });
    run<kernel::portable>(m, k, n, x, x_stride, static_cast<const float*>(layout.get()), y, e);
    return true;
}

} // namespace clip::detail::cpu_gemm
