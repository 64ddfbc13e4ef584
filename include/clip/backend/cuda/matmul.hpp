// clip/backend/cuda/matmul.hpp: the fused matrix product on cuBLASLt.
//
//   y = act(scale · (a · b) + bias) + residual        (ops/matmul_spec.hpp)
//
// cuBLASLt is column-major, clip is row-major: a row-major [M, N] result is the column-major
// [N, M] product bᵀ·aᵀ, so the operands swap places and a transposed view (a linear layer's
// `w.t()`) becomes cuBLASLt's transpose flag, never a copy. The bias rides the BIAS epilogue
// (one per output column), the residual is cuBLASLt's C operand with beta = 1, and ReLU its
// RELU_BIAS epilogue. GELU and QuickGELU run as one in-place pass after the product (cuBLASLt's
// GELU is the tanh approximation, not PyTorch's exact erf form). Each problem shape keeps its
// descriptors and heuristic algorithm; the workspace is allocated once per device. f32 products
// compute in f32; `set_allow_tf32(true)` lets them use TF32 tensor cores.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <tuple>

#include <cublasLt.h>

#include "clip/backend/cuda/jit.hpp"
#include "clip/backend/cuda/kernels.hpp"
#include "clip/ops/matmul_spec.hpp"

namespace clip {

namespace detail::cuda {
inline std::atomic<bool>& allow_tf32_flag() noexcept {
    static std::atomic<bool> flag{false};
    return flag;
}
} // namespace detail::cuda

/// Lets f32 products on CUDA devices use TF32 tensor cores (10-bit mantissa inputs, f32
/// accumulation), as torch.backends.cuda.matmul.allow_tf32 does. Off by default.
inline void set_allow_tf32(bool allow) noexcept { detail::cuda::allow_tf32_flag() = allow; }

namespace detail::cuda {

inline void check_cublas(cublasStatus_t status, const char* call) {
    if (status != CUBLAS_STATUS_SUCCESS) [[unlikely]]
        throw backend_error(message(call, " failed: ", cublasLtGetStatusName(status), ": ", cublasLtGetStatusString(status)));
}

/// A 2-D operand: rows × cols with unit stride along one axis.
struct matrix_view {
    const void* data;
    std::int64_t rows, cols, ld;
    bool row_major; // unit stride along cols
};

/// `t` [R, C] as a matrix view when one of its strides is 1, else nothing.
inline std::optional<matrix_view> as_matrix(const tensor& t) {
    const std::int64_t R = t.size(0), C = t.size(1);
    if (t.stride(1) == 1 && (R <= 1 || t.stride(0) >= C)) return matrix_view{t.data_ptr(), R, C, std::max<std::int64_t>(t.stride(0), C), true};
    if (t.stride(0) == 1 && (C <= 1 || t.stride(1) >= R)) return matrix_view{t.data_ptr(), R, C, std::max<std::int64_t>(t.stride(1), R), false};
    return std::nullopt;
}

/// The largest power of two, up to 256, that divides the address (cuBLASLt picks kernels by it).
inline std::uint32_t alignment(const void* p) noexcept {
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    std::uint32_t a = 256;
    while (a > 4 && address % a != 0) a /= 2;
    return a;
}

/// `t` as a matrix view, copied into `keep` first when neither of its strides is 1.
inline matrix_view matrix_of(const tensor& t, tensor& keep) {
    if (const std::optional<matrix_view> v = as_matrix(t)) return *v;
    keep = t.contiguous();
    return *as_matrix(keep);
}

struct plan_key {
    std::int64_t m, n, k, lda, ldb, ldc;
    bool a_row_major, b_row_major, bias, relu, residual, tf32;
    int device;
    cudaDataType_t type;
    std::uint32_t align_a, align_b, align_c;
    auto tie() const {
        return std::tie(m, n, k, lda, ldb, ldc, a_row_major, b_row_major, bias, relu, residual, tf32, device, type, align_a, align_b, align_c);
    }
    friend bool operator<(const plan_key& x, const plan_key& y) { return x.tie() < y.tie(); }
};

struct plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
};

struct context {
    cublasLtHandle_t handle = nullptr;
    void* workspace = nullptr;
    std::size_t workspace_bytes = std::size_t{32} << 20;
};

/// The cuBLASLt handle and workspace of device `index`, made once.
inline context& lt_context(int index) {
    static std::mutex mutex;
    static std::map<int, context> contexts;
    std::lock_guard lock(mutex);
    context& c = contexts[index];
    if (!c.handle) {
        use_device(index);
        check_cublas(cublasLtCreate(&c.handle), "cublasLtCreate");
        check_cuda(cudaMalloc(&c.workspace, c.workspace_bytes), "cudaMalloc (cuBLASLt workspace)");
    }
    return c;
}

/// x[0..n) = act(x) (+ residual[0..n) when given), in place on device `index`.
inline void activate_in_place(float* x, std::int64_t n, activation act, const float* residual, int index) {
    const int code = act == activation::relu ? 1 : act == activation::gelu ? 2 : act == activation::quick_gelu ? 3 : 0;
    const std::int64_t blocks = std::min<std::int64_t>((n + 255) / 256, 65536);
    launch(kernel(kernels_source(), "kernels", "activate", index), dim3(static_cast<unsigned>(blocks)), dim3(256), 0, index,
           {&x, &n, const_cast<int*>(&code), &residual}, "CUDA activation kernel launch");
}

/// out [M, N] (contiguous) = act(scale · a [M, K] · b [K, N] + bias) + residual, on cuBLASLt.
inline void matmul_2d(float* out, const matrix_view& a, const matrix_view& b, std::int64_t M, std::int64_t N,
                      std::int64_t K, const float* bias, activation act, const float* residual, float scale, int index,
                      cudaDataType_t type = CUDA_R_32F) {
    static std::mutex mutex;
    static std::map<plan_key, plan> plans;
    context& ctx = lt_context(index);
    const bool tf32 = allow_tf32_flag().load();
    // cuBLASLt's ReLU epilogue comes after its C operand; with a residual it must run before it.
    const bool relu_epilogue = act == activation::relu && residual == nullptr;
    const plan_key key{M, N, K, a.ld, b.ld, N, a.row_major, b.row_major, bias != nullptr, relu_epilogue,
                       residual != nullptr, tf32 && type == CUDA_R_32F, index, type, alignment(a.data), alignment(b.data),
                       std::min(alignment(out), residual ? alignment(residual) : 256u)};
    std::lock_guard lock(mutex);
    auto [it, inserted] = plans.try_emplace(key);
    plan& p = it->second;
    // Column-major view: D'[N, M] = B'[N, K] · A'[K, M] with B' = bᵀ and A' = aᵀ.
    const cublasOperation_t op_first = b.row_major ? CUBLAS_OP_N : CUBLAS_OP_T;  // bᵀ from b
    const cublasOperation_t op_second = a.row_major ? CUBLAS_OP_N : CUBLAS_OP_T; // aᵀ from a
    if (inserted) {
        try {
            const cublasComputeType_t compute = key.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
            check_cublas(cublasLtMatmulDescCreate(&p.desc, compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
            check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first),
                         "cublasLtMatmulDescSetAttribute(TRANSA)");
            check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second),
                         "cublasLtMatmulDescSetAttribute(TRANSB)");
            cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
            if (bias) epilogue = relu_epilogue ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
            else if (relu_epilogue) epilogue = CUBLASLT_EPILOGUE_RELU;
            check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue),
                         "cublasLtMatmulDescSetAttribute(EPILOGUE)");
            // Layouts as stored (before the transpose flags).
            // b row-major [K, N] is column-major [N, K] (ld); b column-major is column-major [K, N].
            check_cublas(b.row_major ? cublasLtMatrixLayoutCreate(&p.a, type, static_cast<std::uint64_t>(N), static_cast<std::uint64_t>(K), b.ld)
                                     : cublasLtMatrixLayoutCreate(&p.a, type, static_cast<std::uint64_t>(K), static_cast<std::uint64_t>(N), b.ld),
                         "cublasLtMatrixLayoutCreate");
            check_cublas(a.row_major ? cublasLtMatrixLayoutCreate(&p.b, type, static_cast<std::uint64_t>(K), static_cast<std::uint64_t>(M), a.ld)
                                     : cublasLtMatrixLayoutCreate(&p.b, type, static_cast<std::uint64_t>(M), static_cast<std::uint64_t>(K), a.ld),
                         "cublasLtMatrixLayoutCreate");
            check_cublas(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, static_cast<std::uint64_t>(N), static_cast<std::uint64_t>(M), N),
                         "cublasLtMatrixLayoutCreate");
            cublasLtMatmulPreference_t preference = nullptr;
            check_cublas(cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate");
            check_cublas(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                              &ctx.workspace_bytes, sizeof ctx.workspace_bytes),
                         "cublasLtMatmulPreferenceSetAttribute");
            const std::pair<cublasLtMatmulPreferenceAttributes_t, std::uint32_t> alignments[] = {
                {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_b}, // cuBLASLt's A is b
                {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_a},
                {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c},
                {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_c}};
            for (const auto& [attribute, value] : alignments)
                check_cublas(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, sizeof value),
                             "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)");
            cublasLtMatmulHeuristicResult_t result{};
            int found = 0;
            const cublasStatus_t status =
                cublasLtMatmulAlgoGetHeuristic(ctx.handle, p.desc, p.a, p.b, p.c, p.c, preference, 1, &result, &found);
            cublasLtMatmulPreferenceDestroy(preference);
            check_cublas(status, "cublasLtMatmulAlgoGetHeuristic");
            check(found > 0, "cuBLASLt has no algorithm for a ", M, "x", K, " by ", K, "x", N, " product of this type");
            p.algo = result.algo;
        } catch (...) {
            plans.erase(it);
            throw;
        }
    }
    if (bias)
        check_cublas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
                     "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
    const float alpha = scale, beta = residual ? 1.0f : 0.0f;
    const bool separate_act = act == activation::gelu || act == activation::quick_gelu || (act == activation::relu && !relu_epilogue);
    // With a separate activation the residual is added after it, by the activation pass.
    const float* c = residual && !separate_act ? residual : out;
    const float beta_used = residual && !separate_act ? beta : 0.0f;
    use_device(index);
    check_cublas(cublasLtMatmul(ctx.handle, p.desc, &alpha, b.data, p.a, a.data, p.b, &beta_used, c, p.c, out, p.c,
                                &p.algo, ctx.workspace, ctx.workspace_bytes, stream(index)),
                 "cublasLtMatmul");
    if (separate_act) activate_in_place(out, M * N, act, residual, index);
}

/// The product of clip's matmul spec on tensors living on one CUDA device.
inline void matmul(const tensor& out, const tensor& a, const tensor& b, const matmul_options& o) {
    const matmul_shape s = check_matmul(a, b, o, "matmul");
    const int index = out.device().index;
    if (out.numel() == 0) return;
    const tensor bias = o.bias.defined() ? o.bias.to(dtype::f32).contiguous() : tensor{};
    const tensor residual = o.residual.defined()
                                ? (o.residual.shape() == out.shape() && o.residual.is_contiguous() && o.residual.dtype() == dtype::f32 ? o.residual
                                                                                                   : o.residual.expand(out.shape()).to(dtype::f32).contiguous())
                                : tensor{};
    // A 16-bit operand makes the product 16-bit; an f32 partner is converted for it.
    const bool half = a.dtype() != dtype::f32 || b.dtype() != dtype::f32;
    const dtype t = a.dtype() != dtype::f32 ? a.dtype() : b.dtype();
    check<shape_error>(!half || b.ndim() == 2, "matmul: batched bf16/f16 products on CUDA are not supported");
    // a's batch axes fold into M when b has no batch axes.
    if (b.ndim() == 2) {
        const tensor a2 = a.to(t).reshape({-1, s.k}), b2 = b.to(t);
        tensor ac, bc;
        const cudaDataType_t type = !half ? CUDA_R_32F : t == dtype::bf16 ? CUDA_R_16BF : CUDA_R_16F;
        matmul_2d(out.data<float>(), matrix_of(a2, ac), matrix_of(b2, bc), a2.size(0), s.n, s.k,
                  bias.defined() ? bias.data<float>() : nullptr, o.act, residual.defined() ? residual.data<float>() : nullptr,
                  o.scale, index, type);
        return;
    }
    // Batched operands: one product per batch element.
    const tensor ab = a.expand([&] { shape sh = s.batch; sh.push_back(s.m); sh.push_back(s.k); return sh; }());
    const tensor bb = b.expand([&] { shape sh = s.batch; sh.push_back(s.k); sh.push_back(s.n); return sh; }());
    const std::int64_t batches = s.batch.numel();
    const tensor a3 = ab.reshape({batches, s.m, s.k}), b3 = bb.reshape({batches, s.k, s.n});
    const tensor out3 = out.view({batches, s.m, s.n});
    const tensor res3 = residual.defined() ? residual.view({batches, s.m, s.n}) : tensor{};
    for (std::int64_t i = 0; i < batches; ++i) {
        tensor ac, bc;
        matmul_2d(out3.select(0, i).data<float>(), matrix_of(a3.select(0, i), ac), matrix_of(b3.select(0, i), bc), s.m, s.n, s.k, bias.defined() ? bias.data<float>() : nullptr,
                  o.act, res3.defined() ? res3.select(0, i).data<float>() : nullptr, o.scale, index);
    }
}

} // namespace detail::cuda

} // namespace clip
