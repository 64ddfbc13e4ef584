// clip/io/json.hpp: the one JSON parser of the library (nlohmann/json), behind a function that
// turns its failures into clip::io_error.
//
// Every reader that meets JSON (the safetensors header, model configs, tokenizer files) parses it
// here, so they all reject the same malformed input with the same kind of message. Beyond what
// nlohmann checks (syntax, UTF-8), `parse_json` rejects an object with the same key twice:
// nlohmann would keep the last value silently, and in a safetensors header that would hide a
// tensor whose bytes still occupy the data section.
#pragma once

#include <exception>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "clip/core/error.hpp"

namespace clip::detail {

using json = nlohmann::json;
/// Keeps the keys in insertion order: what writers use so that a file lists things in the order
/// the caller gave them.
using ordered_json = nlohmann::ordered_json;

/// Parses `text` as one JSON document. `context` starts every error message and should name the
/// file and the part of it (`safetensors "/models/vit.safetensors": header`).
inline json parse_json(std::string_view text, std::string_view context) {
    // One set of seen keys per open object, innermost last.
    std::vector<std::set<std::string>> open_objects;
    const json::parser_callback_t reject_duplicate_keys = [&](int, json::parse_event_t event, json& parsed) {
        switch (event) {
        case json::parse_event_t::object_start: open_objects.emplace_back(); break;
        case json::parse_event_t::object_end: open_objects.pop_back(); break;
        case json::parse_event_t::key: {
            const auto& key = parsed.get_ref<const std::string&>();
            if (!open_objects.back().insert(key).second)
                throw io_error(message(context, ": duplicate key \"", key, "\" in a JSON object"));
            break;
        }
        default: break;
        }
        return true;
    };
    try {
        return json::parse(text.begin(), text.end(), reject_duplicate_keys);
    } catch (const json::exception& e) {
        throw io_error(message(context, ": invalid JSON: ", e.what()));
    }
}

} // namespace clip::detail
