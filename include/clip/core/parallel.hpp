// clip/core/parallel.hpp: the one thread pool of the library.
//
// oneDNN (Debian's build) runs on OpenMP, so clip's own kernels use the same OpenMP pool rather
// than a second set of threads competing for the same cores. The thread count comes from
// `set_num_threads`, else the CLIP_NUM_THREADS environment variable, else OpenMP's default.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "clip/core/error.hpp"

namespace clip {

namespace detail {

inline int& thread_setting() noexcept {
    static int threads = [] {
        if (const char* env = std::getenv("CLIP_NUM_THREADS")) {
            const int n = std::atoi(env);
            if (n > 0) {
                omp_set_num_threads(n);
                return n;
            }
        }
        return omp_get_max_threads();
    }();
    return threads;
}

} // namespace detail

/// Threads used by clip's kernels and by oneDNN.
inline int num_threads() noexcept { return detail::thread_setting(); }

/// Sets the threads used by clip's kernels and by oneDNN (n >= 1).
inline void set_num_threads(int n) {
    detail::check(n >= 1, "set_num_threads: need at least one thread, got ", n);
    detail::thread_setting() = n;
    omp_set_num_threads(n);
}

namespace detail {

/// Runs `body(begin, end)` over [0, n) in contiguous chunks on the pool; serially when the work
/// (n items of about `cost` operations each) is too small to pay for waking threads.
template <class F>
void parallel_for(std::int64_t n, std::int64_t cost, F&& body) {
    if (n <= 0) return;
    const int threads = num_threads();
    const std::int64_t min_work = 1 << 15;
    if (threads <= 1 || n == 1 || n * cost < min_work || omp_in_parallel()) {
        body(std::int64_t{0}, n);
        return;
    }
    const int used = static_cast<int>(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, n * cost / min_work)));
#pragma omp parallel num_threads(used)
    {
        const std::int64_t t = omp_get_thread_num(), parts = omp_get_num_threads();
        const std::int64_t begin = n * t / parts, end = n * (t + 1) / parts;
        if (begin < end) body(begin, end);
    }
}

} // namespace detail
} // namespace clip
