// clip/core/mapped_memory.hpp: read-only file mappings whose resident pages may be dropped.
//
// Checkpoints are memory-mapped, and a backend reads each weight once to pack it into its own
// layout; after that the mapped pages only add to the resident set (ViT-B/32: 335 MB of image
// weights). A page of a read-only file mapping can be dropped at any time, since the kernel reads
// it again from the file when it is touched, so mappings register here and
// `release_file_pages` drops the pages of a range that lies inside one. Other memory is never
// touched: dropping anonymous pages would lose their contents.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

#include <sys/mman.h>
#include <unistd.h>

namespace clip::detail {

class file_mappings {
public:
    static file_mappings& instance() {
        static file_mappings* registry = new file_mappings; // never destroyed: mappings may outlive statics
        return *registry;
    }

    void add(const void* address, std::size_t size) {
        std::lock_guard lock(mutex_);
        ranges_[reinterpret_cast<std::uintptr_t>(address)] = size;
    }
    void remove(const void* address) noexcept {
        std::lock_guard lock(mutex_);
        ranges_.erase(reinterpret_cast<std::uintptr_t>(address));
    }

    /// Whether [begin, begin + bytes) lies inside one registered mapping.
    bool contains(const void* begin, std::size_t bytes) {
        const auto b = reinterpret_cast<std::uintptr_t>(begin);
        std::lock_guard lock(mutex_);
        auto it = ranges_.upper_bound(b);
        if (it == ranges_.begin()) return false;
        --it;
        return b >= it->first && b + bytes <= it->first + it->second;
    }

private:
    std::mutex mutex_;
    std::map<std::uintptr_t, std::size_t> ranges_;
};

/// Drops the resident pages wholly inside [data, data + bytes) when the range belongs to a
/// registered read-only file mapping; a no-op for any other memory.
inline void release_file_pages(const void* data, std::size_t bytes) noexcept {
    try {
        if (bytes == 0 || !file_mappings::instance().contains(data, bytes)) return;
    } catch (...) {
        return;
    }
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = (reinterpret_cast<std::uintptr_t>(data) + page - 1) / page * page;
    const auto end = (reinterpret_cast<std::uintptr_t>(data) + bytes) / page * page;
    if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

} // namespace clip::detail
