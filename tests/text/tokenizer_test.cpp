// Tests for clip/text/: the tokenizer against OpenAI's (every case of
// ../shared/reference/tokenizer_cases.json: cleaned text, pieces, ids, tokenize rows, the
// too-long error, decode), the 75/76-id boundary, invalid UTF-8, a Hugging Face vocab.json +
// merges.txt written from the OpenAI file, concurrent use, loading errors, find_vocabulary, and
// the Unicode, HTML, ftfy and pre-tokeniser rules on strings built here.
#include "../support.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

namespace text_tokenizer_test {

namespace {

namespace fs = std::filesystem;
using clip::test::contains;
using clip::test::error_message;

struct temp_dir : clip::test::temp_dir {
    temp_dir() : clip::test::temp_dir("clip-tokenizer-test") {}
};

using clip::test::read_file;
using clip::test::write_file;

/// `text` gzip-compressed (one member), as OpenAI's vocabulary file is.
std::string gzip(const std::string& text) {
    z_stream stream{};
    REQUIRE(deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    std::string out(deflateBound(&stream, static_cast<uLong>(text.size())), '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    stream.avail_in = static_cast<uInt>(text.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    REQUIRE(deflate(&stream, Z_FINISH) == Z_STREAM_END);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    return out;
}

std::string from_hex(const std::string& hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    return out;
}

std::string u8(std::u32string_view text) { return clip::text::encode_utf8(text); }
std::u32string u32(std::string_view text) { return clip::text::decode_utf8(text); }

std::vector<std::string> pieces_of(std::string_view text) {
    const std::u32string cleaned = clip::text::clean(u32(text));
    std::vector<std::string> pieces;
    for (const std::u32string_view piece : clip::text::pretokenize(cleaned)) pieces.push_back(u8(piece));
    return pieces;
}

std::optional<fs::path> openai_vocabulary_path() {
    const auto dir = clip::test::reference_dir();
    if (!dir || !fs::is_regular_file(*dir / "bpe_simple_vocab_16e6.txt.gz")) return std::nullopt;
    return *dir / "bpe_simple_vocab_16e6.txt.gz";
}

/// The tokenizer of the reference vocabulary, loaded once (nullptr when the fixtures are absent).
const clip::tokenizer* reference_tokenizer() {
    static const std::optional<clip::tokenizer> tokenizer = []() -> std::optional<clip::tokenizer> {
        const auto path = openai_vocabulary_path();
        if (!path) return std::nullopt;
        return clip::tokenizer::load(*path);
    }();
    return tokenizer ? &*tokenizer : nullptr;
}

#define REQUIRE_REFERENCE_TOKENIZER(name)                                                                 \
    const clip::tokenizer* name = reference_tokenizer();                                                  \
    if (!name) {                                                                                          \
        MESSAGE("skipped: ../shared/reference/bpe_simple_vocab_16e6.txt.gz not found (set CLIP_REFERENCE_DIR)"); \
        return;                                                                                           \
    }

std::vector<std::int64_t> row(const clip::tensor& tokens, std::int64_t index) {
    const std::vector<std::int64_t> all = tokens.to_vector<std::int64_t>();
    const std::int64_t width = tokens.size(1);
    return {all.begin() + index * width, all.begin() + (index + 1) * width};
}

std::vector<std::int64_t> concatenated(std::initializer_list<std::vector<std::int64_t>> parts) {
    std::vector<std::int64_t> out;
    for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
    return out;
}

} // namespace

// ---- the reference fixtures ---------------------------------------------------------------------

TEST_CASE("tokenizer: every case of tokenizer_cases.json") {
    REQUIRE_REFERENCE_TOKENIZER(tok);
    const nlohmann::json fixture = nlohmann::json::parse(read_file(*clip::test::reference_dir() / "tokenizer_cases.json"));
    REQUIRE(fixture.at("sot_token").get<std::int64_t>() == tok->start_of_text());
    REQUIRE(fixture.at("eot_token").get<std::int64_t>() == tok->end_of_text());
    REQUIRE(fixture.at("vocab_size").get<std::size_t>() == tok->vocabulary().size());
    const std::int64_t context_length = fixture.at("context_length").get<std::int64_t>();
    const auto& cases = fixture.at("cases");
    REQUIRE(cases.size() == 63);
    int decoded = 0;
    for (const auto& c : cases) {
        const std::string text = from_hex(c.at("text_utf8_hex").get<std::string>());
        REQUIRE(text == c.at("text").get<std::string>());
        INFO("text: \"" << text << "\"");
        CHECK(u8(clip::text::clean(u32(text))) == c.at("cleaned").get<std::string>());
        CHECK(pieces_of(text) == c.at("pieces").get<std::vector<std::string>>());
        const std::vector<std::int64_t> ids = tok->encode(text);
        CHECK(ids == c.at("bpe_ids").get<std::vector<std::int64_t>>());
        std::vector<std::string> tokens;
        for (const std::int64_t id : ids) tokens.push_back(tok->vocabulary().token(id));
        CHECK(tokens == c.at("bpe_tokens").get<std::vector<std::string>>());

        const clip::tensor truncated = tok->tokenize(text, context_length, /*truncate=*/true);
        CHECK(truncated.dtype() == clip::dtype::i64);
        CHECK(truncated.shape() == clip::shape{1, context_length});
        CHECK(row(truncated, 0) == c.at("tokenize_truncate").get<std::vector<std::int64_t>>());

        const std::string too_long = error_message([&] { (void)tok->tokenize(text, context_length); });
        if (c.at("raises_without_truncate").get<bool>()) {
            CHECK(too_long == "Input " + text + " is too long for context length 77");
        } else {
            CHECK(too_long.empty());
            CHECK(row(tok->tokenize(text), 0) == row(truncated, 0));
        }
        if (c.contains("decode")) {
            CHECK(tok->decode(ids) == c.at("decode").get<std::string>());
            ++decoded;
        }
    }
    CHECK(decoded > 40);
}

TEST_CASE("tokenizer: the fixture texts in one batch give the rows one by one") {
    REQUIRE_REFERENCE_TOKENIZER(tok);
    const nlohmann::json fixture = nlohmann::json::parse(read_file(*clip::test::reference_dir() / "tokenizer_cases.json"));
    std::vector<std::string> texts;
    for (const auto& c : fixture.at("cases")) texts.push_back(c.at("text").get<std::string>());
    const clip::tensor batch = tok->tokenize(texts, 77, /*truncate=*/true);
    REQUIRE(batch.shape() == clip::shape{static_cast<std::int64_t>(texts.size()), 77});
    for (std::size_t i = 0; i < texts.size(); ++i)
        CHECK(row(batch, static_cast<std::int64_t>(i)) == fixture.at("cases")[i].at("tokenize_truncate").get<std::vector<std::int64_t>>());
    // Without truncate the first text that does not fit is named.
    const std::string message = error_message([&] { (void)tok->tokenize(texts); });
    CHECK(contains(message, "is too long for context length 77"));
    CHECK(contains(message, "Input a a a a"));
}

// ---- tokenize ---------------------------------------------------------------------------------

TEST_CASE("tokenize: 75 ids fit exactly, 76 do not") {
    REQUIRE_REFERENCE_TOKENIZER(tok);
    std::string fits, too_long;
    for (int i = 0; i < 75; ++i) fits += "a ";
    too_long = fits + "a";
    REQUIRE(tok->encode(fits).size() == 75);
    REQUIRE(tok->encode(too_long).size() == 76);
    const std::int64_t a = tok->encode("a").at(0);

    const std::vector<std::int64_t> full = row(tok->tokenize(fits), 0);
    CHECK(full.front() == 49406);
    CHECK(full.back() == 49407);
    CHECK(std::count(full.begin(), full.end(), a) == 75);

    CHECK(error_message([&] { (void)tok->tokenize(too_long); }) == "Input " + too_long + " is too long for context length 77");
    CHECK_THROWS_AS((void)tok->tokenize(too_long), clip::shape_error);
    const std::vector<std::int64_t> cut = row(tok->tokenize(too_long, 77, true), 0);
    CHECK(cut == full); // SOT + the first 76 ids, the 76th overwritten by EOT
}

TEST_CASE("tokenize: shapes, padding, context lengths and batches") {
    REQUIRE_REFERENCE_TOKENIZER(tok);
    const clip::tensor empty = tok->tokenize(std::vector<std::string>{});
    CHECK(empty.shape() == clip::shape{0, 77});

    const clip::tensor two = tok->tokenize({"a photo of a cat", ""});
    REQUIRE(two.shape() == clip::shape{2, 77});
    const std::vector<std::int64_t> cat = row(two, 0), nothing = row(two, 1);
    CHECK(std::vector<std::int64_t>(cat.begin(), cat.begin() + 7) == std::vector<std::int64_t>{49406, 320, 1125, 539, 320, 2368, 49407});
    CHECK(std::all_of(cat.begin() + 7, cat.end(), [](std::int64_t v) { return v == 0; }));
    CHECK(std::vector<std::int64_t>(nothing.begin(), nothing.begin() + 3) == std::vector<std::int64_t>{49406, 49407, 0});

    // Other context lengths, with and without truncation; 1 keeps only the overwritten EOT.
    CHECK(row(tok->tokenize("a photo of a cat", 7), 0) == std::vector<std::int64_t>{49406, 320, 1125, 539, 320, 2368, 49407});
    CHECK(row(tok->tokenize("a photo of a cat", 5, true), 0) == std::vector<std::int64_t>{49406, 320, 1125, 539, 49407});
    CHECK(row(tok->tokenize("a photo of a cat", 1, true), 0) == std::vector<std::int64_t>{49407});
    CHECK(contains(error_message([&] { (void)tok->tokenize("a photo of a cat", 6); }), "too long for context length 6"));
    CHECK(contains(error_message([&] { (void)tok->tokenize("a", 0, true); }), "context length must be at least 1"));

    // std::string, std::string_view and initializer-list batches agree.
    const std::vector<std::string> strings{"one", "two words", "Three, four!"};
    const std::vector<std::string_view> views(strings.begin(), strings.end());
    const clip::tensor from_strings = tok->tokenize(strings);
    CHECK(from_strings.to_vector<std::int64_t>() == tok->tokenize(std::span<const std::string_view>(views)).to_vector<std::int64_t>());
    CHECK(from_strings.to_vector<std::int64_t>() == tok->tokenize({"one", "two words", "Three, four!"}).to_vector<std::int64_t>());
}

TEST_CASE("tokenize: a batch large enough for the thread pool matches row by row") {
    REQUIRE_REFERENCE_TOKENIZER(tok);
    std::vector<std::string> texts;
    for (int i = 0; i < 300; ++i)
        texts.push_back("caption number " + std::to_string(i) + ": a " + (i % 2 ? "dog" : "Café") + " on a beach, " + std::string(static_cast<std::size_t>(i % 7), '!'));
    const int threads = clip::num_threads();
    clip::set_num_threads(2);
    const clip::tensor batch = tok->tokenize(texts);
    clip::set_num_threads(threads);
    for (std::size_t i = 0; i < texts.size(); i += 37)
        CHECK(row(batch, static_cast<std::int64_t>(i)) == row(tok->tokenize(texts[i]), 0));
}

// ---- encode and decode on strings built here --------------------------------------------------

TEST_CASE("encode: rules that follow from the reference algorithm") {
    REQUIRE_REFERENCE_TOKENIZER(tok);
    // Pieces are lower-cased and encoded independently of each other.
    CHECK(pieces_of("Hello, World!") == std::vector<std::string>{"hello", ",", "world", "!"});
    CHECK(tok->encode("Hello, World!") == std::vector<std::int64_t>{3306, 267, 1002, 256});
    CHECK(tok->encode("Hello, World!") ==
          concatenated({tok->encode("hello"), tok->encode(","), tok->encode("world"), tok->encode("!")}));
    CHECK(tok->encode("HELLO wOrLd") == tok->encode("hello world"));
    CHECK(tok->decode(tok->encode("Hello, World!")) == "hello , world ! ");
    // Whitespace of any kind collapses; HTML entities decode at every level ftfy sees.
    CHECK(tok->encode(" \t a\u00a0\u3000\n\r\n b  ") == tok->encode("a b"));
    CHECK(tok->encode("fish &amp;amp;amp;amp; chips") == tok->encode("fish & chips"));
    // Digits are single pieces: "2024" is the ids of 2, 0, 2, 4.
    CHECK(tok->encode("2024") == concatenated({tok->encode("2"), tok->encode("0"), tok->encode("2"), tok->encode("4")}));
    // Special tokens typed in the text become their ids, in any case; other spellings do not.
    CHECK(tok->encode("<|endoftext|>") == std::vector<std::int64_t>{49407});
    CHECK(tok->encode("<|StartOfText|> x") == concatenated({{49406}, tok->encode("x")}));
    CHECK(pieces_of("<|ſtartoftext|>") == std::vector<std::string>{"<|ſtartoftext|>"});
    const std::vector<std::int64_t> long_s = tok->encode("<|ſtartoftext|>");
    CHECK(std::find(long_s.begin(), long_s.end(), 49406) == long_s.end());
    // Curly apostrophes are uncurled before the contractions are split off.
    CHECK(tok->encode("it’s") == tok->encode("it's"));
    CHECK(pieces_of("it's") == std::vector<std::string>{"it", "'s"});
    // A long word stays one piece and its ids spell it back.
    const std::string word(300, 'z');
    CHECK(tok->decode(tok->encode(word)) == word + " ");
}

TEST_CASE("decode: bytes back, </w> as a space, invalid UTF-8 replaced") {
    REQUIRE_REFERENCE_TOKENIZER(tok);
    const clip::bpe_vocabulary& v = tok->vocabulary();
    CHECK(tok->decode({49406, 49407}) == "<|startoftext|><|endoftext|>");
    CHECK(tok->decode({}) == "");
    // "é" is C3 A9: the byte symbols one by one, or with the second ending the word.
    CHECK(tok->decode({v.byte_symbol(0xC3, false), v.byte_symbol(0xA9, true)}) == "é ");
    // A lone lead byte, a truncated three-byte sequence and a surrogate each become U+FFFD per
    // maximal invalid subpart, as bytes.decode("utf-8", errors="replace").
    CHECK(tok->decode({v.byte_symbol(0xC3, false), v.byte_symbol('a', true)}) == "\xEF\xBF\xBD" "a ");
    CHECK(tok->decode({v.byte_symbol(0xE2, false), v.byte_symbol(0x82, true)}) == "\xEF\xBF\xBD ");
    CHECK(tok->decode({v.byte_symbol(0xED, false), v.byte_symbol(0xA0, false), v.byte_symbol(0x80, false)}) ==
          "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(tok->decode({v.byte_symbol(0xFF, false)}) == "\xEF\xBF\xBD");
    CHECK_THROWS_AS((void)tok->decode({49408}), clip::index_error);
    CHECK_THROWS_AS((void)tok->decode({-1}), clip::index_error);
}

TEST_CASE("encode: invalid UTF-8 is a clip::error naming the byte") {
    REQUIRE_REFERENCE_TOKENIZER(tok);
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"ab\xC0\xAF", "byte 2 (0xC0): overlong encoding"},
        {"\xE0\x80\xAF", "byte 0 (0xE0): overlong encoding"},
        {"\xF0\x80\x80\xAF", "byte 0 (0xF0): overlong encoding"},
        {"x\xED\xA0\x80", "byte 1 (0xED): UTF-16 surrogate"},
        {"\xED\xB0\x80y", "byte 0 (0xED): UTF-16 surrogate"},
        {"caf\xC3", "byte 3 (0xC3): truncated sequence at the end"},
        {"\xE2\x82", "byte 0 (0xE2): truncated sequence at the end"},
        {"\xF0\x9F\x98", "byte 0 (0xF0): truncated sequence at the end"},
        {"\xE2\x82z", "byte 0 (0xE2): invalid continuation byte"},
        {"\x80", "byte 0 (0x80): unexpected continuation byte"},
        {"\xF4\x90\x80\x80", "byte 0 (0xF4): code point above U+10FFFF"},
        {"\xF8\x88\x80\x80\x80", "byte 0 (0xF8): code point above U+10FFFF"},
        {"\xFF", "byte 0 (0xFF): code point above U+10FFFF"},
    };
    for (const auto& [bytes, expected] : cases) {
        INFO("bytes: " << bytes);
        const std::string message = error_message([&] { (void)tok->encode(bytes); });
        CHECK(contains(message, "tokenizer: invalid UTF-8 at " + expected));
        CHECK_THROWS_AS((void)tok->tokenize(bytes), clip::error);
    }
    // In a batch the first invalid text is reported, before any length check.
    const std::string message = error_message([&] { (void)tok->tokenize({"fine", "\xC3(", "\xFF"}); });
    CHECK(contains(message, "byte 0 (0xC3)"));
}

// ---- BPE --------------------------------------------------------------------------------------

TEST_CASE("bpe: the heap-driven passes for long pieces equal the reference's loop") {
    REQUIRE_REFERENCE_TOKENIZER(tok);
    const clip::bpe_vocabulary& v = tok->vocabulary();
    const std::vector<std::string> alphabet = {"a", "b", "e", "r", "t", "s", "n", "i", "o", "l", "东", "京", "的", "é", "ж", "α"};
    std::mt19937 random(7);
    for (int trial = 0; trial < 300; ++trial) {
        const std::size_t letters = 1 + random() % alphabet.size(), length = 1 + random() % 400;
        std::string piece;
        for (std::size_t i = 0; i < length; ++i) piece += alphabet[random() % letters];
        if (trial % 10 == 0) piece = std::string(static_cast<std::size_t>(trial + 1), 'a'); // overlapping pairs
        std::vector<std::int32_t> symbols;
        for (std::size_t i = 0; i < piece.size(); ++i)
            symbols.push_back(v.byte_symbol(static_cast<unsigned char>(piece[i]), i + 1 == piece.size()));
        std::vector<std::int32_t> by_heap = symbols, by_loop = symbols;
        clip::text::detail::bpe_merge_heap(v, by_heap);
        clip::text::detail::bpe_merge_quadratic(v, by_loop);
        INFO("piece: " << piece);
        CHECK(by_heap == by_loop);
    }
    // A paragraph of Chinese is one piece; its ids spell it back.
    std::string paragraph;
    for (int i = 0; i < 2000; ++i) paragraph += alphabet[10 + static_cast<std::size_t>(i * 7 % 4 == 0 ? 0 : i % 3)];
    CHECK(tok->decode(tok->encode(paragraph)) == paragraph + " ");
}

// ---- threads --------------------------------------------------------------------------------

TEST_CASE("tokenizer: four threads tokenizing the same list agree") {
    const auto path = openai_vocabulary_path();
    if (!path) {
        MESSAGE("skipped: ../shared/reference/bpe_simple_vocab_16e6.txt.gz not found");
        return;
    }
    const clip::tokenizer tok = clip::tokenizer::load(*path); // a fresh, empty cache
    std::vector<std::string> texts;
    const char* words[] = {"photo", "Dog", "cat", "Ελληνικά", "naïve", "東京", "ÃŠtÃ©", "&amp;", "2024", "it’s", "👍🏽", "ﬁne"};
    for (int i = 0; i < 400; ++i) {
        std::string text;
        for (int k = 0; k < 1 + i % 9; ++k) text += std::string(words[(i * 7 + k * 3) % 12]) + (k % 3 ? " " : ", ");
        texts.push_back(text);
    }
    std::vector<std::vector<std::int64_t>> results(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < 4; ++t)
        threads.emplace_back([&, t] { results[t] = tok.tokenize(texts, 77, true).to_vector<std::int64_t>(); });
    for (std::thread& thread : threads) thread.join();
    for (std::size_t t = 1; t < 4; ++t) CHECK(results[t] == results[0]);
    const clip::tokenizer fresh = clip::tokenizer::load(*path);
    CHECK(fresh.tokenize(texts, 77, true).to_vector<std::int64_t>() == results[0]);
}

// ---- vocabularies ---------------------------------------------------------------------------

TEST_CASE("vocabulary: OpenAI's file as SimpleTokenizer builds it") {
    REQUIRE_REFERENCE_TOKENIZER(tok);
    const clip::bpe_vocabulary& v = tok->vocabulary();
    CHECK(v.size() == 49408);
    CHECK(v.merge_count() == 48894);
    CHECK(v.token(0) == "!");
    CHECK(v.token(255) == u8(U"\u0143")); // the last of the 68 remapped bytes (0xAD -> U+0100 + 67)
    CHECK(v.token(256) == "!</w>");
    CHECK(v.token(512) == "in");           // the first merge, "i n"
    CHECK(v.token(49405) == "jekyll</w>"); // the last merge used, "jeky ll</w>"
    CHECK(v.token(49406) == "<|startoftext|>");
    CHECK(v.find("Ġ") == 220);             // space is written 'Ġ'
    CHECK(v.byte_symbol(' ', true) == *v.find("Ġ</w>"));
    CHECK(contains(error_message([&] { (void)v.token(49408); }), "no token has id 49408"));
}

TEST_CASE("vocabulary: a Hugging Face vocab.json + merges.txt gives the same ids") {
    const auto path = openai_vocabulary_path();
    if (!path) {
        MESSAGE("skipped: ../shared/reference/bpe_simple_vocab_16e6.txt.gz not found");
        return;
    }
    const clip::tokenizer openai = clip::tokenizer::load(*path);
    // Derive the pair from the OpenAI file: every token with its id, and the merges used.
    const clip::bpe_vocabulary& v = openai.vocabulary();
    nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
    for (std::size_t id = 0; id < v.size(); ++id) vocab[v.token(static_cast<std::int64_t>(id))] = id;
    std::string merges = "#version: 0.2\n";
    for (std::size_t id = 512; id < 512 + v.merge_count(); ++id) {
        // The merge that made token `id` is its split into two tokens whose merge has that rank.
        const std::string& merged = v.token(static_cast<std::int64_t>(id));
        bool found = false;
        for (std::size_t cut = 1; cut < merged.size() && !found; ++cut) {
            const auto left = v.find(merged.substr(0, cut)), right = v.find(merged.substr(cut));
            if (!left || !right) continue;
            const auto merge = v.find_merge(*left, *right);
            if (merge && merge->rank == static_cast<std::int32_t>(id - 512)) {
                merges += merged.substr(0, cut) + " " + merged.substr(cut) + "\n";
                found = true;
            }
        }
        REQUIRE(found);
    }
    temp_dir dir;
    write_file(dir / "vocab.json", vocab.dump());
    write_file(dir / "merges.txt", merges);
    for (const clip::tokenizer& hugging_face :
         {clip::tokenizer::load(dir.path()), clip::tokenizer::load(dir / "vocab.json"),
          clip::tokenizer(clip::bpe_vocabulary::load_hugging_face(dir / "vocab.json", dir / "merges.txt"))}) {
        CHECK(hugging_face.vocabulary().size() == 49408);
        CHECK(hugging_face.vocabulary().merge_count() == 48894);
        CHECK(hugging_face.start_of_text() == 49406);
        CHECK(hugging_face.end_of_text() == 49407);
        std::vector<std::string> texts = {"a photo of a cat", "Hello, World!", "ΟΔΥΣΣΕΥΣ ΚΑΙ ΣΩΚΡΑΤΗΣ", "東京タワーの写真",
                                          "Ã©tÃ© mojibake", "👨\u200d👩\u200d👧\u200d👦 family", "hello <|endoftext|> world"};
        if (const auto dir_reference = clip::test::reference_dir()) {
            const nlohmann::json fixture = nlohmann::json::parse(read_file(*dir_reference / "tokenizer_cases.json"));
            for (const auto& c : fixture.at("cases")) texts.push_back(c.at("text").get<std::string>());
        }
        CHECK(hugging_face.tokenize(texts, 77, true).to_vector<std::int64_t>() == openai.tokenize(texts, 77, true).to_vector<std::int64_t>());
    }
}

TEST_CASE("vocabulary: loading errors are io_errors naming the file") {
    temp_dir dir;
    const auto load_error = [](const fs::path& path) {
        std::string message;
        try {
            (void)clip::bpe_vocabulary::load(path);
        } catch (const clip::io_error& e) {
            message = e.what();
        }
        return message;
    };
    const fs::path missing = dir / "missing.txt.gz";
    CHECK(contains(load_error(missing), missing.string()));
    CHECK(contains(load_error(missing), "no such file"));

    write_file(dir / "plain.txt.gz", "#version: 0.2\ni n\n");
    CHECK(contains(load_error(dir / "plain.txt.gz"), "not a gzip file"));

    // A valid header and lines, but far fewer than 48 894 merges.
    write_file(dir / "short.txt.gz", gzip("#version: 0.2\ni n\nt h\n"));
    const std::string short_message = load_error(dir / "short.txt.gz");
    CHECK(contains(short_message, (dir / "short.txt.gz").string()));
    CHECK(contains(short_message, "has 4 lines"));

    // A merge line that is not two symbols.
    std::string lines = "#version: 0.2\n";
    for (int i = 0; i < 48894; ++i) lines += i == 5 ? "a b c\n" : "a b\n";
    write_file(dir / "bad_line.txt.gz", gzip(lines));
    CHECK(contains(load_error(dir / "bad_line.txt.gz"), "line 7 should be a merge"));

    // Not UTF-8 inside the gzip stream.
    write_file(dir / "latin1.txt.gz", gzip("#version: 0.2\n\xE9 t\n"));
    CHECK(contains(load_error(dir / "latin1.txt.gz"), "invalid UTF-8"));

    if (const auto path = openai_vocabulary_path()) {
        const std::string good = read_file(*path);
        write_file(dir / "truncated.txt.gz", good.substr(0, good.size() / 2));
        CHECK(contains(load_error(dir / "truncated.txt.gz"), "truncated gzip data"));
        std::string corrupt = good;
        for (std::size_t i = 100; i < 400; ++i) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5A);
        write_file(dir / "corrupt.txt.gz", corrupt);
        const std::string corrupt_message = load_error(dir / "corrupt.txt.gz");
        CHECK(contains(corrupt_message, "corrupt gzip data"));
        CHECK(contains(corrupt_message, (dir / "corrupt.txt.gz").string()));
    }

    // Hugging Face files: malformed JSON, a token missing, a missing merges.txt.
    write_file(dir / "vocab.json", "{\"a\": 0,");
    write_file(dir / "merges.txt", "#version: 0.2\n");
    CHECK(contains(load_error(dir / "vocab.json"), "invalid JSON"));
    write_file(dir / "vocab.json", "{\"a\": 0}");
    CHECK(contains(load_error(dir / "vocab.json"), "byte symbol"));
    // An id beyond the number of tokens: it used to size the token table (2^31 strings, an
    // out-of-memory abort; found by fuzzing).
    write_file(dir / "vocab.json", "{\"a\": 2147483646}");
    const std::string huge_id = load_error(dir / "vocab.json");
    CHECK(contains(huge_id, (dir / "vocab.json").string()));
    CHECK(contains(huge_id, "the id 2147483646 of \"a\" is not below the number of tokens, 1"));
    fs::remove(dir / "merges.txt");
    CHECK(contains(load_error(dir.path()), "merges.txt"));
}

TEST_CASE("find_vocabulary: explicit path, then CLIP_VOCAB, then beside the model") {
    temp_dir dir;
    write_file(dir / "explicit.txt.gz", "x");
    write_file(dir / "environment.txt.gz", "x");
    fs::create_directories(dir / "model");
    write_file(dir / "model" / "bpe_simple_vocab_16e6.txt.gz", "x");
    const fs::path model = dir / "model" / "ViT-B-32.safetensors";

    const char* saved = std::getenv("CLIP_VOCAB");
    const std::string saved_value = saved ? saved : "";
    ::setenv("CLIP_VOCAB", (dir / "environment.txt.gz").c_str(), 1);
    CHECK(clip::find_vocabulary(dir / "explicit.txt.gz", model) == dir / "explicit.txt.gz");
    CHECK(clip::find_vocabulary(std::nullopt, model) == dir / "environment.txt.gz");
    CHECK(contains(error_message([&] { (void)clip::find_vocabulary(dir / "nope.gz"); }), "nope.gz"));
    ::setenv("CLIP_VOCAB", (dir / "gone.txt.gz").c_str(), 1);
    CHECK(contains(error_message([&] { (void)clip::find_vocabulary(); }), "CLIP_VOCAB names"));
    ::unsetenv("CLIP_VOCAB");
    CHECK(clip::find_vocabulary(std::nullopt, model) == dir / "model" / "bpe_simple_vocab_16e6.txt.gz");
    const std::string none = error_message([&] { (void)clip::find_vocabulary(std::nullopt, dir / "elsewhere.safetensors"); });
    CHECK(contains(none, "no BPE vocabulary found"));
    CHECK(contains(none, "CLIP_VOCAB"));
    CHECK(contains(none, "beside the model file"));
    CHECK(contains(none, "elsewhere.safetensors"));
    if (saved) ::setenv("CLIP_VOCAB", saved_value.c_str(), 1);
}

// ---- the cleaning steps (no vocabulary needed) -----------------------------------------------

TEST_CASE("unicode: str.lower() with final sigma, NFC, categories") {
    using clip::text::python_lower;
    CHECK(python_lower(U"ΟΔΥΣΣΕΥΣ ΚΑΙ ΣΩΚΡΑΤΗΣ") == U"οδυσσευς και σωκρατης");
    CHECK(python_lower(U"Σ") == U"σ");           // no cased letter before it
    CHECK(python_lower(U"ΑΣ.") == U"ας.");       // '.' is case-ignorable, then nothing cased
    CHECK(python_lower(U"ΑΣ'Α") == U"ασ'α");     // a cased letter follows the ignorable '\''
    CHECK(python_lower(U"ΑΣ1") == U"ας1");       // a digit is not cased
    CHECK(python_lower(U"İstanbul") == U"i\u0307stanbul");
    CHECK(python_lower(U"ǅ ẞ Ω") == U"ǆ ß ω");
    CHECK(clip::text::nfc(U"e\u0301 \u2126 \u212B \u1100\u1161") == U"é Ω Å \uAC00");
    CHECK(clip::text::is_letter(U'ä'));
    CHECK_FALSE(clip::text::is_letter(U'\u0301'));
    CHECK(clip::text::is_number(U'½'));
    CHECK(clip::text::is_white_space(U'\u00A0'));
    CHECK_FALSE(clip::text::is_white_space(U'\u200B'));
    CHECK(clip::text::decode_utf8_replace("a\xF0\x9F\x98") == "a\xEF\xBF\xBD");
    CHECK(clip::text::decode_utf8_replace("\xE0\x80\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("html.unescape as Python's") {
    using clip::text::html_unescape;
    CHECK(html_unescape(U"&amp; &lt;tag&gt; &quot;q&quot; &#39;s&#x27;") == U"& <tag> \"q\" 's'");
    CHECK(html_unescape(U"&amp;amp;") == U"&amp;");
    CHECK(html_unescape(U"&eacute &eacutex &notit; &ampxyz") == U"é éx ¬it; &xyz");
    CHECK(html_unescape(U"&#150; &#0; &#x110000; &#xD800; &#1; &#13;") == U"– \uFFFD \uFFFD \uFFFD  \r");
    CHECK(html_unescape(U"&nosuch; & &# &#x; a&b") == U"&nosuch; & &# &#x; a&b");
    CHECK(html_unescape(U"&NotEqualTilde; &fjlig;") == U"≂̸ fj");
}

TEST_CASE("fix_text as ftfy 6.3 with its defaults") {
    const auto fix = [](std::u32string_view text) { return clip::text::fix_text(text); };
    // Mojibake: UTF-8 read as Latin-1 / Windows-1252 (also twice, and with NBSP lost to a space).
    CHECK(fix(U"Ã©tÃ© Ã¼ber schÃ¶n") == U"été über schön");
    CHECK(fix(U"âœ” No problems") == U"✔ No problems");
    CHECK(fix(U"This â€” should be an em dash") == U"This — should be an em dash");
    CHECK(fix(U"voilÃ le travail") == U"voilà le travail");
    CHECK(fix(U"Ã la mode") == U"à la mode");
    CHECK(fix(U"ÃƒÂ©") == U"é"); // twice
    // Cyrillic read as Windows-1251 mojibake, and mojibake inside good text.
    CHECK(fix(U"РџСЂРёРІРµС‚") == U"Привет");
    CHECK(fix(U"¯\\_(ã\u0083\u0084)_/¯") == U"¯\\_(ツ)_/¯");
    // Text that only looks unusual is left alone.
    CHECK(fix(U"Charlotte Brontë…”") == U"Charlotte Brontë…\"");   // only the quote is uncurled
    CHECK(fix(U"café naïve, ΟΔΥΣΣΕΥΣ, 東京, 𝔞") == U"café naïve, ΟΔΥΣΣΕΥΣ, 東京, 𝔞");
    // Entities, until none is left; upper-case forms; none at all once a '<' was seen.
    CHECK(fix(U"&amp;amp;amp; &EACUTE; &SZLIG; &hellip;") == U"& É SS …");
    CHECK(fix(U"a &amp; b\n<p>&amp;</p>") == U"a & b\n<p>&amp;</p>");
    CHECK(fix(U"<b>&amp;</b>\n&amp;") == U"<b>&amp;</b>\n&amp;");
    // Widths, ligatures, quotes, line breaks, escapes and control characters.
    CHECK(fix(U"ＬＯＵＤ\u3000ＮＯＩＳＥＳ ｶﾀｶﾅ") == U"LOUD NOISES カタカナ");
    CHECK(fix(U"ﬂuﬃeﬆ ĳ") == U"fluffiest ij");
    CHECK(fix(U"“here’s a test”") == U"\"here's a test\"");
    CHECK(fix(U"one\r\ntwo\rthree\u2028four\u2029five") == U"one\ntwo\nthree\nfour\nfive");
    // U+0085 NEXT LINE is a C1 control: the mojibake step reads it as Windows-1252 first.
    CHECK(fix(U"five\u0085six") == U"five…six");
    CHECK(fix(U"\x1b[36;44mblue\x1b[0m \x1b[") == U"blue [");
    CHECK(fix(std::u32string(U"a\0b", 3) + U"\x07" U"c\x7f" U"\ufeffd\u200be\t\f") == U"abcd\u200be\t\f");
    CHECK(fix(U"\u0093quoted\u0094 \u0080") == U"\"quoted\" €");
}

TEST_CASE("clean and pretokenize: the reference's regex, alternative by alternative") {
    const auto pieces = [](std::u32string_view cleaned) {
        std::vector<std::u32string> out;
        for (const auto piece : clip::text::pretokenize(cleaned)) out.emplace_back(piece);
        return out;
    };
    using p = std::vector<std::u32string>;
    CHECK(pieces(U"they're here; i'm sure") == p{U"they", U"'re", U"here", U";", U"i", U"'m", U"sure"});
    CHECK(pieces(U"rock 'n' roll") == p{U"rock", U"'", U"n", U"'", U"roll"});
    CHECK(pieces(U"!'s ?'ll") == p{U"!'", U"s", U"?'", U"ll"});        // punctuation runs swallow the '\''
    CHECK(pieces(U"!<|endoftext|>") == p{U"!<|", U"endoftext", U"|>"}); // ... and the '<'
    CHECK(pieces(U"'ſ x") == p{U"'ſ", U"x"});                           // IGNORECASE: ſ folds to s
    CHECK(pieces(U"a\u0345b \u0345") == p{U"a", U"b"});                 // U+0345 matches nothing
    CHECK(pieces(U"x² ½ 12") == p{U"x", U"²", U"½", U"1", U"2"});
    CHECK(pieces(U"नमस्ते") == p{U"नमस", U"्", U"त", U"े"});
    CHECK(pieces(U"a\u200bb\u00adc") == p{U"a", U"\u200b", U"b", U"\u00ad", U"c"});
    CHECK(pieces(U"") == p{});
    CHECK(clip::text::clean(U"  Hello,\u00a0\u3000WORLD!\n ") == U"hello, world!");
    CHECK(clip::text::clean(U"&amp;amp;amp; <") == U"&amp; <"); // ftfy off after '<': two levels only
    CHECK(clip::text::clean(std::string_view("  MiXeD  ")) == "mixed");
}

} // namespace text_tokenizer_test
