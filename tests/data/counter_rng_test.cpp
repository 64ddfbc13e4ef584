// Tests for clip/data/counter_rng.hpp: the stream is a pure function of its key and the draw
// count (pinned values, so that a change cannot silently break resuming an old run), distinct
// keys give distinct streams, and the derived draws stay in their ranges.
#include "../support.hpp"

#include <clip/data/counter_rng.hpp>

#include <set>

namespace data_counter_rng_test {

TEST_CASE("the stream of a key is pinned: mix(key + n·γ) with the key chained through mix") {
    // Computed independently in Python from the formula in the header.
    clip::counter_rng rng(1, 2, 3);
    CHECK(rng.next_u64() == 0x4e686e83d1343ea4ull);
    CHECK(rng.next_u64() == 0xc140a05cdc3c314cull);
    CHECK(rng.next_u64() == 0xe4f15d75ad681513ull);
    CHECK(rng.draws() == 3);
    CHECK(clip::counter_rng(0).next_u64() == 0xa706dd2f4d197e6full);
}

TEST_CASE("copies continue identically; different keys and key orders differ") {
    clip::counter_rng a(7, clip::rng_purpose::augment, 3, 99);
    a.next_u64();
    clip::counter_rng b = a;
    for (int i = 0; i < 10; ++i) CHECK(a.next_u64() == b.next_u64());
    std::set<std::uint64_t> firsts;
    for (std::uint64_t seed = 0; seed < 4; ++seed)
        for (std::uint64_t epoch = 0; epoch < 4; ++epoch)
            for (std::uint64_t index = 0; index < 4; ++index)
                firsts.insert(clip::counter_rng(seed, clip::rng_purpose::augment, epoch, index).next_u64());
    CHECK(firsts.size() == 64);
    CHECK(clip::counter_rng(1, 2, 3).next_u64() != clip::counter_rng(1, 3, 2).next_u64());
    CHECK(clip::counter_rng(1, 2).next_u64() != clip::counter_rng(1, 2, 0).next_u64());
    CHECK(clip::counter_rng(5, clip::rng_purpose::shuffle, 0).key() != clip::counter_rng(5, clip::rng_purpose::augment, 0).key());
}

TEST_CASE("uniform, uniform_f32 and below stay in range and spread evenly") {
    clip::counter_rng rng(42);
    std::vector<int> counts(10, 0);
    double sum = 0;
    for (int i = 0; i < 100000; ++i) {
        const double u = rng.uniform();
        REQUIRE(u >= 0.0);
        REQUIRE(u < 1.0);
        sum += u;
        const float f = rng.uniform_f32(0.9f, 1.0f);
        REQUIRE(f >= 0.9f);
        REQUIRE(f <= 1.0f);
        const std::uint64_t k = rng.below(10);
        REQUIRE(k < 10);
        ++counts[k];
    }
    CHECK(std::abs(sum / 100000 - 0.5) < 0.01);
    for (const int c : counts) CHECK(std::abs(c - 10000) < 500);
    CHECK(rng.below(1) == 0);
    CHECK(rng.below(~std::uint64_t{0}) < ~std::uint64_t{0});
    CHECK(clip::test::error_message([&] { rng.below(0); }) != "");
}

} // namespace data_counter_rng_test
