// clip/backend/cuda/memory.hpp: device memory and copies through the CUDA runtime.
//
// Compiled only when clip is built with CUDA (CLIP_WITH_CUDA). Every runtime call is checked and
// a failure throws clip::backend_error naming the call and CUDA's own message.
#pragma once

#include <cstddef>
#include <memory>

#include <cuda_runtime_api.h>

#include "clip/core/error.hpp"

namespace clip::detail::cuda {

inline void check_cuda(cudaError_t status, const char* call) {
    if (status != cudaSuccess) [[unlikely]]
        throw backend_error(message(call, " failed: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status)));
}

/// Number of CUDA devices; 0 (not an error) when there is no driver or no GPU.
inline int device_count() noexcept {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError(); // clear the sticky "no device" error
        return 0;
    }
    return n;
}

inline std::shared_ptr<void> allocate(std::size_t bytes, int index) {
    const int count = device_count();
    if (index < 0 || index >= count)
        throw device_error(message("cuda:", index, " does not exist (", count, " CUDA device(s) found)"));
    check_cuda(cudaSetDevice(index), "cudaSetDevice");
    void* p = nullptr;
    check_cuda(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
    return {p, [](void* q) { cudaFree(q); }};
}

/// Copies `bytes` between any two of host and device memory.
inline void copy(void* dst, const void* src, std::size_t bytes) {
    check_cuda(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault), "cudaMemcpy");
}

} // namespace clip::detail::cuda
