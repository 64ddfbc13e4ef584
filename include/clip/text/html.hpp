// clip/text/html.hpp: Python's html.unescape, and the entity lookups ftfy's own unescaper uses.
//
// html_unescape(text) is CPython's html.unescape (Lib/html/__init__.py), which OpenAI's
// tokenizer applies twice after ftfy. It replaces every match of
//
//   &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
//
// scanning left to right:
//   * numeric references: the Windows-1252 reading for 0x80..0x9F (&#150; is '–'), U+FFFD for 0,
//     surrogates and values above U+10FFFF, '\r' for 13, nothing for the other C0/C1 controls and
//     the noncharacters, the character itself otherwise;
//   * named references: the name itself if it is an HTML5 entity ("amp;", or a legacy one
//     without ';' such as "amp"), else its longest prefix of two or more characters that is one
//     (so "&ampxyz" becomes "&xyz" and "&notit;" becomes "¬it;"), else left as it was.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "clip/text/html_entities.hpp"

namespace clip::text {

namespace detail {

/// The HTML5 entity called `name` (as written after '&', with its ';' if any), or nullptr.
inline const html_entity* find_html5_entity(std::u32string_view name) noexcept {
    char ascii[40];
    if (name.size() > sizeof ascii) return nullptr;
    for (std::size_t i = 0; i < name.size(); ++i) {
        if (name[i] >= 0x80) return nullptr; // every entity name is ASCII
        ascii[i] = static_cast<char>(name[i]);
    }
    const std::string_view key(ascii, name.size());
    const auto* end = std::end(html5_entities);
    const auto* found = std::lower_bound(std::begin(html5_entities), end, key,
                                         [](const html_entity& e, std::string_view k) { return e.name < k; });
    return found != end && found->name == key ? found : nullptr;
}

inline void append_entity(std::u32string& out, const html_entity& entity) {
    out += entity.first;
    if (entity.second != 0) out += entity.second;
}

/// What html.unescape makes of the numeric reference with value `value` (saturated: anything
/// above U+10FFFF behaves alike).
inline void append_numeric_reference(std::u32string& out, std::uint32_t value) {
    // html._invalid_charrefs: what browsers do with these, mostly the Windows-1252 characters.
    static constexpr char16_t windows_1252[32] = {
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
        0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};
    if (value == 0) out += U'\uFFFD';
    else if (value == 0x0D) out += U'\r';
    else if (value >= 0x80 && value <= 0x9F) out += static_cast<char32_t>(windows_1252[value - 0x80]);
    else if ((value >= 0xD800 && value <= 0xDFFF) || value > 0x10FFFF) out += U'\uFFFD';
    else if ((value >= 0x01 && value <= 0x08) || value == 0x0B || (value >= 0x0E && value <= 0x1F) ||
             (value >= 0x7F && value <= 0x9F) || (value >= 0xFDD0 && value <= 0xFDEF) || (value & 0xFFFE) == 0xFFFE)
        return; // html._invalid_codepoints: dropped
    else out += static_cast<char32_t>(value);
}

inline int hex_digit_value(char32_t c) noexcept {
    if (c >= '0' && c <= '9') return static_cast<int>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<int>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<int>(c - 'A' + 10);
    return -1;
}

/// Tries html.unescape's pattern at text[at] == '&'. On a match, appends the replacement and
/// returns the length of the match; returns 0 when nothing matches there.
inline std::size_t unescape_one(std::u32string_view text, std::size_t at, std::u32string& out) {
    std::size_t i = at + 1;
    if (i < text.size() && text[i] == '#') {
        ++i;
        const bool hex = i < text.size() && (text[i] == 'x' || text[i] == 'X');
        if (hex) ++i;
        const std::size_t digits_begin = i;
        std::uint32_t value = 0;
        const std::uint32_t base = hex ? 16 : 10;
        for (; i < text.size(); ++i) {
            const int digit = hex ? hex_digit_value(text[i]) : (text[i] >= '0' && text[i] <= '9' ? static_cast<int>(text[i] - '0') : -1);
            if (digit < 0) break;
            value = std::min<std::uint32_t>(value * base + static_cast<std::uint32_t>(digit), 0x110000);
        }
        if (i == digits_begin) {
            // "&#x" without hex digits is no numeric reference, but "&#" + "x..." was already
            // ruled out as a name by the '#', so nothing matches.
            return 0;
        }
        if (i < text.size() && text[i] == ';') ++i;
        append_numeric_reference(out, value);
        return i - at;
    }
    // A name: 1..32 characters other than \t \n \f space < & # ;, then an optional ';'.
    std::size_t end = i;
    while (end < text.size() && end - i < 32) {
        const char32_t c = text[end];
        if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';') break;
        ++end;
    }
    if (end == i) return 0;
    if (end < text.size() && text[end] == ';') ++end;
    const std::u32string_view name = text.substr(i, end - i);
    if (const html_entity* entity = find_html5_entity(name)) {
        append_entity(out, *entity);
        return end - at;
    }
    for (std::size_t length = name.size() - 1; length >= 2; --length) {
        if (const html_entity* entity = find_html5_entity(name.substr(0, length))) {
            append_entity(out, *entity);
            out += name.substr(length);
            return end - at;
        }
    }
    out += U'&';
    out += name;
    return end - at;
}

} // namespace detail

/// Python's html.unescape(text).
inline std::u32string html_unescape(std::u32string_view text) {
    if (text.find(U'&') == std::u32string_view::npos) return std::u32string(text);
    std::u32string out;
    out.reserve(text.size());
    for (std::size_t at = 0; at < text.size();) {
        if (text[at] == '&') {
            if (const std::size_t matched = detail::unescape_one(text, at, out)) {
                at += matched;
                continue;
            }
        }
        out += text[at++];
    }
    return out;
}

} // namespace clip::text
