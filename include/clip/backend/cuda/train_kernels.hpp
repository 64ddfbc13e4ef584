// clip/backend/cuda/train_kernels.hpp: the CUDA source of the training kernels (see jit.hpp).
//
// The backward passes of clip::train's layers, and the forward passes that keep what those read
// (layer-norm statistics, attention probabilities, feature norms). Row kernels give each row one
// warp, as kernels.hpp's do. Column sums (bias-like gradients) are two passes, partial sums over
// chunks of rows and then the chunks added in order, so a gradient does not depend on the
// scheduling of blocks. Attention's backward is two kernels: one warp per query row writes dS and
// dq, one warp per key row reads dS down its column and writes dk and dv, so every element of
// dqkv has one writer. The one scatter with repeated targets (token-embedding rows) uses atomics.
#pragma once

#include <string>

#include "clip/backend/cuda/kernels.hpp"

namespace clip::detail::cuda {

inline const std::string& train_kernels_source() {
    static const std::string source = prelude_source() + R"(
// Layer norm of contiguous rows, keeping each row's mean and 1/std.
extern "C" __global__ void ln_forward(const float* x, float* y, float* mean, float* rstd, i64 rows, int D,
                                      const float* w, const float* b, float eps) {
    const i64 row = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float* xr = x + row * D;
    float* yr = y + row * D;
    float s = 0.0f;
    for (int i = lane; i < D; i += 32) s += xr[i];
    const float m = warp_sum(s) / (float)D;
    float q = 0.0f;
    for (int i = lane; i < D; i += 32) { const float d = xr[i] - m; q += d * d; }
    const float r = 1.0f / sqrtf(warp_sum(q) / (float)D + eps);
    for (int i = lane; i < D; i += 32) yr[i] = (xr[i] - m) * r * w[i] + b[i];
    if (lane == 0) { mean[row] = m; rstd[row] = r; }
}

// dx = rstd (g w - mean(g w) - x̂ mean(g w x̂)) per row, written or added; dx may be g.
extern "C" __global__ void ln_backward(const float* x, const float* g, const float* mean, const float* rstd,
                                       const float* w, float* dx, i64 rows, int D, int accumulate) {
    const i64 row = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float* xr = x + row * D;
    const float* gr = g + row * D;
    float* dr = dx + row * D;
    const float m = mean[row], s = rstd[row];
    float sg = 0.0f, sgx = 0.0f;
    for (int i = lane; i < D; i += 32) {
        const float gi = gr[i] * w[i];
        sg += gi;
        sgx += gi * ((xr[i] - m) * s);
    }
    const float mean_g = warp_sum(sg) / (float)D, mean_gx = warp_sum(sgx) / (float)D;
    for (int i = lane; i < D; i += 32) {
        const float xhat = (xr[i] - m) * s;
        const float v = s * (gr[i] * w[i] - mean_g - xhat * mean_gx);
        dr[i] = accumulate ? dr[i] + v : v;
    }
}

// partial[k, c] = sum over rows r of chunk k of g[r, c] (x null) or g[r, c] (x[r, c] - mean[r]) rstd[r].
// Blocks of 32 columns by 8 row lanes: each warp reads 32 consecutive columns of a row.
extern "C" __global__ void column_partials(const float* g, i64 g_stride, const float* x, const float* mean,
                                           const float* rstd, float* partial, i64 rows, i64 cols, i64 chunk) {
    __shared__ float part[8][33];
    const i64 c = (i64)blockIdx.x * 32 + threadIdx.x;
    const i64 k = blockIdx.y;
    const i64 first = k * chunk, last = min(rows, first + chunk);
    float s = 0.0f;
    if (c < cols)
        for (i64 r = first + threadIdx.y; r < last; r += 8) {
            float t = g[r * g_stride + c];
            if (x) t *= (x[r * cols + c] - mean[r]) * rstd[r];
            s += t;
        }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y != 0 || c >= cols) return;
    float t = 0.0f;
    #pragma unroll
    for (int y = 0; y < 8; ++y) t += part[y][threadIdx.x];
    partial[k * cols + c] = t;
}

// out[c] += sum_k partial[k, c], in chunk order.
extern "C" __global__ void column_finish(const float* partial, i64 chunks, i64 cols, float* out) {
    const i64 c = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float s = 0.0f;
    #pragma unroll 8
    for (i64 k = 0; k < chunks; ++k) s += partial[k * cols + c];
    out[c] += s;
}

// Self-attention over qkv [B, T, 3W] (rows [q; k; v], heads of D side by side): P [B, H, T, T]
// (zero where masked) and context [B, T, W]. One warp per query row; D <= 128.
extern "C" __global__ void attention_forward(const float* qkv, float* probs, float* ctx, int B, int H, int T, int D,
                                             float scale, int causal) {
    const i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (warp >= (i64)B * H * T) return;
    const int i = (int)(warp % T), h = (int)((warp / T) % H), b = (int)(warp / ((i64)T * H));
    const i64 W = (i64)H * D, row = 3 * W;
    const float* seq = qkv + (i64)b * T * row;
    const float* query = seq + i * row + h * D;
    const float* keys = seq + W + h * D;
    const float* values = seq + 2 * W + h * D;
    float* p = probs + warp * T;
    float qr[4], acc[4];
    #pragma unroll
    for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; qr[c] = d < D ? query[d] : 0.0f; acc[c] = 0.0f; }
    const int visible = causal ? i + 1 : T;
    float m = __int_as_float(0xff800000);
    for (int j = 0; j < visible; ++j) {
        const float* key = keys + j * row;
        float part = 0.0f;
        #pragma unroll
        for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; if (d < D) part += qr[c] * key[d]; }
        const float s = warp_sum(part) * scale;
        if (lane == 0) p[j] = s;
        m = fmaxf(m, s);
    }
    __syncwarp();
    float l = 0.0f;
    for (int j = lane; j < visible; j += 32) { const float e = expf(p[j] - m); p[j] = e; l += e; }
    const float inverse = 1.0f / warp_sum(l);
    __syncwarp();
    for (int j = 0; j < visible; ++j) {
        const float e = p[j];
        const float* value = values + j * row;
        #pragma unroll
        for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; if (d < D) acc[c] += e * value[d]; }
    }
    __syncwarp();
    for (int j = lane; j < T; j += 32) p[j] = j < visible ? p[j] * inverse : 0.0f;
    float* out = ctx + ((i64)b * T + i) * W + h * D;
    #pragma unroll
    for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; if (d < D) out[d] = acc[c] * inverse; }
}

// Per query row: dP_ij = dC_i . V_j, dS_ij = scale P_ij (dP_ij - sum_j P_ij dP_ij) into ds [B, H, T, T],
// dq_i = sum_j dS_ij K_j into dqkv's q part.
extern "C" __global__ void attention_backward_query(const float* qkv, const float* probs, const float* dctx, float* ds,
                                                    float* dqkv, int B, int H, int T, int D, float scale, int causal) {
    const i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (warp >= (i64)B * H * T) return;
    const int i = (int)(warp % T), h = (int)((warp / T) % H), b = (int)(warp / ((i64)T * H));
    const i64 W = (i64)H * D, row = 3 * W;
    const float* seq = qkv + (i64)b * T * row;
    const float* keys = seq + W + h * D;
    const float* values = seq + 2 * W + h * D;
    const float* p = probs + warp * T;
    float* dsr = ds + warp * T;
    const float* dc = dctx + ((i64)b * T + i) * W + h * D;
    float g[4], acc[4];
    #pragma unroll
    for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; g[c] = d < D ? dc[d] : 0.0f; acc[c] = 0.0f; }
    const int visible = causal ? i + 1 : T;
    float weighted = 0.0f;
    for (int j = 0; j < visible; ++j) {
        const float* value = values + j * row;
        float part = 0.0f;
        #pragma unroll
        for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; if (d < D) part += g[c] * value[d]; }
        const float dp = warp_sum(part);
        if (lane == 0) dsr[j] = dp;
        weighted += p[j] * dp;
    }
    __syncwarp();
    for (int j = lane; j < T; j += 32) dsr[j] = j < visible ? p[j] * (dsr[j] - weighted) * scale : 0.0f;
    __syncwarp();
    for (int j = 0; j < visible; ++j) {
        const float s = dsr[j];
        const float* key = keys + j * row;
        #pragma unroll
        for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; if (d < D) acc[c] += s * key[d]; }
    }
    float* dq = dqkv + (i64)b * T * row + i * row + h * D;
    #pragma unroll
    for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; if (d < D) dq[d] = acc[c]; }
}

// Per key row j: dk_j = sum_i dS_ij Q_i, dv_j = sum_i P_ij dC_i over the query rows that see j.
extern "C" __global__ void attention_backward_key(const float* qkv, const float* probs, const float* ds, const float* dctx,
                                                  float* dqkv, int B, int H, int T, int D, int causal) {
    const i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (warp >= (i64)B * H * T) return;
    const int j = (int)(warp % T), h = (int)((warp / T) % H), b = (int)(warp / ((i64)T * H));
    const i64 W = (i64)H * D, row = 3 * W, head = warp - j; // (b, h, 0)
    const float* seq = qkv + (i64)b * T * row;
    float dk[4], dv[4];
    #pragma unroll
    for (int c = 0; c < 4; ++c) { dk[c] = 0.0f; dv[c] = 0.0f; }
    for (int i = causal ? j : 0; i < T; ++i) {
        const float s = ds[(head + i) * T + j], pij = probs[(head + i) * T + j];
        const float* query = seq + i * row + h * D;
        const float* dc = dctx + ((i64)b * T + i) * W + h * D;
        #pragma unroll
        for (int c = 0; c < 4; ++c) {
            const int d = lane + 32 * c;
            if (d < D) { dk[c] += s * query[d]; dv[c] += pij * dc[d]; }
        }
    }
    float* out = dqkv + (i64)b * T * row + j * row + h * D;
    #pragma unroll
    for (int c = 0; c < 4; ++c) {
        const int d = lane + 32 * c;
        if (d < D) { out[W + d] = dk[c]; out[2 * W + d] = dv[c]; }
    }
}

// The same three attention kernels for heads whose keys and values fit in shared memory: one
// block per (sequence, head) stages two [T, D] operands (rows padded to D + 1 floats, so lanes
// that read different rows at one column hit different banks), and each warp takes query (or
// key) rows: lanes split the keys for dot products and the features for weighted sums, with no
// shuffle per key. Shared memory: (2 T (D + 1) + warps (T + D)) floats.
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// One (sequence, head) block's view: the sequence's rows of qkv, and shared memory holding two
// [T, D + 1] operands followed by each warp's row of T scores and vector of D features.
struct head_block {
    const float* seq;
    i64 W, row;
    int b, h, bh, Dp, warp, lane;
    float *first, *second, *scores, *vector;
};

__device__ head_block head_block_of(const float* qkv, int H, int T, int D, float* shared) {
    head_block k;
    const int warps = blockDim.x / 32;
    k.bh = blockIdx.x; k.b = k.bh / H; k.h = k.bh % H;
    k.W = (i64)H * D; k.row = 3 * k.W; k.Dp = D + 1;
    k.seq = qkv + (i64)k.b * T * k.row;
    k.warp = threadIdx.x / 32; k.lane = threadIdx.x % 32;
    k.first = shared; k.second = shared + T * k.Dp;
    k.scores = k.second + T * k.Dp + k.warp * T;
    k.vector = k.second + T * k.Dp + warps * T + k.warp * D;
    return k;
}

// Copies the head's keys and values (the k and v blocks of qkv) into the two shared operands.
__device__ void stage_keys_values(const head_block& k, int T, int D) {
    for (int e = threadIdx.x; e < T * D; e += blockDim.x) {
        const int j = e / D, d = e % D;
        k.first[j * k.Dp + d] = k.seq[j * k.row + k.W + k.h * D + d];
        k.second[j * k.Dp + d] = k.seq[j * k.row + 2 * k.W + k.h * D + d];
    }
    __syncthreads();
}

// out[d] = factor · sum_{j < n} w[j] rows[j, d] for the lane's features d = lane + 32c < D.
__device__ __forceinline__ void weighted_rows(const float* w, int n, const float* rows, int Dp, int D, int lane,
                                              float factor, float* out) {
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int j = 0; j < n; ++j) {
        const float e = w[j];
        #pragma unroll
        for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; if (d < D) acc[c] += e * rows[j * Dp + d]; }
    }
    #pragma unroll
    for (int c = 0; c < 4; ++c) { const int d = lane + 32 * c; if (d < D) out[d] = acc[c] * factor; }
}

// v · rows[j] for the lane's row j (the lanes split the rows).
__device__ __forceinline__ float row_dot(const float* v, const float* rows, int j, int Dp, int D) {
    const float* r = rows + j * Dp;
    float s = 0.0f;
    for (int d = 0; d < D; ++d) s += v[d] * r[d];
    return s;
}

extern "C" __global__ void attention_forward_shared(const float* qkv, float* probs, float* ctx, int B, int H, int T,
                                                    int D, float scale, int causal) {
    extern __shared__ float shared[];
    const head_block k = head_block_of(qkv, H, T, D, shared);
    const int lane = k.lane;
    stage_keys_values(k, T, D);
    for (int i = k.warp; i < T; i += blockDim.x / 32) {
        for (int d = lane; d < D; d += 32) k.vector[d] = k.seq[i * k.row + k.h * D + d];
        __syncwarp();
        const int visible = causal ? i + 1 : T;
        float m = __int_as_float(0xff800000);
        for (int j = lane; j < visible; j += 32) {
            const float s = row_dot(k.vector, k.first, j, k.Dp, D) * scale;
            k.scores[j] = s;
            m = fmaxf(m, s);
        }
        m = warp_max(m);
        float l = 0.0f;
        for (int j = lane; j < visible; j += 32) { const float e = expf(k.scores[j] - m); k.scores[j] = e; l += e; }
        const float inverse = 1.0f / warp_sum(l);
        __syncwarp();
        float* p = probs + ((i64)k.bh * T + i) * T;
        for (int j = lane; j < T; j += 32) p[j] = j < visible ? k.scores[j] * inverse : 0.0f;
        weighted_rows(k.scores, visible, k.second, k.Dp, D, lane, inverse, ctx + ((i64)k.b * T + i) * k.W + k.h * D);
        __syncwarp();
    }
}

extern "C" __global__ void attention_backward_query_shared(const float* qkv, const float* probs, const float* dctx,
                                                           float* ds, float* dqkv, int B, int H, int T, int D,
                                                           float scale, int causal) {
    extern __shared__ float shared[];
    const head_block k = head_block_of(qkv, H, T, D, shared);
    const int lane = k.lane;
    stage_keys_values(k, T, D);
    for (int i = k.warp; i < T; i += blockDim.x / 32) {
        const float* dc = dctx + ((i64)k.b * T + i) * k.W + k.h * D;
        for (int d = lane; d < D; d += 32) k.vector[d] = dc[d];
        __syncwarp();
        const int visible = causal ? i + 1 : T;
        const float* p = probs + ((i64)k.bh * T + i) * T;
        float weighted = 0.0f;
        for (int j = lane; j < visible; j += 32) {
            const float dp = row_dot(k.vector, k.second, j, k.Dp, D);
            k.scores[j] = dp;
            weighted += p[j] * dp;
        }
        weighted = warp_sum(weighted);
        float* dsr = ds + ((i64)k.bh * T + i) * T;
        for (int j = lane; j < T; j += 32) {
            const float v = j < visible ? p[j] * (k.scores[j] - weighted) * scale : 0.0f;
            k.scores[j] = v;
            dsr[j] = v;
        }
        __syncwarp();
        weighted_rows(k.scores, visible, k.first, k.Dp, D, lane, 1.0f, dqkv + (i64)k.b * T * k.row + i * k.row + k.h * D);
        __syncwarp();
    }
}

extern "C" __global__ void attention_backward_key_shared(const float* qkv, const float* probs, const float* ds,
                                                         const float* dctx, float* dqkv, int B, int H, int T, int D,
                                                         int causal) {
    extern __shared__ float shared[];
    const int Dp = D + 1, warps = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const i64 W = (i64)H * D, row = 3 * W;
    const float* seq = qkv + (i64)b * T * row;
    float* Qs = shared;
    float* Gs = Qs + T * Dp;
    // Q from qkv, d context from its own [B, T, W] layout.
    for (int e = threadIdx.x; e < T * D; e += blockDim.x) {
        const int i = e / D, d = e % D;
        Qs[i * Dp + d] = seq[i * row + h * D + d];
        Gs[i * Dp + d] = dctx[((i64)b * T + i) * W + h * D + d];
    }
    __syncthreads();
    const float* dsh = ds + (i64)bh * T * T;
    const float* ph = probs + (i64)bh * T * T;
    for (int j = warp; j < T; j += warps) {
        float dk[4] = {0.0f, 0.0f, 0.0f, 0.0f}, dv[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int i0 = causal ? j : 0; i0 < T; i0 += 32) {
            const int mine = i0 + lane, n = min(32, T - i0);
            const float s_mine = mine < T ? dsh[(i64)mine * T + j] : 0.0f;
            const float p_mine = mine < T ? ph[(i64)mine * T + j] : 0.0f;
            for (int k = 0; k < n; ++k) {
                const float s = __shfl_sync(0xffffffffu, s_mine, k), pk = __shfl_sync(0xffffffffu, p_mine, k);
                const int i = i0 + k;
                #pragma unroll
                for (int c = 0; c < 4; ++c) {
                    const int d = lane + 32 * c;
                    if (d < D) { dk[c] += s * Qs[i * Dp + d]; dv[c] += pk * Gs[i * Dp + d]; }
                }
            }
        }
        float* out = dqkv + (i64)b * T * row + j * row + h * D;
        #pragma unroll
        for (int c = 0; c < 4; ++c) {
            const int d = lane + 32 * c;
            if (d < D) { out[W + d] = dk[c]; out[2 * W + d] = dv[c]; }
        }
    }
}

// y = x / max(|x|, eps) per row, keeping |x|.
extern "C" __global__ void l2n_forward(const float* x, float* y, float* norm, i64 rows, int E, float eps) {
    const i64 row = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float* xr = x + row * E;
    float q = 0.0f;
    for (int i = lane; i < E; i += 32) q += xr[i] * xr[i];
    const float n = sqrtf(warp_sum(q)), inverse = 1.0f / fmaxf(n, eps);
    for (int i = lane; i < E; i += 32) y[row * E + i] = xr[i] * inverse;
    if (lane == 0) norm[row] = n;
}

// dx = (g - y (y . g)) / |x|, or g / eps where the clamp held; dx may be g.
extern "C" __global__ void l2n_backward(const float* y, const float* norm, const float* g, float* dx, i64 rows, int E,
                                        float eps) {
    const i64 row = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float* yr = y + row * E;
    const float* gr = g + row * E;
    float* dr = dx + row * E;
    const float n = norm[row];
    if (n <= eps) {
        for (int i = lane; i < E; i += 32) dr[i] = gr[i] / eps;
        return;
    }
    float s = 0.0f;
    for (int i = lane; i < E; i += 32) s += yr[i] * gr[i];
    const float projection = warp_sum(s), inverse = 1.0f / n;
    for (int i = lane; i < E; i += 32) dr[i] = (gr[i] - yr[i] * projection) * inverse;
}

// out[r, :] = table[ids[r], :] + pos[r % T, :] for rows r of M·T tokens.
extern "C" __global__ void embed_tokens(const float* table, const i64* ids, const float* pos, float* out, i64 rows,
                                        int T, i64 W) {
    const i64 n = rows * W;
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (i64)gridDim.x * blockDim.x) {
        const i64 r = e / W, c = e % W;
        out[e] = table[ids[r] * W + c] + pos[(r % T) * W + c];
    }
}

// table[ids[r], :] += g[r, :] (repeated ids add up).
extern "C" __global__ void scatter_add_rows(const float* g, const i64* ids, float* table, i64 rows, i64 W) {
    const i64 n = rows * W;
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (i64)gridDim.x * blockDim.x)
        atomicAdd(table + ids[e / W] * W + e % W, g[e]);
}

// pooled[m, :] = x[m, positions[m], :] (scatter 0), or dx[m, positions[m], :] = pooled[m, :] (scatter 1).
extern "C" __global__ void pool_rows(float* x, const i64* positions, float* pooled, i64 M, i64 T, i64 W, int scatter) {
    const i64 n = M * W;
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (i64)gridDim.x * blockDim.x) {
        const i64 m = e / W, c = e % W;
        float* token = x + (m * T + positions[m]) * W + c;
        if (scatter) *token = pooled[e]; else pooled[e] = *token;
    }
}

// One AdamW update of every parameter: blockIdx.y picks the parameter, whose (value offset, moment
// offset, count) are segments[3k..3k+2] and weight-decay factor decay[k].
extern "C" __global__ void adamw_step(float* values, const float* grads, float* m, float* v, const i64* segments,
                                      const float* decay, float step_size, float correction2_sqrt, float beta1,
                                      float beta2, float one_minus_beta1, float one_minus_beta2, float eps) {
    const int k = blockIdx.y;
    const i64 at = segments[3 * k], moment = segments[3 * k + 1], count = segments[3 * k + 2];
    const float factor = decay[k];
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < count; e += (i64)gridDim.x * blockDim.x) {
        const float g = grads[at + e];
        const float p = values[at + e] * factor;
        const float mi = m[moment + e] * beta1 + one_minus_beta1 * g;
        const float vi = v[moment + e] * beta2 + one_minus_beta2 * g * g;
        const float denom = sqrtf(vi) / correction2_sqrt + eps;
        values[at + e] = p + -step_size * (mi / denom);
        m[moment + e] = mi;
        v[moment + e] = vi;
    }
}

// partial[block] = sum of x[i]^2 over the block's grid-stride share, in double.
extern "C" __global__ void sum_squares(const float* x, i64 n, double* partial) {
    __shared__ double part[256];
    double s = 0.0;
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (i64)gridDim.x * blockDim.x)
        s += (double)x[e] * x[e];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if (threadIdx.x < o) part[threadIdx.x] += part[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = part[0];
}
)";
    return source;
}

} // namespace clip::detail::cuda
