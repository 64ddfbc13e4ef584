// clip/backend/cuda/train.hpp: the GPU halves of clip::train's layers (train_kernels.hpp).
//
// Each function takes the layer's contiguous f32 buffers, already on one CUDA device (the
// layers check that), and queues its kernels on that device's stream. The CPU halves live in
// the layers themselves; these compute the same formulas.
#pragma once

#include <algorithm>
#include <vector>

#include "clip/backend/cuda/jit.hpp"
#include "clip/backend/cuda/train_kernels.hpp"
#include "clip/core/tensor.hpp"

namespace clip::detail::cuda {

inline cudaKernel_t train_kernel(const char* name, int index) {
    return kernel(train_kernels_source(), "train_kernels", name, index);
}

/// Blocks of 128 threads for one warp per row.
inline dim3 warp_rows(std::int64_t rows) { return dim3(static_cast<unsigned>((rows + 3) / 4)); }
/// Blocks of 256 threads for a grid-stride loop over n elements.
inline dim3 elements(std::int64_t n) { return dim3(static_cast<unsigned>(std::clamp<std::int64_t>((n + 255) / 256, 1, 65536))); }

/// Sets `bytes` of device memory to zero, in order with the device's work.
inline void zero(void* p, std::size_t bytes, int index) {
    if (bytes == 0) return;
    use_device(index);
    check_cuda(cudaMemsetAsync(p, 0, bytes, stream(index)), "cudaMemsetAsync");
}

/// Layer norm of x [rows, D] into y, keeping mean and rstd [rows].
inline void layer_norm_forward(const tensor& x, const tensor& w, const tensor& b, float eps, const tensor& y,
                               const tensor& mean, const tensor& rstd) {
    const int index = x.device().index;
    std::int64_t rows = mean.numel();
    int D = static_cast<int>(w.numel());
    const float *xp = x.data<float>(), *wp = w.data<float>(), *bp = b.data<float>();
    float *yp = y.data<float>(), *mp = mean.data<float>(), *rp = rstd.data<float>();
    launch(train_kernel("ln_forward", index), warp_rows(rows), dim3(128), 0, index,
           {&xp, &yp, &mp, &rp, &rows, &D, &wp, &bp, &eps}, "CUDA layer_norm forward launch");
}

/// dx (= or +=) from dy through the layer norm of x; dx may be dy.
inline void layer_norm_backward(const tensor& x, const tensor& dy, const tensor& mean, const tensor& rstd, const tensor& w,
                                const tensor& dx, bool accumulate) {
    const int index = x.device().index;
    std::int64_t rows = mean.numel();
    int D = static_cast<int>(w.numel()), acc = accumulate ? 1 : 0;
    const float *xp = x.data<float>(), *gp = dy.data<float>(), *mp = mean.data<float>(), *rp = rstd.data<float>(),
                *wp = w.data<float>();
    float* dp = dx.data<float>();
    launch(train_kernel("ln_backward", index), warp_rows(rows), dim3(128), 0, index,
           {&xp, &gp, &mp, &rp, &wp, &dp, &rows, &D, &acc}, "CUDA layer_norm backward launch");
}

/// out [cols] += Σ_r g[r·g_stride + c] over `rows` rows, or Σ_r g · x̂ with x̂ = (x − mean[r])·rstd[r]
/// when x is given (x [rows, cols] contiguous): the gradient of a bias, or of a layer norm's gain.
inline void add_column_sums(const tensor& out, const tensor& g, std::int64_t rows, std::int64_t cols, std::int64_t g_stride,
                            const tensor& x = {}, const tensor& mean = {}, const tensor& rstd = {}) {
    if (rows == 0 || cols == 0) return;
    const int index = out.device().index;
    const std::int64_t column_blocks = (cols + 31) / 32;
    std::int64_t chunk = 256, chunks = (rows + chunk - 1) / chunk;
    const tensor partial = tensor::empty({chunks, cols}, dtype::f32, out.device());
    const float* gp = g.data<float>();
    const float* xp = x.defined() ? x.data<float>() : nullptr;
    const float* mp = x.defined() ? mean.data<float>() : nullptr;
    const float* rp = x.defined() ? rstd.data<float>() : nullptr;
    float* pp = partial.data<float>();
    float* op = out.data<float>();
    launch(train_kernel("column_partials", index), dim3(static_cast<unsigned>(column_blocks), static_cast<unsigned>(chunks)),
           dim3(32, 8), 0, index, {&gp, &g_stride, &xp, &mp, &rp, &pp, &rows, &cols, &chunk}, "CUDA column sums launch");
    launch(train_kernel("column_finish", index), dim3(static_cast<unsigned>((cols + 255) / 256)), dim3(256), 0, index,
           {&pp, &chunks, &cols, &op}, "CUDA column sums launch");
}

/// Warps per block of the shared-memory attention kernels, and the shared bytes they need for
/// sequences of T with heads of D (0 when that is over the 48 KB every launch may take).
constexpr int attention_warps = 4;
inline std::size_t attention_shared_bytes(std::int64_t T, std::int64_t D) {
    const std::size_t bytes = static_cast<std::size_t>(2 * T * (D + 1) + attention_warps * (T + D)) * sizeof(float);
    return bytes <= 48 * 1024 ? bytes : 0;
}

/// qkv [B, T, 3W] -> probabilities [B, H, T, T] and context [B, T, W].
inline void attention_forward(const tensor& qkv, std::int64_t heads, bool causal, float scale, const tensor& probabilities,
                              const tensor& context) {
    const int index = qkv.device().index;
    int B = static_cast<int>(qkv.size(0)), T = static_cast<int>(qkv.size(1)), H = static_cast<int>(heads);
    int D = static_cast<int>(qkv.size(2) / 3 / heads), mask = causal ? 1 : 0;
    check<shape_error>(D <= 128, "attention: heads of ", D, " features; the CUDA kernels take up to 128");
    const float* q = qkv.data<float>();
    float *p = probabilities.data<float>(), *c = context.data<float>();
    if (const std::size_t shared = attention_shared_bytes(T, D)) {
        launch(train_kernel("attention_forward_shared", index), dim3(static_cast<unsigned>(B * H)), dim3(32 * attention_warps),
               shared, index, {&q, &p, &c, &B, &H, &T, &D, &scale, &mask}, "CUDA attention forward launch");
        return;
    }
    launch(train_kernel("attention_forward", index), warp_rows(static_cast<std::int64_t>(B) * H * T), dim3(128), 0, index,
           {&q, &p, &c, &B, &H, &T, &D, &scale, &mask}, "CUDA attention forward launch");
}

/// d context [B, T, W] -> d qkv [B, T, 3W] (written); grad_scores [B, H, T, T] is scratch.
inline void attention_backward(const tensor& qkv, const tensor& probabilities, const tensor& grad_context,
                               std::int64_t heads, bool causal, float scale, const tensor& grad_scores,
                               const tensor& grad_qkv) {
    const int index = qkv.device().index;
    int B = static_cast<int>(qkv.size(0)), T = static_cast<int>(qkv.size(1)), H = static_cast<int>(heads);
    int D = static_cast<int>(qkv.size(2) / 3 / heads), mask = causal ? 1 : 0;
    check<shape_error>(D <= 128, "attention: heads of ", D, " features; the CUDA kernels take up to 128");
    const float *q = qkv.data<float>(), *p = probabilities.data<float>(), *dc = grad_context.data<float>();
    float *ds = grad_scores.data<float>(), *dq = grad_qkv.data<float>();
    const float* dsr = ds;
    if (const std::size_t shared = attention_shared_bytes(T, D)) {
        const dim3 grid(static_cast<unsigned>(B * H)), block(32 * attention_warps);
        launch(train_kernel("attention_backward_query_shared", index), grid, block, shared, index,
               {&q, &p, &dc, &ds, &dq, &B, &H, &T, &D, &scale, &mask}, "CUDA attention backward launch");
        launch(train_kernel("attention_backward_key_shared", index), grid, block, shared, index,
               {&q, &p, &dsr, &dc, &dq, &B, &H, &T, &D, &mask}, "CUDA attention backward launch");
        return;
    }
    const dim3 grid = warp_rows(static_cast<std::int64_t>(B) * H * T);
    launch(train_kernel("attention_backward_query", index), grid, dim3(128), 0, index,
           {&q, &p, &dc, &ds, &dq, &B, &H, &T, &D, &scale, &mask}, "CUDA attention backward launch");
    launch(train_kernel("attention_backward_key", index), grid, dim3(128), 0, index,
           {&q, &p, &dsr, &dc, &dq, &B, &H, &T, &D, &mask}, "CUDA attention backward launch");
}

/// y = x / max(|x|, eps) per row of x [N, E], keeping |x| [N].
inline void l2_normalize_forward(const tensor& x, float eps, const tensor& y, const tensor& norm) {
    const int index = x.device().index;
    std::int64_t rows = x.size(0);
    int E = static_cast<int>(x.size(1));
    const float* xp = x.data<float>();
    float *yp = y.data<float>(), *np = norm.data<float>();
    launch(train_kernel("l2n_forward", index), warp_rows(rows), dim3(128), 0, index, {&xp, &yp, &np, &rows, &E, &eps},
           "CUDA l2_normalize forward launch");
}

inline void l2_normalize_backward(const tensor& y, const tensor& norm, const tensor& dy, float eps, const tensor& dx) {
    const int index = y.device().index;
    std::int64_t rows = y.size(0);
    int E = static_cast<int>(y.size(1));
    const float *yp = y.data<float>(), *np = norm.data<float>(), *gp = dy.data<float>();
    float* dp = dx.data<float>();
    launch(train_kernel("l2n_backward", index), warp_rows(rows), dim3(128), 0, index, {&yp, &np, &gp, &dp, &rows, &E, &eps},
           "CUDA l2_normalize backward launch");
}

/// out [M·T, W] = table[ids] + pos[t] (ids [M, T] i64 on the device, checked on the host).
inline void embed_tokens(const tensor& table, const tensor& ids, const tensor& pos, const tensor& out) {
    const int index = table.device().index;
    std::int64_t rows = ids.numel(), W = table.size(1);
    int T = static_cast<int>(ids.size(1));
    const float *tp = table.data<float>(), *pp = pos.data<float>();
    const std::int64_t* ip = ids.data<std::int64_t>();
    float* op = out.data<float>();
    launch(train_kernel("embed_tokens", index), elements(rows * W), dim3(256), 0, index, {&tp, &ip, &pp, &op, &rows, &T, &W},
           "CUDA embedding launch");
}

/// table[ids[r]] += g[r] for the rows of g [rows, W].
inline void scatter_add_rows(const tensor& g, const tensor& ids, const tensor& table) {
    const int index = g.device().index;
    std::int64_t rows = ids.numel(), W = table.size(1);
    const float* gp = g.data<float>();
    const std::int64_t* ip = ids.data<std::int64_t>();
    float* tp = table.data<float>();
    launch(train_kernel("scatter_add_rows", index), elements(rows * W), dim3(256), 0, index, {&gp, &ip, &tp, &rows, &W},
           "CUDA embedding backward launch");
}

/// pooled [M, W] = x [M, T, W] at positions [M] (device, i64), or the reverse into x when scatter.
inline void pool_rows(const tensor& x, const tensor& positions, const tensor& pooled, bool scatter) {
    const int index = x.device().index;
    std::int64_t M = x.size(0), T = x.size(1), W = x.size(2);
    int mode = scatter ? 1 : 0;
    float *xp = x.data<float>(), *pp = pooled.data<float>();
    const std::int64_t* at = positions.data<std::int64_t>();
    launch(train_kernel("pool_rows", index), elements(M * W), dim3(256), 0, index, {&xp, &at, &pp, &M, &T, &W, &mode},
           "CUDA pooling launch");
}

struct adamw_scalars {
    float step_size, correction2_sqrt, beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
};

/// One AdamW update; segments [3P] (value offset, moment offset, count) and decay [P] on the device.
inline void adamw_step(const tensor& values, const tensor& grads, const tensor& m, const tensor& v, const tensor& segments,
                       const tensor& decay, std::int64_t largest, adamw_scalars s) {
    const int index = values.device().index;
    float *vp = values.data<float>(), *mp = m.data<float>(), *sp = v.data<float>();
    const float *gp = grads.data<float>(), *dp = decay.data<float>();
    const std::int64_t* seg = segments.data<std::int64_t>();
    const dim3 grid(std::min<unsigned>(elements(largest).x, 1024), static_cast<unsigned>(decay.numel()));
    launch(train_kernel("adamw_step", index), grid, dim3(256), 0, index,
           {&vp, &gp, &mp, &sp, &seg, &dp, &s.step_size, &s.correction2_sqrt, &s.beta1, &s.beta2, &s.one_minus_beta1,
            &s.one_minus_beta2, &s.eps},
           "CUDA AdamW launch");
}

/// Σ x² over a contiguous f32 tensor, in double (waits for the device).
inline double sum_squares(const tensor& x) {
    const int index = x.device().index;
    std::int64_t n = x.numel();
    if (n == 0) return 0.0;
    const unsigned blocks = std::min<unsigned>(elements(n).x, 1024);
    const std::shared_ptr<void> partial = allocate(blocks * sizeof(double), index);
    const float* xp = x.data<float>();
    void* pp = partial.get();
    launch(train_kernel("sum_squares", index), dim3(blocks), dim3(256), 0, index, {&xp, &n, &pp}, "CUDA norm launch");
    std::vector<double> host(blocks);
    copy(host.data(), pp, blocks * sizeof(double), index);
    double total = 0.0;
    for (double s : host) total += s;
    return total;
}

} // namespace clip::detail::cuda
