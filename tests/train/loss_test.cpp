// Tests for clip/train/loss.hpp: ClipLoss and SigLipLoss against double references of
// open_clip's formulas, their feature, logit_scale and logit_bias gradients against finite
// differences, the grad_loss weight, and the logit_scale clamp.
#include "gradient_check.hpp"

#include "clip/train/loss.hpp"

using clip::shape;
using clip::tensor;
using clip::test::check_gradient;
namespace train = clip::train;

namespace {

/// s · i tᵀ (+ b) in double.
std::vector<double> logits_double(const tensor& image, const tensor& text, double scale, double bias) {
    const std::int64_t N = image.size(0), E = image.size(1);
    const std::vector<float> a = image.to_vector<float>(), b = text.to_vector<float>();
    std::vector<double> out(static_cast<std::size_t>(N * N));
    for (std::int64_t r = 0; r < N; ++r)
        for (std::int64_t j = 0; j < N; ++j) {
            double dot = 0.0;
            for (std::int64_t e = 0; e < E; ++e)
                dot += static_cast<double>(a[static_cast<std::size_t>(r * E + e)]) * b[static_cast<std::size_t>(j * E + e)];
            out[static_cast<std::size_t>(r * N + j)] = scale * dot + bias;
        }
    return out;
}

double clip_loss_double(const tensor& image, const tensor& text, double logit_scale) {
    const std::int64_t N = image.size(0);
    const std::vector<double> L = logits_double(image, text, std::exp(logit_scale), 0.0);
    double total = 0.0;
    for (std::int64_t k = 0; k < N; ++k) {
        double row = 0.0, column = 0.0;
        for (std::int64_t j = 0; j < N; ++j) {
            row += std::exp(L[static_cast<std::size_t>(k * N + j)]);
            column += std::exp(L[static_cast<std::size_t>(j * N + k)]);
        }
        total += std::log(row) + std::log(column) - 2.0 * L[static_cast<std::size_t>(k * N + k)];
    }
    return total / (2.0 * static_cast<double>(N));
}

double siglip_loss_double(const tensor& image, const tensor& text, double logit_scale, double logit_bias) {
    const std::int64_t N = image.size(0);
    const std::vector<double> L = logits_double(image, text, std::exp(logit_scale), logit_bias);
    double total = 0.0;
    for (std::int64_t r = 0; r < N; ++r)
        for (std::int64_t j = 0; j < N; ++j)
            total += std::log(1.0 + std::exp(-(r == j ? 1.0 : -1.0) * L[static_cast<std::size_t>(r * N + j)]));
    return total / static_cast<double>(N);
}

} // namespace

TEST_CASE("clip_loss: value and gradients of features and logit_scale") {
    const std::int64_t N = 6, E = 8;
    const tensor image = clip::l2_normalize(clip::rand_normal({N, E}, 1));
    const tensor text = clip::l2_normalize(clip::rand_normal({N, E}, 2));
    const tensor logit_scale = tensor::full({}, 2.3);
    const train::clip_loss loss;
    train::clip_loss::cache c;
    const auto objective = [&] { return static_cast<double>(loss.forward(image, text, logit_scale.item<float>(), c)); };
    const double value = objective();
    const double expected = clip_loss_double(image, text, 2.3);
    CHECK(std::abs(value - expected) <= 1e-6 * std::abs(expected));
    // The logits are logits_per_image, s · i tᵀ.
    const std::vector<double> L = logits_double(image, text, std::exp(2.3), 0.0);
    clip::test::check_close(c.logits, tensor::from(std::vector<float>(L.begin(), L.end()), shape{N, N}), 1e-5);

    const tensor grad_image = tensor::empty({N, E}), grad_text = tensor::empty({N, E});
    const tensor grad_scale = tensor::full({}, loss.backward(c, grad_image, grad_text));
    check_gradient("image", image, grad_image, objective, 2e-3, 1e-3f);
    check_gradient("text", text, grad_text, objective, 2e-3, 1e-3f);
    check_gradient("logit_scale", logit_scale, grad_scale, objective, 2e-3, 1e-3f);

    // grad_loss weights every gradient.
    (void)objective();
    const tensor half_image = tensor::empty({N, E}), half_text = tensor::empty({N, E});
    const float half_scale = loss.backward(c, half_image, half_text, 0.5f);
    CHECK(half_scale == doctest::Approx(0.5 * grad_scale.item<float>()).epsilon(1e-5));
    clip::test::check_close(half_image, clip::eval(grad_image * 0.5f), 1e-6);
    CHECK_THROWS_AS(loss.forward(image, text.slice(0, 0, N - 1).contiguous(), 1.0f, c), clip::shape_error);
}

TEST_CASE("siglip_loss: value and gradients of features, logit_scale and logit_bias") {
    const std::int64_t N = 5, E = 8;
    const tensor image = clip::l2_normalize(clip::rand_normal({N, E}, 3));
    const tensor text = clip::l2_normalize(clip::rand_normal({N, E}, 4));
    // Near the SigLIP start (t' = ln 10, b = −10) the loss is dominated by the negatives.
    const tensor logit_scale = tensor::full({}, std::log(10.0)), logit_bias = tensor::full({}, -3.0);
    const train::siglip_loss loss;
    train::siglip_loss::cache c;
    const auto objective = [&] {
        return static_cast<double>(loss.forward(image, text, logit_scale.item<float>(), logit_bias.item<float>(), c));
    };
    const double value = objective();
    const double expected = siglip_loss_double(image, text, std::log(10.0), -3.0);
    CHECK(std::abs(value - expected) <= 1e-6 * std::abs(expected));

    const tensor grad_image = tensor::empty({N, E}), grad_text = tensor::empty({N, E});
    const train::siglip_loss::scalar_gradients g = loss.backward(c, grad_image, grad_text);
    check_gradient("image", image, grad_image, objective, 2e-3, 1e-3f);
    check_gradient("text", text, grad_text, objective, 2e-3, 1e-3f);
    // The loss is an f32 value of order 1: steps of 1e-2 keep its rounding small against the
    // change a scalar's step makes.
    check_gradient("logit_scale", logit_scale, tensor::full({}, g.logit_scale), objective, 2e-3);
    check_gradient("logit_bias", logit_bias, tensor::full({}, g.logit_bias), objective, 2e-3);

    // Large logits stay finite (log σ is evaluated stably).
    CHECK(std::isfinite(loss.forward(image, text, 10.0f, -200.0f, c)));
}

TEST_CASE("clamp_logit_scale keeps the temperature in [0, ln 100]") {
    clip::clip_config config = clip::detail::make_vit(16, 32, 1, 64, 16, 64, 1);
    config.text.vocab_size = 10;
    const train::parameter_store store(config);
    const tensor& value = store.at("logit_scale").value;
    value.copy_from(tensor::full({}, 7.0));
    train::clamp_logit_scale(store);
    CHECK(value.item<float>() == doctest::Approx(std::log(100.0)));
    value.copy_from(tensor::full({}, -1.0));
    train::clamp_logit_scale(store);
    CHECK(value.item<float>() == 0.0f);
    value.copy_from(tensor::full({}, 2.5));
    train::clamp_logit_scale(store);
    CHECK(value.item<float>() == 2.5f);
}
