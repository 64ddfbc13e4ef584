// clip/expr/simd.hpp: the SIMD register type clip's CPU kernels are written with.
//
// xsimd picks the widest instruction set the compiler targets (AVX2+FMA with the default
// -march=x86-64-v3 of clip's build), so the same kernels also build for SSE or NEON.
#pragma once

#include <xsimd/xsimd.hpp>

#if defined(__AVX__) || defined(__SSE2__)
#include <immintrin.h>
#endif

namespace clip::detail {

using simd = xsimd::batch<float>;
inline constexpr std::int64_t simd_width = static_cast<std::int64_t>(simd::size);

/// Loads n < simd_width floats into the low lanes of a register, zero in the rest.
inline simd load_partial(const float* p, std::int64_t n) noexcept {
    alignas(64) float lanes[simd::size] = {};
    for (std::int64_t i = 0; i < n; ++i) lanes[i] = p[i];
    return simd::load_aligned(lanes);
}

/// Stores the low n lanes of a register.
inline void store_partial(float* p, simd v, std::int64_t n) noexcept {
    alignas(64) float lanes[simd::size];
    v.store_aligned(lanes);
    for (std::int64_t i = 0; i < n; ++i) p[i] = lanes[i];
}

/// Stores a register to 64-byte aligned memory without pulling the line into the cache: for
/// results far larger than the cache this saves the read-for-ownership of every line written.
/// Call `stream_fence()` before other threads read the memory.
template <class Batch>
inline void stream_store(float* p, Batch v) noexcept { // a template, so only the matching branch is compiled
#if defined(__AVX512F__)
    if constexpr (Batch::size == 16) return _mm512_stream_ps(p, v);
#endif
#if defined(__AVX__)
    if constexpr (Batch::size == 8) return _mm256_stream_ps(p, v);
#endif
#if defined(__SSE2__)
    if constexpr (Batch::size == 4) return _mm_stream_ps(p, v);
#endif
    v.store_aligned(p);
}

inline void stream_fence() noexcept {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

/// Sum of all lanes.
inline float reduce_add(simd v) noexcept { return xsimd::hadd(v); }
inline float reduce_max(simd v) noexcept {
    alignas(64) float lanes[simd::size];
    v.store_aligned(lanes);
    float m = lanes[0];
    for (std::size_t i = 1; i < simd::size; ++i) m = lanes[i] > m ? lanes[i] : m;
    return m;
}

} // namespace clip::detail
