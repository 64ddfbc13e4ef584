// clip/backend/reference/conv.hpp: the obviously correct convolution and average pooling.
//
// conv2d is im2col followed by one Eigen product per image and group: slow, simple, and the
// oracle for the oneDNN path. avg_pool2d is a direct loop over windows.
#pragma once

#include "clip/backend/reference/eigen.hpp"

#include <vector>

#include "clip/ops/conv_spec.hpp"

namespace clip::detail::reference {

inline void conv2d(const tensor& out, const tensor& input, const tensor& weight, const conv2d_options& o) {
    const shape out_shape = check_conv2d(input, weight, o);
    const tensor x = input.contiguous(), w = weight.contiguous();
    const std::int64_t batch = x.shape()[0], channels = x.shape()[1], height = x.shape()[2], width = x.shape()[3];
    const std::int64_t kh = w.shape()[2], kw = w.shape()[3], group_in = w.shape()[1];
    const std::int64_t group_out = w.shape()[0] / o.groups, oh = out_shape[2], ow = out_shape[3];
    using matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    matrix columns(group_in * kh * kw, oh * ow);
    const std::vector<float> bias = o.bias.defined() ? o.bias.to_vector<float>() : std::vector<float>{};
    for (std::int64_t b = 0; b < batch; ++b)
        for (std::int64_t g = 0; g < o.groups; ++g) {
            for (std::int64_t c = 0; c < group_in; ++c)
                for (std::int64_t i = 0; i < kh; ++i)
                    for (std::int64_t j = 0; j < kw; ++j)
                        for (std::int64_t y = 0; y < oh; ++y)
                            for (std::int64_t xx = 0; xx < ow; ++xx) {
                                const std::int64_t sy = y * o.stride[0] - o.padding[0] + i * o.dilation[0];
                                const std::int64_t sx = xx * o.stride[1] - o.padding[1] + j * o.dilation[1];
                                const bool inside = sy >= 0 && sy < height && sx >= 0 && sx < width;
                                columns((c * kh + i) * kw + j, y * ow + xx) =
                                    inside ? x.data<float>()[((b * channels + g * group_in + c) * height + sy) * width + sx]
                                           : 0.0f;
                            }
            const Eigen::Map<const matrix> kernel(w.data<float>() + g * group_out * group_in * kh * kw, group_out,
                                                  group_in * kh * kw);
            Eigen::Map<matrix> result(out.data<float>() + (b * w.shape()[0] + g * group_out) * oh * ow, group_out,
                                      oh * ow);
            result.noalias() = kernel * columns;
            for (std::int64_t oc = 0; oc < group_out; ++oc) {
                const float shift = bias.empty() ? 0.0f : bias[static_cast<std::size_t>(g * group_out + oc)];
                for (std::int64_t i = 0; i < oh * ow; ++i) result(oc, i) = activate(o.act, result(oc, i) + shift);
            }
        }
}

inline void avg_pool2d(const tensor& out, const tensor& input, const pool2d_options& o) {
    const shape out_shape = check_pool2d(input, o);
    const tensor x = input.contiguous();
    const std::int64_t planes = x.shape()[0] * x.shape()[1], height = x.shape()[2], width = x.shape()[3];
    const float* src = x.data<float>();
    float* dst = out.data<float>();
    for (std::int64_t p = 0; p < planes; ++p)
        for (std::int64_t y = 0; y < out_shape[2]; ++y)
            for (std::int64_t xx = 0; xx < out_shape[3]; ++xx) {
                const std::int64_t y0 = y * o.stride[0] - o.padding[0], x0 = xx * o.stride[1] - o.padding[1];
                const std::int64_t y1 = std::min(y0 + o.kernel[0], height + o.padding[0]);
                const std::int64_t x1 = std::min(x0 + o.kernel[1], width + o.padding[1]);
                const std::int64_t padded_count = (y1 - y0) * (x1 - x0);
                float total = 0.0f;
                std::int64_t count = 0;
                for (std::int64_t sy = std::max<std::int64_t>(y0, 0); sy < std::min(y1, height); ++sy)
                    for (std::int64_t sx = std::max<std::int64_t>(x0, 0); sx < std::min(x1, width); ++sx, ++count)
                        total += src[(p * height + sy) * width + sx];
                dst[(p * out_shape[2] + y) * out_shape[3] + xx] =
                    total / static_cast<float>(o.count_include_pad ? padded_count : count);
            }
}

} // namespace clip::detail::reference
