// clip/text/pretokenize.hpp: the pre-tokeniser of OpenAI's tokenizer, a hand-written scanner.
//
// OpenAI splits the cleaned caption (clip/text/clean.hpp) into pieces with the `regex` module:
//
//   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// compiled with IGNORECASE, and `findall`: at each position the first alternative that matches
// gives a piece and the scan goes on after it; where none matches (whitespace) it moves one
// character on. So the pieces are the special tokens, the English contractions (before letters:
// "it's" is "it" + "'s"), maximal runs of letters (\p{L} is Lu Ll Lt Lm Lo, without the
// combining marks: Devanagari vowel signs end a run), single numbers ("2024" is four pieces),
// and maximal runs of anything else that is not whitespace ("!!!???..." is one piece). A run of
// punctuation can swallow the '<' or '\'' that would have started a special token or a
// contraction ("!'s" is "!'" + "s"), exactly as the regex does.
//
// Two effects of IGNORECASE on lower-cased text: 'ſ' (U+017F, which case-folds to 's') counts as
// 's' in the literal alternatives ("'ſ" is a contraction piece, "<|ſtartoftext|>" matches the
// special token's alternative, though only the exact string becomes its id), and U+0345
// COMBINING GREEK YPOGEGRAMMENI, whose other cases are letters, matches no alternative at all,
// so it is dropped like whitespace.
#pragma once

#include <string_view>
#include <vector>

#include "clip/text/unicode.hpp"

namespace clip::text {

namespace detail {

/// Whether `c` matches the lower-case ASCII letter or symbol `literal` under the `regex`
/// module's IGNORECASE (simple case folding).
inline bool matches_ignoring_case(char32_t c, char literal) noexcept {
    const auto l = static_cast<char32_t>(literal);
    if (c == l) return true;
    if (l >= 'a' && l <= 'z' && c == l - 0x20) return true;
    return l == 's' && c == 0x17F; // LATIN SMALL LETTER LONG S folds to 's'
}

/// Length of `literal` matched at text[at] ignoring case, or 0.
inline std::size_t match_literal(std::u32string_view text, std::size_t at, std::string_view literal) noexcept {
    if (at + literal.size() > text.size()) return 0;
    for (std::size_t k = 0; k < literal.size(); ++k)
        if (!matches_ignoring_case(text[at + k], literal[k])) return 0;
    return literal.size();
}

inline bool is_other_symbol(char32_t c) noexcept {
    return !is_white_space(c) && !is_letter(c) && !is_number(c) && c != 0x345;
}

} // namespace detail

/// The pieces of cleaned text, in order, as views into `cleaned`.
inline std::vector<std::u32string_view> pretokenize(std::u32string_view cleaned) {
    static constexpr std::string_view literals[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    std::vector<std::u32string_view> pieces;
    for (std::size_t at = 0; at < cleaned.size();) {
        const char32_t c = cleaned[at];
        std::size_t length = 0;
        if (c == '<' || c == '\'') {
            for (const std::string_view literal : literals)
                if ((length = detail::match_literal(cleaned, at, literal)) != 0) break;
        }
        if (length == 0) {
            if (is_letter(c)) {
                length = 1;
                while (at + length < cleaned.size() && is_letter(cleaned[at + length])) ++length;
            } else if (is_number(c)) {
                length = 1;
            } else if (detail::is_other_symbol(c)) {
                length = 1;
                while (at + length < cleaned.size() && detail::is_other_symbol(cleaned[at + length])) ++length;
            }
        }
        if (length == 0) {
            ++at; // whitespace (or U+0345): no alternative matches here
            continue;
        }
        pieces.push_back(cleaned.substr(at, length));
        at += length;
    }
    return pieces;
}

} // namespace clip::text
