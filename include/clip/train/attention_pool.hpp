// clip/train/attention_pool.hpp: the trainable AttentionPool2d that ends a ModifiedResNet.
//
//   forward   tokens = x viewed [N, T, C] (T = H·W, channels-last rows)
//             seq[n, 0] = mean_t tokens[n, t] + pos[0],   seq[n, 1 + t] = tokens[n, t] + pos[1 + t]   [N, S, C]
//             q = seq[:, 0] W_qᵀ + b_q  [N, C],   k = seq W_kᵀ + b_k,   v = seq W_vᵀ + b_v   [N, S, C]
//             per head h (D = C/H features, scale = 1/sqrt(D)):  P = softmax(scale · q_h k_hᵀ)   [N, H, S]
//             context_h = P v_h  [N, C],   y = context W_cᵀ + b_c  [N, E]
//   backward  dP = d context_h · v_hᵀ,   dv_h = Pᵀ d context_h
//             dS = P ⊙ (dP − Σ_j P_j dP_j)
//             dq_h = scale · dS k_h,   dk_h = scale · dSᵀ q_h
//             d seq = dk W_k + dv W_v,  d seq[:, 0] += dq W_q        (the three linear layers)
//             dpos += Σ_n d seq[n],   dx[n, t] = d seq[n, 1 + t] + d seq[n, 0] / T
// The only query is the mean token, so the attention is one row of S scores per (image, head):
// the forward kernel keeps P [N, H, S], the backward one runs one task per (image, head), which
// owns that head's slices of dq, dk and dv (no atomics, the same sums for any thread count).
// Same numbers as models/modified_resnet.hpp's attention_pool up to float rounding. On a GPU (or
// under CLIP_TRAIN_PORTABLE=1) the same formulas run as tensor expressions and reductions over
// the [N, S, H, D] views of q, k and v: a sum over D gives the scores, over S the context and
// dq; the mean token is clip::mean over the positions.
#pragma once

#include <cmath>

#include "clip/ops/reduce.hpp"
#include "clip/ops/rowwise.hpp"
#include "clip/train/attention.hpp"
#include "clip/train/linear.hpp"

namespace clip::train {

struct attention_pool {
    tensor positional, grad_positional; // pos [S, C]
    linear q_proj, k_proj, v_proj;      // [C, C]
    linear c_proj;                      // [E, C]
    std::int64_t heads = 1;

    struct cache {
        shape input;                  // x [N, H, W, C]
        detail::buffer sequence;      // seq [N, S, C]
        detail::buffer query;         // seq[:, 0] [N, C]
        linear::cache q, k, v;        // outputs [N, C], [N, S, C], [N, S, C]
        detail::buffer probabilities; // P [N, H, S]
        detail::buffer context;       // [N, C]
        linear::cache c;              // output y [N, E]
        // Gradients, used during backward only.
        detail::buffer grad_context, grad_q, grad_k, grad_v; // [N, C], [N, C], [N, S, C], [N, S, C]
        detail::buffer grad_sequence, grad_query;            // [N, S, C], [N, C]
    };

    static attention_pool bind(const parameter_store& store, std::int64_t heads) {
        const parameter& pos = store.at("visual.attnpool.positional_embedding");
        attention_pool a{pos.value,
                         pos.grad,
                         linear::bind(store, "visual.attnpool.q_proj"),
                         linear::bind(store, "visual.attnpool.k_proj"),
                         linear::bind(store, "visual.attnpool.v_proj"),
                         linear::bind(store, "visual.attnpool.c_proj"),
                         heads};
        detail::check<shape_error>(heads > 0 && a.width() % heads == 0, "attention_pool: width ", a.width(),
                                   " is not divisible by ", heads, " heads");
        return a;
    }

    std::int64_t width() const { return positional.size(1); }
    float scale() const { return 1.0f / std::sqrt(static_cast<float>(width() / heads)); }

    /// x [N, H, W, C] (H·W + 1 = S positions) -> y [N, E], kept in c.c.output.
    const tensor& forward(const tensor& x, cache& c) const {
        const std::int64_t C = width(), S = positional.size(0);
        detail::require_buffer(x, x.shape(), "attention_pool", "input", positional.device());
        detail::check<shape_error>(x.ndim() == 4 && x.size(3) == C && x.size(1) * x.size(2) + 1 == S,
                                   "attention_pool: input of shape ", x.shape(), " is not [N, H, W, ", C, "] with H·W = ",
                                   S - 1);
        const std::int64_t N = x.size(0), T = S - 1;
        c.input = x.shape();
        const tensor& sequence = detail::reuse(c.sequence, {N, S, C}, x);
        const tensor& query = detail::reuse(c.query, {N, C}, x);
        const tensor& probabilities = detail::reuse(c.probabilities, {N, heads, S}, x);
        const tensor& context = detail::reuse(c.context, {N, C}, x);
        if (detail::portable(x)) {
            const tensor tokens = x.view({N, T, C});
            assign(sequence.slice(1, 1, S), tokens + positional.slice(0, 1, S));
            assign(query, clip::mean(tokens, 1) + positional.select(0, 0));
            sequence.select(1, 0).copy_from(query);
            const tensor& q = q_proj.forward(query, c.q);
            attend_portable(q, k_proj.forward(sequence, c.k), v_proj.forward(sequence, c.v), probabilities, context);
            return c_proj.forward(context, c.c);
        }
        const float* tokens = x.data<float>();
        const float* pos = positional.data<float>();
        float* seq = sequence.data<float>();
        float* q_in = query.data<float>();
        using detail::simd;
        detail::parallel_for(N, S * C * 2, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t n = first; n < last; ++n) {
                const float* image = tokens + n * T * C;
                float* out = seq + n * S * C;
                detail::for_each_register(C, [&](std::int64_t ch, std::int64_t lanes) {
                    simd sum(0.0f);
                    for (std::int64_t t = 0; t < T; ++t) {
                        const simd v = detail::load_lanes(image + t * C + ch, lanes);
                        sum += v;
                        detail::store_lanes(out + (1 + t) * C + ch, v + detail::load_lanes(pos + (1 + t) * C + ch, lanes),
                                            lanes);
                    }
                    const simd first_token = sum / simd(static_cast<float>(T)) + detail::load_lanes(pos + ch, lanes);
                    detail::store_lanes(out + ch, first_token, lanes);
                    detail::store_lanes(q_in + n * C + ch, first_token, lanes);
                });
            }
        });
        const tensor& q = q_proj.forward(query, c.q);
        const tensor& k = k_proj.forward(sequence, c.k);
        const tensor& v = v_proj.forward(sequence, c.v);
        attend(q, k, v, probabilities, context);
        return c_proj.forward(context, c.c);
    }

    /// dy [N, E] -> dx [N, H, W, C] (written), accumulating every parameter's gradient.
    void backward(const tensor& dy, cache& c, const tensor& dx) const {
        const std::int64_t C = width(), S = positional.size(0), N = c.input[0], T = S - 1;
        detail::require_buffer(dx, c.input, "attention_pool backward", "input gradient", positional.device());
        const bool portable = detail::portable(dy);
        const tensor& grad_context = detail::reuse(c.grad_context, {N, C}, dy);
        c_proj.backward(dy, c.c, grad_context);
        const tensor& grad_q = detail::reuse(c.grad_q, {N, C}, dy);
        const tensor& grad_k = detail::reuse(c.grad_k, {N, S, C}, dy);
        const tensor& grad_v = detail::reuse(c.grad_v, {N, S, C}, dy);
        if (portable) attend_backward_portable(c.q.output, c.k.output, c.v.output, c.probabilities, grad_context, grad_q, grad_k, grad_v);
        else attend_backward(c.q.output, c.k.output, c.v.output, c.probabilities, grad_context, grad_q, grad_k, grad_v);
        const tensor& grad_sequence = detail::reuse(c.grad_sequence, {N, S, C}, dy);
        const tensor& grad_query = detail::reuse(c.grad_query, {N, C}, dy);
        // The key bias's gradient is exactly zero (the softmax ignores a shift shared by a row of
        // scores): k_proj adds none, rather than rounding noise.
        linear keys = k_proj;
        keys.grad_bias = {};
        keys.backward(grad_k, c.k, grad_sequence);
        v_proj.backward(grad_v, c.v, grad_sequence, true);
        q_proj.backward(grad_q, c.q, grad_query);
        if (portable) {
            const tensor first = grad_sequence.select(1, 0);
            assign(first, first + grad_query);
            detail::add_column_sums(grad_positional.view({S * C}), grad_sequence.view({N, S * C}));
            assign(dx.view({N, T, C}), clip::fma(grad_sequence.slice(1, 0, 1), 1.0f / static_cast<float>(T), grad_sequence.slice(1, 1, S)));
            return;
        }
        float* d_seq = grad_sequence.data<float>();
        const float* d_query = grad_query.data<float>();
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t ch = 0; ch < C; ++ch) d_seq[n * S * C + ch] += d_query[n * C + ch];
        detail::add_column_sums(grad_positional.data<float>(), d_seq, N, S * C, S * C);
        float* d_tokens = dx.data<float>();
        const float inverse = 1.0f / static_cast<float>(T);
        using detail::simd;
        detail::parallel_for(N * T, C, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t row = first; row < last; ++row) {
                const std::int64_t n = row / T, t = row % T;
                const float* mean_grad = d_seq + n * S * C;
                const float* token_grad = d_seq + (n * S + 1 + t) * C;
                detail::for_each_register(C, [&](std::int64_t ch, std::int64_t lanes) {
                    detail::store_lanes(d_tokens + row * C + ch,
                                        xsimd::fma(detail::load_lanes(mean_grad + ch, lanes), simd(inverse),
                                                   detail::load_lanes(token_grad + ch, lanes)),
                                        lanes);
                });
            }
        });
    }

private:
    /// attend as expressions and reductions over [N, S, H, D] views (any device).
    void attend_portable(const tensor& q, const tensor& k, const tensor& v, const tensor& probabilities,
                         const tensor& context) const {
        const std::int64_t N = k.size(0), S = k.size(1), C = k.size(2), H = heads, D = C / H;
        const tensor scores = clip::sum(q.view({N, 1, H, D}) * k.view({N, S, H, D}), 3); // [N, S, H]
        probabilities.copy_from(clip::softmax(scores.permute({0, 2, 1}) * scale()));
        const tensor p = probabilities.permute({0, 2, 1}).unsqueeze(3); // [N, S, H, 1]
        assign(context.view({N, H, D}), clip::sum(p * v.view({N, S, H, D}), 1));
    }

    /// attend_backward as expressions and reductions (any device).
    void attend_backward_portable(const tensor& q, const tensor& k, const tensor& v, const tensor& probabilities,
                                  const tensor& grad_context, const tensor& grad_q, const tensor& grad_k,
                                  const tensor& grad_v) const {
        const std::int64_t N = k.size(0), S = k.size(1), C = k.size(2), H = heads, D = C / H;
        const tensor dc = grad_context.view({N, 1, H, D});
        const tensor p = probabilities.permute({0, 2, 1}); // [N, S, H]
        const tensor dp = clip::sum(dc * v.view({N, S, H, D}), 3);                // [N, S, H]
        const tensor weighted = clip::sum(p * dp, 1, /*keepdim*/ true);           // Σ_j P_j dP_j [N, 1, H]
        const tensor ds = clip::eval(p * (dp - weighted) * scale()).unsqueeze(3); // [N, S, H, 1]
        assign(grad_v.view({N, S, H, D}), p.unsqueeze(3) * dc);
        assign(grad_k.view({N, S, H, D}), ds * q.view({N, 1, H, D}));
        assign(grad_q.view({N, H, D}), clip::sum(ds * k.view({N, S, H, D}), 1));
    }

    /// q [N, C], k, v [N, S, C] -> P [N, H, S] and context [N, C].
    void attend(const tensor& q, const tensor& k, const tensor& v, const tensor& probabilities,
                const tensor& context) const {
        const std::int64_t N = k.size(0), S = k.size(1), C = k.size(2), H = heads, D = C / H;
        const float* queries = q.data<float>();
        const float* keys = k.data<float>();
        const float* values = v.data<float>();
        float* probs = probabilities.data<float>();
        float* ctx = context.data<float>();
        const float s = scale();
        detail::parallel_for(N * H, S * D * 2, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t task = first; task < last; ++task) {
                const std::int64_t n = task / H, h = task % H;
                const float* query = queries + n * C + h * D;
                float* p = probs + task * S;
                for (std::int64_t j = 0; j < S; ++j) p[j] = detail::row_dot(query, keys + (n * S + j) * C + h * D, D) * s;
                const float m = detail::row_max(p, S);
                const float inverse = 1.0f / detail::row_exp_sum(p, p, S, m);
                for (std::int64_t j = 0; j < S; ++j) p[j] *= inverse;
                float* result = ctx + n * C + h * D;
                std::fill_n(result, D, 0.0f);
                for (std::int64_t j = 0; j < S; ++j) detail::row_axpy(result, p[j], values + (n * S + j) * C + h * D, D);
            }
        });
    }

    /// d context [N, C] -> dq [N, C], dk, dv [N, S, C] (written).
    void attend_backward(const tensor& q, const tensor& k, const tensor& v, const tensor& probabilities,
                         const tensor& grad_context, const tensor& grad_q, const tensor& grad_k,
                         const tensor& grad_v) const {
        const std::int64_t N = k.size(0), S = k.size(1), C = k.size(2), H = heads, D = C / H;
        const float* queries = q.data<float>();
        const float* keys = k.data<float>();
        const float* values = v.data<float>();
        const float* probs = probabilities.data<float>();
        const float* d_context = grad_context.data<float>();
        float* dq = grad_q.data<float>();
        float* dk = grad_k.data<float>();
        float* dv = grad_v.data<float>();
        const float s = scale();
        detail::parallel_for(N * H, S * D * 4, [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t task = first; task < last; ++task) {
                const std::int64_t n = task / H, h = task % H;
                const float* p = probs + task * S;
                const float* dc = d_context + n * C + h * D;
                const float* query = queries + n * C + h * D;
                float weighted = 0.0f; // Σ_j P_j dP_j
                for (std::int64_t j = 0; j < S; ++j)
                    weighted += p[j] * detail::row_dot(dc, values + (n * S + j) * C + h * D, D);
                float* dq_h = dq + n * C + h * D;
                std::fill_n(dq_h, D, 0.0f);
                for (std::int64_t j = 0; j < S; ++j) {
                    const std::int64_t row = (n * S + j) * C + h * D;
                    const float dp = detail::row_dot(dc, values + row, D);
                    const float ds = p[j] * (dp - weighted) * s;
                    for (std::int64_t d = 0; d < D; ++d) {
                        dv[row + d] = p[j] * dc[d];
                        dk[row + d] = ds * query[d];
                    }
                    detail::row_axpy(dq_h, ds, keys + row, D);
                }
            }
        });
    }
};

} // namespace clip::train
