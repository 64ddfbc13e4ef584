// Tests for clip/backend/cuda/*: every GPU operation against the CPU backend, and both encoders
// against the CPU and the reference fixtures. Without CUDA, or without a device, the cases say
// so; the kernel sources are still compiled with NVRTC, which needs no GPU.
#include "../support.hpp"

namespace backend_cuda_test {

namespace {

using clip::tensor;

#if defined(CLIP_WITH_CUDA)
bool have_gpu() {
    if (clip::detail::cuda::device_count() > 0) return true;
    MESSAGE("skipped: clip is built with CUDA but no CUDA device is present");
    return false;
}

const clip::device gpu = clip::device::cuda();
const clip::device cpu = clip::device::cpu();

/// The GPU result, brought back, against the CPU result, relative to the largest magnitude.
void check_same(const std::string& what, const tensor& on_gpu, const tensor& on_cpu, double tolerance = 1e-5) {
    INFO(what);
    REQUIRE(on_gpu.device() == gpu);
    const tensor back = on_gpu.to(cpu);
    REQUIRE(back.shape() == on_cpu.shape());
    const std::vector<float> a = back.to_vector<float>(), b = on_cpu.to_vector<float>();
    double worst = 0.0, scale = 1e-30;
    for (float v : b) scale = std::max(scale, static_cast<double>(std::abs(v)));
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]) / scale);
    INFO("worst difference relative to the largest element: " << worst << " (tolerance " << tolerance << ")");
    CHECK(worst <= tolerance);
}
#endif

} // namespace

TEST_CASE("the CUDA kernel sources compile (NVRTC, no GPU needed)") {
#if defined(CLIP_WITH_CUDA)
    namespace cuda = clip::detail::cuda;
    for (const char* arch : {"compute_90", "sm_90"}) {
        CHECK(!cuda::compile(cuda::kernels_source(), "kernels", arch).empty());
        const std::string expression = cuda::elementwise_source("op_add(op_quick_gelu(v0), op_mul(v1, a.scalar[0]))", 3,
                                                                clip::dtype::bf16, {clip::dtype::f32, clip::dtype::f16});
        CHECK(!cuda::compile(expression, "elementwise", arch).empty());
        CHECK(!cuda::compile(cuda::elementwise_source("", 2, clip::dtype::i32, {clip::dtype::i64}), "copy", arch).empty());
    }
    const std::string message = clip::test::error_message([&] { cuda::compile("__global__ void broken( {", "broken", "sm_90"); });
    CHECK(clip::test::contains(message, "NVRTC could not compile"));
#else
    MESSAGE("skipped: clip is built without CUDA");
#endif
}

TEST_CASE("cuda tensors round-trip through device memory") {
#if defined(CLIP_WITH_CUDA)
    if (clip::detail::cuda::device_count() == 0) {
        MESSAGE("skipped: clip is built with CUDA but no CUDA device is present");
        const std::string message = clip::test::error_message([] { clip::tensor::empty({4}, clip::dtype::f32, clip::device::cuda()); });
        CHECK(clip::test::contains(message, "cuda:0 does not exist"));
        return;
    }
    const tensor host = clip::rand_normal({3, 5}, 1);
    const tensor device = host.t().to(gpu);
    CHECK(device.device() == gpu);
    CHECK(device.shape() == clip::shape{5, 3});
    CHECK(device.to(cpu).to_vector<float>() == host.t().contiguous().to_vector<float>());
    CHECK(device.t().contiguous().to(cpu).to_vector<float>() == host.to_vector<float>()); // strided copy on the GPU
    const std::string message = clip::test::error_message([&] { (void)clip::tensor::empty({2}, clip::dtype::f32, clip::device::cuda(99)); });
    CHECK(clip::test::contains(message, "cuda:99 does not exist"));
#else
    MESSAGE("skipped: clip is built without CUDA");
    CHECK_THROWS_AS(clip::tensor::zeros({2}).to(clip::device::cuda()), clip::device_error);
#endif
}

#if defined(CLIP_WITH_CUDA)

TEST_CASE("element-wise expressions and conversions on the GPU match the CPU") {
    if (!have_gpu()) return;
    const tensor a = clip::rand_normal({4, 6, 8}, 2), b = clip::rand_normal({6, 1}, 3), c = clip::rand_normal({8}, 4);
    const tensor ga = a.to(gpu), gb = b.to(gpu), gc = c.to(gpu);
    check_same("broadcast arithmetic", clip::eval(ga * gb + gc * 2.0f - 1.0f), clip::eval(a * b + c * 2.0f - 1.0f));
    check_same("activations", clip::eval(clip::gelu(ga) + clip::quick_gelu(gb) + clip::sigmoid(gc)),
               clip::eval(clip::gelu(a) + clip::quick_gelu(b) + clip::sigmoid(c)), 1e-6);
    check_same("where and clamp", clip::eval(clip::where(clip::greater(ga, gc), clip::clamp(ga, -0.5f, 0.5f), gb)),
               clip::eval(clip::where(clip::greater(a, c), clip::clamp(a, -0.5f, 0.5f), b)));
    check_same("transposed operand", clip::eval(ga.transpose(0, 2) + 1.0f), clip::eval(a.transpose(0, 2) + 1.0f));
    // In place on a strided destination, reading itself.
    const tensor gd = ga.clone(), d = a.clone();
    clip::assign(gd.slice(1, 2, 5), gd.slice(1, 2, 5) * 3.0f);
    clip::assign(d.slice(1, 2, 5), d.slice(1, 2, 5) * 3.0f);
    check_same("in place slice", gd, d, 0.0);
    // Conversions round exactly as on the CPU.
    for (clip::dtype t : {clip::dtype::bf16, clip::dtype::f16, clip::dtype::i32}) {
        const tensor scaled = clip::eval(a * 100.0f);
        CHECK(scaled.to(gpu).to(t).to(cpu).to(clip::dtype::f32).to_vector<float>() == scaled.to(t).to(clip::dtype::f32).to_vector<float>());
    }
    const tensor ids = tensor::from(std::vector<std::int64_t>{1LL << 40, -3, 7}, clip::shape{3});
    CHECK(ids.to(gpu).clone().to(cpu).to_vector<std::int64_t>() == ids.to_vector<std::int64_t>()); // no trip through float
}

TEST_CASE("matrix products on cuBLASLt match the CPU, with every fused epilogue") {
    if (!have_gpu()) return;
    const tensor x = clip::rand_normal({2, 7, 48}, 5), w = clip::rand_normal({40, 48}, 6), bias = clip::rand_normal({40}, 7);
    const tensor residual = clip::rand_normal({2, 7, 40}, 8);
    const tensor gx = x.to(gpu), gw = w.to(gpu), gbias = bias.to(gpu), gres = residual.to(gpu);
    for (clip::activation act : {clip::activation::none, clip::activation::relu, clip::activation::gelu, clip::activation::quick_gelu}) {
        INFO("activation " << static_cast<int>(act));
        check_same("linear", clip::matmul(gx, gw.t(), {.bias = gbias, .act = act}), clip::matmul(x, w.t(), {.bias = bias, .act = act}));
        check_same("linear + residual", clip::matmul(gx, gw.t(), {.bias = gbias, .act = act, .residual = gres}),
                   clip::matmul(x, w.t(), {.bias = bias, .act = act, .residual = residual}));
        check_same("no bias", clip::matmul(gx, gw.t(), {.act = act}), clip::matmul(x, w.t(), {.act = act}));
    }
    const clip::packed_weights packed(gw.t());
    check_same("packed weights", clip::matmul(gx, packed, {.bias = gbias}), clip::matmul(x, w.t(), {.bias = bias}));
    check_same("scaled, row-major right operand", clip::matmul(gx, gw.t().contiguous(), {.scale = 0.25f}),
               clip::matmul(x, w.t().contiguous(), {.scale = 0.25f}));
    // A transposed left operand, an odd offset (4-byte alignment) and a batched product.
    const tensor xt = clip::rand_normal({48, 9}, 9);
    check_same("transposed left", clip::matmul(xt.to(gpu).t(), gw.t()), clip::matmul(xt.t(), w.t()));
    check_same("misaligned view", clip::matmul(gx.slice(2, 1, 48), gw.slice(1, 1, 48).t()), clip::matmul(x.slice(2, 1, 48), w.slice(1, 1, 48).t()));
    const tensor p = clip::rand_normal({3, 5, 6}, 10), q = clip::rand_normal({3, 6, 4}, 11);
    check_same("batched", clip::matmul(p.to(gpu), q.to(gpu)), clip::matmul(p, q));
    check_same("empty inner dimension", clip::matmul(tensor::empty({3, 0}, clip::dtype::f32, gpu), tensor::empty({0, 4}, clip::dtype::f32, gpu), {.bias = gbias.slice(0, 0, 4)}),
               clip::matmul(tensor::empty({3, 0}), tensor::empty({0, 4}), {.bias = bias.slice(0, 0, 4)}));
    CHECK_THROWS_AS(clip::matmul(gx, w.t()), clip::device_error);
    // 16-bit products accumulate in f32: the error is that of rounding the operands (2^-9 for bf16).
    for (clip::dtype t : {clip::dtype::bf16, clip::dtype::f16}) {
        INFO("dtype " << std::string(clip::dtype_name(t)));
        const tensor rounded = clip::matmul(x.to(t).to(clip::dtype::f32), w.to(t).to(clip::dtype::f32).t(), {.bias = bias, .act = clip::activation::quick_gelu});
        check_same("16-bit weights, f32 activations", clip::matmul(gx, gw.to(t).t(), {.bias = gbias, .act = clip::activation::quick_gelu}), rounded, 1e-5);
        check_same("16-bit both", clip::matmul(gx.to(t), gw.to(t).t(), {.bias = gbias, .residual = gres}),
                   clip::matmul(x.to(t).to(clip::dtype::f32), w.to(t).to(clip::dtype::f32).t(), {.bias = bias, .residual = residual}), 1e-5);
    }
    CHECK_THROWS_AS(clip::matmul(gx.to(clip::dtype::bf16), gw.to(clip::dtype::f16).t()), clip::dtype_error);
    CHECK_THROWS_AS(clip::matmul(x.to(clip::dtype::bf16), w.t()), clip::dtype_error);
}

TEST_CASE("row operations, attention, gathers, reductions and convolutions on the GPU match the CPU") {
    if (!have_gpu()) return;
    const tensor x = clip::rand_normal({3, 5, 64}, 12), w = clip::rand_normal({64}, 13), b = clip::rand_normal({64}, 14);
    const tensor gx = x.to(gpu);
    check_same("layer_norm", clip::layer_norm(gx, w.to(gpu), b.to(gpu)), clip::layer_norm(x, w, b));
    check_same("layer_norm of a strided selection", clip::layer_norm(gx.select(1, 2), w.to(gpu), b.to(gpu)),
               clip::layer_norm(x.select(1, 2), w, b));
    check_same("l2_normalize", clip::l2_normalize(gx), clip::l2_normalize(x));
    check_same("softmax", clip::softmax(gx * 3.0f), clip::softmax(x * 3.0f));
    check_same("log_softmax", clip::log_softmax(gx.select(1, 1)), clip::log_softmax(x.select(1, 1)));
    const tensor scores = clip::rand_normal({2, 7, 7}, 20);
    check_same("causal_softmax", clip::causal_softmax(scores.to(gpu)), clip::causal_softmax(scores));
    for (bool causal : {false, true}) {
        INFO("causal " << causal);
        const tensor qkv = clip::rand_normal({2, 9, 3, 4, 32}, 15);
        const auto head = [](const tensor& t, int i) { return t.select(2, i).transpose(1, 2); };
        const tensor g = qkv.to(gpu);
        check_same("attention", clip::attention(head(g, 0), head(g, 1), head(g, 2), 0.17f, causal),
                   clip::attention(head(qkv, 0), head(qkv, 1), head(qkv, 2), 0.17f, causal));
    }
    const tensor table = clip::rand_normal({11, 16}, 16);
    const tensor ids = tensor::from(std::vector<std::int32_t>{3, 0, 10, 3}, clip::shape{2, 2});
    check_same("embedding", clip::embedding(table.to(gpu), ids), clip::embedding(table, ids), 0.0);
    CHECK_THROWS_AS(clip::embedding(table.to(gpu), tensor::from(std::vector<std::int32_t>{11}, clip::shape{1})), clip::index_error);
    check_same("sum", clip::sum(gx, 1), clip::sum(x, 1));
    check_same("mean keepdim", clip::mean(gx, 1, true), clip::mean(x, 1, true));
    check_same("max", clip::max(gx, -1), clip::max(x, -1), 0.0);
    CHECK(clip::argmax(gx, -1).to(cpu).to_vector<std::int64_t>() == clip::argmax(x, -1).to_vector<std::int64_t>());

    const tensor image = clip::rand_normal({2, 3, 13, 11}, 17), kernel = clip::rand_normal({8, 3, 3, 3}, 18);
    const tensor kbias = clip::rand_normal({8}, 19);
    const clip::conv2d_options o{.bias = kbias, .stride = {2, 1}, .padding = {1, 1}, .dilation = {1, 2}, .act = clip::activation::relu};
    clip::conv2d_options go = o;
    go.bias = kbias.to(gpu);
    check_same("conv2d", clip::conv2d(image.to(gpu), kernel.to(gpu), go), clip::conv2d(image, kernel, o));
    check_same("conv2d of channels-last input", clip::conv2d(clip::to_channels_last(image.to(gpu)), kernel.to(gpu), go),
               clip::conv2d(image, kernel, o));
    check_same("avg_pool2d", clip::avg_pool2d(image.to(gpu), {.kernel = {3, 2}, .padding = {1, 1}, .count_include_pad = false}),
               clip::avg_pool2d(image, {.kernel = {3, 2}, .padding = {1, 1}, .count_include_pad = false}));
}

struct conv_geometry {
    std::int64_t n, c, h, w, o, k;
    clip::conv2d_options options;
};
const conv_geometry conv_geometries[] = {
    {2, 16, 9, 9, 24, 3, {.padding = {1, 1}}},                   // a ResNet block's 3×3
    {2, 3, 17, 15, 8, 3, {.stride = {2, 2}, .padding = {1, 1}}}, // the stem's strided 3×3
    {1, 5, 11, 13, 7, 3, {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}}},
    {2, 6, 8, 8, 10, 5, {.padding = {2, 2}}},
    {2, 12, 6, 7, 20, 1, {}},                 // pointwise: pixel rows
    {2, 12, 6, 7, 20, 1, {.stride = {2, 2}}}, // a subsample
    {2, 3, 16, 16, 12, 4, {.stride = {4, 4}}}, // patchify
};

#if defined(CLIP_WITH_CUDNN)
/// A cuDNN tensor descriptor's extents and strides, as [N, C, H, W] and their strides.
std::pair<clip::shape, clip::shape> described(cudnnTensorDescriptor_t d) {
    cudnnDataType_t type{};
    int n = 0, c = 0, h = 0, w = 0, ns = 0, cs = 0, hs = 0, ws = 0;
    clip::detail::cuda::check_cudnn(cudnnGetTensor4dDescriptor(d, &type, &n, &c, &h, &w, &ns, &cs, &hs, &ws), "cudnnGetTensor4dDescriptor");
    return {{n, c, h, w}, {ns, cs, hs, ws}};
}
#endif

TEST_CASE("cuDNN's descriptors describe clip's channels-last tensors (no GPU needed)") {
#if defined(CLIP_WITH_CUDNN)
    namespace cuda = clip::detail::cuda;
    for (const conv_geometry& g : conv_geometries) {
        const clip::shape xs{g.n, g.c, g.h, g.w}, ks{g.o, g.c, g.k, g.k};
        INFO("input " << xs << ", kernel " << ks);
        cuda::cudnn_plan plan;
        const clip::shape ys = clip::detail::check_conv2d(tensor::empty(xs), tensor::empty(ks), g.options);
        const std::optional<cuda::cudnn_key> key = cuda::make_cudnn_key(cuda::cudnn_pass::forward, xs, ks, ys, g.options, 0);
        REQUIRE(key.has_value());
        cuda::describe(plan, *key);
        const auto strides = [](const clip::shape& s) { return clip::empty_channels_last(s).strides(); };
        const auto check_described = [](cudnnTensorDescriptor_t d, const clip::shape& extents, const clip::strides& layout) {
            const auto [e, s] = described(d);
            CHECK(e == extents);
            CHECK(s == layout);
        };
        check_described(plan.x.d, xs, strides(xs));
        check_described(plan.y.d, ys, strides(ys)); // cuDNN's output extents are PyTorch's
        check_described(plan.kernel_rows.d, ks, strides(ks));
        check_described(plan.kernel_plain.d, ks, tensor::empty(ks).strides());
    }
    // Past cuDNN's int extents and strides, a convolution is left to im2col, not refused.
    const clip::shape big{1 << 12, 64, 128, 128}, kernel{64, 64, 3, 3};
    CHECK_FALSE(cuda::make_cudnn_key(cuda::cudnn_pass::forward, big, kernel, big, {.padding = {1, 1}}, 0).has_value());
    CHECK_FALSE(cuda::make_cudnn_key(cuda::cudnn_pass::forward, {1, 1, 8, 8}, {1, 1, 3, 3}, {1, 1, 1, 1},
                                     {.stride = {std::int64_t{1} << 40, 1}}, 0).has_value());
#else
    MESSAGE("skipped: clip is built without cuDNN");
#endif
}

TEST_CASE("convolutions and both backward passes on the GPU match the CPU, on cuDNN and on im2col") {
    if (!have_gpu()) return;
    namespace cuda = clip::detail::cuda;
    const clip::activation acts[] = {clip::activation::none, clip::activation::relu, clip::activation::gelu};
#if defined(CLIP_WITH_CUDNN)
    const std::vector<bool> engines{false, true};
    const auto use_cudnn = [](bool on) { cuda::cudnn_enabled() = on; };
    const auto cudnn_runs = [] { return cuda::cudnn_runs().load(); };
    const bool was = cuda::cudnn_enabled().load();
#else
    const std::vector<bool> engines{false}; // a CUDA build without cuDNN has the im2col path only
    const auto use_cudnn = [](bool) {};
    const auto cudnn_runs = [] { return std::int64_t{0}; };
    const bool was = false;
#endif
    std::uint64_t seed = 100;
    for (const bool cudnn : engines) {
        use_cudnn(cudnn);
        const std::int64_t runs_before = cudnn_runs();
        for (const conv_geometry& g : conv_geometries) {
            INFO("cuDNN " << cudnn << ", input " << g.n << "x" << g.c << "x" << g.h << "x" << g.w << ", " << g.o << " kernels of "
                          << g.k << "x" << g.k << ", stride " << g.options.stride[0] << "x" << g.options.stride[1]);
            const tensor x = clip::rand_normal({g.n, g.c, g.h, g.w}, seed++), k = clip::rand_normal({g.o, g.c, g.k, g.k}, seed++);
            const tensor bias = clip::rand_normal({g.o}, seed++);
            for (const clip::activation act : acts)
                for (const bool with_bias : {false, true}) {
                    INFO("activation " << static_cast<int>(act) << ", bias " << with_bias);
                    clip::conv2d_options o = g.options, go = g.options;
                    o.act = go.act = act;
                    if (with_bias) o.bias = bias, go.bias = bias.to(gpu);
                    const tensor expected = clip::conv2d(x, k, o);
                    check_same("conv2d", clip::conv2d(x.to(gpu), k.to(gpu), go), expected);
                    check_same("conv2d of channels-last input", clip::conv2d(clip::to_channels_last(x.to(gpu)), k.to(gpu), go), expected);
                    const tensor into = tensor::empty(expected.shape(), clip::dtype::f32, gpu); // row-major output
                    clip::conv2d_into(into, x.to(gpu), k.to(gpu), go);
                    check_same("conv2d_into a row-major output", into, expected);
                }
            const clip::conv2d_options& o = g.options;
            const tensor dy = clip::rand_normal(clip::conv2d(x, k, o).shape(), seed++);
            for (const bool channels_last : {false, true}) {
                INFO("channels-last operands " << channels_last);
                const auto layout = [&](const tensor& t) { return channels_last ? clip::to_channels_last(t.to(gpu)) : t.to(gpu); };
                const tensor dx = tensor::zeros(x.shape()), gdx = layout(tensor::zeros(x.shape()));
                clip::conv2d_backward_data(dx, dy, k, o);
                clip::conv2d_backward_data(gdx, layout(dy), k.to(gpu), o);
                check_same("conv2d_backward_data", gdx, dx);
                const tensor dw = tensor::zeros(k.shape()), gdw = tensor::zeros(k.shape()).to(gpu);
                clip::conv2d_backward_weights(dw, x, dy, o);
                clip::conv2d_backward_weights(gdw, layout(x), layout(dy), o);
                check_same("conv2d_backward_weights", gdw, dw);
                clip::conv2d_backward_weights(dw, x, dy, o, true);
                clip::conv2d_backward_weights(gdw, layout(x), layout(dy), o, true);
                check_same("conv2d_backward_weights, accumulated", gdw, dw);
            }
        }
        // Each geometry with overlapping windows ran its three passes on cuDNN, not the fallback.
        if (cudnn) CHECK(cudnn_runs() - runs_before >= 4 * (6 * 3 + 2 * 3));
    }
    use_cudnn(was);
}

TEST_CASE("the encoders on the GPU match the CPU and the reference fixtures") {
    if (!have_gpu()) return;
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    for (const char* name : {"vit", "resnet", "e2e"}) {
        INFO("fixture " << std::string(name));
        const clip::model host = clip::model::load(*dir / (std::string(name) + ".safetensors"));
        const clip::model device = host.to(gpu);
        CHECK(device.device() == gpu);
        const clip::safetensors io = clip::safetensors::open(*dir / (std::string(name) + "_io.safetensors"));
        const tensor images = io.get("image"), text = io.get("text");
        const tensor image_features = device.encode_image(images), text_features = device.encode_text(text);
        check_same("image features vs CPU", image_features, host.encode_image(images), 1e-4);
        check_same("text features vs CPU", text_features, host.encode_text(text), 1e-4);
        clip::test::check_close(image_features.to(cpu), io.get("image_features"), 1e-4);
        clip::test::check_close(text_features.to(cpu), io.get("text_features"), 1e-4);
        const auto logits = device.logits(images.to(gpu), text.to(gpu));
        clip::test::check_close(logits.per_image.to(cpu), io.get("logits_per_image"), 1e-4);
        clip::test::check_close(logits.per_text.to(cpu), io.get("logits_per_text"), 1e-4);
        // 16-bit weights and products (f32 accumulation): every embedding stays within cosine
        // 0.999 of the f32 reference.
        for (clip::dtype t : {clip::dtype::bf16, clip::dtype::f16}) {
            INFO("weights " << std::string(clip::dtype_name(t)));
            const clip::model half = host.to(gpu, t);
            for (const auto& [got, want] : {std::pair{half.encode_image(images), io.get("image_features")},
                                            std::pair{half.encode_text(text), io.get("text_features")}}) {
                const tensor a = clip::l2_normalize(got.to(cpu)), b = clip::l2_normalize(want);
                const std::vector<float> cosine = clip::sum(a * b, -1).to_vector<float>();
                const float worst = *std::min_element(cosine.begin(), cosine.end());
                MESSAGE(std::string(name) << " " << std::string(clip::dtype_name(t)) << ": lowest cosine to the reference " << worst);
                CHECK(worst >= 0.999f);
            }
        }
    }
    CHECK_THROWS_AS(clip::model::load(*dir / "vit.safetensors").to(cpu, clip::dtype::bf16), clip::dtype_error);
}

#endif

} // namespace backend_cuda_test
