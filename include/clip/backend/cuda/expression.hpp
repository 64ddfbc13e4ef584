// clip/backend/cuda/expression.hpp: element-wise expressions evaluated on a CUDA device.
//
// The expression tree that the CPU evaluates block by block is printed here as one CUDA
// expression over its leaves (`op_add(v0, op_mul(v1, a.scalar[0]))`), and elementwise.hpp
// compiles it once per distinct tree and runs it with one thread per element. Scalars are kernel
// parameters, not literals, so `x * 2` and `x * 3` share a kernel.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "clip/backend/cuda/elementwise.hpp"
#include "clip/expr/node.hpp"

namespace clip::detail::cuda {

struct printed_expression {
    std::vector<tensor> leaves;
    std::vector<float> scalars;

    std::string scalar(float value) {
        check(scalars.size() < static_cast<std::size_t>(max_scalars), "CUDA expression: more than ", max_scalars,
              " scalar operands");
        scalars.push_back(value);
        std::string name = "a.scalar[";
        name += std::to_string(scalars.size() - 1);
        name += ']';
        return name;
    }
};

inline std::string print(const tensor_leaf& leaf, printed_expression& p) {
    p.leaves.push_back(leaf.value);
    std::string name = std::to_string(p.leaves.size() - 1);
    name.insert(name.begin(), 'v'); // not "v" + ...: GCC 12 warns falsely (-Wrestrict) on that in release builds
    return name;
}
inline std::string print(const scalar_leaf& leaf, printed_expression& p) { return p.scalar(leaf.value); }

template <class Op, class... Args>
std::string print(const map_node<Op, Args...>& node, printed_expression& p) {
    std::string out = std::string("op_") + Op::name + "(";
    bool first = true;
    std::apply([&](const auto&... arg) { ((out += (first ? "" : ", ") + print(arg, p), first = false), ...); }, node.args);
    if constexpr (std::is_same_v<Op, op::clamp>) out += ", " + p.scalar(node.op.lo) + ", " + p.scalar(node.op.hi);
    return out + ")";
}

/// dst = node on dst's CUDA device (shapes and devices already checked by assign).
template <class Node>
void assign(const tensor& dst, const Node& node) {
    printed_expression p;
    const std::string body = print(node, p);
    const shape target = dst.shape();
    std::vector<tensor> aligned;
    for (const tensor& t : p.leaves) aligned.push_back(t.expand(target));
    shape extent = target;
    strides dst_strides = dst.strides();
    std::vector<strides> leaf_strides;
    for (const tensor& t : aligned) leaf_strides.push_back(t.strides());
    std::vector<strides*> operands{&dst_strides};
    for (strides& s : leaf_strides) operands.push_back(&s);
    order_axes_by_first(extent, operands);
    coalesce(extent, operands);
    std::vector<strided_operand> leaves;
    for (std::size_t i = 0; i < aligned.size(); ++i)
        leaves.push_back({aligned[i].data_ptr(), aligned[i].dtype(), {leaf_strides[i].begin(), leaf_strides[i].end()}});
    run_elementwise(body, {extent.begin(), extent.end()}, dst.data_ptr(), dst.dtype(), {dst_strides.begin(), dst_strides.end()},
                    leaves, p.scalars, dst.device().index);
}

} // namespace clip::detail::cuda
