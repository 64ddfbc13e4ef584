// Tests for clip/image/preprocess.hpp: every fixture image through `clip._transform(224)` against
// ../shared/reference/preprocess_expected.safetensors (the RGB pixels after Resize + CenterCrop +
// convert exactly, the normalised tensor within 1e-6), the geometry of preprocess_cases.json,
// torchvision's size and crop rules (truncation, round half to even, padding), and the batch
// function: the same tensors as one by one, on 1 and 2 threads, and errors naming the image.
#include "encode.hpp"

#include <fstream>

#include <nlohmann/json.hpp>

namespace image_preprocess_test {

namespace {

namespace fs = std::filesystem;
using clip::image;
using clip::image_mode;
using clip::test::contains;
using clip::test::error_message;

/// Largest |a − b| and how many values differ, for two f32 tensors of the same shape.
std::pair<double, std::int64_t> float_difference(const clip::tensor& actual, const clip::tensor& expected) {
    REQUIRE(actual.shape() == expected.shape());
    const std::vector<float> a = actual.to_vector<float>(), b = expected.to_vector<float>();
    double worst = 0.0;
    std::int64_t count = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
        worst = std::max(worst, d);
        count += d != 0.0;
    }
    return {worst, count};
}

struct thread_count {
    explicit thread_count(int n) : previous(clip::num_threads()) { clip::set_num_threads(n); }
    ~thread_count() { clip::set_num_threads(previous); }
    int previous;
};

} // namespace

TEST_CASE("every fixture image through clip._transform(224) matches the reference") {
    const auto dir = clip::test::reference_dir();
    if (!dir) {
        MESSAGE("skipped: no reference fixtures (../shared/reference or CLIP_REFERENCE_DIR)");
        return;
    }
    std::ifstream cases_file(*dir / "preprocess_cases.json");
    REQUIRE(cases_file.good());
    const nlohmann::json cases = nlohmann::json::parse(cases_file);
    const clip::safetensors expected = clip::safetensors::open(*dir / "preprocess_expected.safetensors");
    int checked = 0;
    for (const auto& entry : cases.at("images")) {
        const std::string file = entry.at("file").get<std::string>();
        const std::string name = fs::path(file).filename().string();
        INFO(name);
        const image img = clip::read_image(*dir / file);
        CHECK(img.width() == entry.at("size_wh")[0].get<std::int64_t>());
        CHECK(img.height() == entry.at("size_wh")[1].get<std::int64_t>());
        CHECK(clip::mode_name(img.mode()) == entry.at("mode").get<std::string>());

        // The geometry the reference recorded: resized size and crop corner.
        const auto& geometry = entry.at("geometry").at("224");
        const clip::image_size resized = clip::shorter_side_size(img.width(), img.height(), 224);
        CHECK(resized.width == geometry.at("resized_wh")[0].get<std::int64_t>());
        CHECK(resized.height == geometry.at("resized_wh")[1].get<std::int64_t>());
        CHECK(clip::detail::center_crop_offset(resized.height, 224) == geometry.at("crop_top_left")[0].get<std::int64_t>());
        CHECK(clip::detail::center_crop_offset(resized.width, 224) == geometry.at("crop_top_left")[1].get<std::int64_t>());

        const image rgb = clip::preprocess_rgb(img, 224);
        CHECK(rgb.mode() == image_mode::rgb);
        const auto pixels = clip::test::compare_u8(rgb.pixels(), expected.get(name + ":resized_rgb"));
        MESSAGE(name << " resized_rgb [224, 224, 3]: " << pixels.count << " values differ, max " << pixels.max);
        CHECK(pixels.count == 0);

        const clip::tensor reference = expected.get(name); // [3, 224, 224]
        const clip::tensor actual = clip::preprocess(img, 224);
        CHECK(actual.shape() == clip::shape{3, 224, 224});
        const auto [worst, count] = float_difference(actual, reference);
        MESSAGE(name << " tensor [3, 224, 224]: " << count << " values differ, max |diff| " << worst);
        CHECK(worst <= 1e-6);
        ++checked;
    }
    CHECK(checked == 4);
}

TEST_CASE("torchvision's Resize and CenterCrop rules") {
    using clip::image_size;
    CHECK(clip::shorter_side_size(640, 427, 224) == image_size{335, 224}); // int(335.74): truncated
    CHECK(clip::shorter_side_size(451, 300, 224) == image_size{336, 224});
    CHECK(clip::shorter_side_size(300, 398, 224) == image_size{224, 297});
    CHECK(clip::shorter_side_size(160, 125, 224) == image_size{286, 224}); // upscaling
    CHECK(clip::shorter_side_size(500, 500, 224) == image_size{224, 224});
    CHECK(clip::shorter_side_size(1, 1000, 224) == image_size{224, 224000});
    CHECK_THROWS_AS((void)clip::shorter_side_size(0, 5, 224), clip::shape_error);

    // (H − n) / 2 rounded half to even: 36.5 → 36, 55.5 → 56, 0.5 → 0, 1.5 → 2.
    CHECK(clip::detail::center_crop_offset(297, 224) == 36);
    CHECK(clip::detail::center_crop_offset(335, 224) == 56);
    CHECK(clip::detail::center_crop_offset(225, 224) == 0);
    CHECK(clip::detail::center_crop_offset(227, 224) == 2);
    CHECK(clip::detail::center_crop_offset(224, 224) == 0);
    // Smaller than the crop: torchvision pads (n − H) // 2 zeros before.
    CHECK(clip::detail::center_crop_offset(5, 8) == -1);
    CHECK(clip::detail::center_crop_offset(4, 8) == -2);

    const image small = clip::test::make_image(2, 1, image_mode::l, {9, 8});
    CHECK(clip::test::bytes_of(clip::center_crop(small, 3)) == std::vector<std::uint8_t>{0, 0, 0, 9, 8, 0, 0, 0, 0});
    const image same = clip::test::make_image(2, 2, image_mode::l, {1, 2, 3, 4});
    CHECK(clip::center_crop(same, 2).data() == same.data());
}

TEST_CASE("ToTensor and Normalize: (v / 255 − mean) / std per channel, CHW") {
    const image rgb = clip::test::make_image(2, 1, image_mode::rgb, {255, 0, 128, 0, 255, 1});
    const clip::tensor t = clip::image_to_tensor(rgb); // [3, 1, 2]
    REQUIRE(t.shape() == clip::shape{3, 1, 2});
    const std::vector<float> v = t.to_vector<float>();
    const std::uint8_t bytes[2][3] = {{255, 0, 128}, {0, 255, 1}};
    for (int c = 0; c < 3; ++c)
        for (int x = 0; x < 2; ++x)
            CHECK(v[static_cast<std::size_t>(c * 2 + x)] ==
                  (static_cast<float>(bytes[x][c]) / 255.0f - clip::clip_image_mean[static_cast<std::size_t>(c)]) /
                      clip::clip_image_std[static_cast<std::size_t>(c)]);
    CHECK_THROWS((void)clip::image_to_tensor(clip::test::make_image(1, 1, image_mode::l, {3})));

    // Other sizes: 336 (ViT-L/14@336px) and an upscaled grey image.
    const image grey = clip::test::make_image(3, 2, image_mode::l, {0, 60, 120, 180, 240, 255});
    const clip::tensor big = clip::preprocess(grey, 336);
    CHECK(big.shape() == clip::shape{3, 336, 336});
    const std::vector<float> values = big.to_vector<float>();
    const auto [low, high] = std::minmax_element(values.begin(), values.end());
    CHECK(*low > -1.8f); // the normalised range of 0..255
    CHECK(*high < 2.2f);
}

TEST_CASE("the batch: [N, 3, n, n] equal to one by one, on 1 and 2 threads, errors naming the image") {
    const auto dir = clip::test::reference_dir();
    if (!dir) {
        MESSAGE("skipped: no reference fixtures");
        return;
    }
    std::vector<fs::path> files;
    for (const char* name : {"chelsea_cat.png", "rocket.jpg", "camera_gray_small.png", "astronaut_rgba_portrait.png",
                             "rocket.jpg"})
        files.push_back(*dir / "images" / name);
    std::vector<clip::tensor> singles;
    for (const auto& f : files) singles.push_back(clip::preprocess(f, 224));
    for (int threads : {1, 2}) {
        INFO(threads << " threads");
        thread_count scope(threads);
        const clip::tensor batch = clip::preprocess(files, 224); // [5, 3, 224, 224]
        REQUIRE(batch.shape() == clip::shape{5, 3, 224, 224});
        for (std::size_t i = 0; i < files.size(); ++i)
            CHECK(float_difference(batch.select(0, static_cast<std::int64_t>(i)), singles[i]).second == 0);
    }
    CHECK(clip::preprocess(std::vector<fs::path>{}, 224).shape() == clip::shape{0, 3, 224, 224});

    clip::test::image_temp_dir tmp;
    const std::vector<std::uint8_t> rocket = clip::test::file_bytes(files[1]);
    const fs::path truncated = tmp.write("truncated.jpg", std::vector<std::uint8_t>(rocket.begin(), rocket.begin() + 5000));
    const fs::path garbage = tmp.write("garbage.png", std::vector<std::uint8_t>(100, 7));
    for (int threads : {1, 2}) {
        thread_count scope(threads);
        const std::vector<fs::path> with_bad = {files[0], truncated, files[2], garbage};
        const std::string message = error_message([&] { (void)clip::preprocess(with_bad, 224); });
        INFO(message);
        CHECK(contains(message, "image 1 of 4"));
        CHECK(contains(message, truncated.string()));
        CHECK(contains(message, "and 1 more images failed"));
        CHECK_THROWS_AS((void)clip::preprocess(with_bad, 224), clip::io_error);

        // preprocess_each keeps the good images, in order, and lists the others.
        const clip::preprocessed_batch each = clip::preprocess_each(with_bad, 224);
        REQUIRE(each.images.shape() == clip::shape{2, 3, 224, 224});
        CHECK(each.loaded == std::vector<std::size_t>{0, 2});
        CHECK(float_difference(each.images.select(0, 0), singles[0]).second == 0);
        CHECK(float_difference(each.images.select(0, 1), singles[2]).second == 0);
        REQUIRE(each.failures.size() == 2);
        CHECK(each.failures[0].index == 1);
        CHECK(each.failures[0].file == truncated);
        CHECK(contains(each.failures[0].message, truncated.string()));
        CHECK(each.failures[1].index == 3);
    }
    const clip::preprocessed_batch none = clip::preprocess_each({garbage}, 224);
    CHECK(none.images.shape() == clip::shape{0, 3, 224, 224});
    CHECK(none.failures.size() == 1);
}

} // namespace image_preprocess_test
