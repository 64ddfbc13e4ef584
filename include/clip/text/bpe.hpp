// clip/text/bpe.hpp: byte-level BPE, the merge loop of OpenAI's SimpleTokenizer.bpe.
//
// A piece of text (one pre-token, clip/text/pretokenize.hpp) becomes its UTF-8 bytes, each byte
// one symbol, the last one marked as the end of the word ("</w>"). Then, as long as some pair of
// adjacent symbols has a merge, the pair whose merge has the lowest rank is merged everywhere,
// left to right without overlaps ("a a a" with merge "a a" becomes "aa a"). The symbols left are
// the piece's token ids. The work is on ids (every symbol is a token of the vocabulary), so a
// merge is one hash lookup of the pair.
//
// Short pieces (nearly all) run the reference's loop as it is: find the lowest-ranked pair, merge
// it everywhere, repeat, O(n²) in the piece's length. A long piece (a paragraph of Chinese is one
// run of letters, so one piece) would make that quadratic cost real, so from 64 symbols on the
// same passes are driven by a heap of the pairs: each pass takes every pair of the lowest rank
// still present and merges them left to right, which is what the reference does, in
// O(n log n).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <queue>
#include <string_view>
#include <vector>

#include "clip/text/vocabulary.hpp"

namespace clip::text {

namespace detail {

/// The reference's loop, on `word` in place.
inline void bpe_merge_quadratic(const bpe_vocabulary& vocabulary, std::vector<std::int32_t>& word) {
    std::vector<std::int32_t> merged;
    merged.reserve(word.size());
    while (word.size() > 1) {
        std::int32_t best_rank = std::numeric_limits<std::int32_t>::max();
        std::int32_t first = 0, second = 0, replacement = 0;
        for (std::size_t i = 0; i + 1 < word.size(); ++i) {
            const std::optional<bpe_vocabulary::merge> m = vocabulary.find_merge(word[i], word[i + 1]);
            if (m && m->rank < best_rank) {
                best_rank = m->rank;
                first = word[i];
                second = word[i + 1];
                replacement = m->merged;
            }
        }
        if (best_rank == std::numeric_limits<std::int32_t>::max()) return;
        merged.clear();
        for (std::size_t i = 0; i < word.size();) {
            if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
                merged.push_back(replacement);
                i += 2;
            } else {
                merged.push_back(word[i++]);
            }
        }
        word.swap(merged);
    }
}

/// The same passes driven by a heap, on `word` in place. Symbols live in a linked list whose
/// nodes keep their original index, so sorting a pass's pairs by node index is sorting them left
/// to right. A merge never recreates the pair it merges (the merged token is longer than either
/// half), so one pass is exactly the heap entries of one rank.
inline void bpe_merge_heap(const bpe_vocabulary& vocabulary, std::vector<std::int32_t>& word) {
    const auto n = static_cast<std::int32_t>(word.size());
    std::vector<std::int32_t> next(word.size()), previous(word.size());
    for (std::int32_t i = 0; i < n; ++i) {
        next[static_cast<std::size_t>(i)] = i + 1 < n ? i + 1 : -1;
        previous[static_cast<std::size_t>(i)] = i - 1;
    }
    std::vector<bool> alive(word.size(), true);
    struct candidate {
        std::int32_t rank, node, left, right;
        bool operator>(const candidate& other) const noexcept { return rank > other.rank; }
    };
    std::priority_queue<candidate, std::vector<candidate>, std::greater<>> heap;
    const auto push_pair = [&](std::int32_t node) {
        if (node < 0) return;
        const std::int32_t right = next[static_cast<std::size_t>(node)];
        if (right < 0) return;
        const std::int32_t a = word[static_cast<std::size_t>(node)], b = word[static_cast<std::size_t>(right)];
        if (const std::optional<bpe_vocabulary::merge> m = vocabulary.find_merge(a, b)) heap.push({m->rank, node, a, b});
    };
    for (std::int32_t i = 0; i + 1 < n; ++i) push_pair(i);
    std::vector<candidate> pass;
    while (!heap.empty()) {
        const std::int32_t rank = heap.top().rank;
        pass.clear();
        while (!heap.empty() && heap.top().rank == rank) {
            pass.push_back(heap.top());
            heap.pop();
        }
        std::sort(pass.begin(), pass.end(), [](const candidate& x, const candidate& y) { return x.node < y.node; });
        const std::int32_t merged = vocabulary.find_merge(pass.front().left, pass.front().right)->merged;
        for (const candidate& c : pass) {
            const auto node = static_cast<std::size_t>(c.node);
            if (!alive[node]) continue;
            const std::int32_t right = next[node];
            // Stale: an earlier merge of this pass or of a previous one changed the pair.
            if (right < 0 || word[node] != c.left || word[static_cast<std::size_t>(right)] != c.right) continue;
            word[node] = merged;
            alive[static_cast<std::size_t>(right)] = false;
            next[node] = next[static_cast<std::size_t>(right)];
            if (next[node] >= 0) previous[static_cast<std::size_t>(next[node])] = c.node;
            push_pair(previous[node]);
            push_pair(c.node);
        }
    }
    std::size_t length = 0;
    for (std::int32_t i = 0; i >= 0; i = next[static_cast<std::size_t>(i)]) word[length++] = word[static_cast<std::size_t>(i)];
    word.resize(length);
}

} // namespace detail

/// The token ids of one piece, given as its UTF-8 bytes (non-empty).
inline std::vector<std::int32_t> bpe_encode(const bpe_vocabulary& vocabulary, std::string_view piece) {
    std::vector<std::int32_t> word;
    word.reserve(piece.size());
    for (std::size_t i = 0; i < piece.size(); ++i)
        word.push_back(vocabulary.byte_symbol(static_cast<unsigned char>(piece[i]), i + 1 == piece.size()));
    if (word.size() < 64) detail::bpe_merge_quadratic(vocabulary, word);
    else detail::bpe_merge_heap(vocabulary, word);
    return word;
}

} // namespace clip::text
