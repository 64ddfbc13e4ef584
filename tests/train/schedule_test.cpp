// Tests for clip/train/schedule.hpp: open_clip's cosine_lr values at the warmup, the peak, the
// middle and the end.
#include "gradient_check.hpp"

#include "clip/train/schedule.hpp"

namespace train_schedule_test {

TEST_CASE("cosine_lr: linear warmup, then half a cosine to zero") {
    const clip::train::cosine_lr lr(5e-4, 10, 110);
    CHECK(lr(0) == doctest::Approx(5e-5));
    CHECK(lr(4) == doctest::Approx(2.5e-4));
    CHECK(lr(9) == doctest::Approx(5e-4));
    CHECK(lr(10) == doctest::Approx(5e-4));
    CHECK(lr(60) == doctest::Approx(2.5e-4));
    CHECK(lr(35) == doctest::Approx(0.5 * (1 + std::cos(3.14159265358979 * 25 / 100)) * 5e-4));
    CHECK(lr(110) == doctest::Approx(0.0));
    const clip::train::cosine_lr no_warmup(1.0, 0, 4);
    CHECK(no_warmup(0) == 1.0);
    CHECK(no_warmup(2) == doctest::Approx(0.5));
    CHECK_THROWS_AS(clip::train::cosine_lr(1.0, 5, 5), clip::error);
}

} // namespace train_schedule_test
