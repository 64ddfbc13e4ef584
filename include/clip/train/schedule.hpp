// clip/train/schedule.hpp: the learning-rate schedule, OpenCLIP's cosine_lr.
//
//   lr(step) = base · (step + 1) / warmup                              for step < warmup
//   lr(step) = base · (1 + cos(π · (step − warmup) / (steps − warmup))) / 2   otherwise
// with step counted from 0, as open_clip/training/scheduler.py computes it (in double) before
// each optimiser step.
#pragma once

#include <cmath>
#include <cstdint>

#include "clip/core/error.hpp"

namespace clip::train {

struct cosine_lr {
    double base_lr;
    std::int64_t warmup; ///< steps of linear warmup
    std::int64_t steps;  ///< total steps; the rate reaches 0 at `steps`

    cosine_lr(double base_lr, std::int64_t warmup, std::int64_t steps) : base_lr(base_lr), warmup(warmup), steps(steps) {
        detail::check(warmup >= 0 && steps > warmup, "cosine_lr: need 0 <= warmup < steps, got warmup ", warmup,
                      " and steps ", steps);
    }

    /// The learning rate for step `step` (0-based).
    double operator()(std::int64_t step) const {
        if (step < warmup) return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
        const double e = static_cast<double>(step - warmup), es = static_cast<double>(steps - warmup);
        return 0.5 * (1.0 + std::cos(3.14159265358979323846 * e / es)) * base_lr;
    }
};

} // namespace clip::train
