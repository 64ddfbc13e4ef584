// Tests for clip/train/grad_clip.hpp: the global norm over every gradient, and clipping that
// scales all gradients by max_norm / (norm + 1e-6) only when the norm exceeds max_norm.
#include "gradient_check.hpp"

#include "clip/train/grad_clip.hpp"

namespace train_grad_clip_test {

using clip::tensor;
namespace train = clip::train;

TEST_CASE("grad_norm and clip_grad_norm") {
    clip::clip_config c = clip::detail::make_vit(16, 32, 1, 64, 16, 64, 1);
    c.text.vocab_size = 10;
    const train::parameter_store store(c);
    double squares = 0.0;
    std::uint64_t seed = 1;
    for (const train::parameter& p : store.parameters()) {
        p.grad.copy_from(clip::rand_normal(p.grad.shape(), seed++, 0.0f, 0.01f));
        for (float v : p.grad.to_vector<float>()) squares += static_cast<double>(v) * v;
    }
    const double norm = std::sqrt(squares);
    CHECK(train::grad_norm(store) == doctest::Approx(norm).epsilon(1e-12));
    const std::vector<float> before = store.at("visual.proj").grad.to_vector<float>();
    CHECK(train::clip_grad_norm(store, 2.0 * norm) == doctest::Approx(norm));
    CHECK(store.at("visual.proj").grad.to_vector<float>() == before); // under the limit: untouched
    CHECK(train::clip_grad_norm(store, 0.5 * norm) == doctest::Approx(norm));
    CHECK(train::grad_norm(store) == doctest::Approx(0.5 * norm).epsilon(1e-5));
    const std::vector<float> after = store.at("visual.proj").grad.to_vector<float>();
    const float factor = static_cast<float>(0.5 * norm / (norm + 1e-6));
    for (std::size_t i = 0; i < after.size(); ++i) CHECK(after[i] == before[i] * factor);
    CHECK_THROWS_AS(train::clip_grad_norm(store, 0.0), clip::error);
}

} // namespace train_grad_clip_test
