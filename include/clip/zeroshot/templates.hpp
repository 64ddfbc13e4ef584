// clip/zeroshot/templates.hpp: prompt templates for zero-shot classification.
//
//   imagenet_templates()        the 80 templates of OpenAI's ImageNet prompt-engineering notebook
//   default_templates()         {"a photo of a {}."}, CLIP's single default prompt
//   load_templates(path)        one template per line (blank lines skipped)
//   format_template(t, label)   Python's t.format(label) for the forms templates use: "{}" and
//                               "{0}" become the label, "{{" and "}}" literal braces
//   read_labels(path)           one label per line (trimmed, blank lines skipped)
//   split_labels("a,b,c")       comma-separated labels (trimmed)
#pragma once

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "clip/core/error.hpp"

namespace clip {

/// OpenAI's 80 ImageNet prompt templates (CLIP's Prompt_Engineering_for_ImageNet notebook), in
/// the notebook's order.
inline const std::vector<std::string>& imagenet_templates() {
    static const std::vector<std::string> templates = {
        "a bad photo of a {}.",
        "a photo of many {}.",
        "a sculpture of a {}.",
        "a photo of the hard to see {}.",
        "a low resolution photo of the {}.",
        "a rendering of a {}.",
        "graffiti of a {}.",
        "a bad photo of the {}.",
        "a cropped photo of the {}.",
        "a tattoo of a {}.",
        "the embroidered {}.",
        "a photo of a hard to see {}.",
        "a bright photo of a {}.",
        "a photo of a clean {}.",
        "a photo of a dirty {}.",
        "a dark photo of the {}.",
        "a drawing of a {}.",
        "a photo of my {}.",
        "the plastic {}.",
        "a photo of the cool {}.",
        "a close-up photo of a {}.",
        "a black and white photo of the {}.",
        "a painting of the {}.",
        "a painting of a {}.",
        "a pixelated photo of the {}.",
        "a sculpture of the {}.",
        "a bright photo of the {}.",
        "a cropped photo of a {}.",
        "a plastic {}.",
        "a photo of the dirty {}.",
        "a jpeg corrupted photo of a {}.",
        "a blurry photo of the {}.",
        "a photo of the {}.",
        "a good photo of the {}.",
        "a rendering of the {}.",
        "a {} in a video game.",
        "a photo of one {}.",
        "a doodle of a {}.",
        "a close-up photo of the {}.",
        "a photo of a {}.",
        "the origami {}.",
        "the {} in a video game.",
        "a sketch of a {}.",
        "a doodle of the {}.",
        "a origami {}.",
        "a low resolution photo of a {}.",
        "the toy {}.",
        "a rendition of the {}.",
        "a photo of the clean {}.",
        "a photo of a large {}.",
        "a rendition of a {}.",
        "a photo of a nice {}.",
        "a photo of a weird {}.",
        "a blurry photo of a {}.",
        "a cartoon {}.",
        "art of a {}.",
        "a sketch of the {}.",
        "a embroidered {}.",
        "a pixelated photo of a {}.",
        "itap of the {}.",
        "a jpeg corrupted photo of the {}.",
        "a good photo of a {}.",
        "a plushie {}.",
        "a photo of the nice {}.",
        "a photo of the small {}.",
        "a photo of the weird {}.",
        "the cartoon {}.",
        "art of the {}.",
        "a drawing of the {}.",
        "a photo of the large {}.",
        "a black and white photo of a {}.",
        "the plushie {}.",
        "a dark photo of a {}.",
        "itap of a {}.",
        "graffiti of the {}.",
        "a toy {}.",
        "itap of my {}.",
        "a photo of a cool {}.",
        "a photo of a small {}.",
        "a tattoo of the {}.",
    };
    return templates;
}

/// CLIP's default single prompt.
inline const std::vector<std::string>& default_templates() {
    static const std::vector<std::string> templates = {"a photo of a {}."};
    return templates;
}

namespace detail {

/// The label's slots in `t`, checked: Python's str.format would accept other fields ("{name}",
/// "{1}") and then fail or do something no template means, so they are refused here.
inline void check_template(std::string_view t) {
    std::size_t slots = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        if (t[i] == '{') {
            if (i + 1 < t.size() && t[i + 1] == '{') {
                ++i;
                continue;
            }
            const std::size_t close = t.find('}', i);
            if (close == std::string_view::npos)
                throw error(message("template \"", t, "\": '{' at byte ", i, " is never closed (write {{ for a literal brace)"));
            const std::string_view field = t.substr(i + 1, close - i - 1);
            if (!field.empty() && field != "0")
                throw error(message("template \"", t, "\": unsupported field {", field, "} (use {} for the label)"));
            ++slots;
            i = close;
        } else if (t[i] == '}') {
            if (i + 1 < t.size() && t[i + 1] == '}') {
                ++i;
                continue;
            }
            throw error(message("template \"", t, "\": single '}' at byte ", i, " (write }} for a literal brace)"));
        }
    }
    if (slots == 0) throw error(message("template \"", t, "\" has no {} for the label: every class would get the same text"));
}

inline std::string_view trim(std::string_view s) {
    const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    return s;
}

/// The lines of a text file, without line terminators ("\n" or "\r\n").
inline std::vector<std::string> read_lines(const std::filesystem::path& path, const char* what) {
    std::error_code code;
    if (std::filesystem::is_directory(path, code)) throw io_error(message(what, " ", path.string(), ": a directory, not a file"));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw io_error(message(what, " ", path.string(), ": cannot open (", std::filesystem::exists(path, code) ? "permission denied?" : "no such file", ")"));
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(std::move(line));
    }
    if (in.bad()) throw io_error(message(what, " ", path.string(), ": read error"));
    return lines;
}

/// Labels must be distinct: a repeated label would split its probability between two rows.
inline void check_labels(const std::vector<std::string>& labels, const std::string& source) {
    if (labels.empty()) throw error(message(source, ": no labels"));
    std::set<std::string_view> seen;
    for (const std::string& label : labels)
        if (!seen.insert(label).second) throw error(message(source, ": label \"", label, "\" appears twice"));
}

} // namespace detail

/// `t.format(label)` as Python does it for the template forms above.
inline std::string format_template(std::string_view t, std::string_view label) {
    detail::check_template(t);
    std::string out;
    out.reserve(t.size() + label.size());
    for (std::size_t i = 0; i < t.size(); ++i) {
        if ((t[i] == '{' || t[i] == '}') && i + 1 < t.size() && t[i + 1] == t[i]) {
            out += t[i++];
        } else if (t[i] == '{') {
            out += label;
            i = t.find('}', i);
        } else {
            out += t[i];
        }
    }
    return out;
}

/// Templates from a file, one per line; blank lines are skipped and every template is checked.
inline std::vector<std::string> load_templates(const std::filesystem::path& path) {
    std::vector<std::string> templates;
    std::size_t number = 0;
    for (std::string& line : detail::read_lines(path, "templates file")) {
        ++number;
        if (detail::trim(line).empty()) continue;
        try {
            detail::check_template(line);
        } catch (const error& e) {
            throw error(detail::message("templates file ", path.string(), " line ", number, ": ", e.what()));
        }
        templates.push_back(std::move(line));
    }
    if (templates.empty()) throw error(detail::message("templates file ", path.string(), ": no templates (one per line, {} for the label)"));
    return templates;
}

/// Labels from a file, one per line, trimmed; blank lines are skipped; labels must be distinct.
inline std::vector<std::string> read_labels(const std::filesystem::path& path) {
    std::vector<std::string> labels;
    for (const std::string& line : detail::read_lines(path, "labels file"))
        if (const std::string_view label = detail::trim(line); !label.empty()) labels.emplace_back(label);
    detail::check_labels(labels, "labels file " + path.string());
    return labels;
}

/// Comma-separated labels, trimmed ("cat, dog,car"); empty items are an error, as is a repeat.
inline std::vector<std::string> split_labels(std::string_view text) {
    std::vector<std::string> labels;
    std::size_t start = 0;
    while (true) {
        const std::size_t comma = text.find(',', start);
        const std::string_view item = detail::trim(text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
        if (item.empty())
            throw error(detail::message("labels \"", text, "\": label ", labels.size() + 1, " is empty"));
        labels.emplace_back(item);
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    detail::check_labels(labels, detail::message("labels \"", text, "\""));
    return labels;
}

} // namespace clip
