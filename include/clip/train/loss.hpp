// clip/train/loss.hpp: the contrastive losses, OpenCLIP's ClipLoss and SigLipLoss, and ClipLoss's
// local form for a rank of several (local_clip_loss; siglip_loss has its rank form built in).
//
// Both take L2-normalised features i, t [N, E] (row k of each is a matching pair) and the log
// temperature t' (the `logit_scale` parameter), s = exp(t'):
//
// clip_loss (open_clip.loss.ClipLoss):
//   forward   L = s · i tᵀ                            [N, N] (logits_per_image; logits_per_text = Lᵀ)
//             loss = (CE(L, arange N) + CE(Lᵀ, arange N)) / 2,   CE = mean softmax cross-entropy
//   backward  dL = (softmax_rows(L) − I + softmax_columns(L) − I) / (2N)
//             di = s · dL t,   dt = s · dLᵀ i,   dt' = Σ dL ⊙ L          (∂L/∂t' = L)
// siglip_loss (open_clip.loss.SigLipLoss; the SigLIP paper's t' = ln 10, b = −10 start): the
// images i [n, E] are rows [o, o + n) of the batch whose texts are t [N, E]; in one process
// n = N and o = 0, on a rank of several i is its own images and t every rank's texts
// (OpenCLIP's world_size > 1 form: the other ranks' texts are negatives, the loss is divided by
// the local n, and DDP's average over ranks makes it the whole batch's).
//   forward   L = s · i tᵀ + b   [n, N],   y = +1 at (k, o + k) (the pairs), −1 otherwise
//             loss = −Σ log σ(y ⊙ L) / n
//   backward  dL = −y ⊙ σ(−y ⊙ L) / n
//             di = s · dL t  [n, E],   dt = s · dLᵀ i  [N, E],   dt' = Σ dL ⊙ (L − b),   db = Σ dL
// The similarity products are clip::matmul, the backward ones on a transposed view of dL. s is
// applied outside the products (to the logits, and folded into dL), as PyTorch does, and because
// it changes every step while a product's scale is part of its oneDNN plan. Sums over the N²
// logits are kept in double. `grad_loss` scales every gradient (1 for one batch; the
// gradient-accumulation weight otherwise). Features on a GPU: the products run there, the loops
// over the logits on the host (the logits go over, s · dL comes back).
//
// clamp_logit_scale is the clamp OpenCLIP's training loop applies after every optimiser step.
#pragma once

#include <cmath>
#include <vector>

#include "clip/ops/matmul.hpp"
#include "clip/ops/rowwise.hpp"
#include "clip/train/buffers.hpp"
#include "clip/train/parameters.hpp"

namespace clip::detail {

/// log Σ_j exp(row[j]) for each of the `rows` rows of a row-major [rows, n] matrix.
inline void row_log_sum_exp(const float* x, std::int64_t rows, std::int64_t n, double* out) {
    parallel_for(rows, n * 2, [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t r = first; r < last; ++r) {
            const float* row = x + r * n;
            const float m = row_max(row, n);
            double total = 0.0;
            for (std::int64_t j = 0; j < n; ++j) total += std::exp(static_cast<double>(row[j]) - m);
            out[r] = m + std::log(total);
        }
    });
}

/// The buffer that holds `logits`' values on the host once on_host(host, logits) has run: only
/// the products run on a GPU (the N² softmax terms are small next to the towers, and the loss
/// comes back to the host anyway).
inline const tensor& host_side(const buffer& logits, const buffer& host) { return on_gpu(logits) ? host : logits; }

/// A gradient computed on the host as an operand of the products on the device of `like`:
/// itself on the CPU, copied into `device_copy` on a GPU.
inline const tensor& product_operand(buffer& device_copy, const tensor& grad, const tensor& like) {
    if (!on_gpu(like)) return grad;
    const tensor& out = reuse(device_copy, grad.shape(), like);
    copy_between(out, grad);
    return out;
}

inline void check_features(const tensor& image, const tensor& text, const char* op) {
    require_buffer(image, image.shape(), op, "image features", image.device());
    require_buffer(text, text.shape(), op, "text features", image.device());
    check<shape_error>(image.ndim() == 2 && image.shape() == text.shape(), op, ": image features ", image.shape(),
                       " and text features ", text.shape(), " must both be [N, E]");
}

} // namespace clip::detail

namespace clip::train {

struct clip_loss {
    struct cache {
        tensor image, text;         // i, t [N, E]: the caller's buffers, which must live until backward
        detail::buffer logits;      // L [N, N] (logits_per_image)
        detail::buffer grad_logits; // s · dL [N, N]
        detail::buffer transposed;  // Lᵀ [N, N]
        detail::buffer host_logits, host_grad; // L and s · dL on the CPU, when the features are on a GPU
        std::vector<double> row_lse, column_lse;
        float scale = 1.0f;         // s
    };

    /// image, text [N, E] (normalised), logit_scale t' -> the loss.
    float forward(const tensor& image, const tensor& text, float logit_scale, cache& c) const {
        detail::check_features(image, text, "clip_loss");
        const std::int64_t N = image.size(0);
        c.image = image;
        c.text = text;
        c.scale = std::exp(logit_scale);
        const tensor& L_device = detail::reuse(c.logits, {N, N}, image);
        matmul_into(L_device, image, text.t());
        assign(L_device, L_device * c.scale);
        const tensor& L = detail::on_host(c.host_logits, L_device);
        const tensor& Lt = detail::reuse(c.transposed, {N, N});
        Lt.copy_from(L.t());
        c.row_lse.resize(static_cast<std::size_t>(N));
        c.column_lse.resize(static_cast<std::size_t>(N));
        detail::row_log_sum_exp(L.data<float>(), N, N, c.row_lse.data());
        detail::row_log_sum_exp(Lt.data<float>(), N, N, c.column_lse.data());
        double image_loss = 0.0, text_loss = 0.0;
        const float* l = L.data<float>();
        for (std::int64_t k = 0; k < N; ++k) {
            image_loss += c.row_lse[static_cast<std::size_t>(k)] - l[k * N + k];
            text_loss += c.column_lse[static_cast<std::size_t>(k)] - l[k * N + k];
        }
        return static_cast<float>((image_loss / static_cast<double>(N) + text_loss / static_cast<double>(N)) / 2.0);
    }

    /// -> grad_image, grad_text [N, E] (written); returns d loss / d logit_scale.
    float backward(cache& c, const tensor& grad_image, const tensor& grad_text, float grad_loss = 1.0f) const {
        const std::int64_t N = c.logits.size(0);
        const tensor& dL = detail::reuse(detail::on_gpu(c.logits) ? c.host_grad : c.grad_logits, {N, N});
        const float* l = detail::host_side(c.logits, c.host_logits).data<float>();
        float* d = dL.data<float>();
        const double weight = static_cast<double>(grad_loss) / (2.0 * static_cast<double>(N));
        std::vector<double> partial(static_cast<std::size_t>(N));
        detail::parallel_for(N, N * 4, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t r = first; r < last; ++r) {
                double sum = 0.0;
                for (std::int64_t j = 0; j < N; ++j) {
                    const double v = l[r * N + j];
                    const double p_row = std::exp(v - c.row_lse[static_cast<std::size_t>(r)]);
                    const double p_column = std::exp(v - c.column_lse[static_cast<std::size_t>(j)]);
                    const double g = weight * (p_row + p_column - (r == j ? 2.0 : 0.0));
                    d[r * N + j] = static_cast<float>(g * c.scale);
                    sum += g * v;
                }
                partial[static_cast<std::size_t>(r)] = sum;
            }
        });
        double grad_scale = 0.0;
        for (double p : partial) grad_scale += p;
        detail::require_buffer(grad_image, c.image.shape(), "clip_loss backward", "image gradient", c.image.device());
        detail::require_buffer(grad_text, c.text.shape(), "clip_loss backward", "text gradient", c.image.device());
        const tensor& dL_device = detail::product_operand(c.grad_logits, dL, c.image);
        matmul_into(grad_image, dL_device, c.text);
        matmul_into(grad_text, dL_device.t(), c.image);
        return static_cast<float>(grad_scale);
    }
};

/// OpenCLIP's ClipLoss in a world of several ranks with local_loss: this rank's rows [o, o + b)
/// of the gathered features I, T [B, E] against every rank's columns.
///   forward   Li = s · I[o:o+b] Tᵀ,  Lt = s · T[o:o+b] Iᵀ          [b, B]
///             loss = (CE(Li, o + arange b) + CE(Lt, o + arange b)) / 2
///   backward  Gi = (softmax_rows(Li) − onehot) / (2b),  Gt likewise
///             dI[o:o+b] = s·Gi T,  dT += s·Giᵀ I[o:o+b],  dT[o:o+b] += s·Gt I,  dI += s·Gtᵀ T[o:o+b]
///             dt' = Σ Gi ⊙ Li + Σ Gt ⊙ Lt
/// The gradients cover all B rows: the other ranks' rows go back to them (reduce-scatter). With
/// b = B it is clip_loss; the mean over ranks of the ranks' losses is the whole batch's loss.
struct local_clip_loss {
    struct cache {
        tensor image, text;                         // I, T [B, E]
        std::int64_t offset = 0, rows = 0;          // o, b
        detail::buffer image_logits, text_logits;   // Li, Lt [b, B]; then s · Gi, s · Gt
        detail::buffer host_image_logits, host_text_logits; // the same on the CPU, when the features are on a GPU
        detail::buffer own;                         // [b, E] products
        std::vector<double> image_lse, text_lse;
        float scale = 1.0f;
    };

    float forward(const tensor& image, const tensor& text, std::int64_t offset, std::int64_t rows, float logit_scale,
                  cache& c) const {
        detail::check_features(image, text, "local_clip_loss");
        const std::int64_t B = image.size(0);
        detail::check<shape_error>(offset >= 0 && rows >= 1 && offset + rows <= B, "local_clip_loss: rows [", offset, ", ",
                                   offset + rows, ") of a batch of ", B);
        c.image = image;
        c.text = text;
        c.offset = offset;
        c.rows = rows;
        c.scale = std::exp(logit_scale);
        const tensor& Li_device = detail::reuse(c.image_logits, {rows, B}, image);
        const tensor& Lt_device = detail::reuse(c.text_logits, {rows, B}, image);
        matmul_into(Li_device, image.slice(0, offset, offset + rows), text.t());
        matmul_into(Lt_device, text.slice(0, offset, offset + rows), image.t());
        assign(Li_device, Li_device * c.scale);
        assign(Lt_device, Lt_device * c.scale);
        const tensor& Li = detail::on_host(c.host_image_logits, Li_device);
        const tensor& Lt = detail::on_host(c.host_text_logits, Lt_device);
        c.image_lse.resize(static_cast<std::size_t>(rows));
        c.text_lse.resize(static_cast<std::size_t>(rows));
        detail::row_log_sum_exp(Li.data<float>(), rows, B, c.image_lse.data());
        detail::row_log_sum_exp(Lt.data<float>(), rows, B, c.text_lse.data());
        double image_loss = 0.0, text_loss = 0.0;
        const float* li = Li.data<float>();
        const float* lt = Lt.data<float>();
        for (std::int64_t k = 0; k < rows; ++k) {
            image_loss += c.image_lse[static_cast<std::size_t>(k)] - li[k * B + offset + k];
            text_loss += c.text_lse[static_cast<std::size_t>(k)] - lt[k * B + offset + k];
        }
        return static_cast<float>((image_loss + text_loss) / (2.0 * static_cast<double>(rows)));
    }

    /// -> grad_image, grad_text [B, E] (written); returns d loss / d logit_scale.
    float backward(cache& c, const tensor& grad_image, const tensor& grad_text, float grad_loss = 1.0f) const {
        const std::int64_t b = c.rows, B = c.image.size(0), o = c.offset;
        detail::require_buffer(grad_image, c.image.shape(), "local_clip_loss backward", "image gradient", c.image.device());
        detail::require_buffer(grad_text, c.text.shape(), "local_clip_loss backward", "text gradient", c.image.device());
        const double weight = static_cast<double>(grad_loss) / (2.0 * static_cast<double>(b));
        double grad_scale = 0.0;
        // Logits -> s · G in place on the host, Σ G ⊙ L on the way.
        const tensor& host_i = detail::host_side(c.image_logits, c.host_image_logits);
        const tensor& host_t = detail::host_side(c.text_logits, c.host_text_logits);
        for (auto [logits, lse] : {std::pair{&host_i, &c.image_lse}, std::pair{&host_t, &c.text_lse}}) {
            float* l = logits->data<float>();
            std::vector<double> partial(static_cast<std::size_t>(b));
            detail::parallel_for(b, B * 4, [&](std::int64_t first, std::int64_t last) {
                for (std::int64_t k = first; k < last; ++k) {
                    double sum = 0.0;
                    for (std::int64_t j = 0; j < B; ++j) {
                        const double v = l[k * B + j];
                        const double g = weight * (std::exp(v - (*lse)[static_cast<std::size_t>(k)]) - (j == o + k ? 1.0 : 0.0));
                        l[k * B + j] = static_cast<float>(g * c.scale);
                        sum += g * v;
                    }
                    partial[static_cast<std::size_t>(k)] = sum;
                }
            });
            for (double p : partial) grad_scale += p;
        }
        const tensor& Gi = detail::product_operand(c.image_logits, host_i, c.image); // s · Gi [b, B]
        const tensor& Gt = detail::product_operand(c.text_logits, host_t, c.image);
        const tensor& own = detail::reuse(c.own, {b, c.image.size(1)}, c.image);
        matmul_into(grad_image, Gt.t(), c.text.slice(0, o, o + b)); // dI = s·Gtᵀ T[o:o+b]
        matmul_into(own, Gi, c.text);                                 //    + s·Gi T on rows o..o+b
        const tensor image_rows = grad_image.slice(0, o, o + b);
        assign(image_rows, image_rows + own);
        matmul_into(grad_text, Gi.t(), c.image.slice(0, o, o + b));  // dT = s·Giᵀ I[o:o+b]
        matmul_into(own, Gt, c.image);                                //    + s·Gt I on rows o..o+b
        const tensor text_rows = grad_text.slice(0, o, o + b);
        assign(text_rows, text_rows + own);
        return static_cast<float>(grad_scale);
    }
};

struct siglip_loss {
    struct cache {
        tensor image, text;         // i [n, E], t [N, E]
        std::int64_t offset = 0;    // o: the batch row of image row 0
        detail::buffer logits;      // L [n, N]
        detail::buffer grad_logits; // s · dL [n, N]
        detail::buffer host_logits, host_grad; // L and s · dL on the CPU, when the features are on a GPU
        float scale = 1.0f, bias = 0.0f;
    };
    struct scalar_gradients {
        float logit_scale = 0.0f;
        float logit_bias = 0.0f;
    };

    /// image [n, E] (rows [offset, offset + n) of the batch), text [N, E], both normalised -> the loss.
    float forward(const tensor& image, const tensor& text, float logit_scale, float logit_bias, cache& c,
                  std::int64_t offset = 0) const {
        detail::require_buffer(image, image.shape(), "siglip_loss", "image features", image.device());
        detail::require_buffer(text, text.shape(), "siglip_loss", "text features", image.device());
        detail::check<shape_error>(image.ndim() == 2 && text.ndim() == 2 && image.size(1) == text.size(1) && offset >= 0 &&
                                       offset + image.size(0) <= text.size(0),
                                   "siglip_loss: image features ", image.shape(), " (from row ", offset, ") and text features ",
                                   text.shape(), " must be [n, E] and [N, E] with the images' rows within the texts'");
        const std::int64_t n = image.size(0), N = text.size(0);
        c.image = image;
        c.text = text;
        c.offset = offset;
        c.scale = std::exp(logit_scale);
        c.bias = logit_bias;
        const tensor& L_device = detail::reuse(c.logits, {n, N}, image);
        matmul_into(L_device, image, text.t());
        assign(L_device, L_device * c.scale + logit_bias);
        const float* l = detail::on_host(c.host_logits, L_device).data<float>();
        std::vector<double> partial(static_cast<std::size_t>(n));
        detail::parallel_for(n, N * 4, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t r = first; r < last; ++r) {
                double sum = 0.0;
                for (std::int64_t j = 0; j < N; ++j) {
                    const double z = (j == offset + r ? 1.0 : -1.0) * l[r * N + j];
                    sum += std::min(z, 0.0) - std::log1p(std::exp(-std::abs(z))); // log σ(z), stably
                }
                partial[static_cast<std::size_t>(r)] = sum;
            }
        });
        double total = 0.0;
        for (double p : partial) total += p;
        return static_cast<float>(-total / static_cast<double>(n));
    }

    /// -> grad_image [n, E], grad_text [N, E] (written); returns d loss / d logit_scale, logit_bias.
    scalar_gradients backward(cache& c, const tensor& grad_image, const tensor& grad_text, float grad_loss = 1.0f) const {
        const std::int64_t n = c.logits.size(0), N = c.logits.size(1), o = c.offset;
        const tensor& dL = detail::reuse(detail::on_gpu(c.logits) ? c.host_grad : c.grad_logits, {n, N});
        const float* l = detail::host_side(c.logits, c.host_logits).data<float>();
        float* d = dL.data<float>();
        const double weight = static_cast<double>(grad_loss) / static_cast<double>(n);
        std::vector<double> partial_scale(static_cast<std::size_t>(n)), partial_bias(static_cast<std::size_t>(n));
        detail::parallel_for(n, N * 4, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t r = first; r < last; ++r) {
                double sum_scale = 0.0, sum_bias = 0.0;
                for (std::int64_t j = 0; j < N; ++j) {
                    const double y = j == o + r ? 1.0 : -1.0, v = l[r * N + j];
                    const double g = -weight * y / (1.0 + std::exp(y * v)); // −y·σ(−y·L)/n
                    d[r * N + j] = static_cast<float>(g * c.scale);
                    sum_scale += g * (v - c.bias);
                    sum_bias += g;
                }
                partial_scale[static_cast<std::size_t>(r)] = sum_scale;
                partial_bias[static_cast<std::size_t>(r)] = sum_bias;
            }
        });
        scalar_gradients out;
        double s = 0.0, b = 0.0;
        for (std::size_t r = 0; r < partial_scale.size(); ++r) {
            s += partial_scale[r];
            b += partial_bias[r];
        }
        out.logit_scale = static_cast<float>(s);
        out.logit_bias = static_cast<float>(b);
        detail::require_buffer(grad_image, c.image.shape(), "siglip_loss backward", "image gradient", c.image.device());
        detail::require_buffer(grad_text, c.text.shape(), "siglip_loss backward", "text gradient", c.image.device());
        const tensor& dL_device = detail::product_operand(c.grad_logits, dL, c.image);
        matmul_into(grad_image, dL_device, c.text);
        matmul_into(grad_text, dL_device.t(), c.image);
        return out;
    }
};

/// Clamps logit_scale to [0, max] in place (OpenCLIP: `logit_scale.clamp_(0, math.log(100))`).
inline void clamp_logit_scale(const parameter_store& store, float max = 4.605170185988091f) {
    const tensor& scale = store.at("logit_scale").value;
    if (detail::on_gpu(scale)) {
        const tensor one = scale.view({1});
        return assign(one, clip::clamp(one, 0.0f, max));
    }
    float* value = scale.data<float>();
    *value = std::min(std::max(*value, 0.0f), max);
}

} // namespace clip::train
