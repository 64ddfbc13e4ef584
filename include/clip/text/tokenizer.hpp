// clip/text/tokenizer.hpp: CLIP's tokenizer, equal to OpenAI's SimpleTokenizer + clip.tokenize.
//
//   clip::tokenizer tok = clip::tokenizer::load(clip::find_vocabulary());
//   clip::tensor tokens = tok.tokenize({"a photo of a cat", "a photo of a dog"});  // [2, 77] i64
//   std::vector<std::int64_t> ids = tok.encode("Hello, world!");  // [3306, 267, 1002, 256]
//   std::string text = tok.decode(ids);                            // "hello , world ! "
//
// encode(text) = SimpleTokenizer.encode: clean the caption (clip/text/clean.hpp: ftfy, HTML
// entities, whitespace, lower case), split it into pieces (clip/text/pretokenize.hpp), and turn
// each piece into token ids with byte-level BPE (clip/text/bpe.hpp); the special tokens typed in
// the text ("<|endoftext|>") become their ids. No start/end tokens are added.
//
// tokenize(texts, context_length = 77, truncate = false) = clip.tokenize: one row per text,
// [<|startoftext|>] + encode(text) + [<|endoftext|>] zero-padded to context_length, as an i64
// tensor [N, context_length]. A row that does not fit throws clip::shape_error ("Input <text>
// is too long for context length 77"), or with `truncate` keeps its first context_length ids and
// overwrites the last one with <|endoftext|>. So 75 ids fit and 76 do not. The texts are spread
// over clip's thread pool (clip::set_num_threads). (OpenAI's clip.tokenize returns int32 with
// PyTorch >= 1.8; the values are the same, and clip's text encoder takes i64.)
//
// decode(ids) = SimpleTokenizer.decode: the tokens' bytes joined, decoded as UTF-8 with
// errors="replace" (each invalid sequence becomes U+FFFD), and every "</w>" replaced by a space.
//
// Text must be UTF-8: invalid UTF-8 throws clip::error naming the byte offset. A tokenizer is
// safe to use from several threads at once: it only reads the vocabulary, and its cache of words
// already encoded (shared by copies of the tokenizer) is read without locks and written under one.
//
// The vocabulary: find_vocabulary(explicit, model) returns the explicit path, else $CLIP_VOCAB,
// else bpe_simple_vocab_16e6.txt.gz (or a Hugging Face vocab.json) beside the model file, and
// throws clip::io_error describing these three options when none exists.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "clip/core/error.hpp"
#include "clip/core/parallel.hpp"
#include "clip/core/tensor.hpp"
#include "clip/text/bpe.hpp"
#include "clip/text/clean.hpp"
#include "clip/text/pretokenize.hpp"
#include "clip/text/unicode.hpp"
#include "clip/text/vocabulary.hpp"

namespace clip {

namespace detail {

/// Words already encoded: piece bytes -> token ids, shared by the threads using one tokenizer.
///
/// Reads take no lock and write nothing shared: an open-addressing table of atomic pointers to
/// entries that never change once published (a lock on every read would bounce its cache line
/// between the cores on every word). Inserts take a mutex, append the entry to a list that owns
/// it, and publish it in the first empty slot of its probe sequence. Entries are never removed:
/// when the table is half full it stops caching, and further new words are simply encoded each
/// time (the result is the same).
class bpe_cache {
public:
    static constexpr std::size_t slot_count = std::size_t{1} << 17;
    static constexpr std::size_t max_entries = slot_count / 2;

    bpe_cache() : slots_(new std::atomic<const entry*>[slot_count]) {
        for (std::size_t i = 0; i < slot_count; ++i) slots_[i].store(nullptr, std::memory_order_relaxed);
    }

    /// Appends the cached ids of `piece` to `out`; false when it is not cached.
    bool append(std::string_view piece, std::vector<std::int64_t>& out) const {
        for (std::size_t slot = home(piece);; slot = (slot + 1) % slot_count) {
            const entry* e = slots_[slot].load(std::memory_order_acquire);
            if (e == nullptr) return false;
            if (e->piece == piece) {
                out.insert(out.end(), e->ids.begin(), e->ids.end());
                return true;
            }
        }
    }

    void insert(std::string_view piece, std::vector<std::int32_t> ids) {
        const std::lock_guard lock(mutex_);
        if (entries_.size() >= max_entries) return;
        std::size_t slot = home(piece);
        for (;; slot = (slot + 1) % slot_count) {
            const entry* e = slots_[slot].load(std::memory_order_relaxed);
            if (e == nullptr) break;
            if (e->piece == piece) return; // another thread cached it first
        }
        entries_.push_back(std::make_unique<const entry>(entry{std::string(piece), std::move(ids)}));
        slots_[slot].store(entries_.back().get(), std::memory_order_release);
    }

private:
    struct entry {
        std::string piece;
        std::vector<std::int32_t> ids;
    };
    static std::size_t home(std::string_view piece) noexcept { return std::hash<std::string_view>{}(piece) % slot_count; }

    std::unique_ptr<std::atomic<const entry*>[]> slots_;
    std::mutex mutex_;                                  // guards entries_ and the publishing of slots
    std::vector<std::unique_ptr<const entry>> entries_; // owns what the slots point to
};

} // namespace detail

class tokenizer {
public:
    static constexpr std::int64_t default_context_length = 77;

    explicit tokenizer(bpe_vocabulary vocabulary)
        : tokenizer(std::make_shared<const bpe_vocabulary>(std::move(vocabulary))) {}
    /// A tokenizer with its own (empty) cache on a vocabulary shared with others.
    explicit tokenizer(std::shared_ptr<const bpe_vocabulary> vocabulary)
        : vocabulary_(std::move(vocabulary)), cache_(std::make_shared<detail::bpe_cache>()) {
        detail::check(vocabulary_ != nullptr, "tokenizer: null vocabulary");
    }

    /// The tokenizer of the vocabulary at `path` (see bpe_vocabulary::load).
    static tokenizer load(const std::filesystem::path& path) { return tokenizer(bpe_vocabulary::load(path)); }

    const bpe_vocabulary& vocabulary() const noexcept { return *vocabulary_; }
    std::int64_t start_of_text() const noexcept { return vocabulary_->start_of_text(); }
    std::int64_t end_of_text() const noexcept { return vocabulary_->end_of_text(); }

    /// SimpleTokenizer.encode(text): the token ids of UTF-8 `text`, without start/end tokens.
    std::vector<std::int64_t> encode(std::string_view text) const {
        const std::u32string cleaned = text::clean(text::decode_utf8(text, "tokenizer"));
        std::vector<std::int64_t> ids;
        std::string piece_bytes;
        for (const std::u32string_view piece : text::pretokenize(cleaned)) {
            piece_bytes.clear();
            for (const char32_t c : piece) text::append_utf8(piece_bytes, c);
            // The reference's cache starts with the two special tokens, which therefore become
            // their ids wherever the pre-tokeniser leaves them whole.
            if (piece_bytes == "<|startoftext|>") ids.push_back(start_of_text());
            else if (piece_bytes == "<|endoftext|>") ids.push_back(end_of_text());
            else if (!cache_->append(piece_bytes, ids)) {
                std::vector<std::int32_t> word = text::bpe_encode(*vocabulary_, piece_bytes);
                ids.insert(ids.end(), word.begin(), word.end());
                cache_->insert(piece_bytes, std::move(word));
            }
        }
        return ids;
    }

    /// SimpleTokenizer.decode(ids): the text of `ids`, "</w>" read as a space, invalid UTF-8
    /// replaced by U+FFFD. An id outside the vocabulary throws clip::index_error.
    std::string decode(std::span<const std::int64_t> ids) const {
        std::string bytes;
        for (const std::int64_t id : ids) bytes += vocabulary_->token_bytes(id);
        const std::string text = text::decode_utf8_replace(bytes);
        std::string out;
        out.reserve(text.size());
        for (std::size_t at = 0; at < text.size();) {
            if (text.compare(at, 4, "</w>") == 0) {
                out += ' ';
                at += 4;
            } else {
                out += text[at++];
            }
        }
        return out;
    }
    std::string decode(std::initializer_list<std::int64_t> ids) const { return decode(std::span<const std::int64_t>(ids.begin(), ids.size())); }

    /// clip.tokenize(texts, context_length, truncate): i64 [N, context_length].
    tensor tokenize(std::span<const std::string> texts, std::int64_t context_length = default_context_length,
                    bool truncate = false) const {
        return tokenize_rows(texts.size(), [&](std::size_t i) { return std::string_view(texts[i]); }, context_length, truncate);
    }
    tensor tokenize(std::span<const std::string_view> texts, std::int64_t context_length = default_context_length,
                    bool truncate = false) const {
        return tokenize_rows(texts.size(), [&](std::size_t i) { return texts[i]; }, context_length, truncate);
    }
    tensor tokenize(std::initializer_list<std::string_view> texts, std::int64_t context_length = default_context_length,
                    bool truncate = false) const {
        return tokenize(std::span<const std::string_view>(texts.begin(), texts.size()), context_length, truncate);
    }
    /// One text: i64 [1, context_length].
    tensor tokenize(std::string_view text, std::int64_t context_length = default_context_length, bool truncate = false) const {
        return tokenize(std::span<const std::string_view>(&text, 1), context_length, truncate);
    }

private:
    template <class Text>
    tensor tokenize_rows(std::size_t count, Text&& text_at, std::int64_t context_length, bool truncate) const {
        detail::check<shape_error>(context_length >= 1, "tokenize: the context length must be at least 1, got ", context_length);
        const auto n = static_cast<std::int64_t>(count);
        std::vector<std::vector<std::int64_t>> rows(count);
        std::vector<std::exception_ptr> failures(count);
        // About 10 µs per caption: enough that a handful of captions is worth a second thread.
        detail::parallel_for(n, 1 << 13, [&](std::int64_t begin, std::int64_t end) {
            for (std::int64_t i = begin; i < end; ++i) {
                try {
                    rows[static_cast<std::size_t>(i)] = encode(text_at(static_cast<std::size_t>(i)));
                } catch (...) {
                    failures[static_cast<std::size_t>(i)] = std::current_exception();
                }
            }
        });
        // As the reference: every text is encoded first (the first failure is the one reported),
        // then the rows are checked in order.
        for (const std::exception_ptr& failure : failures)
            if (failure) std::rethrow_exception(failure);
        tensor out = tensor::zeros({n, context_length}, dtype::i64);
        std::int64_t* data = out.data<std::int64_t>();
        for (std::size_t i = 0; i < count; ++i) {
            const std::vector<std::int64_t>& ids = rows[i];
            const auto length = static_cast<std::int64_t>(ids.size()) + 2;
            if (length > context_length && !truncate)
                throw shape_error(detail::message("Input ", text_at(i), " is too long for context length ", context_length));
            std::int64_t* row = data + static_cast<std::int64_t>(i) * context_length;
            const std::int64_t kept = std::min(length, context_length);
            row[0] = start_of_text();
            for (std::int64_t k = 1; k + 1 < kept; ++k) row[k] = ids[static_cast<std::size_t>(k - 1)];
            row[kept - 1] = end_of_text(); // overwrites the last kept id when truncating
        }
        return out;
    }

    std::shared_ptr<const bpe_vocabulary> vocabulary_;
    std::shared_ptr<detail::bpe_cache> cache_;
};

/// Where the BPE vocabulary is: `explicit_path` if given, else $CLIP_VOCAB, else
/// bpe_simple_vocab_16e6.txt.gz or a Hugging Face vocab.json beside `model_path`. Throws
/// clip::io_error when the chosen path does not exist, or when there is nothing to choose.
inline std::filesystem::path find_vocabulary(std::optional<std::filesystem::path> explicit_path = std::nullopt,
                                             std::optional<std::filesystem::path> model_path = std::nullopt) {
    std::error_code error;
    if (explicit_path) {
        detail::check<io_error>(std::filesystem::exists(*explicit_path, error), "find_vocabulary: the vocabulary \"",
                                explicit_path->string(), "\" does not exist");
        return *explicit_path;
    }
    if (const char* from_environment = std::getenv("CLIP_VOCAB"); from_environment && *from_environment) {
        const std::filesystem::path path(from_environment);
        detail::check<io_error>(std::filesystem::exists(path, error), "find_vocabulary: CLIP_VOCAB names \"", path.string(),
                                "\", which does not exist");
        return path;
    }
    if (model_path) {
        const std::filesystem::path directory = model_path->parent_path();
        for (const char* name : {"bpe_simple_vocab_16e6.txt.gz", "vocab.json"})
            if (std::filesystem::is_regular_file(directory / name, error)) return directory / name;
    }
    throw io_error(detail::message(
        "find_vocabulary: no BPE vocabulary found. Pass the path of OpenAI's bpe_simple_vocab_16e6.txt.gz (or of a "
        "Hugging Face vocab.json with merges.txt beside it), or set the environment variable CLIP_VOCAB to it, or put "
        "bpe_simple_vocab_16e6.txt.gz beside the model file",
        model_path ? " (\"" + model_path->string() + "\")" : std::string(" (no model file was given)")));
}

/// The tokenizer of find_vocabulary() (so of $CLIP_VOCAB), loaded on first use.
inline const tokenizer& default_tokenizer() {
    static const tokenizer instance = tokenizer::load(find_vocabulary());
    return instance;
}

/// clip.tokenize(texts) with the default tokenizer.
inline tensor tokenize(std::span<const std::string> texts, std::int64_t context_length = tokenizer::default_context_length,
                       bool truncate = false) {
    return default_tokenizer().tokenize(texts, context_length, truncate);
}
inline tensor tokenize(std::initializer_list<std::string_view> texts,
                       std::int64_t context_length = tokenizer::default_context_length, bool truncate = false) {
    return default_tokenizer().tokenize(texts, context_length, truncate);
}
inline tensor tokenize(std::string_view text, std::int64_t context_length = tokenizer::default_context_length,
                       bool truncate = false) {
    return default_tokenizer().tokenize(text, context_length, truncate);
}

} // namespace clip
