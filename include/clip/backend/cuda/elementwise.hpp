// clip/backend/cuda/elementwise.hpp: strided element-wise kernels generated for each expression.
//
// The CPU evaluator (expr/evaluate.hpp) walks an expression tree per block of elements; on the GPU
// the tree is printed as CUDA source instead (expression.hpp) and compiled once per distinct tree,
// operand dtypes and rank: one thread per element loads every operand through its strides
// (broadcast axes have stride 0), applies the whole expression in registers and stores once.
// Axes are merged on the host first, as on the CPU, so most kernels see one or two axes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "clip/backend/cuda/jit.hpp"
#include "clip/backend/cuda/kernels.hpp"
#include "clip/core/dtype.hpp"

namespace clip::detail::cuda {

inline constexpr int max_dims = 6;
inline constexpr int max_leaves = 14;
inline constexpr int max_scalars = 16;

/// One tensor operand of an element-wise kernel, its strides aligned with the destination's axes.
struct strided_operand {
    const void* data;
    dtype type;
    std::vector<std::int64_t> strides;
};

/// The kernel's single parameter; the same layout is declared in the generated source.
struct elementwise_args {
    std::int64_t n;
    std::int64_t extent[max_dims];
    std::int64_t dst_stride[max_dims];
    void* dst;
    const void* src[max_leaves];
    std::int64_t src_stride[max_leaves][max_dims];
    float scalar[max_scalars];
};

inline const char* c_type(dtype t) {
    switch (t) {
    case dtype::f32: return "float";
    case dtype::f16:
    case dtype::bf16: return "unsigned short";
    case dtype::i32: return "int";
    case dtype::i64: return "i64";
    case dtype::u8: return "unsigned char";
    }
    return "float";
}

inline const std::string& operations_source() {
    static const std::string source = R"(
__device__ __forceinline__ float op_neg(float x) { return -x; }
__device__ __forceinline__ float op_abs(float x) { return fabsf(x); }
__device__ __forceinline__ float op_square(float x) { return x * x; }
__device__ __forceinline__ float op_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ float op_rsqrt(float x) { return 1.0f / sqrtf(x); }
__device__ __forceinline__ float op_exp(float x) { return expf(x); }
__device__ __forceinline__ float op_log(float x) { return logf(x); }
__device__ __forceinline__ float op_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ float op_erf(float x) { return erff(x); }
__device__ __forceinline__ float op_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float op_relu(float x) { return fmaxf(x, 0.0f); }
__device__ __forceinline__ float op_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
__device__ __forceinline__ float op_quick_gelu(float x) { return x / (1.0f + expf(-1.702f * x)); }
__device__ __forceinline__ float op_clamp(float x, float lo, float hi) { return fminf(fmaxf(x, lo), hi); }
__device__ __forceinline__ float op_add(float a, float b) { return a + b; }
__device__ __forceinline__ float op_sub(float a, float b) { return a - b; }
__device__ __forceinline__ float op_mul(float a, float b) { return a * b; }
__device__ __forceinline__ float op_div(float a, float b) { return a / b; }
__device__ __forceinline__ float op_maximum(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ float op_minimum(float a, float b) { return fminf(a, b); }
__device__ __forceinline__ float op_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ float op_less(float a, float b) { return a < b ? 1.0f : 0.0f; }
__device__ __forceinline__ float op_greater(float a, float b) { return a > b ? 1.0f : 0.0f; }
__device__ __forceinline__ float op_equal(float a, float b) { return a == b ? 1.0f : 0.0f; }
__device__ __forceinline__ float op_where(float c, float a, float b) { return c != 0.0f ? a : b; }
__device__ __forceinline__ float op_fma(float a, float b, float c) { return fmaf(a, b, c); }
struct Args {
    i64 n;
    i64 extent[6];
    i64 dst_stride[6];
    void* dst;
    const void* src[14];
    i64 src_stride[14][6];
    float scalar[16];
};
)";
    return source;
}

/// Source of the kernel computing `body` (over floats v0, v1, ... and a.scalar[k]) into dst.
/// An empty body copies leaf 0 with a plain C conversion, exact for integers and same-type copies.
inline std::string elementwise_source(const std::string& body, int ndim, dtype dst_type,
                                      const std::vector<dtype>& leaf_types) {
    std::string s = prelude_source() + operations_source();
    s += "extern \"C\" __global__ void elementwise(const Args a) {\n";
    s += "  const i64 step = (i64)gridDim.x * blockDim.x;\n";
    s += "  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < a.n; i += step) {\n";
    s += "    i64 r = i, od = 0";
    for (std::size_t l = 0; l < leaf_types.size(); ++l) s += ", o" + std::to_string(l) + " = 0";
    s += ";\n";
    for (int d = ndim - 1; d >= 0; --d) {
        const std::string D = std::to_string(d);
        s += "    { const i64 x = r % a.extent[" + D + "]; r /= a.extent[" + D + "]; od += x * a.dst_stride[" + D + "];";
        for (std::size_t l = 0; l < leaf_types.size(); ++l)
            s += " o" + std::to_string(l) + " += x * a.src_stride[" + std::to_string(l) + "][" + D + "];";
        s += " }\n";
    }
    const std::string dst_ptr = std::string("((") + c_type(dst_type) + "*)a.dst + od)";
    if (body.empty()) {
        const dtype from = leaf_types.at(0);
        const bool raw = from == dst_type || (!is_floating(from) && !is_floating(dst_type));
        if (raw) s += std::string("    *") + dst_ptr + " = (" + c_type(dst_type) + ")*((const " + c_type(from) + "*)a.src[0] + o0);\n";
        else s += std::string("    st_") + std::string(dtype_name(dst_type)) + "(" + dst_ptr + ", ld_" + std::string(dtype_name(from)) + "((const " +
                  c_type(from) + "*)a.src[0] + o0));\n";
    } else {
        for (std::size_t l = 0; l < leaf_types.size(); ++l) {
            const std::string L = std::to_string(l);
            s += std::string("    const float v") + L + " = ld_" + std::string(dtype_name(leaf_types[l])) + "((const " +
                 c_type(leaf_types[l]) + "*)a.src[" + L + "] + o" + L + ");\n";
        }
        s += std::string("    st_") + std::string(dtype_name(dst_type)) + "(" + dst_ptr + ", " + body + ");\n";
    }
    s += "  }\n}\n";
    return s;
}

/// Runs `body` over `extent` (at most max_dims axes, already merged) on device `index`.
inline void run_elementwise(const std::string& body, const std::vector<std::int64_t>& extent, void* dst,
                            dtype dst_type, const std::vector<std::int64_t>& dst_strides,
                            const std::vector<strided_operand>& leaves, const std::vector<float>& scalars, int index) {
    const int ndim = static_cast<int>(extent.size());
    check(ndim >= 1 && ndim <= max_dims, "CUDA element-wise kernel: ", ndim, " axes after merging (at most ", max_dims, ")");
    check(leaves.size() <= static_cast<std::size_t>(max_leaves), "CUDA element-wise kernel: ", leaves.size(),
          " operands (at most ", max_leaves, ")");
    check(scalars.size() <= static_cast<std::size_t>(max_scalars), "CUDA element-wise kernel: ", scalars.size(),
          " scalar operands (at most ", max_scalars, ")");
    elementwise_args args{};
    args.n = 1;
    for (int d = 0; d < ndim; ++d) {
        args.extent[d] = extent[static_cast<std::size_t>(d)];
        args.dst_stride[d] = dst_strides[static_cast<std::size_t>(d)];
        args.n *= args.extent[d];
    }
    if (args.n == 0) return;
    args.dst = dst;
    std::vector<dtype> types;
    for (std::size_t l = 0; l < leaves.size(); ++l) {
        args.src[l] = leaves[l].data;
        for (int d = 0; d < ndim; ++d) args.src_stride[l][d] = leaves[l].strides[static_cast<std::size_t>(d)];
        types.push_back(leaves[l].type);
    }
    std::copy(scalars.begin(), scalars.end(), args.scalar);
    const std::string source = elementwise_source(body, ndim, dst_type, types);
    const cudaKernel_t k = kernel(source, "elementwise", "elementwise", index);
    const std::int64_t blocks = std::min<std::int64_t>((args.n + 255) / 256, 65536);
    launch(k, dim3(static_cast<unsigned>(blocks)), dim3(256), 0, index, {&args}, "CUDA element-wise kernel launch");
}

} // namespace clip::detail::cuda
