// Tests for clip/backend/cpu/int8.hpp: the int8 linear layer against an independent integer
// reference (exact up to the final f32 rounding), and the accuracy gate on the reference
// models: every int8 embedding within cosine 0.99 of PyTorch's f32 one, and the same top-1
// caption for every reference photo.
#include "../support.hpp"

#include <cmath>

namespace backend_int8_test {

namespace {

using clip::tensor;

#if defined(CLIP_WITH_ONEDNN)
/// y = act(x Wᵀ + b) with x quantised per row and W per output channel, by plain loops.
std::vector<float> reference_int8(const tensor& x, const tensor& w, const tensor& b) {
    const std::int64_t M = x.size(0), K = x.size(1), N = w.size(0);
    const std::vector<float> xv = x.to_vector<float>(), wv = w.to_vector<float>(), bv = b.to_vector<float>();
    const auto quantise = [](const float* row, std::int64_t n, std::vector<int>& codes) {
        float m = 0.0f;
        for (std::int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(row[i]));
        const float s = m > 0.0f ? m / 127.0f : 1.0f;
        codes.resize(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) codes[static_cast<std::size_t>(i)] = static_cast<int>(std::clamp(std::nearbyint(row[i] / s), -127.0f, 127.0f));
        return s;
    };
    std::vector<std::vector<int>> wq(static_cast<std::size_t>(N));
    std::vector<float> ws(static_cast<std::size_t>(N));
    for (std::int64_t n = 0; n < N; ++n) ws[static_cast<std::size_t>(n)] = quantise(wv.data() + n * K, K, wq[static_cast<std::size_t>(n)]);
    std::vector<float> y(static_cast<std::size_t>(M * N));
    std::vector<int> xq;
    for (std::int64_t m = 0; m < M; ++m) {
        // The layer multiplies by 1/s, not divides: the same codes either way except at exact ties.
        float mx = 0.0f;
        for (std::int64_t i = 0; i < K; ++i) mx = std::max(mx, std::abs(xv[static_cast<std::size_t>(m * K + i)]));
        const float s = mx > 0.0f ? mx / 127.0f : 1.0f, inverse = 1.0f / s;
        xq.resize(static_cast<std::size_t>(K));
        for (std::int64_t i = 0; i < K; ++i)
            xq[static_cast<std::size_t>(i)] = static_cast<int>(std::clamp(std::nearbyint(xv[static_cast<std::size_t>(m * K + i)] * inverse), -127.0f, 127.0f));
        for (std::int64_t n = 0; n < N; ++n) {
            std::int64_t acc = 0;
            for (std::int64_t i = 0; i < K; ++i) acc += xq[static_cast<std::size_t>(i)] * wq[static_cast<std::size_t>(n)][static_cast<std::size_t>(i)];
            const float z = static_cast<float>(acc) * s * ws[static_cast<std::size_t>(n)] + bv[static_cast<std::size_t>(n)];
            y[static_cast<std::size_t>(m * N + n)] = z / (1.0f + std::exp(-1.702f * z));
        }
    }
    return y;
}
#endif

} // namespace

TEST_CASE("int8 linear layers compute the quantised product exactly") {
#if defined(CLIP_WITH_ONEDNN)
    const tensor x = clip::rand_normal({37, 96}, 1), w = clip::rand_normal({80, 96}, 2, 0.0f, 0.1f), b = clip::rand_normal({80}, 3);
    const clip::nn::linear f32 = clip::nn::linear::from(w, b);
    const clip::nn::linear q = f32.quantized();
    const tensor y = q(x, clip::activation::quick_gelu);
    const std::vector<float> expected = reference_int8(x, w, b), got = y.to_vector<float>();
    double worst = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        worst = std::max(worst, static_cast<double>(std::abs(got[i] - expected[i])));
        scale = std::max(scale, static_cast<double>(std::abs(expected[i])));
    }
    INFO("worst difference from the integer reference: " << worst << " (largest output " << scale << ")");
    CHECK(worst <= 1e-5 * scale);
    // Against f32: the quantisation error, a few per mille of the output's range.
    clip::test::check_close(y, f32(x, clip::activation::quick_gelu), 0.05);
    const tensor residual = clip::rand_normal({37, 80}, 4);
    clip::test::check_close(q(x, clip::activation::none, residual), clip::eval(q(x) + residual), 1e-6);
    // Batched rows and an all-zero row (scale 1, not a division by zero).
    const tensor zeros = tensor::zeros({2, 3, 96});
    CHECK(q(zeros).shape() == clip::shape{2, 3, 80});
    clip::test::check_close(q(zeros).select(0, 1).select(0, 2), b, 1e-6);
#else
    MESSAGE("skipped: int8 products run on oneDNN, which this build does not have");
#endif
}

TEST_CASE("int8 models pass the accuracy gate on the reference fixtures") {
#if defined(CLIP_WITH_ONEDNN)
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    for (const char* name : {"vit", "resnet", "e2e"}) {
        INFO("fixture " << std::string(name));
        const clip::model f32 = clip::model::load(*dir / (std::string(name) + ".safetensors"));
        const clip::model q = f32.quantized_int8();
        CHECK(q.is_int8());
        const clip::safetensors io = clip::safetensors::open(*dir / (std::string(name) + "_io.safetensors"));
        const tensor images = io.get("image"), text = io.get("text");
        for (const auto& [what, got, want] : {std::tuple{"image", q.encode_image(images), io.get("image_features")},
                                              std::tuple{"text", q.encode_text(text), io.get("text_features")}}) {
            const std::vector<float> cosine = clip::sum(clip::l2_normalize(got) * clip::l2_normalize(want), -1).to_vector<float>();
            const float worst = *std::min_element(cosine.begin(), cosine.end());
            MESSAGE(std::string(name) << " " << std::string(what) << ": lowest cosine of an int8 embedding to PyTorch's f32 one: " << worst);
            CHECK(worst >= 0.99f);
        }
        // Zero-shot: each photo's best caption is the same as in f32.
        const tensor logits = q.logits(images, text).per_image, expected = io.get("logits_per_image");
        CHECK(clip::argmax(logits, -1).to_vector<std::int64_t>() == clip::argmax(expected, -1).to_vector<std::int64_t>());
    }
    CHECK_THROWS_AS((void)clip::model::load(*dir / "vit.safetensors").quantized_int8().to(clip::device::cuda()), clip::device_error);
#else
    MESSAGE("skipped: int8 products run on oneDNN, which this build does not have");
#endif
}

} // namespace backend_int8_test
