// clip/core/random.hpp: seeded random tensors, for initialisation, tests and benchmarks.
//
// The same seed gives the same numbers on every platform (std::mt19937_64 plus explicit
// transforms rather than the implementation-defined std:: distributions).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

#include "clip/core/tensor.hpp"

namespace clip {

namespace detail {
inline double unit_uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1p-53; }
} // namespace detail

/// Uniform in [lo, hi), f32 on the CPU.
inline tensor rand_uniform(const shape& s, std::uint64_t seed, float lo = 0.0f, float hi = 1.0f) {
    tensor out = tensor::empty(s, dtype::f32);
    std::mt19937_64 rng(seed);
    float* p = out.data<float>();
    for (std::int64_t i = 0; i < out.numel(); ++i)
        p[i] = lo + static_cast<float>(detail::unit_uniform(rng)) * (hi - lo);
    return out;
}

/// Normal with the given mean and standard deviation (Box-Muller), f32 on the CPU.
inline tensor rand_normal(const shape& s, std::uint64_t seed, float mean = 0.0f, float stddev = 1.0f) {
    tensor out = tensor::empty(s, dtype::f32);
    std::mt19937_64 rng(seed);
    float* p = out.data<float>();
    for (std::int64_t i = 0; i < out.numel(); i += 2) {
        const double u1 = 1.0 - detail::unit_uniform(rng), u2 = detail::unit_uniform(rng);
        const double r = std::sqrt(-2.0 * std::log(u1)), angle = 2.0 * 3.14159265358979323846 * u2;
        p[i] = mean + stddev * static_cast<float>(r * std::cos(angle));
        if (i + 1 < out.numel()) p[i + 1] = mean + stddev * static_cast<float>(r * std::sin(angle));
    }
    return out;
}

} // namespace clip
