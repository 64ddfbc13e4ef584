// clip/text/clean.hpp: OpenAI's caption cleaning, the text the BPE pre-tokeniser runs on.
//
// OpenAI's SimpleTokenizer.encode cleans each caption with
//
//   basic_clean(text)       = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
//   whitespace_clean(text)  = regex.sub(r"\s+", " ", text).strip()
//   clean(text)             = whitespace_clean(basic_clean(text)).lower()
//
// so HTML entities are decoded up to three levels deep (ftfy decodes them until none is left,
// unless the text contains a '<'), every run of White_Space (tabs, newlines, NBSP, U+3000, ...)
// becomes one space, and the result is lower-cased with str.lower(). strip() removes what
// str.isspace() calls space.
#pragma once

#include <string>
#include <string_view>

#include "clip/text/fix_text.hpp"
#include "clip/text/html.hpp"
#include "clip/text/unicode.hpp"

namespace clip::text {

namespace detail {

/// str.strip(): drops leading and trailing characters for which str.isspace() holds.
inline std::u32string_view python_strip(std::u32string_view text) noexcept {
    std::size_t begin = 0, end = text.size();
    while (begin < end && is_python_space(text[begin])) ++begin;
    while (end > begin && is_python_space(text[end - 1])) --end;
    return text.substr(begin, end - begin);
}

} // namespace detail

/// OpenAI's basic_clean: ftfy.fix_text, html.unescape twice, strip().
inline std::u32string basic_clean(std::u32string_view text) {
    const std::u32string unescaped = html_unescape(html_unescape(fix_text(text)));
    return std::u32string(detail::python_strip(unescaped));
}

/// OpenAI's whitespace_clean: every run of White_Space becomes one ' ', then strip().
inline std::u32string whitespace_clean(std::u32string_view text) {
    std::u32string collapsed;
    collapsed.reserve(text.size());
    for (std::size_t at = 0; at < text.size();) {
        if (is_white_space(text[at])) {
            collapsed += U' ';
            while (at < text.size() && is_white_space(text[at])) ++at;
        } else {
            collapsed += text[at++];
        }
    }
    return std::u32string(detail::python_strip(collapsed));
}

/// whitespace_clean(basic_clean(text)).lower(): exactly the string OpenAI's tokenizer splits.
inline std::u32string clean(std::u32string_view text) {
    // Most captions are ASCII without '&' that ftfy leaves alone: then the whole cleaning is one
    // pass that collapses whitespace and lower-cases A-Z.
    bool plain = detail::fix_text_is_identity(text);
    for (std::size_t at = 0; at < text.size() && plain; ++at) plain = text[at] != '&';
    if (!plain) return python_lower(whitespace_clean(basic_clean(text)));
    std::u32string out(text.size(), U' ');
    std::size_t length = 0;
    bool pending_space = false;
    for (const char32_t c : text) {
        if (is_white_space(c)) {
            pending_space = length > 0;
            continue;
        }
        if (pending_space) out[length++] = U' ';
        pending_space = false;
        out[length++] = (c >= 'A' && c <= 'Z') ? c + 0x20 : c;
    }
    out.resize(length);
    return out;
}

/// The same for UTF-8 text; invalid UTF-8 throws clip::error.
inline std::string clean(std::string_view utf8) { return encode_utf8(clean(decode_utf8(utf8, "clean"))); }

} // namespace clip::text
