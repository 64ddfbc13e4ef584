// clip/expr/functors.hpp: the element-wise operations, one small function object each.
//
// Each functor maps SIMD registers to a register (xsimd::batch<float>); expressions compute in
// float whatever the dtype of their operands. The formulas are PyTorch's: GELU is the erf form
// 0.5·x·(1 + erf(x/√2)), QuickGELU is OpenAI CLIP's x·sigmoid(1.702·x).
#pragma once

#include "clip/expr/simd.hpp"

namespace clip::detail::op {

using simd = detail::simd;

// ---- unary ----
struct neg { simd operator()(simd x) const noexcept { return -x; } static constexpr const char* name = "neg"; };
struct abs { simd operator()(simd x) const noexcept { return xsimd::abs(x); } static constexpr const char* name = "abs"; };
struct square { simd operator()(simd x) const noexcept { return x * x; } static constexpr const char* name = "square"; };
struct sqrt { simd operator()(simd x) const noexcept { return xsimd::sqrt(x); } static constexpr const char* name = "sqrt"; };
struct rsqrt { simd operator()(simd x) const noexcept { return simd(1.0f) / xsimd::sqrt(x); } static constexpr const char* name = "rsqrt"; };
struct exp { simd operator()(simd x) const noexcept { return xsimd::exp(x); } static constexpr const char* name = "exp"; };
struct log { simd operator()(simd x) const noexcept { return xsimd::log(x); } static constexpr const char* name = "log"; };
struct tanh { simd operator()(simd x) const noexcept { return xsimd::tanh(x); } static constexpr const char* name = "tanh"; };
/// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, the formula oneDNN's
/// gelu_erf uses): branch-free, so GELU streams at memory speed, where xsimd's branchy erf is
/// compute-bound.
inline simd fast_erf(simd x) noexcept {
    const simd a = xsimd::abs(x);
    const simd t = simd(1.0f) / xsimd::fma(simd(0.3275911f), a, simd(1.0f));
    simd poly = xsimd::fma(simd(1.061405429f), t, simd(-1.453152027f));
    poly = xsimd::fma(poly, t, simd(1.421413741f));
    poly = xsimd::fma(poly, t, simd(-0.284496736f));
    poly = xsimd::fma(poly, t, simd(0.254829592f));
    const simd magnitude = simd(1.0f) - poly * t * xsimd::exp(-a * a);
    return xsimd::copysign(magnitude, x);
}
struct erf { simd operator()(simd x) const noexcept { return fast_erf(x); } static constexpr const char* name = "erf"; };
struct sigmoid {
    simd operator()(simd x) const noexcept { return simd(1.0f) / (simd(1.0f) + xsimd::exp(-x)); }
    static constexpr const char* name = "sigmoid";
};
struct relu { simd operator()(simd x) const noexcept { return xsimd::max(x, simd(0.0f)); } static constexpr const char* name = "relu"; };
struct gelu {
    simd operator()(simd x) const noexcept {
        return simd(0.5f) * x * (simd(1.0f) + fast_erf(x * simd(0.70710678118654752f)));
    }
    static constexpr const char* name = "gelu";
};
struct quick_gelu {
    simd operator()(simd x) const noexcept { return x / (simd(1.0f) + xsimd::exp(simd(-1.702f) * x)); }
    static constexpr const char* name = "quick_gelu";
};
struct clamp {
    float lo, hi;
    simd operator()(simd x) const noexcept { return xsimd::min(xsimd::max(x, simd(lo)), simd(hi)); }
    static constexpr const char* name = "clamp";
};

// ---- binary ----
struct add { simd operator()(simd a, simd b) const noexcept { return a + b; } static constexpr const char* name = "add"; };
struct sub { simd operator()(simd a, simd b) const noexcept { return a - b; } static constexpr const char* name = "sub"; };
struct mul { simd operator()(simd a, simd b) const noexcept { return a * b; } static constexpr const char* name = "mul"; };
struct div { simd operator()(simd a, simd b) const noexcept { return a / b; } static constexpr const char* name = "div"; };
struct maximum { simd operator()(simd a, simd b) const noexcept { return xsimd::max(a, b); } static constexpr const char* name = "maximum"; };
struct minimum { simd operator()(simd a, simd b) const noexcept { return xsimd::min(a, b); } static constexpr const char* name = "minimum"; };
struct pow { simd operator()(simd a, simd b) const noexcept { return xsimd::pow(a, b); } static constexpr const char* name = "pow"; };
// Comparisons give 1 where true and 0 where false, for use as `where` conditions or masks.
struct less { simd operator()(simd a, simd b) const noexcept { return xsimd::select(a < b, simd(1.0f), simd(0.0f)); } static constexpr const char* name = "less"; };
struct greater { simd operator()(simd a, simd b) const noexcept { return xsimd::select(a > b, simd(1.0f), simd(0.0f)); } static constexpr const char* name = "greater"; };
struct equal { simd operator()(simd a, simd b) const noexcept { return xsimd::select(a == b, simd(1.0f), simd(0.0f)); } static constexpr const char* name = "equal"; };

// ---- ternary ----
/// cond ? a : b, where any non-zero condition counts as true.
struct where {
    simd operator()(simd cond, simd a, simd b) const noexcept { return xsimd::select(cond != simd(0.0f), a, b); }
    static constexpr const char* name = "where";
};
/// a·b + c in one rounding.
struct fma {
    simd operator()(simd a, simd b, simd c) const noexcept { return xsimd::fma(a, b, c); }
    static constexpr const char* name = "fma";
};

} // namespace clip::detail::op
