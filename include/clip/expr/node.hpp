// clip/expr/node.hpp: lazy element-wise expressions over tensors.
//
// `a * b + c` or `clip::gelu(x + bias)` builds a small tree of nodes and computes nothing. The
// work happens at assignment (`tensor y = expr;`, `expr.eval()`, `dst.assign(expr)` via
// `clip::assign`), where the whole tree runs as one pass over memory: one load per operand
// element, one store per result element, vectorised over the innermost run and split across
// threads (see evaluate.hpp). Operands broadcast as in NumPy; arithmetic is in float.
//
// Nodes hold tensor handles, never references, so an expression stored in `auto` stays valid
// after the tensors it was built from go out of scope.
#pragma once

#include <concepts>
#include <tuple>
#include <type_traits>

#include "clip/core/tensor.hpp"
#include "clip/expr/functors.hpp"

namespace clip {

namespace detail {

/// Base of every expression node type; `expression` recognises nodes by it.
struct node_tag {};

/// Where a leaf's elements are in memory, once its strides are aligned with the destination.
struct leaf_plan {
    const std::byte* base;
    dtype type;
    strides st;
};

inline constexpr std::int64_t block_size = 1024;

/// A tensor operand.
struct tensor_leaf : node_tag {
    tensor value;

    clip::shape shape() const { return value.shape(); }
    std::optional<clip::device> device() const { return value.device(); }
    template <class F>
    void for_each_tensor(F&& f) const { f(value); }

    /// Per-thread state: a pointer to `block_size` floats of the current block, either the
    /// tensor's own memory (contiguous f32) or a buffer it was gathered and converted into.
    struct evaluator {
        const leaf_plan* plan;
        const float* ptr = nullptr;
        alignas(64) float buffer[block_size];

        evaluator(const tensor_leaf&, const leaf_plan*& next) : plan(next++) {}
        void prepare(const clip::shape& extent, std::int64_t row, std::int64_t start, std::int64_t n) noexcept {
            const std::int64_t step = plan->st.back();
            const std::int64_t offset = row_offset(extent, plan->st, row) + start * step;
            if (plan->type == dtype::f32 && step == 1) {
                ptr = reinterpret_cast<const float*>(plan->base) + offset;
                return;
            }
            visit_dtype(plan->type, [&]<class T>() {
                const T* p = reinterpret_cast<const T*>(plan->base) + offset;
                if (step == 0) std::fill(buffer, buffer + n, convert<float>(*p));
                else for (std::int64_t i = 0; i < n; ++i) buffer[i] = convert<float>(p[i * step]);
            });
            ptr = buffer;
        }
        simd load(std::int64_t j) const noexcept { return simd::load_unaligned(ptr + j); }
        simd load_partial(std::int64_t j, std::int64_t n) const noexcept { return detail::load_partial(ptr + j, n); }
    };
};

/// A number operand, the same for every element.
struct scalar_leaf : node_tag {
    float value;

    clip::shape shape() const { return {}; }
    std::optional<clip::device> device() const { return std::nullopt; }
    template <class F>
    void for_each_tensor(F&&) const {}

    struct evaluator {
        simd value;
        evaluator(const scalar_leaf& leaf, const leaf_plan*&) : value(leaf.value) {}
        void prepare(const clip::shape&, std::int64_t, std::int64_t, std::int64_t) noexcept {}
        simd load(std::int64_t) const noexcept { return value; }
        simd load_partial(std::int64_t, std::int64_t) const noexcept { return value; }
    };
};

/// `Op` applied element by element to the broadcast of its operands.
template <class Op, class... Args>
struct map_node : node_tag {
    Op op;
    std::tuple<Args...> args;
    clip::shape shape_;
    std::optional<clip::device> device_;

    map_node(Op o, Args... a) : op(o), args(std::move(a)...) {
        std::apply([&](const auto&... arg) { ((shape_ = broadcast_shapes(shape_, arg.shape(), Op::name)), ...); },
                   args);
        std::apply([&](const auto&... arg) { (merge_device(arg.device()), ...); }, args);
    }

    clip::shape shape() const { return shape_; }
    std::optional<clip::device> device() const { return device_; }

    /// Computes the expression into a new f32 tensor.
    tensor eval() const { return evaluate(*this); }
    operator tensor() const { return eval(); }

    template <class F>
    void for_each_tensor(F&& f) const {
        std::apply([&](const auto&... arg) { (arg.for_each_tensor(f), ...); }, args);
    }

    struct evaluator {
        Op op;
        std::tuple<typename Args::evaluator...> args;

        evaluator(const map_node& node, const leaf_plan*& next)
            : op(node.op), args(std::apply(
                               [&](const auto&... arg) {
                                   return std::tuple<typename Args::evaluator...>{
                                       typename Args::evaluator(arg, next)...};
                               },
                               node.args)) {}
        void prepare(const clip::shape& extent, std::int64_t row, std::int64_t start, std::int64_t n) noexcept {
            std::apply([&](auto&... arg) { (arg.prepare(extent, row, start, n), ...); }, args);
        }
        simd load(std::int64_t j) const noexcept {
            return std::apply([&](const auto&... arg) { return op(arg.load(j)...); }, args);
        }
        simd load_partial(std::int64_t j, std::int64_t n) const noexcept {
            return std::apply([&](const auto&... arg) { return op(arg.load_partial(j, n)...); }, args);
        }
    };

private:
    void merge_device(std::optional<clip::device> d) {
        if (!d) return;
        if (device_ && *device_ != *d)
            throw device_error(message(Op::name, ": operands on ", *device_, " and ", *d,
                                       "; move them to one device first"));
        device_ = d;
    }
};

template <class Node>
void assign(const tensor& dst, const Node& node);
template <class Node>
tensor evaluate(const Node& node);

} // namespace detail

/// A tensor or an element-wise expression node.
template <class E>
concept expression =
    std::same_as<std::remove_cvref_t<E>, tensor> || std::derived_from<std::remove_cvref_t<E>, detail::node_tag>;

/// What element-wise functions accept: expressions and plain numbers.
template <class E>
concept operand = expression<E> || std::is_arithmetic_v<std::remove_cvref_t<E>>;

namespace detail {

inline tensor_leaf as_node(const tensor& t) {
    require_defined(t, "expression");
    return tensor_leaf{{}, t};
}
template <class N>
    requires std::derived_from<N, node_tag>
const N& as_node(const N& n) { return n; }
template <class N>
    requires std::is_arithmetic_v<N>
scalar_leaf as_node(N value) { return scalar_leaf{{}, static_cast<float>(value)}; }

template <class Op, class... Args>
auto make_node(Op op, const Args&... args) {
    return map_node<Op, std::remove_cvref_t<decltype(as_node(args))>...>(op, as_node(args)...);
}

} // namespace detail

/// Materialises an expression (or returns a tensor as is).
template <expression E>
tensor eval(const E& e) {
    if constexpr (std::same_as<std::remove_cvref_t<E>, tensor>) return e;
    else return detail::evaluate(e);
}

/// Writes an expression into an existing tensor, broadcasting it to `dst`'s shape and
/// converting to `dst`'s dtype; no memory is allocated unless the expression reads `dst`
/// through a differently laid-out view.
template <operand E>
void assign(const tensor& dst, const E& e) {
    detail::assign(dst, detail::as_node(e));
}

// ---- operators and functions -------------------------------------------------------------

template <operand A, operand B> requires(expression<A> || expression<B>)
auto operator+(const A& a, const B& b) { return detail::make_node(detail::op::add{}, a, b); }
template <operand A, operand B> requires(expression<A> || expression<B>)
auto operator-(const A& a, const B& b) { return detail::make_node(detail::op::sub{}, a, b); }
template <operand A, operand B> requires(expression<A> || expression<B>)
auto operator*(const A& a, const B& b) { return detail::make_node(detail::op::mul{}, a, b); }
template <operand A, operand B> requires(expression<A> || expression<B>)
auto operator/(const A& a, const B& b) { return detail::make_node(detail::op::div{}, a, b); }

template <expression A>
auto operator-(const A& a) { return detail::make_node(detail::op::neg{}, a); }

template <expression A> auto exp(const A& a) { return detail::make_node(detail::op::exp{}, a); }
template <expression A> auto log(const A& a) { return detail::make_node(detail::op::log{}, a); }
template <expression A> auto tanh(const A& a) { return detail::make_node(detail::op::tanh{}, a); }
template <expression A> auto erf(const A& a) { return detail::make_node(detail::op::erf{}, a); }
template <expression A> auto sqrt(const A& a) { return detail::make_node(detail::op::sqrt{}, a); }
template <expression A> auto rsqrt(const A& a) { return detail::make_node(detail::op::rsqrt{}, a); }
template <expression A> auto abs(const A& a) { return detail::make_node(detail::op::abs{}, a); }
template <expression A> auto square(const A& a) { return detail::make_node(detail::op::square{}, a); }
/// 1 / (1 + exp(-x))
template <expression A> auto sigmoid(const A& a) { return detail::make_node(detail::op::sigmoid{}, a); }
/// max(x, 0)
template <expression A> auto relu(const A& a) { return detail::make_node(detail::op::relu{}, a); }
/// 0.5·x·(1 + erf(x/√2)), PyTorch's exact GELU (nn.GELU(), approximate='none').
template <expression A> auto gelu(const A& a) { return detail::make_node(detail::op::gelu{}, a); }
/// x·sigmoid(1.702·x), OpenAI CLIP's QuickGELU.
template <expression A> auto quick_gelu(const A& a) { return detail::make_node(detail::op::quick_gelu{}, a); }
/// x·s, a scale by a number.
template <expression A> auto scale(const A& a, float s) { return detail::make_node(detail::op::mul{}, a, s); }
/// min(max(x, lo), hi)
template <expression A> auto clamp(const A& a, float lo, float hi) {
    detail::check(lo <= hi, "clamp: lower bound ", lo, " is above upper bound ", hi);
    return detail::make_node(detail::op::clamp{lo, hi}, a);
}

template <operand A, operand B> requires(expression<A> || expression<B>)
auto maximum(const A& a, const B& b) { return detail::make_node(detail::op::maximum{}, a, b); }
template <operand A, operand B> requires(expression<A> || expression<B>)
auto minimum(const A& a, const B& b) { return detail::make_node(detail::op::minimum{}, a, b); }
template <operand A, operand B> requires(expression<A> || expression<B>)
auto pow(const A& a, const B& b) { return detail::make_node(detail::op::pow{}, a, b); }
template <operand A, operand B> requires(expression<A> || expression<B>)
auto less(const A& a, const B& b) { return detail::make_node(detail::op::less{}, a, b); }
template <operand A, operand B> requires(expression<A> || expression<B>)
auto greater(const A& a, const B& b) { return detail::make_node(detail::op::greater{}, a, b); }
template <operand A, operand B> requires(expression<A> || expression<B>)
auto equal(const A& a, const B& b) { return detail::make_node(detail::op::equal{}, a, b); }

/// cond ? a : b element by element; a non-zero condition counts as true.
template <operand C, operand A, operand B> requires(expression<C> || expression<A> || expression<B>)
auto where(const C& cond, const A& a, const B& b) { return detail::make_node(detail::op::where{}, cond, a, b); }
/// a·b + c with one rounding.
template <operand A, operand B, operand C> requires(expression<A> || expression<B> || expression<C>)
auto fma(const A& a, const B& b, const C& c) { return detail::make_node(detail::op::fma{}, a, b, c); }

namespace detail {
// Nodes live here, so argument-dependent lookup must find the operators from here too.
using clip::operator+;
using clip::operator-;
using clip::operator*;
using clip::operator/;
} // namespace detail

} // namespace clip

#include "clip/expr/evaluate.hpp"
#if defined(CLIP_WITH_CUDA)
#include "clip/backend/cuda/expression.hpp"
#endif
