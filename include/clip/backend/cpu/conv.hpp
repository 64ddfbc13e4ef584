// clip/backend/cpu/conv.hpp: 2-D convolution and average pooling on oneDNN.
//
// Activations stay in the caller's memory, row-major NCHW or channels-last NHWC (no reorder per
// call, except around Winograd plans); NHWC lets oneDNN pick its direct (brgemm) convolutions instead of im2col + gemm. Weights given as
// packed_weights are reordered once into the layout oneDNN chooses for the spec; plain weights
// (a training step's, which change every step) are reordered into a workspace on every call.
// The backward passes (data and weights, for training) use oneDNN's backward primitives with a
// forward_training hint; the weight gradient arrives in oneDNN's layout and is reordered into
// the plain tensor, added to it when accumulating. Primitives are cached per spec like the
// matmul's.
#pragma once

#include "clip/backend/cpu/onednn.hpp"
#include "clip/backend/cpu/packed.hpp"
#include "clip/ops/conv_spec.hpp"

namespace clip::detail::onednn {

/// Right padding that makes oneDNN's output extent equal PyTorch's floor rule.
inline std::int64_t right_padding(std::int64_t in, std::int64_t out, std::int64_t kernel_extent, std::int64_t stride,
                                  std::int64_t left) {
    return (out - 1) * stride + kernel_extent - in - left;
}

/// The oneDNN descriptors of one convolution: activations as the caller laid them out, the
/// weights plain ([O, I, kH, kW], or [G, O/G, I/G, kH, kW] with groups).
struct conv_geometry {
    dnnl::memory::desc x_md, w_md, out_md;
    dnnl::memory::dims stride, dilation, pad_left, pad_right;
    shape w_shape;

    conv_geometry(const tensor& x, const tensor& w, const tensor& out, const conv2d_options& o) {
        const shape out_shape = out.shape();
        const std::int64_t groups = o.groups;
        w_shape = groups == 1 ? w.shape()
                              : shape{groups, w.shape()[0] / groups, w.shape()[1], w.shape()[2], w.shape()[3]};
        x_md = describe(x.shape(), x.strides(), dtype::f32);
        w_md = describe(w_shape, contiguous_strides(w_shape), dtype::f32);
        out_md = describe(out_shape, out.strides(), dtype::f32);
        stride = {o.stride[0], o.stride[1]};
        dilation = {o.dilation[0] - 1, o.dilation[1] - 1};
        pad_left = {o.padding[0], o.padding[1]};
        pad_right = {
            right_padding(x.shape()[2], out_shape[2], o.dilation[0] * (w.shape()[2] - 1) + 1, o.stride[0], o.padding[0]),
            right_padding(x.shape()[3], out_shape[3], o.dilation[1] * (w.shape()[3] - 1) + 1, o.stride[1], o.padding[1])};
    }

    /// `md`'s shape in whatever layout the implementation prefers.
    static dnnl::memory::desc any(const dnnl::memory::desc& md) {
        return dnnl::memory::desc(md.dims(), dnnl::memory::data_type::f32, dnnl::memory::format_tag::any);
    }
    dnnl::memory::desc any_weights() const { return any(w_md); }

    /// The key of a plan: every shape and stride, the spec, and what distinguishes the caller.
    template <class... Extra>
    std::string key(const char* kind, const tensor& x, const tensor& out, const conv2d_options& o,
                    const Extra&... extra) const {
        std::string k = kind;
        append_key(k, x.shape());
        append_key(k, x.strides());
        append_key(k, out.strides());
        append_key(k, w_shape);
        append_key(k, o.stride, o.padding, o.dilation, o.groups, extra...);
        return k;
    }

    /// The forward description the backward primitives take as their hint.
    dnnl::convolution_forward::primitive_desc training_hint() const {
        const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                                   x_md, any_weights(), dnnl::memory::desc(), out_md, stride, dilation,
                                                   pad_left, pad_right);
        return dnnl::convolution_forward::primitive_desc(desc, base_attributes(), engine());
    }
};

/// Whether a convolution may run as Winograd F(4x4, 3x3): 3x3, stride 1, no dilation or groups,
/// at inference (packed weights). oneDNN has it on AVX-512 machines; there it is 1.3-3x faster
/// than the direct kernels on RN50's 3x3 layers, reorders included, and its error against a
/// double-precision reference is of the same order (8.8e-7 relative against 5.9e-7, 256
/// channels at 14x14).
inline bool winograd_candidate(const tensor& w, const conv2d_options& o, const packed_weights* packed) {
    return packed != nullptr && o.groups == 1 && w.shape()[2] == 3 && w.shape()[3] == 3 && o.stride[0] == 1 &&
           o.stride[1] == 1 && o.dilation[0] == 1 && o.dilation[1] == 1;
}

/// out = act(conv(x, w) + bias). The plan lets oneDNN choose its weight layout (with plain
/// weights it falls back to its reference kernels, a hundred times slower): packed_weights are
/// reordered once, plain ones on every call into a workspace. A Winograd plan keeps its
/// activations blocked (nChw16c), so the input and output pass through workspaces.
inline void conv2d(const tensor& out, const tensor& input, const tensor& weight, const conv2d_options& o,
                   const packed_weights* packed = nullptr) {
    (void)check_conv2d(input, weight, o);
    const tensor x = dense_nchw(input), w = weight.contiguous();
    const conv_geometry g(x, w, out, o);
    const dnnl::memory::desc bias_md =
        o.bias.defined() ? describe(shape{w.shape()[0]}, strides{1}, dtype::f32) : dnnl::memory::desc();
    static plan_cache<dnnl::convolution_forward, dnnl::convolution_forward::primitive_desc> plans;
    const auto& plan = plans.get(g.key("conv", x, out, o, o.bias.defined(), o.act, packed != nullptr), [&] {
        return guarded("conv2d: creating the primitive", [&] {
            dnnl::primitive_attr attr = base_attributes();
            dnnl::post_ops ops;
            append_activation(ops, o.act);
            attr.set_post_ops(ops);
            if (winograd_candidate(w, o, packed)) {
                try {
                    const dnnl::convolution_forward::desc desc(
                        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd,
                        conv_geometry::any(g.x_md), g.any_weights(), bias_md, conv_geometry::any(g.out_md), g.stride,
                        g.dilation, g.pad_left, g.pad_right);
                    return dnnl::convolution_forward::primitive_desc(desc, attr, engine());
                } catch (const dnnl::error&) { // no Winograd on this CPU or for this shape
                }
            }
            const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                                       dnnl::algorithm::convolution_direct, g.x_md, g.any_weights(),
                                                       bias_md, g.out_md, g.stride, g.dilation, g.pad_left, g.pad_right);
            return dnnl::convolution_forward::primitive_desc(desc, attr, engine());
        });
    });
    guarded("conv2d: running the primitive", [&] {
        const dnnl::memory plain = wrap(g.w_md, w);
        const dnnl::memory weights =
            packed ? weights_in_layout(packed, plain, plan.pd.weights_desc()) : in_layout(plain, plan.pd.weights_desc(), 0);
        // Workspace 0 holds plain weights' copy, so only packed (Winograd) plans move activations.
        const dnnl::memory src = packed ? in_layout(wrap(g.x_md, x), plan.pd.src_desc(), 0) : wrap(g.x_md, x);
        const dnnl::memory out_memory = wrap(g.out_md, out);
        const bool through = plan.pd.dst_desc() != g.out_md;
        const dnnl::memory dst = through ? dnnl::memory(plan.pd.dst_desc(), engine(),
                                                        workspace(plan.pd.dst_desc().get_size(), 1))
                                         : out_memory;
        const tensor bias = o.bias.defined() ? o.bias.contiguous() : tensor{};
        std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
        if (bias.defined()) args.emplace(DNNL_ARG_BIAS, wrap(bias_md, bias));
        args.emplace(DNNL_ARG_SCRATCHPAD, scratchpad(plan.pd.scratchpad_desc()));
        plan.primitive.execute(stream(), args);
        stream().wait();
        if (through) reorder_into(dst, out_memory);
    });
}

/// dx = the gradient of Σ dy ⊙ conv(x, w) with respect to x (written), for dx and dy in the
/// caller's layouts; oneDNN's convolution_backward_data with w reordered as it asks.
inline void conv2d_backward_data(const tensor& dx, const tensor& dy, const tensor& weight, const conv2d_options& o) {
    const tensor w = weight.contiguous();
    const conv_geometry g(dx, w, dy, o);
    static plan_cache<dnnl::convolution_backward_data, dnnl::convolution_backward_data::primitive_desc> plans;
    const auto& plan = plans.get(g.key("conv_backward_data", dx, dy, o), [&] {
        return guarded("conv2d_backward_data: creating the primitive", [&] {
            const dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, g.x_md,
                                                             g.any_weights(), g.out_md, g.stride, g.dilation,
                                                             g.pad_left, g.pad_right);
            return dnnl::convolution_backward_data::primitive_desc(desc, base_attributes(), engine(), g.training_hint());
        });
    });
    guarded("conv2d_backward_data: running the primitive", [&] {
        const dnnl::memory weights = in_layout(wrap(g.w_md, w), plan.pd.weights_desc(), 0);
        plan.primitive.execute(stream(), {{DNNL_ARG_DIFF_DST, wrap(g.out_md, dy)},
                                          {DNNL_ARG_WEIGHTS, weights},
                                          {DNNL_ARG_DIFF_SRC, wrap(g.x_md, dx)},
                                          {DNNL_ARG_SCRATCHPAD, scratchpad(plan.pd.scratchpad_desc())}});
        stream().wait();
    });
}

/// dw = the gradient of Σ dy ⊙ conv(x, w) with respect to w (written, or added to dw when
/// `accumulate`); dw is plain [O, I/groups, kH, kW]. oneDNN's convolution_backward_weights
/// writes its preferred layout into a workspace, and one reorder (with the sum post-op when
/// accumulating) brings it into dw.
inline void conv2d_backward_weights(const tensor& dw, const tensor& x, const tensor& dy, const conv2d_options& o,
                                    bool accumulate) {
    const conv_geometry g(x, dw, dy, o);
    static plan_cache<dnnl::convolution_backward_weights, dnnl::convolution_backward_weights::primitive_desc> plans;
    const auto& plan = plans.get(g.key("conv_backward_weights", x, dy, o), [&] {
        return guarded("conv2d_backward_weights: creating the primitive", [&] {
            const dnnl::convolution_backward_weights::desc desc(dnnl::algorithm::convolution_direct, g.x_md,
                                                                g.any_weights(), g.out_md, g.stride, g.dilation,
                                                                g.pad_left, g.pad_right);
            return dnnl::convolution_backward_weights::primitive_desc(desc, base_attributes(), engine(),
                                                                      g.training_hint());
        });
    });
    guarded("conv2d_backward_weights: running the primitive", [&] {
        const dnnl::memory plain = wrap(g.w_md, dw);
        const dnnl::memory::desc want = plan.pd.diff_weights_desc();
        const bool direct = want == plain.get_desc() && !accumulate;
        const dnnl::memory result = direct ? plain : dnnl::memory(want, engine(), workspace(want.get_size(), 0));
        plan.primitive.execute(stream(), {{DNNL_ARG_SRC, wrap(g.x_md, x)},
                                          {DNNL_ARG_DIFF_DST, wrap(g.out_md, dy)},
                                          {DNNL_ARG_DIFF_WEIGHTS, result},
                                          {DNNL_ARG_SCRATCHPAD, scratchpad(plan.pd.scratchpad_desc())}});
        stream().wait();
        if (!direct) reorder_into(result, plain, accumulate);
    });
}

inline void avg_pool2d(const tensor& out, const tensor& input, const pool2d_options& o) {
    const shape out_shape = check_pool2d(input, o);
    const tensor x = dense_nchw(input);
    const dnnl::memory::desc x_md = describe(x.shape(), x.strides(), dtype::f32);
    const dnnl::memory::desc out_md = describe(out_shape, out.strides(), dtype::f32);
    const dnnl::memory::dims stride{o.stride[0], o.stride[1]}, kernel{o.kernel[0], o.kernel[1]};
    const dnnl::memory::dims pad_left{o.padding[0], o.padding[1]};
    const dnnl::memory::dims pad_right{right_padding(x.shape()[2], out_shape[2], o.kernel[0], o.stride[0], o.padding[0]),
                                       right_padding(x.shape()[3], out_shape[3], o.kernel[1], o.stride[1], o.padding[1])};
    std::string key = "pool";
    append_key(key, x.shape());
    append_key(key, x.strides());
    append_key(key, out.strides());
    append_key(key, o.kernel, o.stride, o.padding, o.count_include_pad);
    static plan_cache<dnnl::pooling_forward, dnnl::pooling_forward::primitive_desc> plans;
    const auto& plan = plans.get(key, [&] {
        return guarded("avg_pool2d: creating the primitive", [&] {
            const auto algorithm = o.count_include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                                       : dnnl::algorithm::pooling_avg_exclude_padding;
            const dnnl::pooling_forward::desc desc(dnnl::prop_kind::forward_inference, algorithm, x_md, out_md, stride,
                                                   kernel, pad_left, pad_right);
            return dnnl::pooling_forward::primitive_desc(desc, base_attributes(), engine());
        });
    });
    guarded("avg_pool2d: running the primitive", [&] {
        plan.primitive.execute(stream(), {{DNNL_ARG_SRC, wrap(x_md, x)},
                                          {DNNL_ARG_DST, wrap(out_md, out)},
                                          {DNNL_ARG_SCRATCHPAD, scratchpad(plan.pd.scratchpad_desc())}});
        stream().wait();
    });
}

} // namespace clip::detail::onednn
