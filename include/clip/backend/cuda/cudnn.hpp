// clip/backend/cuda/cudnn.hpp: spatial convolutions and their backward passes on cuDNN.
//
// Compiled when clip is built with cuDNN (CLIP_WITH_CUDNN, from the CUDA toolkit). conv.hpp
// sends here the kernels wider than 1×1 that do not patchify (a ResNet's 3×3 and stem
// convolutions), whose unfolded matrix would repeat the input; 1×1 and patchifying kernels stay
// single cuBLASLt products there.
//
// Every operand is presented to cuDNN channels-last (NHWC activations, KRSC kernels), the layout
// clip's convolutions produce and the one cuDNN's implicit-GEMM kernels read best; as PyTorch
// does, activations and kernels are never mixed across layouts. The algorithm is cuDNN's
// heuristic choice (PyTorch's default, benchmark off), cached per geometry with its descriptors.
// The backward passes take the first deterministic algorithm, so a gradient does not depend on
// scheduling (as the im2col path and the CPU). f32 runs on FMA kernels; set_allow_tf32(true)
// lets cuDNN use TF32 tensor cores as it lets cuBLASLt.
//
// A geometry cuDNN does not support, one past its int descriptors, or a cuDNN whose kernel
// libraries fail to load is not an error: the call answers false and the caller runs the im2col
// path. Anything else cuDNN reports
// throws backend_error naming the call.
#pragma once

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>

#include <cudnn.h>

#include "clip/backend/cuda/jit.hpp"
#include "clip/backend/cuda/kernels.hpp"
#include "clip/backend/cuda/matmul.hpp"
#include "clip/ops/conv_spec.hpp"

namespace clip::detail::cuda {

/// Whether spatial convolutions go to cuDNN: on, unless CLIP_CUDA_CONV=im2col (tests switch it).
inline std::atomic<bool>& cudnn_enabled() noexcept {
    static std::atomic<bool> flag{[] {
        const char* v = std::getenv("CLIP_CUDA_CONV");
        return !(v && std::strcmp(v, "im2col") == 0);
    }()};
    return flag;
}

/// How many convolution passes cuDNN has run in this process (tests check that it did).
inline std::atomic<std::int64_t>& cudnn_runs() noexcept {
    static std::atomic<std::int64_t> n{0};
    return n;
}

/// cuDNN could not take this problem; the caller runs the im2col path instead.
inline bool cudnn_declines(cudnnStatus_t status) noexcept {
    const int category = CUDNN_STATUS_CATEGORY(static_cast<int>(status));
    return category == CUDNN_STATUS_NOT_SUPPORTED || category == CUDNN_STATUS_NOT_INITIALIZED;
}

inline void check_cudnn(cudnnStatus_t status, const char* call) {
    if (status != CUDNN_STATUS_SUCCESS) [[unlikely]]
        throw backend_error(message(call, " failed: ", cudnnGetErrorString(status), " (cuDNN status ", static_cast<int>(status), ")"));
}

struct cudnn_declined {}; // thrown inside this header only, caught by the entry points

/// Checks a call whose failure may mean "not for this problem" rather than an error.
inline void check_or_decline(cudnnStatus_t status, const char* call) {
    if (status != CUDNN_STATUS_SUCCESS && cudnn_declines(status)) throw cudnn_declined{};
    check_cudnn(status, call);
}

/// A device's cuDNN handle, on the device's stream. cuDNN handles are not to be used by two
/// threads at once (two ranks may share a GPU), so calls hold `mutex`.
struct cudnn_context {
    cudnnHandle_t handle = nullptr;
    bool usable = false;
    std::mutex mutex;
};

inline cudnn_context& cudnn_context_of(int index) {
    static std::mutex mutex;
    static std::map<int, std::unique_ptr<cudnn_context>> contexts;
    std::lock_guard lock(mutex);
    std::unique_ptr<cudnn_context>& c = contexts[index];
    if (!c) {
        c = std::make_unique<cudnn_context>();
        use_device(index);
        const cudnnStatus_t status = cudnnCreate(&c->handle);
        if (status == CUDNN_STATUS_SUCCESS) {
            check_cudnn(cudnnSetStream(c->handle, stream(index)), "cudnnSetStream");
            c->usable = true;
        } else if (!cudnn_declines(status)) {
            check_cudnn(status, "cudnnCreate");
        }
    }
    return *c;
}

template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
struct cudnn_descriptor {
    T d = nullptr;
    cudnn_descriptor() { check_cudnn(Create(&d), "cudnnCreate*Descriptor"); }
    ~cudnn_descriptor() { (void)Destroy(d); }
    cudnn_descriptor(const cudnn_descriptor&) = delete;
    cudnn_descriptor& operator=(const cudnn_descriptor&) = delete;
};
using cudnn_tensor_desc = cudnn_descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using cudnn_filter_desc = cudnn_descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using cudnn_conv_desc =
    cudnn_descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;
using cudnn_act_desc =
    cudnn_descriptor<cudnnActivationDescriptor_t, cudnnCreateActivationDescriptor, cudnnDestroyActivationDescriptor>;

enum class cudnn_pass : unsigned char { forward, backward_data, backward_weights };

struct cudnn_key {
    cudnn_pass pass;
    int device;
    bool tf32;
    std::array<int, 4> x; // N, C, H, W
    std::array<int, 4> w; // O, C, KH, KW
    std::array<int, 6> o; // stride, padding, dilation
    auto tie() const { return std::tie(pass, device, tf32, x, w, o); }
    friend bool operator<(const cudnn_key& a, const cudnn_key& b) { return a.tie() < b.tie(); }
};

/// One geometry's descriptors and algorithm; `supported` false when cuDNN declined it.
struct cudnn_plan {
    bool supported = true;
    bool fused_declined = false; // cudnnConvolutionBiasActivationForward declined: separate passes
    cudnn_tensor_desc x, y, bias;
    cudnn_tensor_desc kernel_rows, kernel_plain; // a kernel gradient as KRSC and as KCRS, for the transform
    cudnn_filter_desc w;
    cudnn_conv_desc conv;
    cudnn_act_desc relu;
    int algo = 0;
    std::size_t workspace = 0;
};

/// The first heuristic candidate that runs, fits the workspace limit and (for the backward
/// passes) is deterministic; its math type as PyTorch sets it (FMA unless TF32 is allowed).
template <class Perf>
const Perf* choose_algorithm(const Perf* results, int count, bool deterministic) {
    constexpr std::size_t limit = std::size_t{1} << 30;
    for (int i = 0; i < count; ++i) {
        const Perf& r = results[i];
        if (r.status != CUDNN_STATUS_SUCCESS || r.memory > limit) continue;
        if (deterministic && r.determinism != CUDNN_DETERMINISTIC) continue;
        return &r;
    }
    return nullptr;
}

/// Sets `p`'s descriptors for `key` (host-only: needs no handle and no GPU).
inline void describe(cudnn_plan& p, const cudnn_key& key) {
    const auto [N, C, H, W] = key.x;
    const auto [O, Cw, KH, KW] = key.w;
    const auto [sh, sw, ph, pw, dh, dw] = key.o;
    check_cudnn(cudnnSetTensor4dDescriptor(p.x.d, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, N, C, H, W), "cudnnSetTensor4dDescriptor(x)");
    check_cudnn(cudnnSetFilter4dDescriptor(p.w.d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, O, Cw, KH, KW), "cudnnSetFilter4dDescriptor");
    check_cudnn(cudnnSetConvolution2dDescriptor(p.conv.d, ph, pw, sh, sw, dh, dw, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                "cudnnSetConvolution2dDescriptor");
    check_cudnn(cudnnSetConvolutionMathType(p.conv.d, key.tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH), "cudnnSetConvolutionMathType");
    int n = 0, c = 0, h = 0, w = 0;
    check_cudnn(cudnnGetConvolution2dForwardOutputDim(p.conv.d, p.x.d, p.w.d, &n, &c, &h, &w), "cudnnGetConvolution2dForwardOutputDim");
    check_cudnn(cudnnSetTensor4dDescriptor(p.y.d, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, c, h, w), "cudnnSetTensor4dDescriptor(y)");
    check_cudnn(cudnnSetTensor4dDescriptor(p.bias.d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, O, 1, 1), "cudnnSetTensor4dDescriptor(bias)");
    check_cudnn(cudnnSetTensor4dDescriptor(p.kernel_rows.d, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, O, Cw, KH, KW),
                "cudnnSetTensor4dDescriptor(kernel)");
    check_cudnn(cudnnSetTensor4dDescriptor(p.kernel_plain.d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, O, Cw, KH, KW),
                "cudnnSetTensor4dDescriptor(kernel)");
    check_cudnn(cudnnSetActivationDescriptor(p.relu.d, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0), "cudnnSetActivationDescriptor");
}

/// The plan for `key`, made on first use.
inline cudnn_plan& cudnn_plan_for(const cudnn_key& key, cudnn_context& ctx) {
    static std::mutex mutex; // the map's; a plan itself is used under its device's context lock
    static std::map<cudnn_key, std::unique_ptr<cudnn_plan>> plans;
    std::lock_guard lock(mutex);
    std::unique_ptr<cudnn_plan>& slot = plans[key];
    if (slot) return *slot;
    auto p = std::make_unique<cudnn_plan>();
    describe(*p, key);
    try {
        cudnnMathType_t math = CUDNN_FMA_MATH;
        auto pick = [&](const auto* chosen) {
            if (!chosen) throw cudnn_declined{};
            p->algo = static_cast<int>(chosen->algo);
            p->workspace = chosen->memory;
            math = key.tf32 ? chosen->mathType : CUDNN_FMA_MATH;
        };
        int found = 0;
        switch (key.pass) {
        case cudnn_pass::forward: {
            cudnnConvolutionFwdAlgoPerf_t r[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
            check_or_decline(cudnnGetConvolutionForwardAlgorithm_v7(ctx.handle, p->x.d, p->w.d, p->conv.d, p->y.d,
                                                                    CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, r),
                             "cudnnGetConvolutionForwardAlgorithm_v7");
            pick(choose_algorithm(r, found, false));
            break;
        }
        case cudnn_pass::backward_data: {
            cudnnConvolutionBwdDataAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
            check_or_decline(cudnnGetConvolutionBackwardDataAlgorithm_v7(ctx.handle, p->w.d, p->y.d, p->conv.d, p->x.d,
                                                                         CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &found, r),
                             "cudnnGetConvolutionBackwardDataAlgorithm_v7");
            pick(choose_algorithm(r, found, true));
            break;
        }
        case cudnn_pass::backward_weights: {
            cudnnConvolutionBwdFilterAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
            check_or_decline(cudnnGetConvolutionBackwardFilterAlgorithm_v7(ctx.handle, p->x.d, p->y.d, p->conv.d, p->w.d,
                                                                           CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &found, r),
                             "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
            pick(choose_algorithm(r, found, true));
            break;
        }
        }
        check_cudnn(cudnnSetConvolutionMathType(p->conv.d, math), "cudnnSetConvolutionMathType");
    } catch (const cudnn_declined&) {
        p->supported = false;
    }
    slot = std::move(p);
    return *slot;
}

/// The plan key of a problem, or nothing when it is too large for cuDNN's 4-D descriptors, whose
/// extents and strides are ints (im2col takes it then).
inline std::optional<cudnn_key> make_cudnn_key(cudnn_pass pass, const shape& x, const shape& w, const shape& y,
                                               const conv2d_options& o, int device) {
    constexpr std::int64_t most = std::numeric_limits<int>::max();
    if (x.numel() > most || w.numel() > most || y.numel() > most) return std::nullopt;
    for (const std::int64_t v : {o.stride[0], o.stride[1], o.padding[0], o.padding[1], o.dilation[0], o.dilation[1]})
        if (v > most) return std::nullopt;
    const auto i = [](std::int64_t v) { return static_cast<int>(v); };
    return cudnn_key{pass,
                     device,
                     allow_tf32_flag().load(),
                     {i(x[0]), i(x[1]), i(x[2]), i(x[3])},
                     {i(w[0]), i(w[1]), i(w[2]), i(w[3])},
                     {i(o.stride[0]), i(o.stride[1]), i(o.padding[0]), i(o.padding[1]), i(o.dilation[0]), i(o.dilation[1])}};
}

/// `t` with NHWC memory: itself when it already has it, else a channels-last copy.
inline tensor nhwc(const tensor& t) { return t.permute({0, 2, 3, 1}).is_contiguous() ? t : to_channels_last(t); }

/// Runs `body(ctx, plan, workspace)` for the problem under its device's cuDNN lock; false, with
/// nothing written, when the problem is too large, cuDNN is switched off or it declines.
template <class Body>
bool with_cudnn(const std::optional<cudnn_key>& problem, Body&& body) {
    if (!problem || !cudnn_enabled().load()) return false;
    const cudnn_key& key = *problem;
    cudnn_context& ctx = cudnn_context_of(key.device);
    if (!ctx.usable) return false;
    std::lock_guard lock(ctx.mutex);
    cudnn_plan& plan = cudnn_plan_for(key, ctx);
    if (!plan.supported) return false;
    use_device(key.device);
    const std::shared_ptr<void> workspace = plan.workspace ? allocate(plan.workspace, key.device) : nullptr;
    try {
        body(ctx, plan, workspace.get());
    } catch (const cudnn_declined&) {
        plan.supported = false;
        return false;
    }
    cudnn_runs().fetch_add(1);
    return true;
}

/// out [N, O, OH, OW] (row-major or channels-last) = act(conv(x, w) + bias) for an f32 kernel, on
/// cuDNN; false when cuDNN declines.
inline bool cudnn_conv2d_into(const tensor& out, const tensor& x, const tensor& w, const conv2d_options& o) {
    const int device = x.device().index;
    const std::optional<cudnn_key> key = make_cudnn_key(cudnn_pass::forward, x.shape(), w.shape(), out.shape(), o, device);
    return with_cudnn(key, [&](cudnn_context& ctx, cudnn_plan& p, void* workspace) {
        const tensor xs = nhwc(x), ws = nhwc(w);
        const bool direct = out.permute({0, 2, 3, 1}).is_contiguous();
        const tensor y = direct ? out : empty_channels_last(out.shape(), out.device());
        const tensor bias = o.bias.defined() ? o.bias.to(dtype::f32).contiguous() : tensor{};
        const float one = 1.0f, zero = 0.0f;
        const auto algo = static_cast<cudnnConvolutionFwdAlgo_t>(p.algo);
        bool done = false;
        if (bias.defined() && o.act == activation::relu && !p.fused_declined) {
            const cudnnStatus_t status = cudnnConvolutionBiasActivationForward(
                ctx.handle, &one, p.x.d, xs.data_ptr(), p.w.d, ws.data_ptr(), p.conv.d, algo, workspace, p.workspace, &zero, p.y.d,
                y.data_ptr(), p.bias.d, bias.data_ptr(), p.relu.d, p.y.d, y.data_ptr());
            if (status != CUDNN_STATUS_SUCCESS && !cudnn_declines(status)) check_cudnn(status, "cudnnConvolutionBiasActivationForward");
            done = status == CUDNN_STATUS_SUCCESS;
            p.fused_declined = !done;
        }
        if (!done) {
            check_or_decline(cudnnConvolutionForward(ctx.handle, &one, p.x.d, xs.data_ptr(), p.w.d, ws.data_ptr(), p.conv.d, algo,
                                                     workspace, p.workspace, &zero, p.y.d, y.data_ptr()),
                             "cudnnConvolutionForward");
            if (bias.defined())
                check_cudnn(cudnnAddTensor(ctx.handle, &one, p.bias.d, bias.data_ptr(), &one, p.y.d, y.data_ptr()), "cudnnAddTensor");
            if (o.act != activation::none) activate_in_place(y.data<float>(), y.numel(), o.act, nullptr, device);
        }
        if (!direct) out.copy_from(y);
    });
}

/// dx [N, C, H, W] (row-major or channels-last) = the input gradient for dy, on cuDNN.
inline bool cudnn_conv2d_backward_data(const tensor& dx, const tensor& dy, const tensor& w, const conv2d_options& o) {
    const std::optional<cudnn_key> key =
        make_cudnn_key(cudnn_pass::backward_data, dx.shape(), w.shape(), dy.shape(), o, dy.device().index);
    return with_cudnn(key, [&](cudnn_context& ctx, cudnn_plan& p, void* workspace) {
        const tensor dys = nhwc(dy), ws = nhwc(w);
        const bool direct = dx.permute({0, 2, 3, 1}).is_contiguous();
        const tensor g = direct ? dx : empty_channels_last(dx.shape(), dx.device());
        const float one = 1.0f, zero = 0.0f;
        check_or_decline(cudnnConvolutionBackwardData(ctx.handle, &one, p.w.d, ws.data_ptr(), p.y.d, dys.data_ptr(), p.conv.d,
                                                      static_cast<cudnnConvolutionBwdDataAlgo_t>(p.algo), workspace, p.workspace, &zero,
                                                      p.x.d, g.data_ptr()),
                         "cudnnConvolutionBackwardData");
        if (!direct) dx.copy_from(g);
    });
}

/// dw [O, C, KH, KW] (contiguous) = (or +=) the kernel gradient for x and dy, on cuDNN: computed
/// KRSC, then transformed into dw's KCRS layout (accumulating there when asked).
inline bool cudnn_conv2d_backward_weights(const tensor& dw, const tensor& x, const tensor& dy, const conv2d_options& o,
                                          bool accumulate) {
    const std::optional<cudnn_key> key =
        make_cudnn_key(cudnn_pass::backward_weights, x.shape(), dw.shape(), dy.shape(), o, dy.device().index);
    return with_cudnn(key, [&](cudnn_context& ctx, cudnn_plan& p, void* workspace) {
        const tensor xs = nhwc(x), dys = nhwc(dy);
        const tensor rows = empty_channels_last(dw.shape(), dw.device());
        const float one = 1.0f, zero = 0.0f;
        check_or_decline(cudnnConvolutionBackwardFilter(ctx.handle, &one, p.x.d, xs.data_ptr(), p.y.d, dys.data_ptr(), p.conv.d,
                                                        static_cast<cudnnConvolutionBwdFilterAlgo_t>(p.algo), workspace, p.workspace,
                                                        &zero, p.w.d, rows.data_ptr()),
                         "cudnnConvolutionBackwardFilter");
        check_cudnn(cudnnTransformTensor(ctx.handle, &one, p.kernel_rows.d, rows.data_ptr(), accumulate ? &one : &zero, p.kernel_plain.d,
                                         dw.data_ptr()),
                    "cudnnTransformTensor");
    });
}

} // namespace clip::detail::cuda
