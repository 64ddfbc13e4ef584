// clip/backend/cpu/attention.hpp: one head's attention as two register-tiled products, on AVX-512.
//
// For a block of queries of one (batch, head):
// - scores = scale · Q Kᵀ on the 10×32 tiles of backend/cpu/gemm.hpp, with Kᵀ packed into panels
//   of 32 keys (a transpose of at most S×D floats, small next to the products);
// - the softmax of each row over its visible keys (all, or j ≤ i under the causal mask), in place,
//   normalised, and zero beyond them;
// - context = P V on the same tiles, V packed into panels of 32 columns, stored straight into the
//   [B, T, H·D] result.
// The block's scores live in the thread's scratch (50 × 64 floats for a ViT-B/32 head), never a
// [T, T] matrix per head. The row kernel in ops/attention.hpp computed scores a key at a time
// with horizontal sums; at ViT-B/32's 50 tokens these tiles are about 3 times as fast.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "clip/backend/cpu/gemm.hpp"

#if defined(CLIP_HAS_AVX512_GEMM)

namespace clip::detail::cpu_gemm {

/// The lanes' maximum and sum through memory: GCC 12's _mm512_reduce_* read an "undefined"
/// register that -Werror rejects, and this runs twice per row.
CLIP_AVX512 inline float lanes_max(__m512 v) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, v);
    return *std::max_element(lanes, lanes + 16);
}
CLIP_AVX512 inline float lanes_sum(__m512 v) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, v);
    float total = 0.0f;
    for (const float x : lanes) total += x;
    return total;
}

/// In place over one row of n scores: exp(x - max) / Σ over the first `visible`, 0 for the rest
/// of the row's `width` floats.
CLIP_AVX512 inline void softmax_row(float* x, std::int64_t visible, std::int64_t width) {
    __m512 top = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (std::int64_t j = 0; j < visible; j += 16) {
        const __mmask16 m = first_lanes(visible - j);
        top = _mm512_mask_max_ps(top, m, top, _mm512_maskz_loadu_ps(m, x + j));
    }
    const __m512 shift = _mm512_set1_ps(lanes_max(top));
    __m512 total = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < visible; j += 16) {
        const __mmask16 m = first_lanes(visible - j);
        const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), shift)));
        total = _mm512_add_ps(total, e);
        _mm512_mask_storeu_ps(x + j, m, e);
    }
    const __m512 inverse = _mm512_set1_ps(1.0f / lanes_sum(total));
    for (std::int64_t j = 0; j < width; j += 16) {
        _mm512_storeu_ps(x + j, _mm512_maskz_mul_ps(first_lanes(visible - j), _mm512_loadu_ps(x + j), inverse));
    }
}

/// Queries [i0, i1) of one head. q, k, v point at row 0 of the head, rows `*_stride` floats apart
/// with unit stride along D; S keys; out rows `out_stride` apart.
CLIP_AVX512 inline void attention_block(const float* q, std::int64_t q_stride, std::int64_t i0, std::int64_t i1,
                                        const float* k, std::int64_t k_stride, const float* v, std::int64_t v_stride,
                                        std::int64_t S, std::int64_t D, float scale, bool causal, float* out,
                                        std::int64_t out_stride, std::vector<float>& scratch) {
    const std::int64_t keys = causal ? i1 : S; // the keys any query of the block sees
    const std::int64_t key_panels = (keys + panel_width - 1) / panel_width, width = key_panels * panel_width;
    const std::int64_t value_panels = (D + panel_width - 1) / panel_width, rows = i1 - i0;
    scratch.resize(static_cast<std::size_t>((key_panels * D + value_panels * keys) * panel_width + rows * width));
    float* kt = scratch.data();                              // [key panel][D][32]
    float* vp = kt + key_panels * D * panel_width;           // [value panel][keys][32]
    float* scores = vp + value_panels * keys * panel_width;  // [rows][width]
    for (std::int64_t p = 0; p < key_panels; ++p)
        for (std::int64_t c = 0; c < panel_width; ++c) {
            const std::int64_t j = p * panel_width + c;
            float* dst = kt + p * D * panel_width + c;
            if (j < keys)
                for (std::int64_t d = 0; d < D; ++d) dst[d * panel_width] = k[j * k_stride + d];
            else
                for (std::int64_t d = 0; d < D; ++d) dst[d * panel_width] = 0.0f;
        }
    for (std::int64_t p = 0; p < value_panels; ++p) {
        const std::int64_t c0 = p * panel_width, cols = std::min(panel_width, D - c0);
        const __mmask16 m0 = first_lanes(cols), m1 = first_lanes(cols - 16);
        for (std::int64_t j = 0; j < keys; ++j) {
            const float* src = v + j * v_stride + c0;
            float* dst = vp + (p * keys + j) * panel_width;
            _mm512_storeu_ps(dst, _mm512_maskz_loadu_ps(m0, src));
            _mm512_storeu_ps(dst + 16, _mm512_maskz_loadu_ps(m1, src + 16));
        }
    }
    const float* qb = q + i0 * q_stride;
    for (std::int64_t p = 0; p < key_panels; ++p)
        panel_rows<kernel::avx512, true, true>(rows, D, qb, q_stride, kt + p * D * panel_width, scores,
                                               scores + p * panel_width, width,
                                               std::min(panel_width, keys - p * panel_width), {.scale = scale});
    for (std::int64_t r = 0; r < rows; ++r)
        softmax_row(scores + r * width, causal ? i0 + r + 1 : keys, width);
    for (std::int64_t p = 0; p < value_panels; ++p)
        panel_rows<kernel::avx512, true, true>(rows, keys, scores, width, vp + p * keys * panel_width, scores,
                                               out + i0 * out_stride + p * panel_width, out_stride,
                                               std::min(panel_width, D - p * panel_width), {});
}

} // namespace clip::detail::cpu_gemm

#endif // CLIP_HAS_AVX512_GEMM
