// clip/backend/cpu/conv.hpp: 2-D convolution and average pooling on oneDNN.
//
// Activations stay in the caller's memory, row-major NCHW or channels-last NHWC (no reorder per
// call); NHWC lets oneDNN pick its direct (brgemm) convolutions instead of im2col + gemm. Weights given as
// packed_weights are reordered once into the layout oneDNN chooses for the spec; plain weights
// are used as they are. Primitives are cached per spec like the matmul's.
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

inline void conv2d(const tensor& out, const tensor& input, const tensor& weight, const conv2d_options& o,
                   const packed_weights* packed = nullptr) {
    const shape out_shape = check_conv2d(input, weight, o);
    const tensor x = dense_nchw(input), w = weight.contiguous();
    const std::int64_t groups = o.groups;
    const shape w_shape = groups == 1 ? w.shape()
                                      : shape{groups, w.shape()[0] / groups, w.shape()[1], w.shape()[2], w.shape()[3]};
    const dnnl::memory::desc x_md = describe(x.shape(), x.strides(), dtype::f32);
    const dnnl::memory::desc w_md = describe(w_shape, contiguous_strides(w_shape), dtype::f32);
    const dnnl::memory::desc out_md = describe(out_shape, out.strides(), dtype::f32);
    const dnnl::memory::desc bias_md =
        o.bias.defined() ? describe(shape{w.shape()[0]}, strides{1}, dtype::f32) : dnnl::memory::desc();
    const dnnl::memory::dims stride{o.stride[0], o.stride[1]}, dilation{o.dilation[0] - 1, o.dilation[1] - 1};
    const dnnl::memory::dims pad_left{o.padding[0], o.padding[1]};
    const dnnl::memory::dims pad_right{
        right_padding(x.shape()[2], out_shape[2], o.dilation[0] * (w.shape()[2] - 1) + 1, o.stride[0], o.padding[0]),
        right_padding(x.shape()[3], out_shape[3], o.dilation[1] * (w.shape()[3] - 1) + 1, o.stride[1], o.padding[1])};

    std::string key = "conv";
    append_key(key, x.shape());
    append_key(key, x.strides());
    append_key(key, out.strides());
    append_key(key, w_shape);
    append_key(key, o.stride, o.padding, o.dilation, o.groups, o.bias.defined(), o.act, packed != nullptr);
    static plan_cache<dnnl::convolution_forward, dnnl::convolution_forward::primitive_desc> plans;
    const auto& plan = plans.get(key, [&] {
        return guarded("conv2d: creating the primitive", [&] {
            const dnnl::memory::desc weights_md =
                packed ? dnnl::memory::desc(w_md.dims(), dnnl::memory::data_type::f32, dnnl::memory::format_tag::any)
                       : w_md;
            const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                                       dnnl::algorithm::convolution_direct, x_md, weights_md, bias_md,
                                                       out_md, stride, dilation, pad_left, pad_right);
            dnnl::primitive_attr attr = base_attributes();
            dnnl::post_ops ops;
            append_activation(ops, o.act);
            attr.set_post_ops(ops);
            return dnnl::convolution_forward::primitive_desc(desc, attr, engine());
        });
    });
    guarded("conv2d: running the primitive", [&] {
        const dnnl::memory weights = weights_in_layout(packed, wrap(w_md, w), plan.pd.weights_desc());
        const tensor bias = o.bias.defined() ? o.bias.contiguous() : tensor{};
        std::unordered_map<int, dnnl::memory> args{
            {DNNL_ARG_SRC, wrap(x_md, x)}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, wrap(out_md, out)}};
        if (bias.defined()) args.emplace(DNNL_ARG_BIAS, wrap(bias_md, bias));
        args.emplace(DNNL_ARG_SCRATCHPAD, scratchpad(plan.pd.scratchpad_desc()));
        plan.primitive.execute(stream(), args);
        stream().wait();
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
