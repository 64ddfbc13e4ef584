// Tests for clip/core/parallel.hpp: the thread setting and the work split.
#include "../support.hpp"

#include <atomic>

namespace core_parallel_test {

TEST_CASE("thread count is settable") {
    const int original = clip::num_threads();
    clip::set_num_threads(1);
    CHECK(clip::num_threads() == 1);
    clip::set_num_threads(original);
    CHECK(clip::num_threads() == original);
    CHECK_THROWS_AS(clip::set_num_threads(0), clip::error);
}

TEST_CASE("parallel_for covers every index exactly once") {
    for (std::int64_t n : {0, 1, 7, 1000, 100000}) {
        std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
        clip::detail::parallel_for(n, 100, [&](std::int64_t begin, std::int64_t end) {
            for (std::int64_t i = begin; i < end; ++i) hits[static_cast<std::size_t>(i)]++;
        });
        for (const auto& h : hits) REQUIRE(h.load() == 1);
    }
}

} // namespace core_parallel_test
