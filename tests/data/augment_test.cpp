// Tests for clip/data/augment.hpp: RandomResizedCrop's boxes stay within the scale and ratio
// bounds, the centre-crop fallback, Python's rounding, and exact agreement of the whole training
// transform with a plain reimplementation drawing the same numbers.
#include "../support.hpp"

#include <clip/data/augment.hpp>

#include <cmath>

namespace data_augment_test {

namespace {

clip::image pattern(std::int64_t width, std::int64_t height, clip::image_mode mode) {
    clip::image img(width, height, mode);
    const std::int64_t c = img.channels();
    for (std::int64_t y = 0; y < height; ++y)
        for (std::int64_t x = 0; x < width * c; ++x) img.row(y)[x] = static_cast<std::uint8_t>((x * 13 + y * 7 + (x * y) % 11) % 256);
    return img;
}

/// torchvision's get_params, written out again: the oracle for random_resized_crop_box.
clip::crop_box reference_box(std::int64_t width, std::int64_t height, clip::counter_rng& rng) {
    const double area = static_cast<double>(width) * static_cast<double>(height);
    const float log_low = std::log(0.75f), log_high = std::log(4.0f / 3.0f);
    for (int i = 0; i < 10; ++i) {
        const float scale = rng.uniform_f32(0.9f, 1.0f);
        const float aspect = std::exp(rng.uniform_f32(log_low, log_high));
        const double target = area * scale;
        const double wf = std::sqrt(target * aspect), hf = std::sqrt(target / aspect);
        // Python's round(): to nearest, ties to even (the default rounding mode).
        const auto w = static_cast<std::int64_t>(std::nearbyint(wf));
        const auto h = static_cast<std::int64_t>(std::nearbyint(hf));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            const auto top = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(height - h + 1)));
            const auto left = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(width - w + 1)));
            return {left, top, w, h};
        }
    }
    const double ratio = static_cast<double>(width) / static_cast<double>(height);
    std::int64_t w = width, h = height;
    if (ratio < 0.75) h = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(w) / 0.75));
    else if (ratio > 4.0 / 3.0) w = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(h) * (4.0 / 3.0)));
    return {(width - w) / 2, (height - h) / 2, w, h};
}

} // namespace

TEST_CASE("round_half_even is Python's round") {
    CHECK(clip::detail::round_half_even(0.5) == 0);
    CHECK(clip::detail::round_half_even(1.5) == 2);
    CHECK(clip::detail::round_half_even(2.5) == 2);
    CHECK(clip::detail::round_half_even(2.5000001) == 3);
    CHECK(clip::detail::round_half_even(-0.5) == 0);
    CHECK(clip::detail::round_half_even(-1.5) == -2);
    CHECK(clip::detail::round_half_even(7.49) == 7);
}

TEST_CASE("crop boxes lie in the image, within the scale and ratio bounds") {
    struct bounds {
        double min_scale = 2, max_scale = 0, min_ratio = 10, max_ratio = 0;
        std::int64_t max_left = 0, max_top = 0;
    };
    const auto sample = [](std::int64_t width, std::int64_t height, const clip::random_resized_crop_options& options) {
        bounds b;
        for (std::uint64_t i = 0; i < 4000; ++i) {
            clip::counter_rng rng(5, clip::rng_purpose::augment, 0, i);
            const clip::crop_box box = clip::random_resized_crop_box(width, height, rng, options);
            REQUIRE(box.left >= 0);
            REQUIRE(box.top >= 0);
            REQUIRE(box.left + box.width <= width);
            REQUIRE(box.top + box.height <= height);
            const double scale = static_cast<double>(box.width * box.height) / static_cast<double>(width * height);
            const double ratio = static_cast<double>(box.width) / static_cast<double>(box.height);
            b.min_scale = std::min(b.min_scale, scale);
            b.max_scale = std::max(b.max_scale, scale);
            b.min_ratio = std::min(b.min_ratio, ratio);
            b.max_ratio = std::max(b.max_ratio, ratio);
            b.max_left = std::max(b.max_left, box.left);
            b.max_top = std::max(b.max_top, box.top);
        }
        return b;
    };
    // Rounding w and h to whole pixels moves the area and the ratio by about a pixel's worth.
    const double slack = 2.5 / 300;
    // OpenCLIP's scale (0.9, 1): on a square image the ratio can only reach about 0.9..1.1.
    const bounds square = sample(300, 300, {});
    CHECK(square.min_scale >= 0.9 - 2 * slack);
    CHECK(square.min_scale < 0.91);
    CHECK(square.max_scale <= 1.0);
    CHECK(square.min_ratio < 0.92);
    CHECK(square.max_ratio > 1.08);
    CHECK(square.max_left > 0);
    CHECK(square.max_top > 0);
    // 4:3 leaves ratios near 4/3 only.
    const bounds landscape = sample(400, 300, {});
    CHECK(landscape.min_scale >= 0.9 - 2 * slack);
    CHECK(landscape.min_ratio >= 1.2 - slack);
    CHECK(landscape.max_ratio <= 4.0 / 3.0 + slack);
    // torchvision's default scale (0.08, 1) uses the whole ratio range.
    const bounds wide = sample(400, 300, {.scale = {0.08, 1.0}});
    CHECK(wide.min_scale >= 0.08 - 2 * slack);
    CHECK(wide.min_scale < 0.1);
    CHECK(wide.min_ratio >= 0.75 - slack);
    CHECK(wide.min_ratio < 0.77);
    CHECK(wide.max_ratio <= 4.0 / 3.0 + slack);
    CHECK(wide.max_ratio > 1.3);
    // A portrait narrower than 3:4 never fits an attempt at scale ≥ 0.9: always the fallback,
    // the full width and h = round(97 / 0.75) = 129, centred.
    for (std::uint64_t i = 0; i < 50; ++i) {
        clip::counter_rng rng(5, i);
        CHECK(clip::random_resized_crop_box(97, 211, rng) == clip::crop_box{0, 41, 97, 129});
    }
}

TEST_CASE("no attempt fits a very wide image: the centre crop clamped to the ratio range") {
    clip::counter_rng rng(1);
    CHECK(clip::random_resized_crop_box(1000, 10, rng) == clip::crop_box{493, 0, 13, 10});
    CHECK(rng.draws() == 20); // ten attempts of two draws each
    clip::counter_rng tall(1);
    CHECK(clip::random_resized_crop_box(10, 1000, tall) == clip::crop_box{0, 493, 10, 13});
    clip::counter_rng square(1);
    CHECK(clip::random_resized_crop_box(1, 1, square) == clip::crop_box{0, 0, 1, 1});
}

TEST_CASE("the box agrees with torchvision's get_params written out, for the same draws") {
    for (std::uint64_t i = 0; i < 500; ++i) {
        const std::int64_t width = 1 + static_cast<std::int64_t>(i * 37 % 300), height = 1 + static_cast<std::int64_t>(i * 53 % 200);
        clip::counter_rng a(9, i), b(9, i);
        REQUIRE(clip::random_resized_crop_box(width, height, a) == reference_box(width, height, b));
        REQUIRE(a.draws() == b.draws());
    }
}

TEST_CASE("train_transform = crop, Pillow bicubic resize, convert RGB, normalise, exactly") {
    for (const clip::image_mode mode : {clip::image_mode::rgb, clip::image_mode::rgba, clip::image_mode::l}) {
        INFO("mode " << clip::mode_name(mode));
        const clip::image img = pattern(83, 61, mode);
        for (std::uint64_t i = 0; i < 5; ++i) {
            clip::counter_rng rng(3, i), same(3, i);
            const clip::tensor actual = clip::train_transform(img, 32, rng); // [3, 32, 32]
            const clip::crop_box box = reference_box(83, 61, same);
            clip::image cropped(box.width, box.height, mode);
            for (std::int64_t y = 0; y < box.height; ++y)
                for (std::int64_t x = 0; x < box.width * img.channels(); ++x)
                    cropped.row(y)[x] = img.row(box.top + y)[box.left * img.channels() + x];
            const clip::tensor expected = clip::image_to_tensor(clip::resize(cropped, 32, 32, clip::resample::bicubic).convert_to_rgb());
            REQUIRE(actual.shape() == clip::shape{3, 32, 32});
            CHECK(actual.to_vector<float>() == expected.to_vector<float>());
        }
    }
}

TEST_CASE("the same stream gives the same crop; other streams give others") {
    const clip::image img = pattern(120, 90, clip::image_mode::rgb);
    clip::counter_rng a(11, clip::rng_purpose::augment, 2, 17), b(11, clip::rng_purpose::augment, 2, 17);
    CHECK(clip::train_transform(img, 24, a).to_vector<float>() == clip::train_transform(img, 24, b).to_vector<float>());
    int different = 0;
    for (std::uint64_t epoch = 0; epoch < 8; ++epoch) {
        clip::counter_rng c(11, clip::rng_purpose::augment, epoch, 17), d(11, clip::rng_purpose::augment, epoch + 100, 17);
        different += clip::random_resized_crop_box(120, 90, c) != clip::random_resized_crop_box(120, 90, d);
    }
    CHECK(different >= 6);
    clip::counter_rng e(1);
    CHECK(clip::test::error_message([&] { clip::train_transform(clip::image(), 24, e); }).find("empty image") != std::string::npos);
}

} // namespace data_augment_test
