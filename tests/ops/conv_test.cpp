// Tests for clip/ops/conv.hpp: conv2d and avg_pool2d (oneDNN when built with it) against the
// reference backend, and the reference against a direct double loop.
#include "../support.hpp"

namespace ops_conv_test {

using clip::conv2d_options;
using clip::pool2d_options;
using clip::shape;
using clip::tensor;

namespace {

tensor direct_conv(const tensor& x, const tensor& w, const conv2d_options& o) {
    const shape out_shape = clip::detail::check_conv2d(x, w, o);
    const std::vector<float> xv = x.to_vector<float>(), wv = w.to_vector<float>();
    const std::vector<float> bv = o.bias.defined() ? o.bias.to_vector<float>() : std::vector<float>();
    const std::int64_t C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    const std::int64_t O = w.shape()[0], Cg = w.shape()[1], KH = w.shape()[2], KW = w.shape()[3];
    std::vector<float> out;
    for (std::int64_t b = 0; b < out_shape[0]; ++b)
        for (std::int64_t oc = 0; oc < O; ++oc)
            for (std::int64_t y = 0; y < out_shape[2]; ++y)
                for (std::int64_t xx = 0; xx < out_shape[3]; ++xx) {
                    double s = bv.empty() ? 0.0 : bv[static_cast<std::size_t>(oc)];
                    const std::int64_t g = oc / (O / o.groups);
                    for (std::int64_t c = 0; c < Cg; ++c)
                        for (std::int64_t i = 0; i < KH; ++i)
                            for (std::int64_t j = 0; j < KW; ++j) {
                                const std::int64_t sy = y * o.stride[0] - o.padding[0] + i * o.dilation[0];
                                const std::int64_t sx = xx * o.stride[1] - o.padding[1] + j * o.dilation[1];
                                if (sy < 0 || sy >= H || sx < 0 || sx >= W) continue;
                                s += static_cast<double>(xv[static_cast<std::size_t>(((b * C + g * Cg + c) * H + sy) * W + sx)]) *
                                     wv[static_cast<std::size_t>(((oc * Cg + c) * KH + i) * KW + j)];
                            }
                    out.push_back(static_cast<float>(s));
                }
    return tensor::from(out, out_shape);
}

} // namespace

TEST_CASE("conv2d matches a direct loop and the reference backend") {
    struct config {
        shape x, w;
        conv2d_options o;
    };
    const std::vector<config> configs{
        {{1, 3, 32, 32}, {16, 3, 8, 8}, {.stride = {8, 8}}},                       // ViT patch embedding
        {{2, 3, 17, 19}, {8, 3, 3, 3}, {.stride = {2, 2}, .padding = {1, 1}}},     // ResNet stem
        {{2, 8, 9, 9}, {8, 8, 1, 1}, {}},                                          // 1x1 projection
        {{1, 6, 9, 11}, {4, 3, 3, 2}, {.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}, .groups = 2}},
        {{1, 4, 5, 5}, {4, 1, 3, 3}, {.padding = {1, 1}, .groups = 4}},           // depthwise
    };
    for (std::size_t i = 0; i < configs.size(); ++i) {
        conv2d_options o = configs[i].o;
        const tensor x = clip::rand_normal(configs[i].x, i), w = clip::rand_normal(configs[i].w, 10 + i);
        if (i % 2 == 0) o.bias = clip::rand_normal({configs[i].w[0]}, 20 + i);
        CAPTURE(configs[i].x);
        CAPTURE(configs[i].w);
        const tensor expected = direct_conv(x, w, o);
        const tensor ref = tensor::empty(expected.shape());
        clip::detail::reference::conv2d(ref, x, w, o);
        clip::test::check_close(ref, expected, 1e-5);
        clip::test::check_close(clip::conv2d(x, w, o), expected, 1e-5);
        clip::test::check_close(clip::conv2d(x.t().contiguous().t(), clip::packed_weights(w), o), expected, 1e-5);
    }
}

TEST_CASE("avg_pool2d with and without padding in the divisor") {
    const tensor x = clip::rand_normal({2, 3, 9, 8}, 1);
    for (const pool2d_options& o : {pool2d_options{.kernel = {2, 2}}, pool2d_options{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
                                    pool2d_options{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .count_include_pad = false}}) {
        const tensor y = clip::avg_pool2d(x, o);
        const tensor ref = tensor::empty(y.shape());
        clip::detail::reference::avg_pool2d(ref, x, clip::detail::resolve(o));
        clip::test::check_close(y, ref, 1e-6);
    }
    const tensor ones = tensor::ones({1, 1, 4, 4});
    // PyTorch: the corner window with padding 1 averages 4 real ones over 9 (include) or 4 (exclude) cells.
    CHECK(clip::avg_pool2d(ones, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}).to_vector<float>()[0] == doctest::Approx(4.0 / 9.0));
    CHECK(clip::avg_pool2d(ones, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .count_include_pad = false}).to_vector<float>()[0] == 1.0f);
    CHECK(clip::avg_pool2d(x, {.kernel = {2, 2}}).shape() == shape{2, 3, 4, 4});
}

TEST_CASE("avg_pool2d_into writes row-major and channels-last outputs in place") {
    const tensor x = clip::rand_normal({2, 3, 9, 8}, 4);
    const pool2d_options o{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .count_include_pad = false};
    const tensor expected = clip::avg_pool2d(x, o);
    for (const tensor& input : {x, clip::to_channels_last(x)}) {
        const tensor rows = tensor::empty(expected.shape()), nhwc = clip::empty_channels_last(expected.shape());
        const void* where = nhwc.data_ptr();
        clip::avg_pool2d_into(rows, input, o);
        clip::avg_pool2d_into(nhwc, input, o);
        clip::test::check_close(rows, expected, 1e-6);
        clip::test::check_close(nhwc, expected, 1e-6);
        CHECK(nhwc.data_ptr() == where);
        CHECK(clip::is_channels_last(nhwc));
    }
    CHECK_THROWS_AS(clip::avg_pool2d_into(tensor::empty({2, 3, 4, 4}), x, o), clip::shape_error);
    CHECK_THROWS_AS(clip::avg_pool2d_into(tensor::empty({2, 3, 5, 8}).slice(3, 0, 4), x, o), clip::shape_error); // strided rows
}

TEST_CASE("conv2d and avg_pool2d reject bad shapes with both shapes named") {
    const std::string message = clip::test::error_message([] { clip::conv2d(tensor::zeros({1, 3, 8, 8}), tensor::zeros({4, 2, 3, 3})); });
    CHECK(clip::test::contains(message, "[1, 3, 8, 8]"));
    CHECK(clip::test::contains(message, "[4, 2, 3, 3]"));
    CHECK_THROWS_AS(clip::conv2d(tensor::zeros({3, 8, 8}), tensor::zeros({4, 3, 3, 3})), clip::shape_error);
    CHECK_THROWS_AS(clip::conv2d(tensor::zeros({1, 3, 2, 2}), tensor::zeros({4, 3, 3, 3})), clip::shape_error);
    CHECK_THROWS_AS(clip::conv2d(tensor::zeros({1, 3, 8, 8}), tensor::zeros({4, 3, 3, 3}), {.bias = tensor::zeros({3})}), clip::shape_error);
    CHECK_THROWS_AS(clip::avg_pool2d(tensor::zeros({1, 1, 2, 2}), {.kernel = {3, 3}}), clip::shape_error);
    CHECK_THROWS_AS(clip::avg_pool2d(tensor::zeros({1, 1, 2, 2}, clip::dtype::i32)), clip::dtype_error);
}

TEST_CASE("channels-last activations give the same results and stay channels-last") {
    const tensor x = clip::rand_normal({2, 8, 9, 9}, 1), w = clip::rand_normal({16, 8, 3, 3}, 2);
    const conv2d_options o{.bias = clip::rand_normal({16}, 3), .padding = {1, 1}, .act = clip::activation::relu};
    const tensor nhwc = clip::to_channels_last(x);
    CHECK(clip::is_channels_last(nhwc));
    CHECK_FALSE(clip::is_channels_last(x));
    clip::test::check_close(nhwc, x, 0);
    const tensor expected = clip::conv2d(x, w, o);
    const tensor y = clip::conv2d(nhwc, clip::packed_weights(w), o);
    clip::test::check_close(y, expected, 1e-5);
    clip::test::check_close(expected, clip::relu(direct_conv(x, w, {.bias = o.bias, .padding = {1, 1}})).eval(), 1e-5);
#if defined(CLIP_WITH_ONEDNN)
    CHECK(clip::is_channels_last(y));
    CHECK(clip::is_channels_last(clip::avg_pool2d(y, {.kernel = {2, 2}})));
#endif
    clip::test::check_close(clip::avg_pool2d(y, {.kernel = {2, 2}}), clip::avg_pool2d(y.contiguous(), {.kernel = {2, 2}}), 1e-6);
}

TEST_CASE("3x3 inference convolutions (Winograd where oneDNN has it) match the direct sums") {
    // RN50's shapes in small: packed weights, stride 1, 16-channel multiples, bias and ReLU.
    for (const std::int64_t channels : {16, 64}) {
        const tensor x = clip::to_channels_last(clip::relu(clip::rand_normal({2, channels, 14, 14}, 4)).eval());
        const tensor w = (clip::rand_normal({channels, channels, 3, 3}, 5) * (1.0f / std::sqrt(9.0f * channels))).eval();
        const conv2d_options o{.bias = clip::rand_normal({channels}, 6), .padding = {1, 1}, .act = clip::activation::relu};
        const clip::packed_weights packed(w);
        const tensor y = clip::conv2d(x, packed, o);
        CHECK(clip::is_channels_last(y));
        clip::test::check_close(y, clip::relu(direct_conv(x, w, {.bias = o.bias, .padding = {1, 1}})).eval(), 1e-5);
        clip::test::check_close(clip::conv2d(x, packed, o), y, 0); // the same plan and workspaces again
    }
}

namespace {

/// The two gradients of Σ dy ⊙ conv2d(x, w) by direct double loops over every tap.
struct direct_gradients {
    std::vector<double> data, weights;
};

direct_gradients direct_conv_backward(const tensor& x, const tensor& w, const tensor& dy, const conv2d_options& o) {
    const shape out_shape = clip::detail::check_conv2d(x, w, o);
    const std::vector<float> xv = x.to_vector<float>(), wv = w.to_vector<float>(), gv = dy.to_vector<float>();
    const std::int64_t C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    const std::int64_t O = w.shape()[0], Cg = w.shape()[1], KH = w.shape()[2], KW = w.shape()[3];
    direct_gradients out{std::vector<double>(xv.size()), std::vector<double>(wv.size())};
    for (std::int64_t b = 0; b < out_shape[0]; ++b)
        for (std::int64_t oc = 0; oc < O; ++oc)
            for (std::int64_t y = 0; y < out_shape[2]; ++y)
                for (std::int64_t xx = 0; xx < out_shape[3]; ++xx) {
                    const double g = gv[static_cast<std::size_t>(((b * O + oc) * out_shape[2] + y) * out_shape[3] + xx)];
                    const std::int64_t group = oc / (O / o.groups);
                    for (std::int64_t c = 0; c < Cg; ++c)
                        for (std::int64_t i = 0; i < KH; ++i)
                            for (std::int64_t j = 0; j < KW; ++j) {
                                const std::int64_t sy = y * o.stride[0] - o.padding[0] + i * o.dilation[0];
                                const std::int64_t sx = xx * o.stride[1] - o.padding[1] + j * o.dilation[1];
                                if (sy < 0 || sy >= H || sx < 0 || sx >= W) continue;
                                const auto xi = static_cast<std::size_t>(((b * C + group * Cg + c) * H + sy) * W + sx);
                                const auto wi = static_cast<std::size_t>(((oc * Cg + c) * KH + i) * KW + j);
                                out.data[xi] += g * wv[wi];
                                out.weights[wi] += g * xv[xi];
                            }
                }
    return out;
}

tensor to_tensor(const std::vector<double>& values, const shape& s) {
    std::vector<float> f(values.begin(), values.end());
    return tensor::from(f, s);
}

} // namespace

TEST_CASE("conv2d backward passes (data and weights) match direct loops, on both backends and layouts") {
    struct config {
        shape x, w;
        conv2d_options o;
    };
    const std::vector<config> configs{
        {{2, 3, 17, 19}, {8, 3, 3, 3}, {.stride = {2, 2}, .padding = {1, 1}}}, // ResNet stem conv1
        {{2, 8, 9, 9}, {8, 8, 3, 3}, {.padding = {1, 1}}},                     // Bottleneck conv2
        {{3, 16, 6, 6}, {32, 16, 1, 1}, {}},                                   // 1x1 expansion
        {{2, 40, 5, 5}, {24, 40, 1, 1}, {}},                                   // channels not a multiple of 16
        {{1, 6, 9, 11}, {4, 3, 3, 2}, {.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}, .groups = 2}},
    };
    for (std::size_t k = 0; k < configs.size(); ++k) {
        const conv2d_options& o = configs[k].o;
        const tensor x = clip::rand_normal(configs[k].x, 30 + k), w = clip::rand_normal(configs[k].w, 40 + k);
        const shape out_shape = clip::detail::check_conv2d(x, w, o);
        const tensor dy = clip::rand_normal(out_shape, 50 + k);
        CAPTURE(configs[k].x);
        CAPTURE(configs[k].w);
        const direct_gradients expected = direct_conv_backward(x, w, dy, o);
        const tensor expected_dx = to_tensor(expected.data, x.shape());
        const tensor expected_dw = to_tensor(expected.weights, w.shape());
        for (const bool channels_last : {false, true}) {
            CAPTURE(channels_last);
            const tensor xs = channels_last ? clip::to_channels_last(x) : x;
            const tensor dys = channels_last ? clip::to_channels_last(dy) : dy;
            const tensor dx = channels_last ? clip::empty_channels_last(x.shape()) : tensor::empty(x.shape());
            const tensor dw = tensor::empty(w.shape());
            clip::detail::reference::conv2d_backward_data(dx, dys, w, o);
            clip::detail::reference::conv2d_backward_weights(dw, xs, dys, o, false);
            clip::test::check_close(dx, expected_dx, 1e-5);
            clip::test::check_close(dw, expected_dw, 5e-5); // sums of up to 162 products
            dx.copy_from(tensor::full(x.shape(), 7.0)); // written, not added to
            clip::conv2d_backward_data(dx, dys, w, o);
            clip::conv2d_backward_weights(dw, xs, dys, o);
            clip::test::check_close(dx, expected_dx, 1e-5);
            clip::test::check_close(dw, expected_dw, 5e-5); // sums of up to 162 products
            clip::conv2d_backward_weights(dw, xs, dys, o, true);
            clip::test::check_close(dw, clip::eval(expected_dw * 2.0f), 5e-5);
            // The forward into a caller's buffer, with a kernel that is not packed.
            const tensor y = channels_last ? clip::empty_channels_last(out_shape) : tensor::empty(out_shape);
            clip::conv2d_into(y, xs, w, o);
            clip::test::check_close(y, direct_conv(x, w, o), 1e-5);
        }
    }
}

TEST_CASE("conv2d backward passes check their operands and create no plan in steady state") {
    const tensor x = clip::to_channels_last(clip::rand_normal({2, 8, 6, 6}, 1));
    const tensor w = clip::rand_normal({16, 8, 3, 3}, 2);
    const conv2d_options o{.padding = {1, 1}};
    const tensor dy = clip::to_channels_last(clip::rand_normal({2, 16, 6, 6}, 3));
    const tensor dx = clip::empty_channels_last(x.shape()), dw = tensor::zeros(w.shape());
    CHECK_THROWS_AS(clip::conv2d_backward_data(dx, clip::rand_normal({2, 16, 5, 5}, 4), w, o), clip::shape_error);
    CHECK_THROWS_AS(clip::conv2d_backward_weights(tensor::zeros({16, 8, 1, 1}), x, dy, o), clip::shape_error);
    CHECK_THROWS_AS(clip::conv2d_backward_weights(tensor::zeros({8, 16, 3, 3}).permute({1, 0, 2, 3}), x, dy, o),
                    clip::shape_error);
    CHECK_THROWS_AS(clip::conv2d_backward_data(dx, dy, w, {.padding = {1, 1}, .act = clip::activation::relu}),
                    clip::error);
    CHECK_THROWS_AS(clip::conv2d_backward_data(dx.permute({0, 2, 1, 3}), dy, w, o), clip::shape_error);
    const auto step = [&] {
        const tensor y = clip::empty_channels_last(dy.shape());
        clip::conv2d_into(y, x, w, o);
        clip::conv2d_backward_data(dx, dy, w, o);
        clip::conv2d_backward_weights(dw, x, dy, o, true);
    };
    step();
#if defined(CLIP_WITH_ONEDNN)
    const std::int64_t plans = clip::detail::onednn::plan_creations();
    step();
    CHECK(clip::detail::onednn::plan_creations() == plans);
#endif
}

} // namespace ops_conv_test
