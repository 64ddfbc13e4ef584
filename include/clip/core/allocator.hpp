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
#include <mutex>
#include <new>
#include <unordered_map>
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

/// Freed host blocks of 1 MiB and more, kept for reuse. The allocator returns large blocks to
/// the system on free, so every activation of a forward pass would otherwise arrive as fresh
/// pages that the kernel faults in and zeroes on first touch: 56,000 page faults (230 MB) per
/// ViT-B/32 batch of 32 texts, about 15% of the time. Sizes are rounded up to eighths of a power
/// of two so that similar shapes share blocks. Under AddressSanitizer nothing is kept, so a use
/// after free is still caught.
class host_block_cache {
public:
    static constexpr std::size_t smallest = std::size_t{1} << 20;

    static host_block_cache& instance() {
        static host_block_cache* cache = new host_block_cache; // never destroyed: blocks may outlive statics
        return *cache;
    }

    /// The size class of a request of `bytes` (at least `smallest`).
    static std::size_t size_class(std::size_t bytes) noexcept {
        std::size_t top = smallest;
        while (top < bytes) top <<= 1;
        const std::size_t step = top / 16; // eighths of the power of two below `top`
        return round_up(bytes, step);
    }

    void* take(std::size_t bytes) {
        {
            std::lock_guard lock(mutex_);
            if (auto it = free_.find(bytes); it != free_.end() && !it->second.empty()) {
                void* p = it->second.back();
                it->second.pop_back();
                cached_ -= bytes;
                return p;
            }
        }
        return ::operator new(bytes, std::align_val_t{memory_alignment});
    }

    void give(void* p, std::size_t bytes) noexcept {
        {
            std::lock_guard lock(mutex_);
            if (cached_ + bytes <= limit_) {
                try {
                    free_[bytes].push_back(p);
                    cached_ += bytes;
                    return;
                } catch (...) { // no memory for the bookkeeping: free the block instead
                }
            }
        }
        ::operator delete(p, std::align_val_t{memory_alignment});
    }

    /// Caps the bytes kept; 0 keeps nothing. Blocks over the new cap are freed now.
    void set_limit(std::size_t bytes) {
        std::vector<std::pair<void*, std::size_t>> release;
        {
            std::lock_guard lock(mutex_);
            limit_ = bytes;
            for (auto& [size, blocks] : free_)
                while (cached_ > limit_ && !blocks.empty()) {
                    release.emplace_back(blocks.back(), size);
                    blocks.pop_back();
                    cached_ -= size;
                }
        }
        for (auto [p, size] : release) ::operator delete(p, std::align_val_t{memory_alignment});
    }

    std::size_t cached_bytes() {
        std::lock_guard lock(mutex_);
        return cached_;
    }

private:
#if defined(__SANITIZE_ADDRESS__)
    std::size_t limit_ = 0;
#else
    std::size_t limit_ = std::size_t{1} << 30;
#endif
    std::size_t cached_ = 0;
    std::mutex mutex_;
    std::unordered_map<std::size_t, std::vector<void*>> free_;
};

/// `bytes` of memory on `where`, owned by the returned pointer (never null, even for 0 bytes).
inline std::shared_ptr<void> allocate(std::size_t bytes, device where) {
    allocation_counter().fetch_add(1, std::memory_order_relaxed);
    if (where.is_cpu()) {
        const std::size_t size = std::max<std::size_t>(round_up(bytes, memory_alignment), memory_alignment);
        if (size >= host_block_cache::smallest) {
            const std::size_t rounded = host_block_cache::size_class(size);
            return {host_block_cache::instance().take(rounded),
                    [rounded](void* q) { host_block_cache::instance().give(q, rounded); }};
        }
        void* p = ::operator new(size, std::align_val_t{memory_alignment});
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

/// Caps the freed host memory kept for reuse by later tensors of 1 MiB and more (default 1 GiB,
/// none under AddressSanitizer); 0 returns all of it to the system now.
inline void set_host_cache_limit(std::size_t bytes) { detail::host_block_cache::instance().set_limit(bytes); }

/// Bytes of freed host memory kept for reuse.
inline std::size_t host_cache_bytes() { return detail::host_block_cache::instance().cached_bytes(); }

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
