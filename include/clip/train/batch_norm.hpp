// clip/train/batch_norm.hpp: trainable torch.nn.BatchNorm2d on channels-last activations.
//
// x [..., C] contiguous: a channels-last [N, H, W, C] batch, whose M = N·H·W leading positions
// are the samples of each channel's statistics. With act ReLU or none and an optional residual
// (a Bottleneck's `relu(bn3(conv3(.)) + identity)` is one call):
// training mode (PyTorch's module.train()):
//   forward   μ = mean(x),  σ² = mean((x − μ)²)  per channel over the M rows (biased),
//             rstd = 1/sqrt(σ² + eps),  x̂ = (x − μ)·rstd,  y = act(x̂ ⊙ γ + β + residual)
//             running_mean ← (1 − m)·running_mean + m·μ
//             running_var  ← (1 − m)·running_var + m·σ²·M/(M − 1)     (unbiased, as PyTorch)
//             num_batches_tracked += 1                                  (m = momentum = 0.1)
//   backward  g = dy ⊙ [y > 0] with ReLU, else dy   (g is also the residual's gradient)
//             dγ += Σ g ⊙ x̂,   dβ += Σ g
//             dx = γ·rstd·(g − mean(g) − x̂·mean(g ⊙ x̂))
// eval mode (module.eval()):
//   forward   μ, σ² = running_mean, running_var (nothing updated), y as above
//   backward  dx = γ·rstd·g;  dγ, dβ as above
// The running statistics are buffers of the store (parameters.hpp), not parameters.
//
// Per-channel sums split the rows into chunks whose length depends on C only; each chunk is
// reduced in f32 in row order (its mean, then its squared deviations from that mean: no
// cancellation), and the chunks are combined per channel in double (Chan et al.'s pairwise
// update), so the statistics are the same bits for any thread count. The element-wise passes
// are one fused multiply-add per value with per-channel coefficients.
//
// On a GPU (and on the CPU under CLIP_TRAIN_PORTABLE=1, see buffers.hpp) the same steps are
// device-generic: column sums of x, then of (x − μ)² (two passes, no cancellation), of g and of
// g·(x − μ); the per-channel arithmetic on the host in double, as above; the element-wise passes
// as tensor expressions with the per-channel coefficients broadcast over the rows.
#pragma once

#include <cmath>

#include "clip/train/buffers.hpp"
#include "clip/train/parameters.hpp"

namespace clip::detail {

/// Rows per chunk of a per-channel reduction over [M, C]: about 8 K floats, whatever the thread
/// count (so the sums do not depend on it).
inline std::int64_t channel_chunk_rows(std::int64_t C) { return std::max<std::int64_t>(4, 8192 / C); }

/// body(chunk, first_row, last_row) for every chunk of the M rows, chunks split across threads.
template <class F>
void for_each_row_chunk(std::int64_t M, std::int64_t C, F&& body) {
    const std::int64_t rows = channel_chunk_rows(C), chunks = (M + rows - 1) / rows;
    parallel_for(chunks, rows * C * 3, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t k = first; k < last; ++k) body(k, k * rows, std::min(M, (k + 1) * rows));
    });
}

} // namespace clip::detail

namespace clip::train {

struct batch_norm {
    tensor weight, grad_weight; // γ [C]
    tensor bias, grad_bias;     // β [C]
    tensor running_mean;        // [C], buffers of the store
    tensor running_var;         // [C]
    tensor num_batches_tracked; // [] i64
    float eps = 1e-5f;
    float momentum = 0.1f;

    struct cache {
        tensor input;                // x [..., C]: the caller's buffer, which must live until backward
        detail::buffer output;       // y [..., C]
        detail::buffer mean;         // μ [C]: the batch's (training) or the running one (eval)
        detail::buffer rstd;         // [C]
        detail::buffer partial;      // per-chunk sums [chunks, 2, C]
        detail::buffer coefficients; // per-channel factors of the element-wise passes [4, C]
        detail::buffer sums, host;   // the device-generic path's column sums [2, C] and its host side [6, C]
        bool training = true;
        bool relu = false;
    };

    /// The layer `prefix` (`prefix.weight`, `prefix.bias`, `prefix.running_mean`, ...) of a store.
    static batch_norm bind(const parameter_store& store, const std::string& prefix) {
        const parameter& w = store.at(prefix + ".weight");
        const parameter& b = store.at(prefix + ".bias");
        return {w.value,
                w.grad,
                b.value,
                b.grad,
                store.buffer(prefix + ".running_mean").value,
                store.buffer(prefix + ".running_var").value,
                store.buffer(prefix + ".num_batches_tracked").value};
    }

    std::int64_t channels() const { return weight.size(0); }

    /// x [..., C] -> y = act(BN(x) + residual) [..., C], kept in `c.output`. In training mode the
    /// batch statistics normalise and the running statistics are updated.
    const tensor& forward(const tensor& x, cache& c, bool training, const tensor& residual = {},
                          bool relu = false) const {
        const std::int64_t C = channels();
        detail::require_buffer(x, x.shape(), "batch_norm", "input", weight.device());
        detail::check<shape_error>(x.ndim() >= 2 && x.shape().back() == C, "batch_norm: input of shape ", x.shape(),
                                   " does not end in the ", C, " channels");
        if (residual.defined()) detail::require_buffer(residual, x.shape(), "batch_norm", "residual", weight.device());
        const std::int64_t M = x.numel() / C;
        c.input = x;
        c.training = training;
        c.relu = relu;
        if (detail::portable(x)) return forward_portable(x, c, residual);
        float* mean = detail::reuse(c.mean, {C}).data<float>();
        float* rstd = detail::reuse(c.rstd, {C}).data<float>();
        if (training) batch_statistics(x, c, mean, rstd);
        else running_statistics(running_mean.data<float>(), running_var.data<float>(), mean, rstd);

        // y = act(x · scale + shift + residual)
        float* scale = detail::reuse(c.coefficients, {4, C}).data<float>();
        float* shift = scale + C;
        affine(weight.data<float>(), bias.data<float>(), mean, rstd, scale, shift);
        const tensor& y = detail::reuse(c.output, x.shape());
        const float* in = x.data<float>();
        const float* res = residual.defined() ? residual.data<float>() : nullptr;
        float* out = y.data<float>();
        using detail::simd;
        detail::parallel_for(M, C * 2, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t r = first; r < last; ++r)
                detail::for_each_register(C, [&](std::int64_t ch, std::int64_t n) {
                    const std::int64_t i = r * C + ch;
                    simd v = xsimd::fma(detail::load_lanes(in + i, n), detail::load_lanes(scale + ch, n),
                                        detail::load_lanes(shift + ch, n));
                    if (res) v += detail::load_lanes(res + i, n);
                    if (relu) v = xsimd::max(v, simd(0.0f));
                    detail::store_lanes(out + i, v, n);
                });
        });
        return y;
    }

    /// dy [..., C] -> dx [..., C] (written; dx may be dy itself), accumulating grad_weight and
    /// grad_bias. dy is consumed: with ReLU it is overwritten with g = dy ⊙ [y > 0], which is
    /// then the residual's gradient.
    void backward(const tensor& dy, cache& c, const tensor& dx) const {
        const std::int64_t C = channels();
        detail::require_buffer(dy, c.input.shape(), "batch_norm backward", "output gradient", weight.device());
        detail::require_buffer(dx, c.input.shape(), "batch_norm backward", "input gradient", weight.device());
        if (detail::portable(dy)) return backward_portable(dy, c, dx);
        const std::int64_t M = c.input.numel() / C;
        const float* x = c.input.data<float>();
        const float* y = c.output.data<float>();
        float* g = dy.data<float>();
        const float* mean = c.mean.data<float>();
        const float* rstd = c.rstd.data<float>();
        const bool relu = c.relu;
        using detail::simd;

        // Per chunk: Σ g and Σ g·(x − μ), masking g in place first.
        const std::int64_t chunks = (M + detail::channel_chunk_rows(C) - 1) / detail::channel_chunk_rows(C);
        float* partial = detail::reuse(c.partial, {chunks, 2, C}).data<float>();
        detail::for_each_row_chunk(M, C, [&](std::int64_t k, std::int64_t first, std::int64_t last) {
            float* sum_g = partial + k * 2 * C;
            float* sum_gx = sum_g + C;
            std::fill_n(sum_g, 2 * C, 0.0f);
            for (std::int64_t r = first; r < last; ++r)
                detail::for_each_register(C, [&](std::int64_t ch, std::int64_t n) {
                    const std::int64_t i = r * C + ch;
                    simd gi = detail::load_lanes(g + i, n);
                    if (relu) {
                        gi = xsimd::select(detail::load_lanes(y + i, n) > simd(0.0f), gi, simd(0.0f));
                        detail::store_lanes(g + i, gi, n);
                    }
                    const simd centered = detail::load_lanes(x + i, n) - detail::load_lanes(mean + ch, n);
                    detail::store_lanes(sum_g + ch, detail::load_lanes(sum_g + ch, n) + gi, n);
                    detail::store_lanes(sum_gx + ch, xsimd::fma(gi, centered, detail::load_lanes(sum_gx + ch, n)), n);
                });
        });

        // dx = A·g + B·(x − μ) + D per channel (A = γ·rstd; training: B = −A·rstd·mean(g x̂),
        // D = −A·mean(g); eval: B = D = 0).
        float* a = c.coefficients.data<float>();
        float* b = a + C;
        float* d = a + 2 * C;
        const float* gamma = weight.data<float>();
        float* grad_gamma = grad_weight.data<float>();
        float* grad_beta = grad_bias.data<float>();
        for (std::int64_t ch = 0; ch < C; ++ch) {
            double total_g = 0.0, total_gx = 0.0;
            for (std::int64_t k = 0; k < chunks; ++k) {
                total_g += partial[k * 2 * C + ch];
                total_gx += partial[k * 2 * C + C + ch];
            }
            const channel_terms t = channel_backward(total_g, total_gx, gamma[ch], rstd[ch], M, c.training);
            a[ch] = t.a;
            b[ch] = t.b;
            d[ch] = t.d;
            grad_gamma[ch] += t.grad_gamma;
            grad_beta[ch] += t.grad_beta;
        }
        float* out = dx.data<float>();
        detail::parallel_for(M, C * 3, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t r = first; r < last; ++r)
                detail::for_each_register(C, [&](std::int64_t ch, std::int64_t n) {
                    const std::int64_t i = r * C + ch;
                    const simd centered = detail::load_lanes(x + i, n) - detail::load_lanes(mean + ch, n);
                    const simd v = xsimd::fma(detail::load_lanes(g + i, n), detail::load_lanes(a + ch, n),
                                              xsimd::fma(centered, detail::load_lanes(b + ch, n),
                                                         detail::load_lanes(d + ch, n)));
                    detail::store_lanes(out + i, v, n);
                });
        });
    }

private:
    /// The device-generic forward pass (see the header); c.input, c.training, c.relu are set.
    const tensor& forward_portable(const tensor& x, cache& c, const tensor& residual) const {
        const std::int64_t C = channels(), M = x.numel() / C;
        const tensor rows = x.view({M, C});
        const tensor& sums = detail::reuse(c.sums, {2, C}, x);
        float* h = detail::reuse(c.host, {6, C}).data<float>(); // μ, rstd, scale, shift (then a, b, d, dγ, dβ)
        detail::buffer staging;
        const float* gamma = detail::on_host(staging, weight).data<float>();
        const tensor& mean = detail::reuse(c.mean, {C}, x);
        if (c.training) {
            detail::check<shape_error>(M > 1, "batch_norm: training needs more than one value per channel, got input of shape ",
                                       x.shape(), " (as PyTorch, use eval mode for a single sample)");
            detail::zero(sums);
            detail::add_column_sums(sums.select(0, 0), rows);
            detail::buffer host_sums;
            const float* total = detail::on_host(host_sums, sums).data<float>();
            for (std::int64_t ch = 0; ch < C; ++ch) h[ch] = static_cast<float>(static_cast<double>(total[ch]) / static_cast<double>(M));
            upload(mean, h);
            const tensor& squares = detail::reuse(c.partial, {M, C}, x);
            assign(squares, clip::square(rows - mean));
            detail::add_column_sums(sums.select(0, 1), squares);
            const float* m2 = detail::on_host(host_sums, sums).data<float>() + C;
            detail::buffer run_mean_host, run_var_host, counter_host;
            const tensor& run_mean = detail::on_host(run_mean_host, running_mean);
            const tensor& run_var = detail::on_host(run_var_host, running_var);
            const double count = static_cast<double>(M);
            for (std::int64_t ch = 0; ch < C; ++ch) {
                const double mu = static_cast<double>(total[ch]) / count, var = static_cast<double>(m2[ch]) / count;
                h[C + ch] = inverse_std(var);
                update_running(run_mean.data<float>()[ch], run_var.data<float>()[ch], mu, var, count);
            }
            const tensor& counter = detail::on_host(counter_host, num_batches_tracked);
            ++*counter.data<std::int64_t>();
            detail::copy_between(running_mean, run_mean);
            detail::copy_between(running_var, run_var);
            detail::copy_between(num_batches_tracked, counter);
        } else {
            detail::buffer run_mean_host, run_var_host;
            running_statistics(detail::on_host(run_mean_host, running_mean).data<float>(),
                               detail::on_host(run_var_host, running_var).data<float>(), h, h + C);
            upload(mean, h);
        }
        upload(detail::reuse(c.rstd, {C}, x), h + C);
        detail::buffer host_beta;
        affine(gamma, detail::on_host(host_beta, bias).data<float>(), h, h + C, h + 2 * C, h + 3 * C);
        const tensor& coefficients = detail::reuse(c.coefficients, {2, C}, x);
        upload(coefficients, h + 2 * C);
        const tensor scale = coefficients.select(0, 0), shift = coefficients.select(0, 1);
        const tensor& y = detail::reuse(c.output, x.shape(), x);
        const tensor out = y.view({M, C});
        const auto affine = clip::fma(rows, scale, shift);
        if (residual.defined()) {
            const tensor res = residual.view({M, C});
            if (c.relu) assign(out, clip::relu(affine + res));
            else assign(out, affine + res);
        } else {
            if (c.relu) assign(out, clip::relu(affine));
            else assign(out, affine);
        }
        return y;
    }

    /// The device-generic backward pass.
    void backward_portable(const tensor& dy, cache& c, const tensor& dx) const {
        const std::int64_t C = channels(), M = c.input.numel() / C;
        const tensor g = dy.view({M, C}), x = c.input.view({M, C});
        const tensor& mean = c.mean;
        if (c.relu) assign(g, clip::where(clip::greater(c.output.view({M, C}), 0.0f), g, 0.0f));
        const tensor& sums = detail::reuse(c.sums, {2, C}, dy);
        detail::zero(sums);
        detail::add_column_sums(sums.select(0, 0), g);
        const tensor& products = detail::reuse(c.partial, {M, C}, dy);
        assign(products, g * (x - mean));
        detail::add_column_sums(sums.select(0, 1), products);
        detail::buffer host_sums, host_gamma, host_rstd;
        const float* total = detail::on_host(host_sums, sums).data<float>();
        const float* gamma = detail::on_host(host_gamma, weight).data<float>();
        const float* rstd = detail::on_host(host_rstd, c.rstd).data<float>();
        float* h = detail::reuse(c.host, {6, C}).data<float>(); // rows 1..5: a, b, d, dγ, dβ
        for (std::int64_t ch = 0; ch < C; ++ch) {
            const channel_terms t = channel_backward(total[ch], total[C + ch], gamma[ch], rstd[ch], M, c.training);
            h[C + ch] = t.a;
            h[2 * C + ch] = t.b;
            h[3 * C + ch] = t.d;
            h[4 * C + ch] = t.grad_gamma;
            h[5 * C + ch] = t.grad_beta;
        }
        const tensor& coefficients = detail::reuse(c.coefficients, {5, C}, dy);
        upload(coefficients, h + C);
        assign(grad_weight, grad_weight + coefficients.select(0, 3));
        assign(grad_bias, grad_bias + coefficients.select(0, 4));
        assign(dx.view({M, C}), clip::fma(g, coefficients.select(0, 0),
                                          clip::fma(x - mean, coefficients.select(0, 1), coefficients.select(0, 2))));
    }

    // ---- per-channel arithmetic, on the host, shared by both formulations ----

    float inverse_std(double var) const { return static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps))); }

    /// The running statistics after a batch whose channel has mean mu and biased variance var
    /// over count values (PyTorch keeps the unbiased variance).
    void update_running(float& run_mean, float& run_var, double mu, double var, double count) const {
        const double m = momentum;
        run_mean = static_cast<float>((1.0 - m) * run_mean + m * mu);
        run_var = static_cast<float>((1.0 - m) * run_var + m * var * count / (count - 1.0));
    }

    /// The running statistics as μ and rstd [C] (eval mode).
    void running_statistics(const float* run_mean, const float* run_var, float* mean, float* rstd) const {
        for (std::int64_t ch = 0; ch < channels(); ++ch) {
            mean[ch] = run_mean[ch];
            rstd[ch] = inverse_std(run_var[ch]);
        }
    }

    /// y = x·scale + shift: scale = γ·rstd, shift = β − μ·scale.
    void affine(const float* gamma, const float* beta, const float* mean, const float* rstd, float* scale, float* shift) const {
        for (std::int64_t ch = 0; ch < channels(); ++ch) {
            scale[ch] = gamma[ch] * rstd[ch];
            shift[ch] = beta[ch] - mean[ch] * scale[ch];
        }
    }

    /// A channel's backward pass from Σ g and Σ g·(x − μ) over its M values: dx = a·g +
    /// b·(x − μ) + d (training: b = −a·rstd·mean(g x̂), d = −a·mean(g); eval: b = d = 0), and its
    /// parameters' gradients dγ = Σ g·x̂, dβ = Σ g.
    struct channel_terms {
        float a, b, d, grad_gamma, grad_beta;
    };
    static channel_terms channel_backward(double sum_g, double sum_gx, float gamma, float rstd, std::int64_t M, bool training) {
        const double s = rstd, gx_hat = sum_gx * s, factor = static_cast<double>(gamma) * s;
        return {static_cast<float>(factor), training ? static_cast<float>(-factor * s * gx_hat / static_cast<double>(M)) : 0.0f,
                training ? static_cast<float>(-factor * sum_g / static_cast<double>(M)) : 0.0f, static_cast<float>(gx_hat),
                static_cast<float>(sum_g)};
    }

    /// dst (contiguous f32, any device) <- dst.numel() floats from host memory.
    static void upload(const tensor& dst, const float* host) {
        detail::copy_between(dst, tensor::from_blob(const_cast<float*>(host), dst.shape(), dtype::f32));
    }

    /// μ and rstd of the batch into mean and rstd [C]; updates the running statistics.
    void batch_statistics(const tensor& x, cache& c, float* mean, float* rstd) const {
        const std::int64_t C = channels(), M = x.numel() / C;
        detail::check<shape_error>(M > 1, "batch_norm: training needs more than one value per channel, got input of shape ",
                                   x.shape(), " (as PyTorch, use eval mode for a single sample)");
        const std::int64_t rows = detail::channel_chunk_rows(C), chunks = (M + rows - 1) / rows;
        float* partial = detail::reuse(c.partial, {chunks, 2, C}).data<float>();
        const float* in = x.data<float>();
        using detail::simd;
        detail::for_each_row_chunk(M, C, [&](std::int64_t k, std::int64_t first, std::int64_t last) {
            float* chunk_mean = partial + k * 2 * C;
            float* chunk_m2 = chunk_mean + C; // Σ (x − chunk mean)²
            std::fill_n(chunk_mean, 2 * C, 0.0f);
            for (std::int64_t r = first; r < last; ++r)
                detail::for_each_register(C, [&](std::int64_t ch, std::int64_t n) {
                    detail::store_lanes(chunk_mean + ch,
                                        detail::load_lanes(chunk_mean + ch, n) + detail::load_lanes(in + r * C + ch, n), n);
                });
            const float inverse = 1.0f / static_cast<float>(last - first);
            for (std::int64_t ch = 0; ch < C; ++ch) chunk_mean[ch] *= inverse;
            for (std::int64_t r = first; r < last; ++r)
                detail::for_each_register(C, [&](std::int64_t ch, std::int64_t n) {
                    const simd centered = detail::load_lanes(in + r * C + ch, n) - detail::load_lanes(chunk_mean + ch, n);
                    detail::store_lanes(chunk_m2 + ch, xsimd::fma(centered, centered, detail::load_lanes(chunk_m2 + ch, n)),
                                        n);
                });
        });
        float* run_mean = running_mean.data<float>();
        float* run_var = running_var.data<float>();
        const double count = static_cast<double>(M);
        for (std::int64_t ch = 0; ch < C; ++ch) {
            double total = 0.0;
            for (std::int64_t k = 0; k < chunks; ++k)
                total += static_cast<double>(partial[k * 2 * C + ch]) * static_cast<double>(std::min(rows, M - k * rows));
            const double mu = total / count;
            double m2 = 0.0;
            for (std::int64_t k = 0; k < chunks; ++k) {
                const double delta = static_cast<double>(partial[k * 2 * C + ch]) - mu;
                m2 += static_cast<double>(partial[k * 2 * C + C + ch]) +
                      delta * delta * static_cast<double>(std::min(rows, M - k * rows));
            }
            const double var = m2 / count;
            mean[ch] = static_cast<float>(mu);
            rstd[ch] = inverse_std(var);
            update_running(run_mean[ch], run_var[ch], mu, var, count);
        }
        ++*num_batches_tracked.data<std::int64_t>();
    }
};

} // namespace clip::train
