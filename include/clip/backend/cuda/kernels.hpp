// clip/backend/cuda/kernels.hpp: the CUDA source of clip's fixed GPU kernels (see jit.hpp).
//
// Row kernels give each row one warp: layer norm and L2 normalisation read the row three times
// from cache, never round-trip through memory between passes. Attention is one warp per query
// row with the online softmax (running maximum and sum, rescaled as keys stream by), so no
// [T, S] score matrix exists, and the causal mask simply stops at the query's own position.
// The value accumulator lives in registers: up to 32·4 = 128 features per head.
#pragma once

#include <string>

namespace clip::detail::cuda {

/// Loads and stores of every clip dtype as float; shared by all generated sources.
inline const std::string& prelude_source() {
    static const std::string source = R"(
typedef long long i64;
__device__ __forceinline__ float ld_f32(const float* p) { return *p; }
__device__ __forceinline__ float ld_i32(const int* p) { return (float)*p; }
__device__ __forceinline__ float ld_i64(const i64* p) { return (float)*p; }
__device__ __forceinline__ float ld_u8(const unsigned char* p) { return (float)*p; }
__device__ __forceinline__ float ld_bf16(const unsigned short* p) { return __uint_as_float(((unsigned)*p) << 16); }
__device__ __forceinline__ float ld_f16(const unsigned short* p) {
    float f; unsigned short h = *p; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ void st_f32(float* p, float v) { *p = v; }
__device__ __forceinline__ void st_i32(int* p, float v) { *p = (int)v; }
__device__ __forceinline__ void st_i64(i64* p, float v) { *p = (i64)v; }
__device__ __forceinline__ void st_u8(unsigned char* p, float v) { *p = (unsigned char)v; }
__device__ __forceinline__ void st_bf16(unsigned short* p, float v) {
    unsigned u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) { *p = (unsigned short)((u >> 16) | 0x40u); return; }
    u += 0x7fffu + ((u >> 16) & 1u);
    *p = (unsigned short)(u >> 16); }
__device__ __forceinline__ void st_f16(unsigned short* p, float v) {
    unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v)); *p = h; }
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v; }
)";
    return source;
}

inline const std::string& kernels_source() {
    static const std::string source = prelude_source() + R"(
// y = (x - mean) / sqrt(var + eps) * w + b per row; rows of `width` at `in_stride` apart.
extern "C" __global__ void layer_norm(const float* in, i64 in_stride, float* out, i64 rows, int width,
                                      const float* w, const float* b, float eps) {
    const i64 row = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float* x = in + row * in_stride;
    float* y = out + row * (i64)width;
    float s = 0.0f;
    for (int i = lane; i < width; i += 32) s += x[i];
    const float mean = warp_sum(s) / (float)width;
    float q = 0.0f;
    for (int i = lane; i < width; i += 32) { const float d = x[i] - mean; q += d * d; }
    const float rstd = 1.0f / sqrtf(warp_sum(q) / (float)width + eps);
    for (int i = lane; i < width; i += 32) {
        float v = (x[i] - mean) * rstd;
        if (w) v *= w[i];
        if (b) v += b[i];
        y[i] = v;
    }
}

// y = x / max(|x|, eps) per row.
extern "C" __global__ void l2_normalize(const float* in, i64 in_stride, float* out, i64 rows, int width, float eps) {
    const i64 row = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float* x = in + row * in_stride;
    float* y = out + row * (i64)width;
    float q = 0.0f;
    for (int i = lane; i < width; i += 32) q += x[i] * x[i];
    const float inverse = 1.0f / fmaxf(sqrtf(warp_sum(q)), eps);
    for (int i = lane; i < width; i += 32) y[i] = x[i] * inverse;
}

// Per row: mode 0 softmax, 1 log-softmax, 2 causal softmax (row r keeps columns <= r % period).
extern "C" __global__ void softmax_rows(const float* in, i64 in_stride, float* out, i64 rows, int width, int mode, int period) {
    const i64 row = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float* x = in + row * in_stride;
    float* y = out + row * (i64)width;
    const int keep = mode == 2 ? (int)(row % period) + 1 : width;
    float m = __int_as_float(0xff800000);
    for (int i = lane; i < keep; i += 32) m = fmaxf(m, x[i]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float s = 0.0f;
    for (int i = lane; i < keep; i += 32) s += expf(x[i] - m);
    s = warp_sum(s);
    const float shift = m + logf(s), inverse = 1.0f / s;
    for (int i = lane; i < width; i += 32)
        y[i] = i >= keep ? 0.0f : mode == 1 ? x[i] - shift : expf(x[i] - m) * inverse;
}

// out[b, i, h*D + d] = sum_j softmax_j(scale * q[b,h,i,:].k[b,h,j,:]) v[b,h,j,d]; D <= 128.
extern "C" __global__ void attention(const float* q, const float* k, const float* v, float* out,
                                     i64 qs0, i64 qs1, i64 qs2, i64 ks0, i64 ks1, i64 ks2,
                                     i64 vs0, i64 vs1, i64 vs2, int B, int H, int T, int S, int D,
                                     float scale, int causal) {
    const i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (warp >= (i64)B * H * T) return;
    const int i = (int)(warp % T), h = (int)((warp / T) % H), b = (int)(warp / ((i64)T * H));
    const float* query = q + b * qs0 + h * qs1 + i * qs2;
    const float* keys = k + b * ks0 + h * ks1;
    const float* values = v + b * vs0 + h * vs1;
    float qr[4], acc[4];
    #pragma unroll
    for (int c = 0; c < 4; ++c) {
        const int d = lane + 32 * c;
        qr[c] = d < D ? query[d] : 0.0f;
        acc[c] = 0.0f;
    }
    float m = __int_as_float(0xff800000), l = 0.0f;
    const int visible = causal ? i + 1 : S;
    for (int j = 0; j < visible; ++j) {
        const float* key = keys + j * ks2;
        float part = 0.0f;
        #pragma unroll
        for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; if (d < D) part += qr[c] * key[d]; }
        const float s = warp_sum(part) * scale;
        const float m_new = fmaxf(m, s);
        const float correction = expf(m - m_new), p = expf(s - m_new);
        l = l * correction + p;
        const float* value = values + j * vs2;
        #pragma unroll
        for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; if (d < D) acc[c] = acc[c] * correction + p * value[d]; }
        m = m_new;
    }
    float* result = out + (((i64)b * T + i) * H + h) * D;
    const float inverse = 1.0f / l;
    #pragma unroll
    for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; if (d < D) result[d] = acc[c] * inverse; }
}

// out[r, :] = table[ids[r], :] for `rows` rows of `width`; ids are checked on the host.
extern "C" __global__ void gather_rows(const float* table, i64 table_stride, const i64* ids, float* out, i64 rows, i64 width) {
    const i64 n = rows * width;
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (i64)gridDim.x * blockDim.x) {
        const i64 r = e / width, c = e % width;
        out[e] = table[ids[r] * table_stride + c];
    }
}

// Unfolds x [N, C, H, W] (strides in elements) into columns [N*OH*OW, C*KH*KW] for a convolution by product.
extern "C" __global__ void im2col(const float* x, float* cols, int N, int C, int H, int W, int KH, int KW,
                                  int OH, int OW, int sh, int sw, int ph, int pw, int dh, int dw,
                                  i64 xs0, i64 xs1, i64 xs2, i64 xs3) {
    const i64 K = (i64)C * KH * KW;
    const i64 n_all = (i64)N * OH * OW * K;
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < n_all; e += (i64)gridDim.x * blockDim.x) {
        const i64 col = e % K, pixel = e / K;
        const int kw = (int)(col % KW), kh = (int)((col / KW) % KH), c = (int)(col / ((i64)KW * KH));
        const int ow = (int)(pixel % OW), oh = (int)((pixel / OW) % OH), n = (int)(pixel / ((i64)OW * OH));
        const int y = oh * sh - ph + kh * dh, xx = ow * sw - pw + kw * dw;
        cols[e] = (y >= 0 && y < H && xx >= 0 && xx < W) ? x[n * xs0 + c * xs1 + y * xs2 + xx * xs3] : 0.0f;
    }
}

// The adjoint of im2col: x[n, c, h, w] = the sum of the unfolded entries that read it, over the
// taps (kh, kw) whose output position (oh, ow) is whole and inside the output. Elements in
// (n, h, w, c) order, c fastest: channels-last writes and reads of neighbouring columns coalesce.
extern "C" __global__ void col2im(const float* cols, float* x, int N, int C, int H, int W, int KH, int KW,
                                  int OH, int OW, int sh, int sw, int ph, int pw, int dh, int dw,
                                  i64 xs0, i64 xs1, i64 xs2, i64 xs3) {
    const i64 K = (i64)C * KH * KW;
    const i64 n_all = (i64)N * C * H * W;
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < n_all; e += (i64)gridDim.x * blockDim.x) {
        const int c = (int)(e % C), w = (int)((e / C) % W), h = (int)((e / ((i64)C * W)) % H), n = (int)(e / ((i64)C * W * H));
        float s = 0.0f;
        for (int kh = 0; kh < KH; ++kh) {
            const int ty = h + ph - kh * dh;
            if (ty < 0 || ty % sh != 0 || ty / sh >= OH) continue;
            for (int kw = 0; kw < KW; ++kw) {
                const int tx = w + pw - kw * dw;
                if (tx < 0 || tx % sw != 0 || tx / sw >= OW) continue;
                s += cols[((i64)(n * OH + ty / sh) * OW + tx / sw) * K + ((i64)c * KH + kh) * KW + kw];
            }
        }
        x[n * xs0 + c * xs1 + h * xs2 + w * xs3] = s;
    }
}

// Reduces axis R of a contiguous (outer, R, inner) f32 tensor: kind 0 sum, 1 mean, 2 max, 3 argmax (i64 out).
extern "C" __global__ void reduce_axis(const float* in, void* out, i64 outer, i64 R, i64 inner, int kind) {
    const i64 n = outer * inner;
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (i64)gridDim.x * blockDim.x) {
        const float* x = in + (e / inner) * R * inner + e % inner;
        if (kind >= 2) {
            i64 best = 0;
            for (i64 r = 1; r < R; ++r) if (x[r * inner] > x[best * inner]) best = r;
            if (kind == 3) ((i64*)out)[e] = best; else ((float*)out)[e] = R ? x[best * inner] : __int_as_float(0xff800000);
        } else {
            float s = 0.0f;
            for (i64 r = 0; r < R; ++r) s += x[r * inner];
            ((float*)out)[e] = kind == 1 ? s / (float)R : s;
        }
    }
}

// Average pooling of x [N, C, H, W] (any strides, in elements) into y [N, C, OH, OW] (any strides).
extern "C" __global__ void avg_pool2d(const float* x, float* y, int N, int C, int H, int W, int OH, int OW,
                                      i64 xs0, i64 xs1, i64 xs2, i64 xs3, i64 ys0, i64 ys1, i64 ys2, i64 ys3,
                                      int kh, int kw, int sh, int sw, int ph, int pw, int include_pad) {
    const i64 n_all = (i64)N * C * OH * OW;
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < n_all; e += (i64)gridDim.x * blockDim.x) {
        const int ow = (int)(e % OW), oh = (int)((e / OW) % OH), c = (int)((e / ((i64)OW * OH)) % C), n = (int)(e / ((i64)OW * OH * C));
        const int y0 = oh * sh - ph, x0 = ow * sw - pw;
        const int y1 = min(y0 + kh, H + ph), x1 = min(x0 + kw, W + pw);
        const int pool = (y1 - y0) * (x1 - x0);
        float s = 0.0f;
        int count = 0;
        for (int yy = max(y0, 0); yy < min(y1, H); ++yy)
            for (int xx = max(x0, 0); xx < min(x1, W); ++xx) { s += x[n * xs0 + c * xs1 + yy * xs2 + xx * xs3]; ++count; }
        y[n * ys0 + c * ys1 + oh * ys2 + ow * ys3] = s / (float)(include_pad ? pool : count);
    }
}

// In place: x = act(x) + residual, act 1 = relu, 2 = exact GELU, 3 = QuickGELU; residual may be null.
extern "C" __global__ void activate(float* x, i64 n, int act, const float* residual) {
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (i64)gridDim.x * blockDim.x) {
        const float v = x[e];
        x[e] = act == 1 ? fmaxf(v, 0.0f)
             : act == 2 ? 0.5f * v * (1.0f + erff(v * 0.70710678118654752f))
             : act == 3 ? v / (1.0f + expf(-1.702f * v)) : v;
        if (residual) x[e] += residual[e];
    }
}
)";
    return source;
}

} // namespace clip::detail::cuda
