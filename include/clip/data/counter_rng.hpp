// clip/data/counter_rng.hpp: a counter-based random stream, keyed by the things a random choice
// belongs to (seed, what for, epoch, sample index), so that a training run can be resumed
// bit-identically from nothing more than those numbers.
//
//   clip::counter_rng rng(seed, clip::rng_purpose::augment, epoch, index);
//   double u = rng.uniform();          // [0, 1), 53 bits
//   float s = rng.uniform_f32(0.9f, 1.0f);
//   std::uint64_t k = rng.below(10);   // [0, 10), unbiased
//
// Draw n of the stream keyed K is mix(K + (n + 1) · γ), SplitMix64's output function on a
// counter (γ = 2⁶⁴/φ); the key is the words of the key chained through the same mix. There is
// no hidden state beyond the key and the count of draws: two streams with the same key give the
// same numbers on every platform, whichever thread draws them and in whatever order the streams
// are used. Not cryptographic.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "clip/core/error.hpp"

namespace clip {

/// What a stream is for: part of the key, so that (seed, epoch) of the shuffle and (seed, epoch,
/// index) of an augmentation never share numbers.
enum class rng_purpose : std::uint64_t { shuffle = 1, augment = 2, synthetic = 3, user = 4 };

namespace detail {

constexpr std::uint64_t golden_gamma = 0x9e3779b97f4a7c15ull;

/// SplitMix64's output function (Stafford's mix13): a bijection with full avalanche.
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

} // namespace detail

class counter_rng {
public:
    /// The stream keyed by `seed` and then `words` in order (e.g. purpose, epoch, index).
    template <class... Words>
    explicit constexpr counter_rng(std::uint64_t seed, Words... words) noexcept : key_(detail::mix64(seed + detail::golden_gamma)) {
        ((key_ = detail::mix64(key_ ^ detail::mix64(static_cast<std::uint64_t>(words) + detail::golden_gamma))), ...);
    }

    /// The next 64 random bits.
    constexpr std::uint64_t next_u64() noexcept { return detail::mix64(key_ + (++count_) * detail::golden_gamma); }

    /// Uniform in [0, 1) with 53 random bits.
    constexpr double uniform() noexcept { return static_cast<double>(next_u64() >> 11) * 0x1p-53; }
    /// Uniform in [lo, hi).
    constexpr double uniform(double lo, double hi) noexcept { return lo + (hi - lo) * uniform(); }
    /// Uniform in [lo, hi) as a float32 computation, as torch's `torch.empty(1).uniform_(lo, hi)`
    /// on a float tensor: 24 random bits, the result rounded to float.
    constexpr float uniform_f32(float lo, float hi) noexcept {
        const float u = static_cast<float>(next_u64() >> 40) * 0x1p-24f;
        return u * (hi - lo) + lo;
    }

    /// Uniform in [0, n), without modulo bias (rejection of the top partial range); n ≥ 1.
    std::uint64_t below(std::uint64_t n) {
        detail::check(n >= 1, "counter_rng::below: n must be at least 1");
        const std::uint64_t limit = -n % n; // 2⁶⁴ mod n: draws under it are rejected
        for (;;) {
            const std::uint64_t r = next_u64();
            if (r >= limit) return r % n;
        }
    }

    /// Draws taken so far (with the key, the whole state).
    constexpr std::uint64_t draws() const noexcept { return count_; }
    constexpr std::uint64_t key() const noexcept { return key_; }

private:
    std::uint64_t key_;
    std::uint64_t count_ = 0;
};

} // namespace clip
