// Tests for clip/core/allocator.hpp: alignment, the large-block cache, the arena's reuse and its dangling check.
#include "../support.hpp"
#include <cstring>

namespace core_allocator_test {

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

TEST_CASE("freed large host blocks are reused, within the cache limit") {
    using clip::detail::host_block_cache;
    CHECK(host_block_cache::size_class(host_block_cache::smallest) == host_block_cache::smallest);
    CHECK(host_block_cache::size_class(host_block_cache::smallest + 1) == host_block_cache::smallest / 8 * 9);
    CHECK(host_block_cache::size_class(30u << 20) == 30u << 20);
    CHECK(host_block_cache::size_class((16u << 20) + 1) == 18u << 20); // an eighth of 16 MiB above
#if defined(__SANITIZE_ADDRESS__)
    CHECK(clip::host_cache_bytes() == 0); // nothing is kept, so a use after free is still caught
#else
    const std::size_t bytes = 3u << 20;
    const void* first = nullptr;
    {
        const std::shared_ptr<void> block = clip::detail::allocate(bytes, clip::device::cpu());
        first = block.get();
        std::memset(block.get(), 1, bytes); // the whole block is writable
    }
    CHECK(clip::host_cache_bytes() >= bytes);
    {
        const std::shared_ptr<void> again = clip::detail::allocate(bytes - 4096, clip::device::cpu()); // same class
        CHECK(again.get() == first);
        CHECK(reinterpret_cast<std::uintptr_t>(again.get()) % clip::memory_alignment == 0);
    }
    clip::set_host_cache_limit(0);
    CHECK(clip::host_cache_bytes() == 0);
    {
        const std::shared_ptr<void> block = clip::detail::allocate(bytes, clip::device::cpu());
    }
    CHECK(clip::host_cache_bytes() == 0); // nothing kept over the limit
    clip::set_host_cache_limit(std::size_t{1} << 30);
#endif
}

} // namespace core_allocator_test
