// clip/backend/reference/conv.hpp: the obviously correct convolution and average pooling.
//
// conv2d is im2col followed by one Eigen product per image and group: slow, simple, and the
// oracle for the oneDNN path. Its two backward passes are the same columns read the other way:
//   forward           Y_bg = K_g · cols(X_bg)             K_g [O/G, I/G·kH·kW], cols [I/G·kH·kW, H'·W']
//   backward data     dX_bg = col2im(K_gᵀ · dY_bg)        (col2im adds every tap back where it came from)
//   backward weights  dK_g += Σ_b dY_bg · cols(X_bg)ᵀ
// Activations are read and written through their strides (row-major or channels-last, no copy).
// avg_pool2d is a direct loop over windows.
#pragma once

#include "clip/backend/reference/eigen.hpp"

#include <vector>

#include "clip/ops/conv_spec.hpp"

namespace clip::detail::reference {

using conv_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A [B, C, H, W] tensor addressed through its strides.
struct strided_image {
    float* base;
    std::int64_t batch, channel, row, column;
    explicit strided_image(const tensor& t)
        : base(t.data<float>()), batch(t.stride(0)), channel(t.stride(1)), row(t.stride(2)), column(t.stride(3)) {}
    float& operator()(std::int64_t b, std::int64_t c, std::int64_t y, std::int64_t x) const {
        return base[b * batch + c * channel + y * row + x * column];
    }
};

/// The geometry of one convolution, and a walk over its taps.
struct conv_taps {
    std::int64_t height, width, kh, kw, group_in, group_out, oh, ow;
    conv2d_options o;

    conv_taps(const shape& x, const shape& w, const shape& out, const conv2d_options& options)
        : height(x[2]), width(x[3]), kh(w[2]), kw(w[3]), group_in(w[1]), group_out(w[0] / options.groups),
          oh(out[2]), ow(out[3]), o(options) {}

    std::int64_t rows() const { return group_in * kh * kw; }

    /// f(row, column, c, sy, sx) for every tap of group input channel c that falls inside the
    /// image: row (c·kH + i)·kW + j of the columns matrix, column y·W' + x.
    template <class F>
    void for_each(F&& f) const {
        for (std::int64_t c = 0; c < group_in; ++c)
            for (std::int64_t i = 0; i < kh; ++i)
                for (std::int64_t j = 0; j < kw; ++j)
                    for (std::int64_t y = 0; y < oh; ++y)
                        for (std::int64_t x = 0; x < ow; ++x) {
                            const std::int64_t sy = y * o.stride[0] - o.padding[0] + i * o.dilation[0];
                            const std::int64_t sx = x * o.stride[1] - o.padding[1] + j * o.dilation[1];
                            if (sy >= 0 && sy < height && sx >= 0 && sx < width)
                                f((c * kh + i) * kw + j, y * ow + x, c, sy, sx);
                        }
    }

    /// The patches of image b, group g as columns (zero where a window covers padding).
    void im2col(conv_matrix& columns, const strided_image& x, std::int64_t b, std::int64_t g) const {
        columns.setZero(rows(), oh * ow);
        for_each([&](std::int64_t r, std::int64_t col, std::int64_t c, std::int64_t sy, std::int64_t sx) {
            columns(r, col) = x(b, g * group_in + c, sy, sx);
        });
    }

    /// Adds every entry of the columns back to the input position it was read from.
    void col2im_add(const conv_matrix& columns, const strided_image& dx, std::int64_t b, std::int64_t g) const {
        for_each([&](std::int64_t r, std::int64_t col, std::int64_t c, std::int64_t sy, std::int64_t sx) {
            dx(b, g * group_in + c, sy, sx) += columns(r, col);
        });
    }

    /// dY (or Y) of image b, group g as a [O/G, H'·W'] matrix, read or written through strides.
    void load(conv_matrix& m, const strided_image& y, std::int64_t b, std::int64_t g) const {
        m.resize(group_out, oh * ow);
        for (std::int64_t oc = 0; oc < group_out; ++oc)
            for (std::int64_t i = 0; i < oh * ow; ++i) m(oc, i) = y(b, g * group_out + oc, i / ow, i % ow);
    }
};

inline void conv2d(const tensor& out, const tensor& input, const tensor& weight, const conv2d_options& o) {
    const shape out_shape = check_conv2d(input, weight, o);
    const tensor w = weight.contiguous();
    const conv_taps taps(input.shape(), w.shape(), out_shape, o);
    const strided_image x(input), y(out);
    const std::vector<float> bias = o.bias.defined() ? o.bias.to_vector<float>() : std::vector<float>{};
    conv_matrix columns, result;
    for (std::int64_t b = 0; b < input.shape()[0]; ++b)
        for (std::int64_t g = 0; g < o.groups; ++g) {
            taps.im2col(columns, x, b, g);
            const Eigen::Map<const conv_matrix> kernel(w.data<float>() + g * taps.group_out * taps.rows(),
                                                       taps.group_out, taps.rows());
            result.noalias() = kernel * columns;
            for (std::int64_t oc = 0; oc < taps.group_out; ++oc) {
                const float shift = bias.empty() ? 0.0f : bias[static_cast<std::size_t>(g * taps.group_out + oc)];
                for (std::int64_t i = 0; i < taps.oh * taps.ow; ++i)
                    y(b, g * taps.group_out + oc, i / taps.ow, i % taps.ow) = activate(o.act, result(oc, i) + shift);
            }
        }
}

/// dx = the gradient of Σ dy ⊙ conv2d(x, w) with respect to x (written).
inline void conv2d_backward_data(const tensor& dx, const tensor& dy, const tensor& weight, const conv2d_options& o) {
    const tensor w = weight.contiguous();
    const conv_taps taps(dx.shape(), w.shape(), dy.shape(), o);
    const strided_image grad_in(dx), grad_out(dy);
    for (std::int64_t b = 0; b < dx.shape()[0]; ++b)
        for (std::int64_t c = 0; c < dx.shape()[1]; ++c)
            for (std::int64_t y = 0; y < dx.shape()[2]; ++y)
                for (std::int64_t x = 0; x < dx.shape()[3]; ++x) grad_in(b, c, y, x) = 0.0f;
    conv_matrix g_out, columns;
    for (std::int64_t b = 0; b < dx.shape()[0]; ++b)
        for (std::int64_t g = 0; g < o.groups; ++g) {
            taps.load(g_out, grad_out, b, g);
            const Eigen::Map<const conv_matrix> kernel(w.data<float>() + g * taps.group_out * taps.rows(),
                                                       taps.group_out, taps.rows());
            columns.noalias() = kernel.transpose() * g_out;
            taps.col2im_add(columns, grad_in, b, g);
        }
}

/// dw = the gradient of Σ dy ⊙ conv2d(x, w) with respect to w (written, or added to when
/// `accumulate`); dw contiguous [O, I/groups, kH, kW].
inline void conv2d_backward_weights(const tensor& dw, const tensor& input, const tensor& dy, const conv2d_options& o,
                                    bool accumulate) {
    const conv_taps taps(input.shape(), dw.shape(), dy.shape(), o);
    const strided_image x(input), grad_out(dy);
    Eigen::Map<conv_matrix> grad(dw.data<float>(), dw.shape()[0], taps.rows()); // [O, I/G·kH·kW]
    if (!accumulate) grad.setZero();
    conv_matrix g_out, columns;
    for (std::int64_t b = 0; b < input.shape()[0]; ++b)
        for (std::int64_t g = 0; g < o.groups; ++g) {
            taps.load(g_out, grad_out, b, g);
            taps.im2col(columns, x, b, g);
            grad.middleRows(g * taps.group_out, taps.group_out).noalias() += g_out * columns.transpose();
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
