// clip/text/mojibake.hpp: ftfy's mojibake detector and repairer (ftfy 6.3, `fix_encoding`).
//
// Mojibake is text that was UTF-8, was decoded with a single-byte encoding by mistake, and now
// reads "Ã©tÃ©" for "été". ftfy (which OpenAI's tokenizer runs on every caption) repairs it; to
// tokenize exactly as the reference, this header does what ftfy 6.3.1 does, step for step:
//
//   looks_like_mojibake(text)   ftfy.badness.is_bad: does any of ~40 patterns of "characters that
//                               mostly occur in mojibake" (categories such as accented capitals,
//                               currency signs, box drawing, C1 controls, and fixed sequences such
//                               as "Ã " or "â€") appear in the text?
//   fix_encoding(text)          repeats one step until the text stops changing. A step leaves
//                               ASCII text and text that does not look like mojibake alone; else
//                               it tries the ten charmaps of clip/text/charmap.hpp in order, and
//                               for the first that can encode the text: encode, put back 0xA0
//                               bytes that became spaces ("restore_byte_a0"), turn sequences
//                               broken by '�' into one '�' (sloppy charmaps only), and decode as
//                               UTF-8 (or, when bytes C0/ED occur, as "utf-8-variants", which
//                               also accepts CESU-8 surrogate pairs and C0 80 for U+0000). The
//                               first decode that succeeds is the step's result. Failing that, it
//                               repairs mojibake embedded in otherwise good text
//                               ("decode_inconsistent_utf8"), then reads Latin-1 as Windows-1252,
//                               then replaces C1 controls by their Windows-1252 characters.
//
// The character categories and patterns are ftfy's (badness.py, chardata.py), written out below
// in the same order.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clip/text/charmap.hpp"
#include "clip/text/unicode.hpp"

namespace clip::text {

namespace detail {

/// ftfy's character categories (MOJIBAKE_CATEGORIES in badness.py, UTF8_CLUES in chardata.py),
/// one bit each.
enum mojibake_category : std::uint32_t {
    common = 1u << 0,            // ordinary in many contexts: NBSP, soft hyphen, dashes, '…', '’'
    c1 = 1u << 1,                // the C1 controls U+0080..U+009F: only ever mojibake now
    bad = 1u << 2,               // nearly only ever mojibake: '¦', '¤', '¨', '¬', '¯', 'ˇ', ...
    law = 1u << 3,               // '¶', '§'
    currency = 1u << 4,          // '¢', '£', '¥', '₧', '€'
    start_punctuation = 1u << 5, // '¡', '«', '¿', '©', '‘', '“', '•', ...
    end_punctuation = 1u << 6,   // '®', '»', '˝', '”', '›', '™'
    numeric = 1u << 7,           // '²', '³', '¹', '±', '¼', '×', 'µ', '÷', '∞', '≤', '№', ...
    kaomoji = 1u << 8,           // letters that emoticons use: 'Ò'..'Ö', 'Ù'..'Ü', 'ò'..'ö', ...
    upper_accented = 1u << 9,    // 'À'..'Ñ', 'Ø', 'Ü', 'Ý', 'Ă', 'Ā', 'Ą', ...
    lower_accented = 1u << 10,   // 'ß', 'à'..'ñ', 'ă', 'ą', 'ā', ...
    upper_common = 1u << 11,     // 'Þ', Greek and Cyrillic capitals
    lower_common = 1u << 12,     // Greek and Cyrillic small letters
    box = 1u << 13,              // box drawing and block elements
    utf8_first_of_2 = 1u << 14,  // what bytes C2..DF decode to in Latin-1 and Windows-125x
    utf8_first_of_3 = 1u << 15,  // ... bytes E0..EF
    utf8_first_of_4 = 1u << 16,  // ... bytes F0 and F3
    utf8_continuation = 1u << 17, // ... bytes 80..BF, and a space standing for 0xA0
    utf8_continuation_strict = 1u << 18, // the same less space, dashes, quotes, '•' and '…'
};

/// The categories of `c` (0 for most characters).
inline std::uint32_t mojibake_categories(char32_t c) noexcept {
    // Every categorised character is below U+2600 except U+F8FF (start_punctuation), the
    // ligatures 'ﬁ' and 'ﬂ' (lower_accented) and U+FFFD (bad): one flat table covers the rest.
    static constexpr char32_t table_size = 0x2600;
    static const std::vector<std::uint32_t> table = [] {
        std::vector<std::uint32_t> t(table_size, 0);
        const auto add = [&](std::uint32_t category, std::u32string_view characters) {
            for (const char32_t ch : characters)
                if (ch < table_size) t[ch] |= category;
        };
        const auto add_range = [&](std::uint32_t category, char32_t first, char32_t last) {
            for (char32_t ch = first; ch <= last; ++ch) t[ch] |= category;
        };
        add(common, U"\u00A0\u00AD·´–—―…’");
        add_range(c1, 0x80, 0x9F);
        add(bad, U"¦¤¨¬¯¸ƒˆˇ˘˛˜†‡‰⌐◊\uFFFDªº");
        add(law, U"¶§");
        add(currency, U"¢£¥₧€");
        add(start_punctuation, U"¡«¿©΄΅‘‚“„•‹\uF8FF");
        add(end_punctuation, U"®»˝”›™");
        add(numeric, U"²³¹±¼½¾×µ÷⁄∂∆∏∑√∞∩∫≈≠≡≤≥№");
        add(kaomoji, U"ŐŌŪŲ°");
        add_range(kaomoji, 0xD2, 0xD6); // Ò..Ö
        add_range(kaomoji, 0xD9, 0xDC); // Ù..Ü
        add_range(kaomoji, 0xF2, 0xF6); // ò..ö
        add_range(kaomoji, 0xF8, 0xFC); // ø..ü
        add(upper_accented, U"ØÜÝĂĀĄĆČĎĐĘĚĒĖĞĢİĪĶĹĽŁĻŃŇŅŒŘŚŞŠŢŤŮŰŸŹŻŽҐ");
        add_range(upper_accented, 0xC0, 0xD1); // À..Ñ
        add(lower_accented, U"ßăąāćčďđęěēėğģįīķĺľłļœŕśşšťüźżžґﬁﬂ");
        add_range(lower_accented, 0xE0, 0xF1); // à..ñ
        add(upper_common, U"ÞΆΈΉΊΌΎΏΪΫ");
        add_range(upper_common, 0x391, 0x3A9); // Α..Ω
        add_range(upper_common, 0x401, 0x42F); // Ё..Я
        add(lower_common, U"άέήίΰ");
        add_range(lower_common, 0x3B1, 0x3C9); // α..ω
        add_range(lower_common, 0x430, 0x45F); // а..џ
        add(box, U"│┌┐┘├┤┬┼▀▄█▌▐░▒▓");
        add_range(box, 0x2550, 0x256C); // ═..╬
        add(utf8_first_of_2, U"ÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßĀĂĆČĎĐĒĖĘĚĞĢĪİĶĹĻŁŃŅŇŌŐŘŚŞŠŢŪŮŰŲŹŻŽ"
                             U"ΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩΪΫάέήίВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ");
        add(utf8_first_of_3, U"àáâãäåæçèéêëìíîïāăąćčďēėęěģīįķĺļŕźΰαβγδεζηθικλμνξοабвгдежзийклмноп");
        add(utf8_first_of_4, U"ðóđğšπσру");
        const std::u32string_view continuation_letters =
            U"ÆØæøĄąĽľŁłŒœŖŗŚśŞşŠšŤťŸŹźŻżŽžƒˆˇ˘˛˜˝΄΅ΆΈΉΊΌΎΏЁЂЃЄЅІЇЈЉЊЋЌЎЏёђѓєѕіїјљњћќўџҐґ†‡‰‹›€№™";
        add_range(utf8_continuation | utf8_continuation_strict, 0x80, 0xBF);
        add(utf8_continuation | utf8_continuation_strict, continuation_letters);
        add(utf8_continuation, U" –—―‘’‚“”„•…");
        return t;
    }();
    if (c < table_size) return table[c];
    if (c == 0xF8FF) return start_punctuation;
    if (c == 0xFB01 || c == 0xFB02) return lower_accented;
    if (c == 0xFFFD) return bad;
    return 0;
}

/// One position of a badness pattern: the characters in any of `categories`, or among
/// `characters`, or in a class named by `flags`; `negate` inverts the whole set.
struct character_class {
    enum flag : std::uint8_t {
        ascii_lower = 1,  // [a-z]
        ascii_upper = 2,  // [A-Z]
        python_space = 4, // \s
        python_word = 8,  // \w
        negate = 16,      // [^...]
    };
    std::uint32_t categories = 0;
    std::u32string_view characters = {};
    std::uint8_t flags = 0;

    bool contains(char32_t c) const noexcept {
        const bool in = (categories != 0 && (mojibake_categories(c) & categories) != 0) ||
                        characters.find(c) != std::u32string_view::npos ||
                        ((flags & ascii_lower) && c >= 'a' && c <= 'z') || ((flags & ascii_upper) && c >= 'A' && c <= 'Z') ||
                        ((flags & python_space) && is_python_space(c)) || ((flags & python_word) && is_python_word(c));
        return (flags & negate) ? !in : in;
    }
};

/// A sequence of classes that matches consecutive characters (at the start of the text only,
/// when `at_start`).
struct badness_pattern {
    std::vector<character_class> sequence;
    bool at_start = false;
};

/// BADNESS_RE of ftfy/badness.py, alternative by alternative. ("[a-z]\s?[ÃÂ][ ]" is written as
/// its two expansions.)
inline const std::vector<badness_pattern>& badness_patterns() {
    using cc = character_class;
    constexpr std::uint32_t accented = lower_accented | upper_accented;
    constexpr std::uint32_t punctuation = start_punctuation | end_punctuation;
    static const std::vector<badness_pattern> patterns = {
        {{{c1}}},
        {{{bad | accented | box | punctuation | currency | numeric | law}, {bad}}},
        {{{0, U"", cc::ascii_lower | cc::ascii_upper}, {lower_common | upper_common}, {bad}}},
        {{{bad}, {accented | box | punctuation | currency | numeric | law}}},
        {{{lower_accented | lower_common | box | end_punctuation | currency | numeric}, {upper_accented}}},
        {{{box | end_punctuation | currency | numeric}, {lower_accented}}},
        {{{lower_accented | box | end_punctuation}, {currency}}},
        {{{0, U"", cc::python_space}, {upper_accented}, {currency}}},
        {{{upper_accented | box}, {numeric | law}}},
        {{{accented | box | currency | end_punctuation}, {start_punctuation}, {numeric}}},
        {{{accented | currency | numeric | box | law}, {end_punctuation}, {start_punctuation}}},
        {{{currency | numeric | box}, {start_punctuation}}},
        {{{0, U"", cc::ascii_lower}, {upper_accented}, {start_punctuation | currency}}},
        {{{box}, {kaomoji}}},
        {{{accented | currency | numeric | punctuation | law}, {box}}},
        {{{box}, {end_punctuation}}},
        {{{accented}, {punctuation}, {0, U"", cc::python_word}}},
        // The ligature œ when not followed by an unaccented Latin letter.
        {{{0, U"Œœ"}, {0, U"", cc::ascii_lower | cc::ascii_upper | cc::negate}}},
        // Degree signs after capital letters.
        {{{upper_accented}, {0, U"°"}}},
        // Common Windows-1252 two-character mojibake.
        {{{0, U"ÂÃÎÐ"}, {punctuation, U"€œŠš¢£Ÿž\u00A0\u00AD®©°·»–—´"}}},
        {{{0, U"×"}, {0, U"²³"}}},
        // Windows-1252 mojibake of Arabic words, which needs four characters.
        {{{0, U"ØÙ"}, {common | currency | bad | numeric | start_punctuation, U"ŸŠ®°µ»"},
          {0, U"ØÙ"}, {common | currency | bad | numeric | start_punctuation, U"ŸŠ®°µ»"}}},
        // Windows-1252 mojibake that starts three-byte sequences of South Asian scripts.
        {{{0, U"à"}, {0, U"²µ¹¼½¾"}}},
        // MacRoman mojibake.
        {{{0, U"√"}, {0, U"±∂†≠®™´≤≥¥µø"}}},
        {{{0, U"≈"}, {0, U"°¢"}}},
        {{{0, U"‚"}, {0, U"Ä"}, {0, U"ìîïòôúùû†°¢π"}}},
        {{{0, U"‚"}, {0, U"âó"}, {0, U"àä°ê"}}},
        // Windows-1251 mojibake of characters in the U+2000 range.
        {{{0, U"в"}, {0, U"Ђ"}}},
        // Windows-1251 mojibake of Latin-1 characters and/or the Cyrillic alphabet.
        {{{0, U"ВГРС"}, {c1 | bad | punctuation | currency, U"°µ"}, {0, U"ВГРС"}}},
        {{{0, U"Г"}, {0, U"ў"}, {0, U"В"}, {0, U"Ђ"}, {0, U"В"}, {0, U"\n", cc::negate},
          {0, U" ", cc::ascii_lower | cc::ascii_upper}}},
        // Windows-1252 encodings of 'à' and 'á', and of U+00A0 itself.
        {{{0, U"Ã"}, {0, U"\u00A0¡"}}},
        {{{0, U"", cc::ascii_lower}, {0, U"ÃÂ"}, {0, U" "}}},
        {{{0, U"", cc::ascii_lower}, {0, U"", cc::python_space}, {0, U"ÃÂ"}, {0, U" "}}},
        {{{0, U"ÃÂ"}, {0, U" "}}, true},
        // Â before a character that it encodes exactly the same.
        {{{end_punctuation, U".,?!", cc::ascii_lower}, {0, U"Â"}, {punctuation, U" "}}},
        // Windows-1253 mojibake of characters in the U+2000 range.
        {{{0, U"β"}, {0, U"€"}, {0, U"™\u00A0Ά\u00AD®°"}}},
        // Windows-1253 mojibake of Latin-1 characters and/or the Greek alphabet.
        {{{0, U"ΒΓΞΟ"}, {c1 | bad | punctuation | currency, U"°"}, {0, U"ΒΓΞΟ"}}},
        // Windows-1257 mojibake of characters in the U+2000 range.
        {{{0, U"ā"}, {0, U"€"}}},
    };
    return patterns;
}

/// UTF8_DETECTOR_RE of ftfy/chardata.py: the length of the run of UTF-8-looking sequences
/// (first-of-2 + 1 continuation, first-of-3 + 2, first-of-4 + 3, repeated) starting at `at`,
/// 0 if none; the character before `at` must not be a strict continuation character.
inline std::size_t utf8_mojibake_run(std::u32string_view text, std::size_t at) noexcept {
    if (at > 0 && (mojibake_categories(text[at - 1]) & utf8_continuation_strict)) return 0;
    const auto continues = [&](std::size_t from, std::size_t count) {
        if (from + count > text.size()) return false;
        for (std::size_t k = 0; k < count; ++k)
            if (!(mojibake_categories(text[from + k]) & utf8_continuation)) return false;
        return true;
    };
    std::size_t end = at;
    while (end < text.size()) {
        const std::uint32_t lead = mojibake_categories(text[end]);
        if ((lead & utf8_first_of_2) && continues(end + 1, 1)) end += 2;
        else if ((lead & utf8_first_of_3) && continues(end + 1, 2)) end += 3;
        else if ((lead & utf8_first_of_4) && continues(end + 1, 3)) end += 4;
        else break;
    }
    return end - at;
}

/// Bytes of `text` in charmap `m`, or nothing when some character has no byte there
/// (ftfy's possible_encoding + str.encode).
inline std::optional<std::string> encode_charmap(std::u32string_view text, charmap m) {
    std::string bytes;
    bytes.reserve(text.size());
    for (const char32_t c : text) {
        const std::optional<unsigned char> byte = charmap_encode(m, c);
        if (!byte) return std::nullopt;
        bytes += static_cast<char>(*byte);
    }
    return bytes;
}

/// ftfy's restore_byte_a0, preceded by its ALTERED_UTF8_RE check: UTF-8 sequences that would be
/// valid if a space were the byte A0 get their A0 back (and "Ã " as a word becomes "à ").
inline std::string restore_byte_a0(std::string bytes) {
    const auto at = [&](std::size_t i) { return i < bytes.size() ? static_cast<unsigned char>(bytes[i]) : 0x100u; };
    const auto continuation_not_85_a0 = [](unsigned b) { return (b >= 0x80 && b <= 0x84) || (b >= 0x86 && b <= 0x9F) || (b >= 0xA1 && b <= 0xBF); };
    const auto continuation = [](unsigned b) { return b >= 0x80 && b <= 0xBF; };
    // ALTERED_UTF8_RE: the length of its match at i (0 for none); spaces in it become A0.
    const auto altered_match = [&](std::size_t i) -> std::size_t {
        const unsigned b0 = at(i), b1 = at(i + 1), b2 = at(i + 2), b3 = at(i + 3);
        if ((b0 == 0xC2 || b0 == 0xC3 || b0 == 0xC5 || b0 == 0xCE || b0 == 0xD0 || b0 == 0xD9) && b1 == ' ') return 2;
        if ((b0 == 0xE2 || b0 == 0xE3) && b1 == ' ' && continuation_not_85_a0(b2)) return 3;
        if (b0 >= 0xE0 && b0 <= 0xE3 && continuation_not_85_a0(b1) && b2 == ' ') return 3;
        if (b0 == 0xF0) {
            if (b1 == ' ' && continuation(b2) && continuation(b3)) return 4;
            if (continuation(b1) && b2 == ' ' && continuation(b3)) return 4;
            if (continuation(b1) && continuation(b2) && b3 == ' ') return 4;
        }
        return 0;
    };
    bool any = false;
    for (std::size_t i = 0; i < bytes.size() && !any; ++i) any = altered_match(i) != 0;
    if (!any) return bytes;

    // A_GRAVE_WORD_RE: C3 + space, not followed by " ", "quele", "quela", "quilo" or "s ", gets
    // an A0 inserted ("Ã la mode" is "à la mode", not "àla mode").
    std::string with_a_grave;
    with_a_grave.reserve(bytes.size() + 8);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (static_cast<unsigned char>(bytes[i]) == 0xC3 && i + 1 < bytes.size() && bytes[i + 1] == ' ') {
            const std::string_view rest = std::string_view(bytes).substr(i + 2);
            if (!(rest.starts_with(" ") || rest.starts_with("quele") || rest.starts_with("quela") ||
                  rest.starts_with("quilo") || rest.starts_with("s "))) {
                with_a_grave += "\xC3\xA0 ";
                ++i;
                continue;
            }
        }
        with_a_grave += bytes[i];
    }
    bytes = std::move(with_a_grave);
    for (std::size_t i = 0; i < bytes.size();) {
        const std::size_t length = altered_match(i);
        if (length == 0) {
            ++i;
            continue;
        }
        for (std::size_t k = i; k < i + length; ++k)
            if (bytes[k] == ' ') bytes[k] = '\xA0';
        i += length;
    }
    return bytes;
}

/// ftfy's replace_lossy_sequences (LOSSY_UTF8_RE): UTF-8 sequences in which byte 1A (a lost
/// byte, see charmap.hpp) or '?' stands for continuation bytes become the bytes of U+FFFD.
inline std::string replace_lossy_sequences(std::string_view bytes) {
    const auto at = [&](std::size_t i) { return i < bytes.size() ? static_cast<unsigned char>(bytes[i]) : 0x100u; };
    const auto lost = [](unsigned b) { return b == 0x1A || b == '?'; };
    const auto lost_or_continuation = [](unsigned b) { return b == 0x1A || b == '?' || (b >= 0x80 && b <= 0xBF); };
    const auto sub_or_continuation = [](unsigned b) { return b == 0x1A || (b >= 0x80 && b <= 0xBF); };
    const auto match = [&](std::size_t i) -> std::size_t {
        const unsigned b0 = at(i), b1 = at(i + 1), b2 = at(i + 2), b3 = at(i + 3), b4 = at(i + 4), b5 = at(i + 5);
        if (b0 >= 0xC2 && b0 <= 0xDF && b1 == 0x1A) return 2;
        if ((b0 == 0xC2 || b0 == 0xC3) && b1 == '?') return 2;
        if (b0 == 0xED && b1 >= 0xA0 && b1 <= 0xAF && b3 == 0xED && b4 >= 0xB0 && b4 <= 0xBF) {
            if (lost(b2) && lost_or_continuation(b5)) return 6;
            if (lost_or_continuation(b2) && lost(b5)) return 6;
        }
        if (b0 >= 0xE0 && b0 <= 0xEF) {
            if (lost(b1) && sub_or_continuation(b2)) return 3;
            if (sub_or_continuation(b1) && lost(b2)) return 3;
        }
        if (b0 >= 0xF0 && b0 <= 0xF4) {
            if (lost(b1) && sub_or_continuation(b2) && sub_or_continuation(b3)) return 4;
            if (sub_or_continuation(b1) && lost(b2) && sub_or_continuation(b3)) return 4;
            if (sub_or_continuation(b1) && sub_or_continuation(b2) && lost(b3)) return 4;
        }
        if (b0 == 0x1A) return 1;
        return 0;
    };
    std::string out;
    out.reserve(bytes.size());
    for (std::size_t i = 0; i < bytes.size();) {
        if (const std::size_t length = match(i)) {
            out += "\xEF\xBF\xBD";
            i += length;
        } else {
            out += bytes[i++];
        }
    }
    return out;
}

/// Strict UTF-8 decoding, or (`variants`) ftfy's "utf-8-variants": also C0 80 as U+0000 and
/// CESU-8 (a surrogate pair encoded as two three-byte sequences). Nothing when invalid.
inline std::optional<std::u32string> decode_utf8_strict(std::string_view bytes, bool variants) {
    std::u32string out;
    out.reserve(bytes.size());
    const auto at = [&](std::size_t i) { return i < bytes.size() ? static_cast<unsigned char>(bytes[i]) : 0x100u; };
    for (std::size_t i = 0; i < bytes.size();) {
        if (variants && at(i) == 0xC0 && at(i + 1) == 0x80) {
            out += U'\0';
            i += 2;
            continue;
        }
        if (variants && at(i) == 0xED && at(i + 1) >= 0xA0 && at(i + 1) <= 0xAF && at(i + 2) >= 0x80 && at(i + 2) <= 0xBF &&
            at(i + 3) == 0xED && at(i + 4) >= 0xB0 && at(i + 4) <= 0xBF && at(i + 5) >= 0x80 && at(i + 5) <= 0xBF) {
            out += static_cast<char32_t>(((at(i + 1) & 0x0F) << 16) + ((at(i + 2) & 0x3F) << 10) + ((at(i + 4) & 0x0F) << 6) +
                                         (at(i + 5) & 0x3F) + 0x10000);
            i += 6;
            continue;
        }
        const utf8_step step = decode_utf8_step(bytes, i);
        if (!step.valid) return std::nullopt;
        out += step.code_point;
        i += step.length;
    }
    return out;
}

inline std::u32string fix_c1_controls(std::u32string text) {
    for (char32_t& c : text)
        if (c >= 0x80 && c <= 0x9F) c = charmap_decode(charmap::sloppy_windows_1252, static_cast<unsigned char>(c));
    return text;
}

inline std::u32string fix_encoding_once(const std::u32string& text);

} // namespace detail

namespace detail {

/// For each character, the patterns (bit p for badness_patterns()[p]) whose first class holds
/// it. Every character in a class is below U+2600 except U+F8FF, 'ﬁ', 'ﬂ', U+FFFD and the space
/// U+3000 (the classes that hold all letters, or all but a few, are never first in a pattern),
/// so a table covers the rest and most text is skipped a character at a time.
inline std::uint64_t badness_pattern_starts(char32_t c) {
    static constexpr char32_t table_size = 0x2600;
    static const std::vector<std::uint64_t> table = [] {
        const auto& patterns = badness_patterns();
        std::vector<std::uint64_t> t(table_size, 0);
        for (char32_t ch = 0; ch < table_size; ++ch)
            for (std::size_t p = 0; p < patterns.size(); ++p)
                if (patterns[p].sequence[0].contains(ch)) t[ch] |= std::uint64_t{1} << p;
        return t;
    }();
    if (c < table_size) return table[c];
    if (c != 0xF8FF && c != 0xFB01 && c != 0xFB02 && c != 0xFFFD && c != 0x3000) return 0;
    const auto& patterns = badness_patterns();
    std::uint64_t starts = 0;
    for (std::size_t p = 0; p < patterns.size(); ++p)
        if (patterns[p].sequence[0].contains(c)) starts |= std::uint64_t{1} << p;
    return starts;
}

} // namespace detail

/// ftfy.badness.is_bad: whether `text` contains a sequence that is far more likely mojibake than
/// intended.
inline bool looks_like_mojibake(std::u32string_view text) {
    const auto& patterns = detail::badness_patterns();
    for (std::size_t at = 0; at < text.size(); ++at) {
        for (std::uint64_t starts = detail::badness_pattern_starts(text[at]); starts != 0; starts &= starts - 1) {
            const detail::badness_pattern& pattern = patterns[static_cast<std::size_t>(std::countr_zero(starts))];
            if (pattern.at_start && at != 0) continue;
            if (at + pattern.sequence.size() > text.size()) continue;
            bool matches = true;
            for (std::size_t k = 1; k < pattern.sequence.size() && matches; ++k)
                matches = pattern.sequence[k].contains(text[at + k]);
            if (matches) return true;
        }
    }
    return false;
}

/// ftfy.fix_encoding: repairs mojibake until the text stops changing.
inline std::u32string fix_encoding(std::u32string text) {
    for (;;) {
        std::u32string fixed = detail::fix_encoding_once(text);
        if (fixed == text) return text;
        text = std::move(fixed);
    }
}

namespace detail {

/// ftfy's decode_inconsistent_utf8: each UTF-8-looking run that is shorter than the whole text
/// and looks like mojibake by itself is repaired on its own.
inline std::u32string decode_inconsistent_utf8(const std::u32string& text) {
    std::u32string out;
    out.reserve(text.size());
    for (std::size_t at = 0; at < text.size();) {
        const std::size_t length = utf8_mojibake_run(text, at);
        if (length == 0) {
            out += text[at++];
            continue;
        }
        const std::u32string run = text.substr(at, length);
        if (run.size() < text.size() && looks_like_mojibake(run)) out += fix_encoding(run);
        else out += run;
        at += length;
    }
    return out;
}

/// One step of ftfy's fix_encoding_and_explain.
inline std::u32string fix_encoding_once(const std::u32string& text) {
    bool ascii = true;
    for (const char32_t c : text) ascii = ascii && c < 0x80;
    if (ascii || !looks_like_mojibake(text)) return text;

    for (const charmap m : charmaps_in_order) {
        std::optional<std::string> bytes = encode_charmap(text, m);
        if (!bytes) continue;
        if (m != charmap::macroman) *bytes = restore_byte_a0(std::move(*bytes));
        if (is_sloppy(m)) *bytes = replace_lossy_sequences(*bytes);
        const bool variants = bytes->find('\xED') != std::string::npos || bytes->find('\xC0') != std::string::npos;
        if (std::optional<std::u32string> fixed = decode_utf8_strict(*bytes, variants)) return *std::move(fixed);
    }

    bool has_utf8_run = false;
    for (std::size_t at = 0; at < text.size() && !has_utf8_run; ++at) has_utf8_run = utf8_mojibake_run(text, at) != 0;
    if (has_utf8_run) {
        std::u32string fixed = decode_inconsistent_utf8(text);
        if (fixed != text) return fixed;
    }

    // Then ftfy reads Latin-1 text as Windows-1252 (strictly: it fails on the five bytes that
    // Windows-1252 leaves undefined) and failing that maps each C1 control to its sloppy
    // Windows-1252 character; both come to the same thing, character by character.
    bool has_c1 = false;
    for (const char32_t c : text) has_c1 = has_c1 || (c >= 0x80 && c <= 0x9F);
    if (has_c1) return fix_c1_controls(text);
    return text;
}

} // namespace detail
} // namespace clip::text
