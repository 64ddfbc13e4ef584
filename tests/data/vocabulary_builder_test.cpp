// Tests for clip/data/vocabulary_builder.hpp: every word of the texts becomes one token of an
// ordinary bpe_vocabulary (words sharing letters and prefixes included), the special tokens are
// the last two ids, other text still tokenizes, and the files round-trip through
// bpe_vocabulary::load.
#include "../support.hpp"

#include <clip/data/vocabulary_builder.hpp>

namespace data_vocabulary_builder_test {

using clip::test::contains;

TEST_CASE("each word of the texts is one token; <|startoftext|>, <|endoftext|> are the last ids") {
    const std::vector<std::string> texts = {"a large red circle at the top", "a small RED square at the bottom!",
                                            "to top bottom tot otto", "aaaa aaa aa banana ananas nana", "naïve café 2024"};
    const clip::tokenizer tok(clip::build_word_vocabulary(texts));
    const clip::bpe_vocabulary& v = tok.vocabulary();
    CHECK(v.size() <= 512 + v.merge_count() + 2); // merges can build the same token twice
    CHECK(tok.start_of_text() == static_cast<std::int64_t>(v.size()) - 2);
    CHECK(tok.end_of_text() == static_cast<std::int64_t>(v.size()) - 1);
    for (const std::string word : {"a", "large", "red", "circle", "at", "the", "top", "small", "square", "bottom", "!", "to",
                                   "tot", "otto", "aaaa", "aaa", "aa", "banana", "ananas", "nana", "naïve", "café", "2", "0"}) {
        INFO(word);
        const std::vector<std::int64_t> ids = tok.encode(word);
        CHECK(ids.size() == 1);
        CHECK(tok.decode(ids) == word + " ");
    }
    // Whole texts: one id per word ("2024" is four digit pieces, "!" its own piece).
    CHECK(tok.encode(texts[1]).size() == 8);
    CHECK(tok.encode(texts[4]).size() == 6);
    const clip::tensor row = tok.tokenize(texts[0], 10); // [1, 10]
    const std::vector<std::int64_t> ids = row.to_vector<std::int64_t>();
    CHECK(ids[0] == tok.start_of_text());
    CHECK(ids[8] == tok.end_of_text());
    CHECK(ids[9] == 0);
    // Words not in the texts still tokenize, from byte symbols and partial merges.
    const std::vector<std::int64_t> other = tok.encode("a purple hexagon");
    CHECK(other.size() > 3);
    CHECK(tok.decode(other) == "a purple hexagon ");
}

TEST_CASE("the vocabulary is small: the byte symbols, one token per merge, the two special tokens") {
    const std::vector<std::string> texts = {"red green blue"};
    const clip::vocabulary_files files = clip::word_vocabulary_files(texts);
    const clip::bpe_vocabulary v = clip::load_vocabulary(files);
    // red: "r e", "re d</w>"; green reuses "r e", then "g re", "gre e", "gree n</w>"; blue: 3 more.
    CHECK(v.merge_count() == 8);
    CHECK(v.size() == 512 + 8 + 2);
    CHECK(contains(files.merges_txt, "#version: 0.2\nr e\nre d</w>\n"));
}

TEST_CASE("the files save and load through bpe_vocabulary::load") {
    const std::vector<std::string> texts = {"the quick brown fox", "the lazy dog"};
    const clip::vocabulary_files files = clip::word_vocabulary_files(texts);
    clip::test::temp_dir tmp("clip-vocabulary-test");
    files.save(tmp / "vocab");
    const clip::tokenizer from_disk(clip::bpe_vocabulary::load(tmp / "vocab"));
    const clip::tokenizer from_memory(clip::build_word_vocabulary(texts));
    CHECK(from_disk.encode("the lazy brown fox") == from_memory.encode("the lazy brown fox"));
    CHECK(from_disk.encode("the lazy brown fox").size() == 4);
    CHECK(from_disk.vocabulary().size() == from_memory.vocabulary().size());
}

} // namespace data_vocabulary_builder_test
