// clip/data/vocabulary_builder.hpp: a small byte-level BPE vocabulary whose merges build every
// word of a set of texts into a single token, for training a CLIP from scratch on a closed
// vocabulary (the synthetic dataset's captions) without OpenAI's 49 408-token file.
//
//   std::vector<std::string> captions = {"a large red circle on the left", ...};
//   clip::tokenizer tok(clip::build_word_vocabulary(captions));
//   tok.encode("a large red circle")   // 4 ids, one per word
//
// The result is an ordinary clip::bpe_vocabulary that clip::tokenizer uses unchanged: the 256
// byte symbols, the same 256 ending a word ("</w>"), one token per merge, then <|startoftext|>
// and <|endoftext|> as the last two ids (OpenAI's layout), so a model's vocab_size is
// `vocabulary.size()`. Text outside the word list still tokenizes, into byte symbols and partial
// merges.
//
// The words are the pieces the tokenizer itself cuts the texts into (clean + pretokenize), in
// order of first appearance. For each word in turn, BPE with the merges so far is run on it, and
// if it is not one token yet, the merge of its first two symbols is appended (a new lowest
// priority) and BPE run again, until it is. Appending never changes a word built before: BPE
// applies the lowest-ranked merge available at each step, and each earlier word already became
// one token using only merges ranked before the new ones.
//
// The vocabulary is written as Hugging Face's vocab.json + merges.txt (`files.save(directory)`),
// the in-memory form bpe_vocabulary can load. bpe_vocabulary has no constructor from memory, so
// build_word_vocabulary writes the two files to a private temporary directory, loads them and
// removes them.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <unistd.h>

#include "clip/core/error.hpp"
#include "clip/io/json.hpp"
#include "clip/text/clean.hpp"
#include "clip/text/pretokenize.hpp"
#include "clip/text/unicode.hpp"
#include "clip/text/vocabulary.hpp"

namespace clip {

/// A BPE vocabulary as Hugging Face's two files, held in memory.
struct vocabulary_files {
    std::string vocab_json; ///< {"token": id, ...}
    std::string merges_txt; ///< "#version: 0.2" then "left right" per line, by rank

    /// Writes vocab.json and merges.txt into `directory` (created if needed), which
    /// bpe_vocabulary::load(directory) then reads.
    void save(const std::filesystem::path& directory) const {
        std::filesystem::create_directories(directory);
        for (const auto& [name, text] : {std::pair{"vocab.json", &vocab_json}, std::pair{"merges.txt", &merges_txt}}) {
            std::ofstream out(directory / name, std::ios::binary | std::ios::trunc);
            out.write(text->data(), static_cast<std::streamsize>(text->size()));
            out.close();
            detail::check<io_error>(out.good(), "vocabulary_files::save: cannot write \"", (directory / name).string(), "\"");
        }
    }
};

namespace detail {

/// The tokenizer's pieces of `texts` (cleaned, pre-tokenised, as UTF-8), each once, in order of
/// first appearance; the special tokens are left out.
inline std::vector<std::string> word_pieces(std::span<const std::string> texts) {
    std::vector<std::string> words;
    std::unordered_set<std::string> seen;
    for (const std::string& t : texts) {
        const std::u32string cleaned = text::clean(text::decode_utf8(t, "build_word_vocabulary"));
        for (const std::u32string_view piece : text::pretokenize(cleaned)) {
            std::string bytes = text::encode_utf8(piece);
            if (bytes == "<|startoftext|>" || bytes == "<|endoftext|>") continue;
            if (seen.insert(bytes).second) words.push_back(std::move(bytes));
        }
    }
    return words;
}

/// BPE on symbol strings with the merges ranked in `ranks`: the reference's loop (lowest rank
/// first, merged everywhere left to right).
inline void bpe_on_strings(std::vector<std::string>& word, const std::map<std::pair<std::string, std::string>, std::size_t>& ranks) {
    while (word.size() > 1) {
        std::size_t best = SIZE_MAX, at = 0;
        for (std::size_t i = 0; i + 1 < word.size(); ++i) {
            const auto found = ranks.find({word[i], word[i + 1]});
            if (found != ranks.end() && found->second < best) {
                best = found->second;
                at = i;
            }
        }
        if (best == SIZE_MAX) return;
        const std::string first = word[at], second = word[at + 1];
        std::vector<std::string> merged;
        for (std::size_t i = 0; i < word.size();) {
            if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
                merged.push_back(first + second);
                i += 2;
            } else {
                merged.push_back(std::move(word[i++]));
            }
        }
        word.swap(merged);
    }
}

} // namespace detail

/// The vocabulary files whose merges make each word of `texts` one token (see the header).
inline vocabulary_files word_vocabulary_files(std::span<const std::string> texts) {
    const text::detail::byte_alphabet& alphabet = text::detail::bytes_to_unicode();
    const auto symbol = [&](unsigned char b) { return text::encode_utf8(std::u32string(1, alphabet.byte_character[b])); };
    std::vector<std::string> tokens;
    for (const unsigned char b : alphabet.byte_order) tokens.push_back(symbol(b));
    for (const unsigned char b : alphabet.byte_order) tokens.push_back(symbol(b) + "</w>");
    std::set<std::string> known(tokens.begin(), tokens.end());
    std::vector<std::pair<std::string, std::string>> merges;
    std::map<std::pair<std::string, std::string>, std::size_t> ranks;
    for (const std::string& word : detail::word_pieces(texts)) {
        for (;;) {
            std::vector<std::string> symbols;
            for (std::size_t i = 0; i < word.size(); ++i)
                symbols.push_back(symbol(static_cast<unsigned char>(word[i])) + (i + 1 == word.size() ? "</w>" : ""));
            detail::bpe_on_strings(symbols, ranks);
            if (symbols.size() == 1) break;
            ranks.emplace(std::pair{symbols[0], symbols[1]}, merges.size());
            merges.emplace_back(symbols[0], symbols[1]);
            if (known.insert(symbols[0] + symbols[1]).second) tokens.push_back(symbols[0] + symbols[1]);
        }
    }
    tokens.emplace_back("<|startoftext|>");
    tokens.emplace_back("<|endoftext|>");
    detail::ordered_json vocab = detail::ordered_json::object();
    for (std::size_t id = 0; id < tokens.size(); ++id) vocab[tokens[id]] = id;
    vocabulary_files files;
    files.vocab_json = vocab.dump();
    files.merges_txt = "#version: 0.2\n";
    for (const auto& [left, right] : merges) files.merges_txt += left + " " + right + "\n";
    return files;
}

/// Loads vocabulary files held in memory (through a private temporary directory, removed after).
inline bpe_vocabulary load_vocabulary(const vocabulary_files& files) {
    static std::atomic<std::uint64_t> counter{0};
    const std::filesystem::path directory =
        std::filesystem::temp_directory_path() /
        detail::message("clip-vocabulary-", ::getpid(), "-", counter++);
    struct remove_at_exit {
        std::filesystem::path path;
        ~remove_at_exit() {
            std::error_code ignored;
            std::filesystem::remove_all(path, ignored);
        }
    } cleanup{directory};
    files.save(directory);
    return bpe_vocabulary::load_hugging_face(directory / "vocab.json", directory / "merges.txt");
}

/// The vocabulary that makes each word of `texts` one token (see the header).
inline bpe_vocabulary build_word_vocabulary(std::span<const std::string> texts) {
    return load_vocabulary(word_vocabulary_files(texts));
}

} // namespace clip
