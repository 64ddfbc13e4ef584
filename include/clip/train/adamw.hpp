// clip/train/adamw.hpp: torch.optim.AdamW with OpenCLIP's two parameter groups.
//
// Per element of every parameter, at step t = 1, 2, ... (m = v = 0 at the start), exactly as
// PyTorch 1.13's single-tensor AdamW (scalars formed in double, then used in float):
//   p ← p · (1 − lr·wd)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   p ← p − lr/(1 − β1ᵗ) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + eps)
// wd is 0 for the parameters OpenCLIP excludes from weight decay (`p.ndim < 2 or "bn" in name or
// "ln" in name or "bias" in name or "logit_scale" in name`: gains, biases, embeddings of rank 1,
// the temperature) and `weight_decay` for the rest. The moments are kept like the store's
// values: one allocation each, a view per parameter.
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "clip/expr/simd.hpp"
#include "clip/train/buffers.hpp"
#include "clip/train/parameters.hpp"

namespace clip::train {

/// OpenCLIP's rule (open_clip/training/main.py): no weight decay for these parameters.
inline bool excluded_from_weight_decay(const std::string& name, const shape& s) {
    const auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
    return s.size() < 2 || has("bn") || has("ln") || has("bias") || has("logit_scale");
}

struct adamw_options {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.01; ///< for the parameters the rule does not exclude
    std::function<bool(const std::string&, const shape&)> exclude = excluded_from_weight_decay;
};

class adamw {
public:
    adamw(const parameter_store& store, adamw_options options = {}) : store_(&store), options_(std::move(options)) {
        std::int64_t total = 0;
        for (const parameter& p : store.parameters()) total += p.value.numel();
        exp_avg_ = tensor::zeros({total}).to(store.device());
        exp_avg_sq_ = tensor::zeros({total}).to(store.device());
        std::int64_t offset = 0;
        for (const parameter& p : store.parameters()) {
            const std::int64_t n = p.value.numel();
            const bool excluded = options_.exclude && options_.exclude(p.name, p.value.shape());
            state_.push_back({exp_avg_.slice(0, offset, offset + n), exp_avg_sq_.slice(0, offset, offset + n),
                              excluded ? 0.0 : options_.weight_decay});
            offset += n;
        }
        if (!detail::on_gpu(exp_avg_)) return;
        // On a GPU one kernel updates every parameter: a table of (value offset, moment offset,
        // count) per parameter, the offsets into the store's blocks and the moments'.
        const float* base = store.value_block().data<float>();
        std::vector<std::int64_t> segments;
        offset = 0;
        for (const parameter& p : store.parameters()) {
            segments.insert(segments.end(), {p.value.data<float>() - base, offset, p.value.numel()});
            offset += p.value.numel();
            largest_ = std::max(largest_, p.value.numel());
        }
        segments_ = tensor::from_blob(segments.data(), {static_cast<std::int64_t>(segments.size())}, dtype::i64)
                        .to(store.device());
    }

    /// An optimiser keeps a pointer to its store: a temporary one would dangle.
    adamw(const parameter_store&&, adamw_options = {}) = delete;

    /// One update of every parameter from its gradient, at the options' learning rate.
    void step() { step(options_.lr); }

    /// One update at learning rate `lr` (a schedule's value for this step).
    void step(double lr) {
        ++steps_;
        const double t = static_cast<double>(steps_);
        const double bias_correction1 = 1.0 - std::pow(options_.beta1, t);
        const double bias_correction2 = 1.0 - std::pow(options_.beta2, t);
        const float step_size = static_cast<float>(lr / bias_correction1);
        const float correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
        const float beta1 = static_cast<float>(options_.beta1), beta2 = static_cast<float>(options_.beta2);
        const float one_minus_beta1 = static_cast<float>(1.0 - options_.beta1);
        const float one_minus_beta2 = static_cast<float>(1.0 - options_.beta2);
        const float eps = static_cast<float>(options_.eps);
        const auto params = store_->parameters();
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(exp_avg_)) {
            std::vector<float> decay;
            for (const moment_state& s : state_) decay.push_back(static_cast<float>(1.0 - lr * s.weight_decay));
            const tensor& factors = detail::reuse(decay_, {static_cast<std::int64_t>(decay.size())}, exp_avg_);
            detail::copy_between(factors, tensor::from_blob(decay.data(), factors.shape(), dtype::f32));
            detail::cuda::adamw_step(store_->value_block(), store_->gradient_block(), exp_avg_, exp_avg_sq_, segments_,
                                     factors, largest_,
                                     {step_size, correction2_sqrt, beta1, beta2, one_minus_beta1, one_minus_beta2, eps});
            return;
        }
#endif
        for (std::size_t k = 0; k < params.size(); ++k) {
            const std::int64_t n = params[k].value.numel();
            float* p = params[k].value.data<float>();
            const float* g = params[k].grad.data<float>();
            float* m = state_[k].exp_avg.data<float>();
            float* v = state_[k].exp_avg_sq.data<float>();
            const float decay = static_cast<float>(1.0 - lr * state_[k].weight_decay);
            const bool decays = state_[k].weight_decay != 0.0;
            detail::parallel_for(n, 16, [&](std::int64_t first, std::int64_t last) {
                using detail::simd;
                std::int64_t i = first;
                for (; i + detail::simd_width <= last; i += detail::simd_width) {
                    const simd gi = simd::load_unaligned(g + i);
                    simd pi = simd::load_unaligned(p + i);
                    if (decays) pi = pi * simd(decay);
                    const simd mi = simd::load_unaligned(m + i) * simd(beta1) + simd(one_minus_beta1) * gi;
                    const simd vi = simd::load_unaligned(v + i) * simd(beta2) + simd(one_minus_beta2) * gi * gi;
                    const simd denom = xsimd::sqrt(vi) / simd(correction2_sqrt) + simd(eps);
                    (pi + simd(-step_size) * (mi / denom)).store_unaligned(p + i);
                    mi.store_unaligned(m + i);
                    vi.store_unaligned(v + i);
                }
                for (; i < last; ++i) {
                    if (decays) p[i] *= decay;
                    m[i] = m[i] * beta1 + one_minus_beta1 * g[i];
                    v[i] = v[i] * beta2 + one_minus_beta2 * g[i] * g[i];
                    const float denom = std::sqrt(v[i]) / correction2_sqrt + eps;
                    p[i] = p[i] + -step_size * (m[i] / denom);
                }
            });
        }
    }

    std::int64_t steps() const noexcept { return steps_; }
    /// Sets the step count when resuming (the moments are restored through exp_avg/exp_avg_sq):
    /// the bias corrections of the next step depend on it.
    void resume_at(std::int64_t steps) {
        detail::check(steps >= 0, "adamw: step count must be non-negative, got ", steps);
        steps_ = steps;
    }
    const adamw_options& options() const noexcept { return options_; }
    /// The weight decay applied to parameter `name` (0 for the excluded group).
    double weight_decay(const std::string& name) const { return state_[index(name)].weight_decay; }
    /// The moments of parameter `name`, shaped as a flat [numel] view.
    const tensor& exp_avg(const std::string& name) const { return state_[index(name)].exp_avg; }
    const tensor& exp_avg_sq(const std::string& name) const { return state_[index(name)].exp_avg_sq; }

private:
    struct moment_state {
        tensor exp_avg;    // m [numel]
        tensor exp_avg_sq; // v [numel]
        double weight_decay;
    };

    std::size_t index(const std::string& name) const {
        const auto params = store_->parameters();
        for (std::size_t k = 0; k < params.size(); ++k)
            if (params[k].name == name) return k;
        throw index_error(detail::message("adamw: no parameter named '", name, "'"));
    }

    const parameter_store* store_;
    adamw_options options_;
    std::vector<moment_state> state_;
    tensor exp_avg_, exp_avg_sq_;
    std::int64_t steps_ = 0;
    tensor segments_;       // GPU: i64 [3 · parameters], see the constructor
    detail::buffer decay_;  // GPU: f32 [parameters], 1 − lr · wd for this step
    std::int64_t largest_ = 0;
};

} // namespace clip::train
