// clip/text/fix_text.hpp: ftfy.fix_text with its default settings (ftfy 6.3), the first step of
// OpenAI's caption cleaning.
//
// fix_text cuts the text after each '\n' (and every 1 000 000 characters) and fixes each segment
// on its own, repeating these steps on the segment until it stops changing:
//
//   1. unescape_html        "&eacute;" -> 'é', "&#x2019;" -> '’', also upper-case forms of
//                           lower-case entity names ("&EACUTE;" -> 'É'); only entities that end
//                           in ';'. Off from the first segment that contains a '<' onwards: that
//                           text may be HTML, whose entities are meant literally.
//   2. fix_encoding         mojibake repair (clip/text/mojibake.hpp): "Ã©tÃ©" -> "été"
//   3. fix_c1_controls      U+0080..U+009F -> their Windows-1252 characters
//   4. fix_latin_ligatures  'ﬁ' -> "fi", 'ĳ' -> "ij", 'ǆ' -> "dž", ... (not 'æ' or 'œ')
//   5. fix_character_width  fullwidth/halfwidth forms U+FF01..U+FFEF -> their NFKC form
//                           ('Ａ' -> 'A', 'ｶ' -> 'カ'), U+3000 -> ' '
//   6. uncurl_quotes        U+2018..U+201B and U+02BC -> '\'', U+201C..U+201F -> '"'
//   7. fix_line_breaks      "\r\n", '\r', U+2028, U+2029, U+0085 -> '\n'
//   8. remove_terminal_escapes   ESC '[' (digits | ';')* letter, e.g. "\x1b[31m"
//   9. remove_control_chars U+0000..U+0008, U+000B, U+000E..U+001F, U+007F, U+206A..U+206F,
//                           U+FEFF and U+FFF9..U+FFFC are deleted (\t \n \f \r are kept, and so
//                           are the zero-width joiners, directional marks and tag characters)
//  10. NFC normalisation    'e' + U+0301 -> 'é', U+2126 OHM SIGN -> 'Ω', U+212B -> 'Å'
//
// (ftfy's fix_surrogates step has nothing to do here: text that reaches it came from valid
// UTF-8, and no step above creates a surrogate.)
#pragma once

#include <array>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "clip/text/html.hpp"
#include "clip/text/mojibake.hpp"
#include "clip/text/unicode.hpp"

namespace clip::text {

namespace detail {

/// Upper-case forms that ftfy also decodes: for an entity whose name is all lower case ("&eacute;")
/// and whose upper-case name is no entity for html.unescape ("&EACUTE;"), the upper case of its
/// value ('É'). Built once from the HTML5 table.
inline const std::map<std::string, std::u32string, std::less<>>& upper_case_entities() {
    static const std::map<std::string, std::u32string, std::less<>> table = [] {
        std::map<std::string, std::u32string, std::less<>> entities;
        for (const html_entity& entity : html5_entities) {
            const std::string_view name = entity.name;
            if (!name.ends_with(';')) continue;
            bool lower_case = true;
            for (const char c : name) lower_case = lower_case && !(c >= 'A' && c <= 'Z');
            if (!lower_case) continue;
            std::u32string upper_reference = U"&";
            for (const char c : name) upper_reference += static_cast<char32_t>(c >= 'a' && c <= 'z' ? c - 0x20 : c);
            if (html_unescape(upper_reference) != upper_reference) continue;
            // str.upper() of the value. The values of such entities contain no character whose
            // full upper-case mapping differs from its simple one except these.
            std::u32string value;
            for (const char32_t c : {entity.first, entity.second}) {
                switch (c) {
                case 0: break; // a one-character entity
                case U'ß': value += U"SS"; break;
                case U'ŉ': value += U"ʼN"; break;
                case U'ﬀ': value += U"FF"; break;
                case U'ﬁ': value += U"FI"; break;
                case U'ﬂ': value += U"FL"; break;
                case U'ﬃ': value += U"FFI"; break;
                case U'ﬄ': value += U"FFL"; break;
                default: value += simple_upper(c); break;
                }
            }
            std::string key;
            for (const char32_t c : upper_reference.substr(1)) key += static_cast<char>(c);
            entities.emplace(std::move(key), std::move(value));
        }
        return entities;
    }();
    return table;
}

inline bool is_ascii_alphanumeric(char32_t c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/// ftfy's unescape_html: each "&#?[0-9A-Za-z]{1,24};" that is an HTML5 entity (or an upper-case
/// form of one) becomes its characters; "&#...;" becomes what html.unescape makes of it unless
/// that still contains a ';' (so "&#65;" is 'A' but "&#x;" and "&#59;" stay as they are).
inline std::u32string ftfy_unescape_html(std::u32string_view text) {
    if (text.find(U'&') == std::u32string_view::npos) return std::u32string(text);
    std::u32string out;
    out.reserve(text.size());
    for (std::size_t at = 0; at < text.size();) {
        if (text[at] != '&') {
            out += text[at++];
            continue;
        }
        const bool numeric = at + 1 < text.size() && text[at + 1] == '#';
        const std::size_t name_begin = at + 1 + (numeric ? 1 : 0);
        std::size_t name_end = name_begin;
        while (name_end < text.size() && is_ascii_alphanumeric(text[name_end])) ++name_end;
        const std::size_t length = name_end - name_begin;
        if (length < 1 || length > 24 || name_end >= text.size() || text[name_end] != ';') {
            out += text[at++];
            continue;
        }
        const std::u32string_view reference = text.substr(at, name_end + 1 - at); // "&...;"
        if (!numeric) {
            if (const html_entity* entity = find_html5_entity(reference.substr(1))) {
                append_entity(out, *entity);
            } else {
                std::string key;
                for (const char32_t c : reference.substr(1)) key += static_cast<char>(c);
                const auto& upper = upper_case_entities();
                if (const auto found = upper.find(key); found != upper.end()) out += found->second;
                else out += reference;
            }
        } else {
            const std::u32string unescaped = html_unescape(reference);
            out += unescaped.find(U';') == std::u32string::npos ? unescaped : std::u32string(reference);
        }
        at += reference.size();
    }
    return out;
}

inline std::u32string fix_latin_ligatures(std::u32string_view text) {
    std::u32string out;
    out.reserve(text.size());
    for (const char32_t c : text) {
        switch (c) {
        case U'Ĳ': out += U"IJ"; break;
        case U'ĳ': out += U"ij"; break;
        case U'ŉ': out += U"ʼn"; break;
        case U'Ǳ': out += U"DZ"; break;
        case U'ǲ': out += U"Dz"; break;
        case U'ǳ': out += U"dz"; break;
        case U'Ǆ': out += U"DŽ"; break;
        case U'ǅ': out += U"Dž"; break;
        case U'ǆ': out += U"dž"; break;
        case U'Ǉ': out += U"LJ"; break;
        case U'ǈ': out += U"Lj"; break;
        case U'ǉ': out += U"lj"; break;
        case U'Ǌ': out += U"NJ"; break;
        case U'ǋ': out += U"Nj"; break;
        case U'ǌ': out += U"nj"; break;
        case U'ﬀ': out += U"ff"; break;
        case U'ﬁ': out += U"fi"; break;
        case U'ﬂ': out += U"fl"; break;
        case U'ﬃ': out += U"ffi"; break;
        case U'ﬄ': out += U"ffl"; break;
        case U'ﬅ': out += U"ſt"; break;
        case U'ﬆ': out += U"st"; break;
        default: out += c; break;
        }
    }
    return out;
}

/// ftfy's fix_character_width: U+3000 -> ' ', and each of U+FF01..U+FFEF that NFKC changes ->
/// its NFKC form.
inline std::u32string fix_character_width(std::u32string_view text) {
    static const std::vector<std::u32string> width_map = [] {
        std::vector<std::u32string> forms;
        for (char32_t c = 0xFF01; c < 0xFFF0; ++c) forms.push_back(nfkc(std::u32string(1, c)));
        return forms;
    }();
    std::u32string out;
    out.reserve(text.size());
    for (const char32_t c : text) {
        if (c == 0x3000) out += U' ';
        else if (c >= 0xFF01 && c < 0xFFF0) out += width_map[c - 0xFF01];
        else out += c;
    }
    return out;
}

inline std::u32string uncurl_quotes(std::u32string text) {
    for (char32_t& c : text) {
        if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = U'\'';
        else if (c >= 0x201C && c <= 0x201F) c = U'"';
    }
    return text;
}

inline std::u32string fix_line_breaks(std::u32string_view text) {
    std::u32string out;
    out.reserve(text.size());
    for (std::size_t at = 0; at < text.size(); ++at) {
        const char32_t c = text[at];
        if (c == '\r' && at + 1 < text.size() && text[at + 1] == '\n') continue; // "\r\n" -> "\n"
        out += (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) ? U'\n' : c;
    }
    return out;
}

/// ftfy's remove_terminal_escapes: "\x1b[" + (\d | ';')* + [a-zA-Z], where \d is any decimal
/// digit (Nd), as in Python's re.
inline std::u32string remove_terminal_escapes(std::u32string_view text) {
    if (text.find(U'\x1b') == std::u32string_view::npos) return std::u32string(text);
    std::u32string out;
    out.reserve(text.size());
    for (std::size_t at = 0; at < text.size();) {
        if (text[at] == 0x1B && at + 1 < text.size() && text[at + 1] == '[') {
            std::size_t end = at + 2;
            while (end < text.size() &&
                   (text[end] == ';' || utf8proc_category(static_cast<utf8proc_int32_t>(text[end])) == UTF8PROC_CATEGORY_ND))
                ++end;
            if (end < text.size() && ((text[end] >= 'a' && text[end] <= 'z') || (text[end] >= 'A' && text[end] <= 'Z'))) {
                at = end + 1;
                continue;
            }
        }
        out += text[at++];
    }
    return out;
}

inline bool is_removed_control(char32_t c) noexcept {
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
           c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

inline std::u32string remove_control_chars(std::u32string_view text) {
    std::u32string out;
    out.reserve(text.size());
    for (const char32_t c : text)
        if (!is_removed_control(c)) out += c;
    return out;
}

/// ftfy's fix_and_explain on one segment: the ten steps, until nothing changes.
inline std::u32string fix_segment(std::u32string text, bool unescape_html) {
    if (unescape_html && text.find(U'<') != std::u32string::npos) unescape_html = false;
    for (;;) {
        std::u32string fixed = unescape_html ? ftfy_unescape_html(text) : text;
        fixed = fix_encoding(std::move(fixed));
        fixed = fix_c1_controls(std::move(fixed));
        fixed = fix_latin_ligatures(fixed);
        fixed = fix_character_width(fixed);
        fixed = uncurl_quotes(std::move(fixed));
        fixed = fix_line_breaks(fixed);
        fixed = remove_terminal_escapes(fixed);
        fixed = remove_control_chars(fixed);
        fixed = nfc(fixed);
        if (fixed == text) return text;
        text = std::move(fixed);
    }
}

/// True when no step of fix_text can change `text`: ASCII without '&', '\r' and the removed
/// control characters (ESC among them). Most captions are like that.
inline bool fix_text_is_identity(std::u32string_view text) noexcept {
    for (const char32_t c : text)
        if (c >= 0x80 || c == '&' || c == '\r' || is_removed_control(c)) return false;
    return true;
}

} // namespace detail

/// ftfy.fix_text(text) with ftfy 6.3's default settings.
inline std::u32string fix_text(std::u32string_view text) {
    if (detail::fix_text_is_identity(text)) return std::u32string(text);
    static constexpr std::size_t max_segment = 1'000'000; // ftfy's max_decode_length
    std::u32string out;
    out.reserve(text.size());
    bool unescape_html = true;
    for (std::size_t at = 0; at < text.size();) {
        std::size_t end = text.find(U'\n', at);
        end = end == std::u32string_view::npos ? text.size() : end + 1;
        if (end - at > max_segment) end = at + max_segment;
        const std::u32string_view segment = text.substr(at, end - at);
        if (unescape_html && segment.find(U'<') != std::u32string_view::npos) unescape_html = false;
        out += detail::fix_segment(std::u32string(segment), unescape_html);
        at = end;
    }
    return out;
}

} // namespace clip::text
