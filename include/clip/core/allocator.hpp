// clip/core/allocator.hpp: the one allocator of the library, and an arena for temporaries.
//
// Host memory is 64-byte aligned (a cache line, and the widest SIMD register) so that kernels
// can use aligned loads on fresh tensors. An arena hands out memory for the temporaries of one
// forward pass; `reset()` makes it reusable, and after the first pass it holds one block that
// fits the whole pass, so a steady-state loop allocates nothing.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "clip/core/device.hpp"
#include "clip/core/error.hpp"

#if defined(CLIP_WITH_CUDA)
#include "clip/backend/cuda/memory.hpp"
#endif

namespace clip {

inline constexpr std::size_t memory_alignment = 64;

namespace detail {

/// Counts every block taken from the system, so tests can prove a loop allocates nothing.
inline std::atomic<std::int64_t>& allocation_counter() noexcept {
    static std::atomic<std::int64_t> count{0};
    return count;
}

inline std::size_t round_up(std::size_t n, std::size_t to) noexcept { return (n + to - 1) / to * to; }

/// `bytes` of memory on `where`, owned by the returned pointer (never null, even for 0 bytes).
inline std::shared_ptr<void> allocate(std::size_t bytes, device where) {
    allocation_counter().fetch_add(1, std::memory_order_relaxed);
    if (where.is_cpu()) {
        void* p = ::operator new(std::max<std::size_t>(round_up(bytes, memory_alignment), memory_alignment),
                                 std::align_val_t{memory_alignment});
        return {p, [](void* q) { ::operator delete(q, std::align_val_t{memory_alignment}); }};
    }
#if defined(CLIP_WITH_CUDA)
    return cuda::allocate(bytes, where.index);
#else
    throw device_error(message("cannot allocate ", bytes, " bytes on ", where,
                               ": clip was built without CUDA (configure with -Dcuda=enabled)"));
#endif
}

} // namespace detail

/// Bump allocator for the temporaries of a computation on the CPU.
///
/// Blocks handed out stay valid until `reset()`; resetting while a tensor from the arena is
/// still alive throws, so a dangling temporary is an error, not a silent corruption.
class arena {
public:
    explicit arena(std::size_t initial_bytes = 0) {
        if (initial_bytes) blocks_.push_back(block{make_block(initial_bytes), initial_bytes});
    }
    arena(const arena&) = delete;
    arena& operator=(const arena&) = delete;

    /// `bytes` of 64-byte aligned memory, owned by the arena; the handle keeps a live count.
    std::shared_ptr<void> allocate(std::size_t bytes) {
        bytes = std::max(detail::round_up(bytes, memory_alignment), memory_alignment);
        if (blocks_.empty() || used_ + bytes > blocks_.back().size) {
            const std::size_t size = std::max(bytes, blocks_.empty() ? bytes : 2 * blocks_.back().size);
            blocks_.push_back(block{make_block(size), size});
            used_ = 0;
        }
        std::byte* p = static_cast<std::byte*>(blocks_.back().memory.get()) + used_;
        used_ += bytes;
        high_water_ += bytes;
        ++*live_;
        // The deleter only counts: the memory belongs to the arena.
        return {p, [live = live_](void*) { --*live; }};
    }

    /// Makes all memory reusable; coalesces the blocks into one that fits the last round.
    void reset() {
        detail::check(*live_ == 0, "arena::reset: ", *live_, " tensor(s) allocated from this arena are still alive");
        if (blocks_.size() > 1) {
            const std::size_t total = std::max(high_water_, blocks_.back().size);
            blocks_.clear();
            blocks_.push_back(block{make_block(total), total});
        }
        used_ = 0;
        high_water_ = 0;
    }

    /// Bytes of the arena's blocks (what it holds from the system).
    std::size_t capacity() const noexcept {
        std::size_t n = 0;
        for (const block& b : blocks_) n += b.size;
        return n;
    }
    std::int64_t live() const noexcept { return *live_; }

private:
    struct block {
        std::shared_ptr<void> memory;
        std::size_t size;
    };
    static std::shared_ptr<void> make_block(std::size_t bytes) { return detail::allocate(bytes, device::cpu()); }

    std::vector<block> blocks_;
    std::size_t used_ = 0;
    std::size_t high_water_ = 0;
    std::shared_ptr<std::int64_t> live_ = std::make_shared<std::int64_t>(0);
};

} // namespace clip
