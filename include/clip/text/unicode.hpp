// clip/text/unicode.hpp: the Unicode facts the tokenizer needs, with Python's semantics.
//
// OpenAI's tokenizer is Python: its text is a `str` of code points, its cleaning calls
// `str.lower()`, `str.strip()` and `unicodedata.normalize`, and its pre-tokeniser is a `regex`
// pattern over `\p{L}`, `\p{N}` and `\s`. This header gives the same operations on
// std::u32string, with utf8proc (Debian's libutf8proc-dev) as the Unicode database:
//
//   decode_utf8 / encode_utf8   UTF-8 <-> code points; invalid UTF-8 (overlong forms, UTF-16
//                               surrogates, truncated sequences, stray continuation bytes, values
//                               above U+10FFFF) is a clip::error naming the byte offset, never UB
//   decode_utf8_replace         bytes.decode("utf-8", errors="replace"): each maximal invalid
//                               subpart becomes one U+FFFD, exactly as CPython does
//   is_letter, is_number        regex's \p{L} (Lu Ll Lt Lm Lo) and \p{N} (Nd Nl No)
//   is_white_space              regex's \s: the Unicode White_Space property
//   is_python_space             str.isspace() (White_Space plus U+001C..U+001F), what `re` calls \s
//   is_python_word              `re`'s \w: letters, numbers and '_'
//   nfc, nfkc                   unicodedata.normalize("NFC" / "NFKC")
//   python_lower                str.lower(): full lower-case mapping (İ becomes "i̇") and the
//                               Final_Sigma rule (Σ becomes ς at the end of a word, σ elsewhere)
//
// The Unicode version is utf8proc's (15.0 for Debian 12's 2.8); Python's unicodedata may be a
// version or two older, which only matters for characters assigned in between.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <utf8proc.h>

#include "clip/core/error.hpp"

namespace clip::text {

namespace detail {

/// One step of UTF-8 decoding at `bytes[at]`: the code point and its length, or (valid = false)
/// the length of the maximal invalid subpart there (what one U+FFFD replaces) and why.
struct utf8_step {
    char32_t code_point = 0;
    std::size_t length = 1;
    bool valid = true;
    const char* problem = nullptr;
};

inline utf8_step decode_utf8_step(std::string_view bytes, std::size_t at) noexcept {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
    const unsigned char lead = byte(at);
    if (lead < 0x80) return {lead, 1, true, nullptr};
    std::size_t continuation_bytes = 0;
    char32_t code_point = 0;
    // The second byte's range is narrower after E0, ED, F0 and F4: that is what excludes overlong
    // forms, surrogates and values above U+10FFFF (Unicode Table 3-7, which CPython follows).
    unsigned char low = 0x80, high = 0xBF;
    const char* narrow_problem = "invalid continuation byte";
    if (lead >= 0xC2 && lead <= 0xDF) {
        continuation_bytes = 1;
        code_point = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        continuation_bytes = 2;
        code_point = lead & 0x0F;
        if (lead == 0xE0) low = 0xA0, narrow_problem = "overlong encoding";
        if (lead == 0xED) high = 0x9F, narrow_problem = "UTF-16 surrogate";
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        continuation_bytes = 3;
        code_point = lead & 0x07;
        if (lead == 0xF0) low = 0x90, narrow_problem = "overlong encoding";
        if (lead == 0xF4) high = 0x8F, narrow_problem = "code point above U+10FFFF";
    } else if (lead == 0xC0 || lead == 0xC1) {
        return {0, 1, false, "overlong encoding"};
    } else if (lead >= 0xF5) {
        return {0, 1, false, "code point above U+10FFFF"};
    } else {
        return {0, 1, false, "unexpected continuation byte"};
    }
    for (std::size_t k = 1; k <= continuation_bytes; ++k) {
        if (at + k >= bytes.size()) return {0, k, false, "truncated sequence at the end"};
        const unsigned char next = byte(at + k);
        if (next < low || next > high) return {0, k, false, k == 1 ? narrow_problem : "invalid continuation byte"};
        low = 0x80, high = 0xBF;
        code_point = (code_point << 6) | (next & 0x3F);
    }
    return {code_point, continuation_bytes + 1, true, nullptr};
}

/// Runs utf8proc_map with `options` on UTF-8 text that is known to be valid.
inline std::string utf8proc_transform(std::string_view utf8, int options) {
    utf8proc_uint8_t* result = nullptr;
    const utf8proc_ssize_t length =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()), static_cast<utf8proc_ssize_t>(utf8.size()),
                     &result, static_cast<utf8proc_option_t>(options));
    const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(result, &std::free);
    clip::detail::check(length >= 0, "unicode normalisation: utf8proc failed: ",
                        utf8proc_errmsg(static_cast<utf8proc_ssize_t>(length)));
    return std::string(reinterpret_cast<const char*>(result), static_cast<std::size_t>(length));
}

} // namespace detail

/// Appends the UTF-8 encoding of `code_point` (a Unicode scalar value) to `out`.
inline void append_utf8(std::string& out, char32_t code_point) {
    if (code_point < 0x80) {
        out += static_cast<char>(code_point);
    } else if (code_point < 0x800) {
        out += static_cast<char>(0xC0 | (code_point >> 6));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else if (code_point < 0x10000) {
        out += static_cast<char>(0xE0 | (code_point >> 12));
        out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (code_point >> 18));
        out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    }
}

inline std::string encode_utf8(std::u32string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char32_t c : text) append_utf8(out, c);
    return out;
}

/// The code points of UTF-8 `bytes`. Invalid UTF-8 throws clip::error: "<context>: invalid UTF-8
/// at byte N (0xXX): <problem>".
inline std::u32string decode_utf8(std::string_view bytes, std::string_view context = "text") {
    std::u32string out(bytes.size(), U'\0'); // at most one code point per byte
    std::size_t length = 0;
    for (std::size_t at = 0; at < bytes.size();) {
        if (static_cast<unsigned char>(bytes[at]) < 0x80) {
            out[length++] = static_cast<char32_t>(bytes[at++]);
            continue;
        }
        const detail::utf8_step step = detail::decode_utf8_step(bytes, at);
        if (!step.valid) {
            static constexpr char hex[] = "0123456789ABCDEF";
            const auto lead = static_cast<unsigned char>(bytes[at]);
            throw error(clip::detail::message(context, ": invalid UTF-8 at byte ", at, " (0x", hex[lead >> 4],
                                              hex[lead & 15], "): ", step.problem));
        }
        out[length++] = step.code_point;
        at += step.length;
    }
    out.resize(length);
    return out;
}

/// bytes.decode("utf-8", errors="replace"), as valid UTF-8.
inline std::string decode_utf8_replace(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (std::size_t at = 0; at < bytes.size();) {
        const detail::utf8_step step = detail::decode_utf8_step(bytes, at);
        if (step.valid) out.append(bytes.substr(at, step.length));
        else out += "\xEF\xBF\xBD"; // U+FFFD
        at += step.length;
    }
    return out;
}

/// \p{L}: the general categories Lu, Ll, Lt, Lm and Lo (not the combining marks \p{M}).
inline bool is_letter(char32_t c) noexcept {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return true;
    default: return false;
    }
}

/// \p{N}: the general categories Nd, Nl and No (so also '²', '½', 'Ⅻ').
inline bool is_number(char32_t c) noexcept {
    if (c < 0x80) return c >= '0' && c <= '9';
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return true;
    default: return false;
    }
}

/// The White_Space property (PropList.txt), which is what the `regex` module's \s matches.
inline bool is_white_space(char32_t c) noexcept {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/// str.isspace(): bidirectional class WS, B or S, or category Zs. That is White_Space plus the
/// information separators U+001C..U+001F; it is also what the standard `re` module's \s means.
inline bool is_python_space(char32_t c) noexcept { return is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

/// The standard `re` module's \w on str patterns: str.isalnum() or '_'.
inline bool is_python_word(char32_t c) noexcept { return c == '_' || is_letter(c) || is_number(c); }

namespace detail {

inline std::u32string normalize(std::u32string_view text, int options) {
    return decode_utf8(utf8proc_transform(encode_utf8(text), options), "unicode normalisation");
}

/// Case_Ignorable (DerivedCoreProperties.txt): Mn, Me, Cf, Lm, Sk, and Word_Break MidLetter,
/// MidNumLet or Single_Quote. Used only by the Final_Sigma rule.
inline bool is_case_ignorable(char32_t c) noexcept {
    switch (c) {
    case 0x0027: case 0x002E: case 0x003A: case 0x00B7: case 0x0387: case 0x055F: case 0x05F4:
    case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55:
    case 0xFF07: case 0xFF0E: case 0xFF1A: return true;
    default: break;
    }
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK: return true;
    default: return false;
    }
}

/// Cased (DerivedCoreProperties.txt): Lu, Ll, Lt, or Other_Lowercase / Other_Uppercase. Among
/// the characters that are not also Case_Ignorable (the only ones the Final_Sigma rule asks
/// about), the Other_* ones are ª, º, the circled and parenthesised letters and the Roman
/// numerals, and all but ª, º and the squared/negative letters U+1F130..U+1F189 have a case
/// mapping.
inline bool is_cased(char32_t c) noexcept {
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT: return true;
    default: break;
    }
    const auto code = static_cast<utf8proc_int32_t>(c);
    return c == 0xAA || c == 0xBA || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
           (c >= 0x1F170 && c <= 0x1F189) || utf8proc_tolower(code) != code || utf8proc_toupper(code) != code;
}

/// CPython's handle_capital_sigma: Σ at `at` is final when a cased letter precedes it and none
/// follows it, skipping case-ignorable characters both ways.
inline bool is_final_sigma(std::u32string_view text, std::size_t at) noexcept {
    std::size_t before = at;
    while (before > 0 && is_case_ignorable(text[before - 1])) --before;
    if (before == 0 || !is_cased(text[before - 1])) return false;
    std::size_t after = at + 1;
    while (after < text.size() && is_case_ignorable(text[after])) ++after;
    return after == text.size() || !is_cased(text[after]);
}

} // namespace detail

/// unicodedata.normalize("NFC", text).
inline std::u32string nfc(std::u32string_view text) {
    // Every character below U+0300 is NFC_Quick_Check=Yes and none of them composes with a
    // previous one, so such text is already in NFC.
    bool below_combining_marks = true;
    for (const char32_t c : text) below_combining_marks = below_combining_marks && c < 0x300;
    if (below_combining_marks) return std::u32string(text);
    return detail::normalize(text, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
}

/// unicodedata.normalize("NFKC", text).
inline std::u32string nfkc(std::u32string_view text) {
    return detail::normalize(text, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
}

/// str.lower(): the full lower-case mapping, whose only multi-character entry is U+0130 (İ ->
/// "i̇"), and Σ -> ς in the Final_Sigma context.
inline std::u32string python_lower(std::u32string_view text) {
    std::u32string out;
    out.reserve(text.size());
    for (std::size_t at = 0; at < text.size(); ++at) {
        const char32_t c = text[at];
        if (c < 0x80) out += (c >= 'A' && c <= 'Z') ? c + 0x20 : c;
        else if (c == 0x130) out += U"i\u0307";
        else if (c == 0x3A3) out += detail::is_final_sigma(text, at) ? U'\u03C2' : U'\u03C3';
        else out += static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
    }
    return out;
}

/// The simple upper-case mapping of one character (UnicodeData.txt).
inline char32_t simple_upper(char32_t c) noexcept {
    return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}

} // namespace clip::text
