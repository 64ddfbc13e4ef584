// clip/backend/cuda/jit.hpp: CUDA kernels compiled at run time with NVRTC.
//
// clip is header-only and its users compile it with their own C++ compiler, so its kernels cannot
// be compiled ahead by nvcc. Their source lives in headers as strings; the first launch compiles a
// module for the present GPU (NVRTC, real sm_XY code), loads it as a CUDA library and keeps it for
// the process, keyed by source and device. Element-wise expressions become such sources too
// (expression.hpp), one module per expression shape. `compile_ptx` compiles without a GPU, which
// is how the test suite checks every kernel source on machines that have none.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime_api.h>
#include <nvrtc.h>

#include "clip/backend/cuda/memory.hpp"

namespace clip::detail::cuda {

inline void check_nvrtc(nvrtcResult status, const char* call) {
    if (status != NVRTC_SUCCESS) [[unlikely]]
        throw backend_error(message(call, " failed: ", nvrtcGetErrorString(status)));
}

/// Compiles `source` for `arch` ("sm_90" gives machine code, "compute_90" PTX); returns the image.
inline std::string compile(const std::string& source, const std::string& name, const std::string& arch) {
    nvrtcProgram program = nullptr;
    check_nvrtc(nvrtcCreateProgram(&program, source.c_str(), (name + ".cu").c_str(), 0, nullptr, nullptr),
                "nvrtcCreateProgram");
    std::unique_ptr<nvrtcProgram, void (*)(nvrtcProgram*)> owner(&program, [](nvrtcProgram* p) { nvrtcDestroyProgram(p); });
    const std::string arch_option = "--gpu-architecture=" + arch;
    const char* options[] = {arch_option.c_str(), "--std=c++17", "--fmad=true", "-default-device"};
    const nvrtcResult status = nvrtcCompileProgram(program, 4, options);
    if (status != NVRTC_SUCCESS) {
        std::size_t size = 0;
        nvrtcGetProgramLogSize(program, &size);
        std::string log(size, '\0');
        nvrtcGetProgramLog(program, log.data());
        throw backend_error(message("NVRTC could not compile the CUDA kernels of ", name, " for ", arch, ": ",
                                    nvrtcGetErrorString(status), "\n", log));
    }
    std::string image;
    std::size_t size = 0;
    if (arch.rfind("sm_", 0) == 0) {
        check_nvrtc(nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize");
        image.resize(size);
        check_nvrtc(nvrtcGetCUBIN(program, image.data()), "nvrtcGetCUBIN");
    } else {
        check_nvrtc(nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize");
        image.resize(size);
        check_nvrtc(nvrtcGetPTX(program, image.data()), "nvrtcGetPTX");
    }
    return image;
}

/// The architecture NVRTC should target for device `index`, e.g. "sm_90".
inline std::string architecture(int index) {
    int major = 0, minor = 0;
    check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index), "cudaDeviceGetAttribute");
    check_cuda(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, index), "cudaDeviceGetAttribute");
    return "sm_" + std::to_string(major * 10 + minor);
}

/// A kernel of a module compiled from `source` for device `index` (compiled and loaded once).
inline cudaKernel_t kernel(const std::string& source, const std::string& module_name, const char* kernel_name, int index) {
    struct module {
        cudaLibrary_t library = nullptr;
        std::map<std::string, cudaKernel_t, std::less<>> kernels;
    };
    static std::mutex mutex;
    static std::map<std::pair<int, std::string>, module> modules;
    std::lock_guard lock(mutex);
    auto [it, inserted] = modules.try_emplace({index, source});
    module& m = it->second;
    if (inserted) {
        try {
            use_device(index);
            const std::string image = compile(source, module_name, architecture(index));
            check_cuda(cudaLibraryLoadData(&m.library, image.data(), nullptr, nullptr, 0, nullptr, nullptr, 0),
                       "cudaLibraryLoadData");
        } catch (...) {
            modules.erase(it);
            throw;
        }
    }
    auto k = m.kernels.find(kernel_name);
    if (k == m.kernels.end()) {
        cudaKernel_t handle = nullptr;
        check_cuda(cudaLibraryGetKernel(&handle, m.library, kernel_name), "cudaLibraryGetKernel");
        k = m.kernels.emplace(kernel_name, handle).first;
    }
    return k->second;
}

/// Launches `k` on device `index`'s stream; `args` point at the kernel's parameters in order.
inline void launch(cudaKernel_t k, dim3 grid, dim3 block, std::size_t shared_bytes, int index,
                   std::initializer_list<void*> args, const char* what) {
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
    use_device(index);
    std::vector<void*> params(args);
    const cudaError_t status = cudaLaunchKernel(reinterpret_cast<const void*>(k), grid, block, params.data(),
                                                shared_bytes, stream(index));
    check_cuda(status, what);
}

} // namespace clip::detail::cuda
