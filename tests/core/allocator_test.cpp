// Tests for clip/core/allocator.hpp: alignment, the arena's reuse and its dangling check.
#include "../support.hpp"

TEST_CASE("host allocations are 64-byte aligned") {
    for (std::size_t bytes : {0, 1, 63, 64, 1000, 1 << 20}) {
        const auto block = clip::detail::allocate(bytes, clip::device::cpu());
        CHECK(reinterpret_cast<std::uintptr_t>(block.get()) % clip::memory_alignment == 0);
    }
}

TEST_CASE("the arena reuses one block in a steady-state loop") {
    clip::arena pool;
    std::int64_t before_third = 0;
    for (int round = 0; round < 5; ++round) {
        if (round == 2) before_third = clip::detail::allocation_counter().load();
        {
            const clip::tensor a = clip::tensor::empty({100, 100}, clip::dtype::f32, pool);
            const clip::tensor b = clip::tensor::empty({300}, clip::dtype::f32, pool);
            const clip::tensor c = clip::tensor::empty({5000}, clip::dtype::f32, pool);
            CHECK(reinterpret_cast<std::uintptr_t>(b.data_ptr()) % 64 == 0);
            CHECK(pool.live() == 3);
        }
        pool.reset();
    }
    CHECK(clip::detail::allocation_counter().load() == before_third); // rounds 3..5 took nothing new
    CHECK(pool.capacity() >= (100 * 100 + 300 + 5000) * 4);
}

TEST_CASE("resetting an arena while its tensors live is an error") {
    clip::arena pool;
    const clip::tensor t = clip::tensor::empty({10}, clip::dtype::f32, pool);
    CHECK_THROWS_AS(pool.reset(), clip::error);
}
