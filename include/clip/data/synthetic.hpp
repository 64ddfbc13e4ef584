// clip/data/synthetic.hpp: a built-in dataset of procedurally drawn shapes with matching captions,
// for training a small CLIP from scratch in minutes and testing zero-shot generalisation to
// shape–colour combinations never seen in training.
//
//   clip::synthetic_dataset train(clip::synthetic_split::train, 20000, {.image_size = 64, .seed = 1});
//   clip::example e = train.get(7);   // e.g. "a large red circle on the left"
//   clip::tokenizer tok(clip::synthetic_vocabulary());
//   // zero-shot: labels synthetic_class_names(), templates synthetic_templates() (clip/zeroshot/)
//
// Each image shows one shape on a background:
//   shape     circle, square, triangle, diamond, star, cross
//   colour    red, green, blue, yellow, purple, orange (each jittered by up to ±12 per channel)
//   size      small (radius 9–12 % of the side), large (17–21 %)
//   position  left, right, top, bottom, middle (centre at 27 % / 73 % of the side, or 50 %,
//             jittered by ±4 %), with a rotation of up to ±12°
//   background  solid, linear gradient, or noise, in low-saturation tones at least 120 (RGB
//             distance) away from the shape's colour
// anti-aliased by 4 × 4 supersampling. The caption grammar, 24 words:
//   caption  := "a" [size] colour shape [where]
//   where    := "on the left" | "on the right" | "at the top" | "at the bottom" | "in the middle"
// A caption names the size with probability `mention_probability` (default 1/2) and,
// independently, the position with the same probability; colour and shape always. Captions that
// always named both would let a model match nearly every caption of a batch by colour, size and
// position alone (60 combinations for a batch of 64), so shape would hardly be learned; the
// terser captions make shape the main cue among pictures of one colour, as detail varies in real
// captions.
//
// The split: six (shape, colour) combinations are held out of training, one per shape and one
// per colour, so every shape and every colour is still seen: circle–purple, square–orange,
// triangle–red, diamond–green, star–blue, cross–yellow (colour = shape + 4 mod 6 in the orders
// above). synthetic_split::train draws only the other 30 combinations; synthetic_split::test
// draws all 36, from a different random stream. Zero-shot classes are the 36 pairs, named
// "red circle"; with the 18 templates (every caption form: "a {}", "a small {}", "a {} at the
// top", "a large {} on the left", ...) a classifier ensembles over them
// (clip/zeroshot/classifier.hpp).
//
// Determinism: sample i of a split is a pure function of (seed, split, i). Within each run of
// T consecutive samples [cT, (c + 1)T), where T is the number of (shape, colour, size, position)
// tuples of the split (300 for train, 360 for test), every tuple appears once, in an order
// shuffled per run; the jitter, rotation and background come from counter_rng(seed, synthetic,
// split, i) (clip/data/counter_rng.hpp), which words the caption names from counter_rng(seed,
// synthetic, split, i, 1).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "clip/core/error.hpp"
#include "clip/data/counter_rng.hpp"
#include "clip/data/dataset.hpp"
#include "clip/data/vocabulary_builder.hpp"
#include "clip/image/image.hpp"
#include "clip/text/vocabulary.hpp"

namespace clip {

inline constexpr std::array<std::string_view, 6> synthetic_shapes = {"circle", "square", "triangle", "diamond", "star", "cross"};
inline constexpr std::array<std::string_view, 6> synthetic_colours = {"red", "green", "blue", "yellow", "purple", "orange"};
inline constexpr std::array<std::string_view, 2> synthetic_sizes = {"small", "large"};
inline constexpr std::array<std::string_view, 5> synthetic_positions = {"left", "right", "top", "bottom", "middle"};

/// What one synthetic image shows: indices into the four tables above.
struct synthetic_attributes {
    int shape = 0, colour = 0, size = 0, position = 0;
    bool says_size = true, says_where = true; // whether the caption names the size, the position
    bool operator==(const synthetic_attributes&) const = default;
};

enum class synthetic_split : std::uint8_t { train, test };

/// Whether the (shape, colour) combination is held out of the training split.
constexpr bool synthetic_held_out(int shape, int colour) noexcept { return colour == (shape + 4) % 6; }

/// "on the left", "at the top", "in the middle", ...
constexpr std::string_view synthetic_where(int position) noexcept {
    constexpr std::array<std::string_view, 5> phrases = {"on the left", "on the right", "at the top", "at the bottom", "in the middle"};
    return phrases[static_cast<std::size_t>(position)];
}

/// "red circle": the zero-shot class name of a (shape, colour) pair.
inline std::string synthetic_class_name(int shape, int colour) {
    return std::string(synthetic_colours[static_cast<std::size_t>(colour)]) + " " +
           std::string(synthetic_shapes[static_cast<std::size_t>(shape)]);
}

/// Class index of a (shape, colour) pair: shape-major, 0..35.
constexpr int synthetic_class(int shape, int colour) noexcept {
    return shape * static_cast<int>(synthetic_colours.size()) + colour;
}

/// The 36 class names, by class index.
inline std::vector<std::string> synthetic_class_names() {
    std::vector<std::string> names;
    for (int s = 0; s < static_cast<int>(synthetic_shapes.size()); ++s)
        for (int c = 0; c < static_cast<int>(synthetic_colours.size()); ++c) names.push_back(synthetic_class_name(s, c));
    return names;
}

/// The 18 caption templates, one per caption form: "a {}", "a small {}", "a large {}",
/// "a {} on the left", ..., "a small {} on the left", ... ("{}" stands for the class name, Python
/// str.format style, as clip/zeroshot/templates.hpp formats them).
inline std::vector<std::string> synthetic_templates() {
    std::vector<std::string> templates{"a {}"};
    for (const std::string_view size : synthetic_sizes) templates.push_back("a " + std::string(size) + " {}");
    for (int p = 0; p < static_cast<int>(synthetic_positions.size()); ++p)
        templates.push_back("a {} " + std::string(synthetic_where(p)));
    for (const std::string_view size : synthetic_sizes)
        for (int p = 0; p < static_cast<int>(synthetic_positions.size()); ++p)
            templates.push_back("a " + std::string(size) + " {} " + std::string(synthetic_where(p)));
    return templates;
}

/// "a large red circle on the left", "a red circle at the top", "a small blue star", ...
inline std::string synthetic_caption(const synthetic_attributes& a) {
    std::string caption = "a ";
    if (a.says_size) caption += std::string(synthetic_sizes[static_cast<std::size_t>(a.size)]) + " ";
    caption += synthetic_class_name(a.shape, a.colour);
    if (a.says_where) caption += " " + std::string(synthetic_where(a.position));
    return caption;
}

/// Every caption the grammar can produce (36 classes × 18 forms = 648).
inline std::vector<std::string> synthetic_captions() {
    std::vector<std::string> captions;
    for (const std::string& name : synthetic_class_names())
        for (const std::string& form : synthetic_templates()) {
            const std::size_t at = form.find("{}");
            captions.push_back(form.substr(0, at) + name + form.substr(at + 2));
        }
    return captions;
}

/// The vocabulary that makes each of the 24 caption words one token (clip/data/vocabulary_builder.hpp):
/// 512 byte symbols, the merges, then <|startoftext|> and <|endoftext|>.
inline bpe_vocabulary synthetic_vocabulary() {
    const std::vector<std::string> captions = synthetic_captions();
    return build_word_vocabulary(captions);
}

namespace detail::synthetic {

/// The named colours, in synthetic_colours order.
constexpr std::array<std::array<int, 3>, 6> colour_rgb = {{
    {215, 40, 40},  // red
    {40, 170, 70},  // green
    {40, 90, 220},  // blue
    {235, 215, 40}, // yellow
    {140, 60, 190}, // purple
    {245, 140, 30}, // orange
}};

struct point {
    double x, y;
};

/// The outline of a shape of radius about 1 centred at the origin (y down), or empty for the
/// circle. Sizes are balanced so that the shapes cover similar areas.
inline std::vector<point> outline(int shape) {
    constexpr double pi = 3.14159265358979323846;
    // `k` points at `outer` from the centre, the first straight up, with `inner` points between
    // them when inner > 0 (a star).
    const auto points = [](int k, double outer, double inner) {
        std::vector<point> p;
        const int steps = inner > 0 ? 2 * k : k;
        for (int i = 0; i < steps; ++i) {
            const double angle = -pi / 2 + 2 * pi * i / steps, r = (inner > 0 && i % 2 == 1) ? inner : outer;
            p.push_back({r * std::cos(angle), r * std::sin(angle)});
        }
        return p;
    };
    constexpr double a = 0.33; // half the width of the cross's bars
    switch (shape) {
    case 1: return {{-0.85, -0.85}, {0.85, -0.85}, {0.85, 0.85}, {-0.85, 0.85}}; // square
    case 2: return points(3, 1.1, 0);                                          // triangle
    case 3: return points(4, 1.1, 0);                                          // diamond
    case 4: return points(5, 1.15, 0.48);                                      // star
    case 5: return {{-a, -1}, {a, -1}, {a, -a}, {1, -a}, {1, a}, {a, a}, {a, 1}, {-a, 1}, {-a, a}, {-1, a}, {-1, -a}, {-a, -a}};
    default: return {}; // circle
    }
}

/// Whether (x, y) is inside the polygon (crossing number; the outlines are simple polygons).
inline bool inside(const std::vector<point>& polygon, double x, double y) noexcept {
    bool in = false;
    for (std::size_t i = 0, j = polygon.size() - 1; i < polygon.size(); j = i++) {
        const point& a = polygon[i];
        const point& b = polygon[j];
        if ((a.y > y) != (b.y > y) && x < (b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x) in = !in;
    }
    return in;
}

inline std::uint8_t to_byte(double v) noexcept { return static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }

/// A low-saturation background tone at least 120 away from `avoid`.
inline std::array<double, 3> background_tone(counter_rng& rng, const std::array<double, 3>& avoid) {
    std::array<double, 3> tone{};
    for (int attempt = 0;; ++attempt) {
        const double grey = rng.uniform(20, 235);
        for (double& c : tone) c = std::clamp(grey + rng.uniform(-30, 30), 0.0, 255.0);
        double distance = 0;
        for (int c = 0; c < 3; ++c) distance += (tone[c] - avoid[c]) * (tone[c] - avoid[c]);
        if (distance >= 120.0 * 120.0 || attempt == 63) return tone;
    }
}

} // namespace detail::synthetic

/// Draws the image of `a` at `size` × `size` (RGB), taking the jitter, rotation and background
/// from `rng`.
inline image draw_synthetic(const synthetic_attributes& a, std::int64_t size, counter_rng& rng) {
    namespace s = detail::synthetic;
    detail::check<shape_error>(size >= 8, "draw_synthetic: the image size must be at least 8, got ", size);
    detail::check(a.shape >= 0 && a.shape < 6 && a.colour >= 0 && a.colour < 6 && a.size >= 0 && a.size < 2 && a.position >= 0 &&
                      a.position < 5,
                  "draw_synthetic: attributes out of range");
    const auto n = static_cast<double>(size);
    std::array<double, 3> colour{};
    for (int c = 0; c < 3; ++c) colour[c] = std::clamp(s::colour_rgb[a.colour][c] + rng.uniform(-12, 12), 0.0, 255.0);
    const double radius = n * (a.size == 0 ? rng.uniform(0.09, 0.12) : rng.uniform(0.17, 0.21));
    constexpr std::array<std::array<double, 2>, 5> centres = {{{0.27, 0.5}, {0.73, 0.5}, {0.5, 0.27}, {0.5, 0.73}, {0.5, 0.5}}};
    const double cx = n * (centres[a.position][0] + rng.uniform(-0.04, 0.04));
    const double cy = n * (centres[a.position][1] + rng.uniform(-0.04, 0.04));
    const double angle = rng.uniform(-12.0, 12.0) * 3.14159265358979323846 / 180.0;
    const double cos_a = std::cos(angle), sin_a = std::sin(angle);

    // Background: 0 solid, 1 linear gradient between two tones, 2 noise around one tone.
    const int kind = static_cast<int>(rng.below(3));
    const std::array<double, 3> tone = s::background_tone(rng, colour);
    const std::array<double, 3> other = kind == 1 ? s::background_tone(rng, colour) : tone;
    const double direction = rng.uniform(0, 2 * 3.14159265358979323846);
    const double dx = std::cos(direction), dy = std::sin(direction);
    const double noise = kind == 2 ? rng.uniform(8, 24) : 0.0;

    image out(size, size, image_mode::rgb);
    const std::vector<s::point> polygon = s::outline(a.shape);
    constexpr int samples = 4; // per axis
    const double reach = radius * 1.2;
    for (std::int64_t y = 0; y < size; ++y) {
        std::uint8_t* row = out.row(y);
        for (std::int64_t x = 0; x < size; ++x) {
            // Position along the gradient in [0, 1].
            const double t = std::clamp(0.5 + ((x + 0.5) / n - 0.5) * dx + ((y + 0.5) / n - 0.5) * dy, 0.0, 1.0);
            const double jitter = kind == 2 ? rng.uniform(-noise, noise) : 0.0;
            int covered = 0;
            if (std::abs(x + 0.5 - cx) <= reach + 1 && std::abs(y + 0.5 - cy) <= reach + 1) {
                for (int sy = 0; sy < samples; ++sy)
                    for (int sx = 0; sx < samples; ++sx) {
                        const double px = x + (sx + 0.5) / samples - cx, py = y + (sy + 0.5) / samples - cy;
                        // Into the shape's frame: rotate back, scale to radius 1.
                        const double u = (cos_a * px + sin_a * py) / radius, v = (-sin_a * px + cos_a * py) / radius;
                        covered += polygon.empty() ? (u * u + v * v <= 1.0) : s::inside(polygon, u, v);
                    }
            }
            const double coverage = covered / static_cast<double>(samples * samples);
            for (int c = 0; c < 3; ++c) {
                const double background = tone[c] + (other[c] - tone[c]) * t + jitter;
                row[3 * x + c] = s::to_byte(background + (colour[c] - background) * coverage);
            }
        }
    }
    return out;
}

struct synthetic_options {
    std::int64_t image_size = 64;
    std::uint64_t seed = 0;
    double mention_probability = 0.5; ///< of naming the size, and of naming the position
};

/// `size` samples of a split (see the header); the sample count is free, the content of sample
/// i does not depend on it.
class synthetic_dataset final : public dataset {
public:
    synthetic_dataset(synthetic_split split, std::size_t size, synthetic_options options = {})
        : split_(split), size_(size), options_(options) {
        detail::check<shape_error>(options.image_size >= 8, "synthetic_dataset: the image size must be at least 8, got ",
                                   options.image_size);
        detail::check(options.mention_probability >= 0 && options.mention_probability <= 1,
                      "synthetic_dataset: mention_probability must be in [0, 1], got ", options.mention_probability);
        for (int s = 0; s < 6; ++s)
            for (int c = 0; c < 6; ++c) {
                if (split == synthetic_split::train && synthetic_held_out(s, c)) continue;
                for (int z = 0; z < 2; ++z)
                    for (int p = 0; p < 5; ++p) tuples_.push_back({s, c, z, p});
            }
    }

    std::size_t size() const override { return size_; }

    example get(std::size_t i) const override {
        const synthetic_attributes a = attributes(i);
        counter_rng rng(options_.seed, rng_purpose::synthetic, static_cast<std::uint64_t>(split_), i);
        return {draw_synthetic(a, options_.image_size, rng), synthetic_caption(a)};
    }

    std::string name(std::size_t i) const override {
        return detail::message("synthetic ", split_ == synthetic_split::train ? "train" : "test", " sample ", i);
    }

    /// What sample i shows.
    synthetic_attributes attributes(std::size_t i) const {
        detail::check<index_error>(i < size_, "synthetic_dataset: sample ", i, " of ", size_);
        const std::size_t t = tuples_.size(), run = i / t;
        // The run's order: a Fisher–Yates shuffle of the tuples, from the run's own stream.
        std::vector<std::uint16_t> order(t);
        std::iota(order.begin(), order.end(), std::uint16_t{0});
        counter_rng rng(options_.seed, rng_purpose::synthetic, static_cast<std::uint64_t>(split_), ~std::uint64_t{0}, run);
        for (std::size_t k = t - 1; k > 0; --k) std::swap(order[k], order[rng.below(k + 1)]);
        synthetic_attributes a = tuples_[order[i % t]];
        counter_rng words(options_.seed, rng_purpose::synthetic, static_cast<std::uint64_t>(split_), i, 1);
        a.says_size = words.uniform() < options_.mention_probability;
        a.says_where = words.uniform() < options_.mention_probability;
        return a;
    }
    /// The (shape, colour) class index of sample i (synthetic_class).
    int class_index(std::size_t i) const {
        const synthetic_attributes a = attributes(i);
        return synthetic_class(a.shape, a.colour);
    }

    synthetic_split split() const noexcept { return split_; }
    const synthetic_options& options() const noexcept { return options_; }

private:
    synthetic_split split_;
    std::size_t size_;
    synthetic_options options_;
    std::vector<synthetic_attributes> tuples_; // the split's (shape, colour, size, position) tuples
};

} // namespace clip
