// clip/backend/cuda/memory.hpp: streams, device memory and copies through the CUDA runtime.
//
// Compiled only when clip is built with CUDA (CLIP_WITH_CUDA). Every runtime call is checked and
// a failure throws clip::backend_error naming the call and CUDA's own message.
//
// All of clip's GPU work on a device runs in order on one stream of that device. Memory comes
// from the device's stream-ordered pool (cudaMallocAsync) with the release threshold raised to
// "never", so freed blocks stay cached in the pool and a steady-state loop takes nothing from the
// driver; a block freed on the stream is reused only by work queued after the free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <cuda_runtime_api.h>

#include "clip/core/error.hpp"

namespace clip::detail::cuda {

inline void check_cuda(cudaError_t status, const char* call) {
    if (status != cudaSuccess) [[unlikely]] {
        (void)cudaGetLastError(); // clear a non-sticky error so the next call starts clean
        throw backend_error(message(call, " failed: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status)));
    }
}

/// Number of CUDA devices; 0 (not an error) when there is no driver or no GPU.
inline int device_count() noexcept {
    static const int n = [] {
        int count = 0;
        if (cudaGetDeviceCount(&count) != cudaSuccess) {
            (void)cudaGetLastError(); // clear the sticky "no device" error
            return 0;
        }
        return count;
    }();
    return n;
}

inline void require_device(int index) {
    const int count = device_count();
    if (index < 0 || index >= count)
        throw device_error(message("cuda:", index, " does not exist (", count, " CUDA device(s) found)"));
}

/// Makes `index` the calling thread's current device (the runtime keeps it per thread).
inline void use_device(int index) {
    require_device(index);
    check_cuda(cudaSetDevice(index), "cudaSetDevice");
}

/// The stream all of clip's work on device `index` runs on, created on first use.
inline cudaStream_t stream(int index) {
    static std::mutex mutex;
    static std::vector<cudaStream_t> streams;
    std::lock_guard lock(mutex);
    require_device(index);
    if (streams.empty()) streams.assign(static_cast<std::size_t>(device_count()), nullptr);
    cudaStream_t& s = streams[static_cast<std::size_t>(index)];
    if (!s) {
        use_device(index);
        check_cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
        cudaMemPool_t pool = nullptr;
        check_cuda(cudaDeviceGetDefaultMemPool(&pool, index), "cudaDeviceGetDefaultMemPool");
        std::uint64_t keep = UINT64_MAX;
        check_cuda(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
    }
    return s;
}

/// Waits until every operation queued on device `index` has finished; reports its errors.
inline void synchronize(int index) {
    use_device(index);
    check_cuda(cudaStreamSynchronize(stream(index)), "cudaStreamSynchronize");
}

inline std::shared_ptr<void> allocate(std::size_t bytes, int index) {
    use_device(index);
    cudaStream_t s = stream(index);
    void* p = nullptr;
    check_cuda(cudaMallocAsync(&p, bytes ? bytes : 1, s), "cudaMallocAsync");
    return {p, [s](void* q) { (void)cudaFreeAsync(q, s); }};
}

/// Copies `bytes` between any two of host and device memory, in order with the device's work;
/// returns once the destination holds the data.
inline void copy(void* dst, const void* src, std::size_t bytes, int index) {
    use_device(index);
    cudaStream_t s = stream(index);
    check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s), "cudaMemcpyAsync");
    check_cuda(cudaStreamSynchronize(s), "cudaStreamSynchronize");
}

} // namespace clip::detail::cuda
