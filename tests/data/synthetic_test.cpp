// Tests for clip/data/synthetic.hpp: samples are a pure function of (seed, split, i); the
// held-out combinations leave every shape and colour in training; captions, classes and
// templates agree; the drawn shape has the caption's colour, size and position; the vocabulary
// makes every caption word one token.
#include "../support.hpp"

#include <clip/data/synthetic.hpp>

#include <algorithm>
#include <array>
#include <map>
#include <numeric>
#include <set>
#include <tuple>

namespace data_synthetic_test {

namespace {

/// Pixels within 45 (RGB distance) of the named colour: where the shape is.
struct blob {
    int count = 0;
    double x = 0, y = 0; // centroid, as fractions of the side
};

blob find_colour(const clip::image& img, int colour) {
    const auto& rgb = clip::detail::synthetic::colour_rgb[static_cast<std::size_t>(colour)];
    blob b;
    for (std::int64_t y = 0; y < img.height(); ++y)
        for (std::int64_t x = 0; x < img.width(); ++x) {
            const std::uint8_t* p = img.row(y) + 3 * x;
            double d = 0;
            for (int c = 0; c < 3; ++c) d += (p[c] - rgb[static_cast<std::size_t>(c)]) * (p[c] - rgb[static_cast<std::size_t>(c)]);
            if (d <= 45.0 * 45.0) {
                ++b.count;
                b.x += (x + 0.5) / static_cast<double>(img.width());
                b.y += (y + 0.5) / static_cast<double>(img.height());
            }
        }
    if (b.count) {
        b.x /= b.count;
        b.y /= b.count;
    }
    return b;
}

} // namespace

TEST_CASE("sample i is a pure function of (seed, split, i)") {
    const clip::synthetic_dataset a(clip::synthetic_split::train, 1000, {.image_size = 48, .seed = 3});
    const clip::synthetic_dataset b(clip::synthetic_split::train, 20, {.image_size = 48, .seed = 3});
    const clip::synthetic_dataset other_seed(clip::synthetic_split::train, 20, {.image_size = 48, .seed = 4});
    for (const std::size_t i : {0u, 7u, 19u}) {
        const clip::example x = a.get(i), y = b.get(i), again = a.get(i);
        CHECK(x.caption == y.caption);
        CHECK(x.picture.pixels().to_vector<std::uint8_t>() == y.picture.pixels().to_vector<std::uint8_t>());
        CHECK(x.picture.pixels().to_vector<std::uint8_t>() == again.picture.pixels().to_vector<std::uint8_t>());
        CHECK(x.picture.pixels().to_vector<std::uint8_t>() != other_seed.get(i).picture.pixels().to_vector<std::uint8_t>());
        CHECK(x.picture.width() == 48);
        CHECK(x.picture.mode() == clip::image_mode::rgb);
        CHECK(x.caption == clip::synthetic_caption(a.attributes(i)));
    }
    CHECK(a.name(7) == "synthetic train sample 7");
    CHECK(clip::test::error_message([&] { b.get(20); }) != "");
}

TEST_CASE("the held-out combinations: one per shape and per colour, never in training") {
    std::set<int> shapes, colours;
    int held = 0;
    for (int s = 0; s < 6; ++s)
        for (int c = 0; c < 6; ++c)
            if (clip::synthetic_held_out(s, c)) {
                ++held;
                shapes.insert(s);
                colours.insert(c);
            }
    CHECK(held == 6);
    CHECK(shapes.size() == 6);
    CHECK(colours.size() == 6);
    CHECK(clip::synthetic_held_out(0, 4)); // purple circle
    CHECK(clip::synthetic_class_name(0, 4) == "purple circle");

    // Each run of T samples is every tuple of the split once; train has no held-out pair.
    const clip::synthetic_dataset train(clip::synthetic_split::train, 900);
    const clip::synthetic_dataset test(clip::synthetic_split::test, 720);
    for (const auto& [data, tuples] : {std::pair{&train, 300}, std::pair{&test, 360}}) {
        for (int run = 0; run < 2; ++run) {
            std::set<std::tuple<int, int, int, int>> seen;
            for (int i = run * tuples; i < (run + 1) * tuples; ++i) {
                const clip::synthetic_attributes a = data->attributes(static_cast<std::size_t>(i));
                seen.insert({a.shape, a.colour, a.size, a.position});
                if (data == &train) REQUIRE_FALSE(clip::synthetic_held_out(a.shape, a.colour));
            }
            CHECK(seen.size() == static_cast<std::size_t>(tuples));
        }
        // Runs are shuffled differently.
        const auto tuple = [&](std::size_t i) {
            const clip::synthetic_attributes a = data->attributes(i);
            return std::tuple{a.shape, a.colour, a.size, a.position};
        };
        CHECK_FALSE(tuple(0) == tuple(static_cast<std::size_t>(tuples)));
    }
    std::set<int> test_classes;
    for (std::size_t i = 0; i < 360; ++i) test_classes.insert(test.class_index(i));
    CHECK(test_classes.size() == 36);
}

TEST_CASE("class names, templates and captions agree") {
    const std::vector<std::string> names = clip::synthetic_class_names();
    REQUIRE(names.size() == 36);
    CHECK(names[static_cast<std::size_t>(clip::synthetic_class(2, 3))] == "yellow triangle");
    const std::vector<std::string> templates = clip::synthetic_templates();
    REQUIRE(templates.size() == 18);
    CHECK(templates[0] == "a {}");
    CHECK(templates[17] == "a large {} in the middle");
    std::set<std::string> from_templates;
    for (const std::string& name : names)
        for (const std::string& t : templates) from_templates.insert(clip::format_template(t, name));
    const std::vector<std::string> captions = clip::synthetic_captions();
    CHECK(std::set<std::string>(captions.begin(), captions.end()) == from_templates);
    CHECK(captions.size() == 36 * 18);
    CHECK(clip::synthetic_caption({4, 1, 1, 4}) == "a large green star in the middle");
    CHECK(clip::synthetic_caption({4, 1, 1, 4, false, true}) == "a green star in the middle");
    CHECK(clip::synthetic_caption({4, 1, 0, 2, true, false}) == "a small green star");
    CHECK(clip::synthetic_caption({4, 1, 0, 2, false, false}) == "a green star");
}

TEST_CASE("captions name the size and the position each with mention_probability") {
    const clip::synthetic_dataset half(clip::synthetic_split::train, 4000, {.seed = 2});
    std::map<std::pair<bool, bool>, int> forms;
    for (std::size_t i = 0; i < half.size(); ++i) {
        const clip::synthetic_attributes a = half.attributes(i);
        ++forms[{a.says_size, a.says_where}];
    }
    REQUIRE(forms.size() == 4);
    for (const auto& [form, count] : forms) CHECK(std::abs(count - 1000) < 120); // 1000 ± 4.4 sd
    for (const double p : {0.0, 1.0}) {
        const clip::synthetic_dataset fixed(clip::synthetic_split::train, 300, {.seed = 2, .mention_probability = p});
        for (std::size_t i = 0; i < fixed.size(); ++i) {
            const clip::synthetic_attributes a = fixed.attributes(i);
            REQUIRE(a.says_size == (p == 1.0));
            REQUIRE(a.says_where == (p == 1.0));
            // The picture does not depend on the wording.
            if (i < 3) CHECK(fixed.get(i).picture.pixels().to_vector<std::uint8_t>() == half.get(i).picture.pixels().to_vector<std::uint8_t>());
        }
    }
    CHECK(clip::test::error_message([] { clip::synthetic_dataset(clip::synthetic_split::train, 1, {.mention_probability = 1.5}); })
              .find("mention_probability") != std::string::npos);
}

TEST_CASE("the vocabulary makes each of the 24 words one token") {
    const clip::tokenizer tok(clip::synthetic_vocabulary());
    std::set<std::int64_t> words;
    for (const std::string& caption : clip::synthetic_captions()) {
        const std::vector<std::int64_t> ids = tok.encode(caption);
        const std::size_t count = static_cast<std::size_t>(std::count(caption.begin(), caption.end(), ' ')) + 1;
        REQUIRE(ids.size() == count); // a [size] colour shape [three words of the position]
        words.insert(ids.begin(), ids.end());
    }
    CHECK(words.size() == 24);
    CHECK(tok.end_of_text() == static_cast<std::int64_t>(tok.vocabulary().size()) - 1);
    CHECK(tok.vocabulary().size() < 700);
}

TEST_CASE("the drawn shape has the caption's colour, size and position") {
    const clip::synthetic_dataset data(clip::synthetic_split::test, 720, {.image_size = 64, .seed = 11});
    std::map<int, std::vector<int>> area_by_size;
    for (std::size_t i = 0; i < 720; i += 3) {
        const clip::synthetic_attributes a = data.attributes(i);
        const clip::example e = data.get(i);
        INFO(i << ": " << e.caption);
        const blob b = find_colour(e.picture, a.colour);
        // The smallest shape (a small star) covers about 50 pixels; the background none of them.
        REQUIRE(b.count >= 25);
        CHECK(b.count <= 64 * 64 / 3);
        area_by_size[a.size].push_back(b.count);
        const double expected_x = a.position == 0 ? 0.27 : a.position == 1 ? 0.73 : 0.5;
        const double expected_y = a.position == 2 ? 0.27 : a.position == 3 ? 0.73 : 0.5;
        CHECK(std::abs(b.x - expected_x) < 0.1);
        CHECK(std::abs(b.y - expected_y) < 0.1);
    }
    // Large shapes cover about three times the pixels of small ones.
    const auto mean = [](const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size()); };
    CHECK(mean(area_by_size[1]) > 2.0 * mean(area_by_size[0]));
}

TEST_CASE("edges are anti-aliased: colours between the shape's and the background's") {
    // A solid background (the four corners equal) and a solid shape would give two colours;
    // supersampled edges give the mixtures.
    const clip::synthetic_attributes circle{0, 2, 1, 4}; // a large blue circle in the middle
    int solid = 0;
    for (std::uint64_t seed = 0; seed < 40 && solid < 3; ++seed) {
        clip::counter_rng rng(seed);
        const clip::image img = clip::draw_synthetic(circle, 64, rng);
        const auto pixel = [&](std::int64_t x, std::int64_t y) {
            const std::uint8_t* p = img.row(y) + 3 * x;
            return std::array<int, 3>{p[0], p[1], p[2]};
        };
        if (pixel(0, 0) != pixel(63, 0) || pixel(0, 0) != pixel(0, 63) || pixel(0, 0) != pixel(63, 63)) continue;
        ++solid;
        std::set<std::array<int, 3>> colours;
        for (std::int64_t y = 0; y < 64; ++y)
            for (std::int64_t x = 0; x < 64; ++x) colours.insert(pixel(x, y));
        CHECK(colours.size() >= 8);
    }
    CHECK(solid >= 1);
    clip::counter_rng rng(1);
    CHECK(clip::test::error_message([&] { clip::draw_synthetic({6, 0, 0, 0}, 64, rng); }) != "");
}

} // namespace data_synthetic_test
