// Tests for clip/train/loss.hpp: ClipLoss and SigLipLoss against double references of
// open_clip's formulas, their feature, logit_scale and logit_bias gradients against finite
// differences, the grad_loss weight, the logit_scale clamp, and the forms for a rank of several
// (local_clip_loss, siglip_loss with an offset): over the ranks they add up to the whole batch's
// loss and gradients.
#include "gradient_check.hpp"

#include "clip/train/loss.hpp"

namespace train_loss_test {

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

/// Random unit features of N pairs (seeds `seed`, `seed` + 1) and clip_loss's value and gradients
/// on them: what a rank's local loss is compared against.
struct whole_batch {
    tensor image, text, grad_image, grad_text;
    double loss = 0, grad_scale = 0;
    whole_batch(std::int64_t N, std::int64_t E, std::uint64_t seed, float logit_scale)
        : image(clip::l2_normalize(clip::rand_normal({N, E}, seed))), text(clip::l2_normalize(clip::rand_normal({N, E}, seed + 1))),
          grad_image(tensor::empty({N, E})), grad_text(tensor::empty({N, E})) {
        const train::clip_loss whole;
        train::clip_loss::cache c;
        loss = whole.forward(image, text, logit_scale, c);
        grad_scale = whole.backward(c, grad_image, grad_text);
    }
};

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

TEST_CASE("local_clip_loss: one rank of all rows is clip_loss; unequal shares weigh by rows") {
    const std::int64_t N = 7, E = 5;
    const float logit_scale = 2.1f;
    const whole_batch w(N, E, 11, logit_scale);
    const tensor &image = w.image, &text = w.text, &want_image = w.grad_image, &want_text = w.grad_text;
    const double expected = w.loss, want_scale = w.grad_scale;

    const train::local_clip_loss local;
    train::local_clip_loss::cache one;
    CHECK(local.forward(image, text, 0, N, logit_scale, one) == doctest::Approx(expected).epsilon(1e-6));
    const tensor gi = tensor::empty({N, E}), gt = tensor::empty({N, E});
    CHECK(local.backward(one, gi, gt) == doctest::Approx(want_scale).epsilon(1e-5));
    clip::test::check_close(gi, want_image, 1e-5);
    clip::test::check_close(gt, want_text, 1e-5);

    // Shares of 2 + 3 + 2 rows: each rank's loss is the mean over its own rows, so the batch's
    // loss is their mean weighted by rows.
    double weighted = 0.0;
    for (const auto& [offset, rows] : {std::pair<std::int64_t, std::int64_t>{0, 2}, {2, 3}, {5, 2}}) {
        train::local_clip_loss::cache c;
        weighted += local.forward(image, text, offset, rows, logit_scale, c) * static_cast<double>(rows) / static_cast<double>(N);
    }
    CHECK(weighted == doctest::Approx(expected).epsilon(1e-6));
    CHECK_THROWS_AS(local.forward(image, text, 5, 3, logit_scale, one), clip::shape_error);
}

TEST_CASE("local_clip_loss over equal shares: mean of the ranks' losses and the sum of their gradients are the batch's") {
    const std::int64_t N = 8, E = 6, W = 4, b = N / W;
    const float logit_scale = 1.7f;
    const whole_batch w(N, E, 21, logit_scale);
    const tensor &image = w.image, &text = w.text, &want_image = w.grad_image, &want_text = w.grad_text;
    const double expected = w.loss, want_scale = w.grad_scale;

    const train::local_clip_loss local;
    double mean = 0.0, scale = 0.0;
    tensor image_sum = tensor::zeros({N, E}), text_sum = tensor::zeros({N, E});
    for (std::int64_t r = 0; r < W; ++r) {
        train::local_clip_loss::cache c;
        mean += local.forward(image, text, r * b, b, logit_scale, c) / static_cast<double>(W);
        const tensor gi = tensor::empty({N, E}), gt = tensor::empty({N, E});
        scale += local.backward(c, gi, gt, 1.0f / static_cast<float>(W)); // DDP's average
        image_sum = clip::eval(image_sum + gi);
        text_sum = clip::eval(text_sum + gt);
    }
    CHECK(mean == doctest::Approx(expected).epsilon(1e-6));
    CHECK(scale == doctest::Approx(want_scale).epsilon(1e-5));
    clip::test::check_close(image_sum, want_image, 1e-5);
    clip::test::check_close(text_sum, want_text, 1e-5);
}

TEST_CASE("siglip_loss's rank form: each rank's images against all texts; over equal shares the batch's loss and gradients") {
    const std::int64_t N = 6, E = 5, W = 3, b = N / W;
    const tensor image = clip::l2_normalize(clip::rand_normal({N, E}, 31));
    const tensor text = clip::l2_normalize(clip::rand_normal({N, E}, 32));
    const float logit_scale = 1.9f, logit_bias = -2.0f;
    const train::siglip_loss loss;
    train::siglip_loss::cache whole;
    const double expected = loss.forward(image, text, logit_scale, logit_bias, whole);
    const tensor want_image = tensor::empty({N, E}), want_text = tensor::empty({N, E});
    const train::siglip_loss::scalar_gradients want = loss.backward(whole, want_image, want_text);

    double mean = 0.0, scale = 0.0, bias = 0.0;
    const tensor image_rows = tensor::empty({N, E});
    tensor text_sum = tensor::zeros({N, E});
    for (std::int64_t r = 0; r < W; ++r) {
        train::siglip_loss::cache c;
        const tensor own = image.slice(0, r * b, (r + 1) * b).contiguous();
        const auto objective = [&] { return static_cast<double>(loss.forward(own, text, logit_scale, logit_bias, c, r * b)); };
        // One rank's loss against a double reference of its rows: −Σ log σ(y L) / b.
        const std::vector<double> L = logits_double(image, text, std::exp(static_cast<double>(logit_scale)), logit_bias);
        double reference = 0.0;
        for (std::int64_t k = r * b; k < (r + 1) * b; ++k)
            for (std::int64_t j = 0; j < N; ++j)
                reference += std::log(1.0 + std::exp(-(k == j ? 1.0 : -1.0) * L[static_cast<std::size_t>(k * N + j)]));
        const double value = objective();
        CHECK(value == doctest::Approx(reference / static_cast<double>(b)).epsilon(1e-6));
        mean += value / static_cast<double>(W);
        const tensor gi = tensor::empty({b, E}), gt = tensor::empty({N, E});
        const train::siglip_loss::scalar_gradients g = loss.backward(c, gi, gt, 1.0f / static_cast<float>(W)); // DDP's average
        if (r == 1) {
            const tensor unaveraged_image = clip::eval(gi * static_cast<float>(W));
            check_gradient("image rows", own, unaveraged_image, objective, 2e-3, 1e-3f);
            (void)objective();
        }
        scale += g.logit_scale;
        bias += g.logit_bias;
        image_rows.slice(0, r * b, (r + 1) * b).copy_from(gi);
        text_sum = clip::eval(text_sum + gt);
    }
    CHECK(mean == doctest::Approx(expected).epsilon(1e-6));
    CHECK(scale == doctest::Approx(want.logit_scale).epsilon(1e-5));
    CHECK(bias == doctest::Approx(want.logit_bias).epsilon(1e-5));
    clip::test::check_close(image_rows, want_image, 1e-5);
    clip::test::check_close(text_sum, want_text, 1e-5);
    train::siglip_loss::cache c;
    CHECK_THROWS_AS(loss.forward(image.slice(0, 0, 2).contiguous(), text, logit_scale, logit_bias, c, 5), clip::shape_error);
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

} // namespace train_loss_test
