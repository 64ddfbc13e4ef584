// Tests for clip/core/random.hpp: seeded, reproducible, with the requested moments.
#include "../support.hpp"

namespace core_random_test {

TEST_CASE("random tensors are reproducible and have the requested moments") {
    const clip::tensor a = clip::rand_normal({100000}, 42, 1.0f, 2.0f);
    CHECK(a.to_vector<float>() == clip::rand_normal({100000}, 42, 1.0f, 2.0f).to_vector<float>());
    CHECK(a.to_vector<float>() != clip::rand_normal({100000}, 43, 1.0f, 2.0f).to_vector<float>());
    const float mean = clip::mean(a, 0).item<float>();
    const float var = clip::mean(clip::square(a - mean), 0).item<float>();
    CHECK(mean == doctest::Approx(1.0).epsilon(0.03));
    CHECK(var == doctest::Approx(4.0).epsilon(0.03));
    const clip::tensor u = clip::rand_uniform({1000}, 1, -2.0f, 3.0f);
    for (float v : u.to_vector<float>()) REQUIRE((v >= -2.0f && v < 3.0f));
}

} // namespace core_random_test
