// clip/backend/cpu/matmul.hpp: the fused matrix product on oneDNN.
//
// One oneDNN matmul primitive per spec computes y = act(scale·(a·b) + bias) + residual:
// scale is the output scale, bias the primitive's bias (divided by scale, since oneDNN scales it too), act an eltwise post-op (QuickGELU is
// swish with alpha 1.702, GELU is gelu_erf) and the residual a binary-add post-op, or a sum
// post-op when the residual is the output itself (x += f(x)). Transposed operands are passed as
// strides, never copied. Constant right-hand operands given as packed_weights are reordered
// once into the layout oneDNN prefers.
#pragma once

#include "clip/backend/cpu/onednn.hpp"
#include "clip/backend/cpu/packed.hpp"
#include "clip/expr/node.hpp"
#include "clip/ops/matmul_spec.hpp"

namespace clip::detail::onednn {

inline plan_cache<dnnl::matmul, dnnl::matmul::primitive_desc>& matmul_plans() {
    static plan_cache<dnnl::matmul, dnnl::matmul::primitive_desc> cache;
    return cache;
}

/// oneDNN's matmul needs a unit stride in one of the two matrix axes.
inline tensor gemm_ready(const tensor& t) {
    const std::int64_t rows = t.stride(-2), cols = t.stride(-1);
    if (cols == 1 || rows == 1 || t.size(-1) == 1 || t.size(-2) == 1) return t;
    return t.contiguous();
}

/// `t` viewed with rank `rank` by prepending extent-1 axes.
inline tensor with_rank(tensor t, int rank) {
    while (t.ndim() < rank) t = t.unsqueeze(0);
    return t;
}

inline void matmul(const tensor& out, const tensor& a_in, const tensor& b_in, const matmul_options& o,
                   const packed_weights* packed = nullptr) {
    const matmul_shape s = check_matmul(a_in, b_in, o, "matmul");
    const shape out_shape = s.out();
    if (out.numel() == 0) return;
    // Rows in any batch shape times one matrix are one 2-D product when the rows' strides allow:
    // oneDNN's batched form with a broadcast matrix ignores the packed layout and runs several
    // times slower (RN50's attention pool: [N, 50, 2048] by 2048 x 2048).
    if (a_in.ndim() > 2 && b_in.ndim() == 2) {
        const shape rows{out.numel() / s.n, s.k};
        if (view_strides(a_in.shape(), a_in.strides(), rows)) {
            const shape out_rows{rows[0], s.n};
            matmul_options flat = o;
            if (o.residual.defined()) flat.residual = o.residual.expand(out_shape).reshape(out_rows);
            return matmul(out.view(out_rows), a_in.view(rows), b_in, flat, packed);
        }
    }
    const int rank = out_shape.size();
    const tensor a = with_rank(gemm_ready(a_in), rank);
    const tensor b = with_rank(packed ? b_in : gemm_ready(b_in), rank);
    const bool in_place_residual = o.residual.defined() && o.residual.storage() == out.storage() &&
                                   o.residual.offset() == out.offset() && o.residual.shape() == out.shape() &&
                                   o.residual.strides() == out.strides();
    tensor residual;
    if (o.residual.defined() && !in_place_residual) residual = o.residual.expand(out_shape).to(dtype::f32).contiguous();
    if (s.k > 0 && packed) check(b.is_contiguous() || b.t().is_contiguous(), "matmul: packed weights must be plain");

    const dnnl::memory::desc a_md = describe(a.shape(), a.strides(), dtype::f32);
    const dnnl::memory::desc b_md = describe(b.shape(), b.strides(), dtype::f32);
    const dnnl::memory::desc out_md = describe(out_shape, out.strides(), dtype::f32);
    shape bias_shape;
    for (int i = 0; i < rank - 1; ++i) bias_shape.push_back(1);
    bias_shape.push_back(s.n);
    const dnnl::memory::desc bias_md =
        o.bias.defined() ? describe(bias_shape, contiguous_strides(bias_shape), dtype::f32) : dnnl::memory::desc();
    const dnnl::memory::desc residual_md =
        residual.defined() ? describe(out_shape, residual.strides(), dtype::f32) : dnnl::memory::desc();

    std::string key = "mm";
    append_key(key, a.shape());
    append_key(key, a.strides());
    append_key(key, b.shape());
    append_key(key, b.strides());
    append_key(key, out.strides());
    // The scale is a run-time argument, not part of the plan: a scale that changes every call
    // (exp(logit_scale) during training) must not create a primitive per call.
    const bool scaled = o.scale != 1.0f;
    append_key(key, o.bias.defined(), o.act, scaled, residual.defined(), in_place_residual, packed != nullptr);

    const auto& plan = matmul_plans().get(key, [&] {
        return guarded("matmul: creating the primitive", [&] {
            dnnl::primitive_attr attr = base_attributes();
            if (scaled) attr.set_output_scales(0, {DNNL_RUNTIME_F32_VAL});
            dnnl::post_ops ops;
            append_activation(ops, o.act);
            if (in_place_residual) ops.append_sum(1.0f);
            if (residual.defined()) ops.append_binary(dnnl::algorithm::binary_add, residual_md);
            attr.set_post_ops(ops);
            const dnnl::memory::desc weights_md =
                packed ? dnnl::memory::desc(b_md.dims(), dnnl::memory::data_type::f32, dnnl::memory::format_tag::any)
                       : b_md;
            return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, weights_md, bias_md, out_md), attr, engine());
        });
    });

    guarded("matmul: running the primitive", [&] {
        const dnnl::memory weights = weights_in_layout(packed, wrap(b_md, b), plan.pd.weights_desc());
        std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(a_md, a)},
                                                   {DNNL_ARG_WEIGHTS, weights},
                                                   {DNNL_ARG_DST, wrap(out_md, out)}};
        // oneDNN scales the bias with the product; the spec adds it after scaling.
        const tensor bias = !o.bias.defined() ? tensor{}
                            : o.scale == 1.0f ? o.bias.contiguous()
                                              : eval(o.bias * (1.0f / o.scale));
        if (bias.defined()) args.emplace(DNNL_ARG_BIAS, wrap(bias_md, bias));
        float scale = o.scale;
        if (scaled)
            args.emplace(DNNL_ARG_ATTR_OUTPUT_SCALES,
                         dnnl::memory({{1}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::x}, engine(), &scale));
        if (residual.defined()) // the binary add comes after the activation, if there is one
            args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(o.act == activation::none ? 0 : 1) | DNNL_ARG_SRC_1,
                         wrap(residual_md, residual));
        args.emplace(DNNL_ARG_SCRATCHPAD, scratchpad(plan.pd.scratchpad_desc()));
        plan.primitive.execute(stream(), args);
        stream().wait();
    });
}

} // namespace clip::detail::onednn
