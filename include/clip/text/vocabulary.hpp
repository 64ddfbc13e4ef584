// clip/text/vocabulary.hpp: CLIP's byte-level BPE vocabulary, loaded from OpenAI's or Hugging
// Face's files.
//
// The byte alphabet (GPT-2's bytes_to_unicode): each of the 256 byte values is written as one
// printable character, itself for '!'..'~', '¡'..'¬' and '®'..'ÿ', and U+0100 + n for the n-th
// of the other 68 bytes (space is 'Ġ', '\n' is 'Ċ'). A token is a string of such characters,
// optionally ending in "</w>", the end of a word.
//
// OpenAI's vocabulary (bpe_simple_vocab_16e6.txt.gz, as SimpleTokenizer builds it): the 256 byte
// characters in bytes_to_unicode order (the printable ones first), the same 256 followed by
// "</w>", one token per merge (its two halves concatenated), "<|startoftext|>" and
// "<|endoftext|>": 256 + 256 + 48 894 + 2 = 49 408 ids. The file is gzip-compressed UTF-8; line
// 1 is a header ("#version: 0.2"), lines 2..48 895 are the merges "left right" in priority order
// (the file holds 262 145, the rest unused). The rank of a merge is its index among them.
//
// Hugging Face's (vocab.json + merges.txt): vocab.json maps every token to its id; merges.txt
// holds the merges one per line after a "#version" header; as in CLIPTokenizer at most the first
// 48 894 are used.
//
// Every problem with a file (missing, unreadable, not gzip, corrupt or truncated gzip data, not
// UTF-8, too few lines, a line that is not two symbols, a token missing from vocab.json, an id in
// vocab.json not below its number of tokens) throws clip::io_error naming the file.
#pragma once

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <zlib.h>

#include "clip/core/error.hpp"
#include "clip/io/json.hpp"
#include "clip/text/unicode.hpp"

namespace clip {

namespace text::detail {

/// GPT-2's bytes_to_unicode, in its order: byte_order[i] is the byte of vocabulary id i (and of
/// id 256 + i with "</w>"), byte_character[b] is the character that stands for byte b.
struct byte_alphabet {
    std::array<unsigned char, 256> byte_order{};
    std::array<char32_t, 256> byte_character{};

    byte_alphabet() {
        std::size_t next = 0;
        std::array<bool, 256> printable{};
        for (int b = 0; b < 256; ++b) {
            printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            if (printable[b]) {
                byte_order[next++] = static_cast<unsigned char>(b);
                byte_character[b] = static_cast<char32_t>(b);
            }
        }
        char32_t extra = 256;
        for (int b = 0; b < 256; ++b) {
            if (printable[b]) continue;
            byte_order[next++] = static_cast<unsigned char>(b);
            byte_character[b] = extra++;
        }
    }

    /// The byte that character `c` stands for, if any.
    std::optional<unsigned char> byte_of(char32_t c) const noexcept {
        if (c < 256 && byte_character[c] == c) return static_cast<unsigned char>(c);
        if (c >= 256 && c < 256 + 68)
            for (int b = 0; b < 256; ++b)
                if (byte_character[b] == c) return static_cast<unsigned char>(b);
        return std::nullopt;
    }
};

inline const byte_alphabet& bytes_to_unicode() {
    static const byte_alphabet alphabet;
    return alphabet;
}

inline std::string file_context(const std::filesystem::path& path) { return "vocabulary \"" + path.string() + "\""; }

inline std::string read_file_bytes(const std::filesystem::path& path) {
    std::error_code error;
    clip::detail::check<io_error>(std::filesystem::is_regular_file(path, error), file_context(path),
                                  ": no such file (or not a regular file)");
    std::ifstream in(path, std::ios::binary);
    clip::detail::check<io_error>(static_cast<bool>(in), file_context(path), ": cannot open: ", std::strerror(errno));
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    clip::detail::check<io_error>(!in.bad(), file_context(path), ": read error");
    return bytes;
}

/// The decompressed content of gzip data (all members, as Python's gzip module reads them).
inline std::string gunzip(std::string_view compressed, const std::filesystem::path& path) {
    static constexpr std::size_t max_output = std::size_t{1} << 30; // no vocabulary is near this
    clip::detail::check<io_error>(compressed.size() >= 2 && static_cast<unsigned char>(compressed[0]) == 0x1F &&
                                      static_cast<unsigned char>(compressed[1]) == 0x8B,
                                  file_context(path), ": not a gzip file (it does not start with 1f 8b)");
    z_stream stream{};
    clip::detail::check<io_error>(inflateInit2(&stream, 16 + MAX_WBITS) == Z_OK, file_context(path),
                                  ": zlib initialisation failed");
    struct end_stream {
        z_stream* s;
        ~end_stream() { inflateEnd(s); }
    } guard{&stream};
    std::string out;
    std::array<char, 1 << 16> buffer{};
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    stream.avail_in = static_cast<uInt>(compressed.size());
    for (;;) {
        stream.next_out = reinterpret_cast<Bytef*>(buffer.data());
        stream.avail_out = static_cast<uInt>(buffer.size());
        const int status = inflate(&stream, Z_NO_FLUSH);
        out.append(buffer.data(), buffer.size() - stream.avail_out);
        clip::detail::check<io_error>(out.size() <= max_output, file_context(path), ": decompresses to more than 1 GiB");
        if (status == Z_STREAM_END) {
            if (stream.avail_in == 0) return out;
            // Another gzip member follows.
            clip::detail::check<io_error>(inflateReset(&stream) == Z_OK, file_context(path), ": zlib reset failed");
            continue;
        }
        if (status == Z_BUF_ERROR && stream.avail_in == 0)
            throw io_error(file_context(path) + ": truncated gzip data (the stream ends early)");
        if (status != Z_OK)
            throw io_error(file_context(path) + ": corrupt gzip data (zlib: " +
                           (stream.msg ? stream.msg : std::to_string(status)) + ")");
    }
}

/// Splits on str.split()'s whitespace, dropping empty parts.
inline std::vector<std::string_view> split_whitespace(std::string_view line) {
    std::vector<std::string_view> parts;
    std::size_t at = 0;
    while (at < line.size()) {
        while (at < line.size() && (line[at] == ' ' || line[at] == '\t' || line[at] == '\r' || line[at] == '\v' || line[at] == '\f'))
            ++at;
        const std::size_t begin = at;
        while (at < line.size() && !(line[at] == ' ' || line[at] == '\t' || line[at] == '\r' || line[at] == '\v' || line[at] == '\f'))
            ++at;
        if (at > begin) parts.push_back(line.substr(begin, at - begin));
    }
    return parts;
}

inline std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    std::size_t at = 0;
    for (;;) {
        const std::size_t end = text.find('\n', at);
        if (end == std::string_view::npos) {
            lines.push_back(text.substr(at));
            return lines;
        }
        lines.push_back(text.substr(at, end - at));
        at = end + 1;
    }
}

} // namespace text::detail

/// A byte-level BPE vocabulary: tokens and their ids, the byte symbols, and the ranked merges.
class bpe_vocabulary {
public:
    /// OpenAI's and CLIPTokenizer's number of merges: 49152 - 256 - 2.
    static constexpr std::size_t clip_merges = 48'894;

    /// The result of merging two adjacent symbols: the merge's rank (lower merges first) and the
    /// id of the merged token.
    struct merge {
        std::int32_t rank;
        std::int32_t merged;
    };

    /// Loads `path`: a directory holding vocab.json and merges.txt, a vocab.json (merges.txt
    /// beside it), or else OpenAI's gzip file.
    static bpe_vocabulary load(const std::filesystem::path& path) {
        std::error_code error;
        if (std::filesystem::is_directory(path, error)) return load_hugging_face(path / "vocab.json", path / "merges.txt");
        if (path.extension() == ".json") return load_hugging_face(path, path.parent_path() / "merges.txt");
        return load_openai(path);
    }

    /// OpenAI's bpe_simple_vocab_16e6.txt.gz.
    static bpe_vocabulary load_openai(const std::filesystem::path& path) {
        const std::string bytes = text::detail::read_file_bytes(path);
        return from_openai_text(text::detail::gunzip(bytes, path), text::detail::file_context(path));
    }

    /// OpenAI's vocabulary from the decompressed text of its file; `context` names the file in
    /// errors.
    static bpe_vocabulary from_openai_text(std::string_view text, const std::string& context) {
        check_utf8(text, context);
        const std::vector<std::string_view> lines = text::detail::split_lines(text);
        detail::check<io_error>(lines.size() >= clip_merges + 1, context, ": has ", lines.size(),
                                " lines, but an OpenAI BPE vocabulary has a header line and at least ", clip_merges,
                                " merges");
        const text::detail::byte_alphabet& alphabet = text::detail::bytes_to_unicode();
        std::vector<std::string> tokens;
        tokens.reserve(2 * 256 + clip_merges + 2);
        for (const unsigned char b : alphabet.byte_order) tokens.push_back(text::encode_utf8(std::u32string(1, alphabet.byte_character[b])));
        for (std::size_t i = 0; i < 256; ++i) tokens.push_back(tokens[i] + "</w>");
        std::vector<std::pair<std::string, std::string>> merges;
        merges.reserve(clip_merges);
        for (std::size_t line = 1; line <= clip_merges; ++line) {
            merges.push_back(merge_halves(lines[line], context, line + 1));
            tokens.push_back(merges.back().first + merges.back().second);
        }
        tokens.emplace_back("<|startoftext|>");
        tokens.emplace_back("<|endoftext|>");
        std::unordered_map<std::string, std::int32_t> ids;
        ids.reserve(tokens.size());
        for (std::size_t id = 0; id < tokens.size(); ++id) ids.insert_or_assign(tokens[id], static_cast<std::int32_t>(id));
        return bpe_vocabulary(std::move(tokens), std::move(ids), merges, context);
    }

    /// Hugging Face's vocab.json + merges.txt.
    static bpe_vocabulary load_hugging_face(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt) {
        const std::string vocab_context = text::detail::file_context(vocab_json);
        const std::string merges_context = text::detail::file_context(merges_txt);
        const std::string vocab_bytes = text::detail::read_file_bytes(vocab_json);
        const std::string merges_text = text::detail::read_file_bytes(merges_txt);
        const clip::detail::json vocab = clip::detail::parse_json(vocab_bytes, vocab_context);
        detail::check<io_error>(vocab.is_object(), vocab_context, ": expected a JSON object mapping tokens to ids");
        std::unordered_map<std::string, std::int32_t> ids;
        std::vector<std::string> tokens;
        for (const auto& [token, id] : vocab.items()) {
            detail::check<io_error>(id.is_number_integer() && id.get<std::int64_t>() >= 0 &&
                                        id.get<std::int64_t>() < std::numeric_limits<std::int32_t>::max(),
                                    vocab_context, ": the id of \"", token, "\" is not a non-negative 32-bit integer");
            // The ids are 0..N-1 for N tokens: a larger one would size `tokens` by a number the file
            // merely states (2^31 ids are 64 GB of strings).
            detail::check<io_error>(id.get<std::int64_t>() < static_cast<std::int64_t>(vocab.size()), vocab_context,
                                    ": the id ", id.get<std::int64_t>(), " of \"", token, "\" is not below the number of tokens, ",
                                    vocab.size());
            const auto index = static_cast<std::size_t>(id.get<std::int64_t>());
            if (index >= tokens.size()) tokens.resize(index + 1);
            detail::check<io_error>(tokens[index].empty(), vocab_context, ": id ", index, " is given to both \"",
                                    tokens[index], "\" and \"", token, "\"");
            detail::check<io_error>(!token.empty(), vocab_context, ": an empty token");
            tokens[index] = token;
            ids.emplace(token, static_cast<std::int32_t>(index));
        }
        check_utf8(merges_text, merges_context);
        std::vector<std::string_view> lines = text::detail::split_lines(merges_text);
        std::size_t first = 0;
        if (!lines.empty() && lines[0].starts_with("#")) first = 1; // "#version: 0.2"
        std::vector<std::pair<std::string, std::string>> merges;
        for (std::size_t line = first; line < lines.size() && merges.size() < clip_merges; ++line) {
            if (text::detail::split_whitespace(lines[line]).empty()) continue; // the last line's end
            merges.push_back(merge_halves(lines[line], merges_context, line + 1));
        }
        return bpe_vocabulary(std::move(tokens), std::move(ids), merges, vocab_context + " with " + merges_context);
    }

    /// Number of ids (49 408 for CLIP).
    std::size_t size() const noexcept { return tokens_.size(); }
    /// Number of merges (48 894 for CLIP).
    std::size_t merge_count() const noexcept { return merge_count_; }

    /// The id of `token`, if it is in the vocabulary.
    std::optional<std::int32_t> find(std::string_view token) const {
        const auto found = ids_.find(std::string(token));
        if (found == ids_.end()) return std::nullopt;
        return found->second;
    }
    /// The token (UTF-8, in the byte alphabet) of `id`; index_error outside [0, size()).
    const std::string& token(std::int64_t id) const {
        detail::check<index_error>(id >= 0 && id < static_cast<std::int64_t>(tokens_.size()) && !tokens_[static_cast<std::size_t>(id)].empty(),
                                   "bpe_vocabulary: no token has id ", id, " (the vocabulary has ", tokens_.size(), " ids)");
        return tokens_[static_cast<std::size_t>(id)];
    }
    /// The bytes token `id` stands for ("</w>" and the special tokens kept as they are written).
    const std::string& token_bytes(std::int64_t id) const {
        token(id);
        const std::optional<std::string>& bytes = token_bytes_[static_cast<std::size_t>(id)];
        detail::check(bytes.has_value(), "bpe_vocabulary: token ", id, " (\"", tokens_[static_cast<std::size_t>(id)],
                      "\") is not written in the byte alphabet");
        return *bytes;
    }

    std::int32_t start_of_text() const noexcept { return start_of_text_; }
    std::int32_t end_of_text() const noexcept { return end_of_text_; }

    /// The id of the symbol for byte `b`, with "</w>" when it ends a word.
    std::int32_t byte_symbol(unsigned char b, bool ends_word) const noexcept { return byte_symbols_[ends_word ? 256 + b : b]; }

    /// The merge of adjacent symbols `left` and `right`, if there is one.
    std::optional<merge> find_merge(std::int32_t left, std::int32_t right) const {
        const auto found = merges_.find(pair_key(left, right));
        if (found == merges_.end()) return std::nullopt;
        return found->second;
    }

private:
    static std::uint64_t pair_key(std::int32_t left, std::int32_t right) noexcept {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
    }

    static void check_utf8(std::string_view text, const std::string& context) {
        try {
            (void)text::decode_utf8(text, context);
        } catch (const io_error&) {
            throw;
        } catch (const error& e) {
            throw io_error(e.what());
        }
    }

    static std::pair<std::string, std::string> merge_halves(std::string_view line, const std::string& context, std::size_t number) {
        const std::vector<std::string_view> parts = text::detail::split_whitespace(line);
        detail::check<io_error>(parts.size() == 2, context, ": line ", number,
                                " should be a merge, two symbols separated by a space, but is \"", line, "\"");
        return {std::string(parts[0]), std::string(parts[1])};
    }

    bpe_vocabulary(std::vector<std::string> tokens, std::unordered_map<std::string, std::int32_t> ids,
                   const std::vector<std::pair<std::string, std::string>>& merges, const std::string& context)
        : tokens_(std::move(tokens)), ids_(std::move(ids)), merge_count_(merges.size()) {
        const auto require = [&](const std::string& token, const char* what) {
            const auto found = ids_.find(token);
            detail::check<io_error>(found != ids_.end(), context, ": the ", what, " \"", token, "\" has no id");
            return found->second;
        };
        const text::detail::byte_alphabet& alphabet = text::detail::bytes_to_unicode();
        for (int b = 0; b < 256; ++b) {
            const std::string symbol = text::encode_utf8(std::u32string(1, alphabet.byte_character[b]));
            byte_symbols_[b] = require(symbol, "byte symbol");
            byte_symbols_[256 + b] = require(symbol + "</w>", "byte symbol");
        }
        start_of_text_ = require("<|startoftext|>", "special token");
        end_of_text_ = require("<|endoftext|>", "special token");
        // As Python's dict(zip(merges, range(...))): a pair listed twice keeps its last rank. A
        // merge whose halves are not tokens can never apply (every symbol of a word is a token).
        merges_.reserve(merges.size());
        for (std::size_t rank = 0; rank < merges.size(); ++rank) {
            const auto& [left, right] = merges[rank];
            const auto left_id = ids_.find(left), right_id = ids_.find(right);
            if (left_id == ids_.end() || right_id == ids_.end()) continue;
            const std::int32_t merged = require(left + right, "merged token");
            merges_.insert_or_assign(pair_key(left_id->second, right_id->second), merge{static_cast<std::int32_t>(rank), merged});
        }
        token_bytes_.resize(tokens_.size());
        for (std::size_t id = 0; id < tokens_.size(); ++id) {
            if (tokens_[id].empty()) continue;
            std::string bytes;
            bool in_alphabet = true;
            for (const char32_t c : text::decode_utf8(tokens_[id], context)) {
                const std::optional<unsigned char> b = alphabet.byte_of(c);
                if (!b) {
                    in_alphabet = false;
                    break;
                }
                bytes += static_cast<char>(*b);
            }
            if (in_alphabet) token_bytes_[id] = std::move(bytes);
        }
    }

    std::vector<std::string> tokens_;                       // by id; empty where no token has the id
    std::vector<std::optional<std::string>> token_bytes_;    // by id
    std::unordered_map<std::string, std::int32_t> ids_;
    std::unordered_map<std::uint64_t, merge> merges_;        // (left << 32 | right) -> merge
    std::array<std::int32_t, 512> byte_symbols_{};           // byte b: [b] alone, [256 + b] with "</w>"
    std::size_t merge_count_ = 0;
    std::int32_t start_of_text_ = 0, end_of_text_ = 0;
};

} // namespace clip
