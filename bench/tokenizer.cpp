// bench/tokenizer.cpp: tokens per second through CLIP's tokenizer (clip/text/tokenizer.hpp) on
// 10 000 synthetic captions, generated from a word list with a fixed seed (mostly English, one
// caption in eight with an accented or non-Latin word, some digits and punctuation).
//
//   tok/tokenize_warm      tokenizer.tokenize(captions, 77, truncate): the whole batch, with the
//                          word cache already holding every word (the steady state of a server)
//   tok/tokenize_cold      the same with a fresh tokenizer each time: every word goes through BPE
//   tok/encode_one         tokenizer.encode(caption) on one caption after another (one thread)
//
// The batch ones at threads:1 and threads:2 (clip::set_num_threads; tokenize spreads the captions
// over clip's pool). Counters: tokens/s (BPE ids, SOT/EOT and padding not counted) and
// captions/s. There is no peer in the same run: OpenAI's Python tokenizer needs ftfy, which is
// not packaged for Debian 12.
//
// The vocabulary comes from $CLIP_VOCAB, else ../shared/reference/bpe_simple_vocab_16e6.txt.gz
// beside the sources; without either the program says so and exits 0.
#include <benchmark/benchmark.h>

#include <clip/clip.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

constexpr std::size_t caption_count = 10'000;

std::optional<fs::path> vocabulary_path() {
    if (const char* env = std::getenv("CLIP_VOCAB"); env && *env) return fs::path(env);
    const fs::path beside = fs::path(CLIP_SOURCE_DIR).parent_path() / "shared" / "reference" / "bpe_simple_vocab_16e6.txt.gz";
    if (fs::is_regular_file(beside)) return beside;
    return std::nullopt;
}

/// Captions such as "A photo of two small brown dogs playing on the beach at sunset."
std::vector<std::string> synthetic_captions() {
    const std::vector<std::string> openings = {"a photo of", "an image of", "a picture of", "a close-up of", "a painting of",
                                               "a blurry photo of", "a black and white photo of", "a drawing of", "there is",
                                               "a rendering of"};
    const std::vector<std::string> counts = {"a", "one", "two", "three", "several", "many", "a group of", "a pair of", "12", "4"};
    const std::vector<std::string> adjectives = {"small", "large", "red", "brown", "happy", "old", "wooden", "shiny", "fluffy",
                                                 "colorful", "tiny", "ancient", "modern", "wet", "sleepy", "striped"};
    const std::vector<std::string> nouns = {"dog", "cat", "bicycle", "car", "tree", "house", "bird", "boat", "horse", "child",
                                            "woman", "man", "cup of coffee", "pizza", "mountain", "bridge", "train", "guitar",
                                            "laptop", "flower", "elephant", "kite", "umbrella", "sandwich"};
    const std::vector<std::string> verbs = {"sitting", "standing", "playing", "running", "sleeping", "lying", "parked", "floating"};
    const std::vector<std::string> places = {"on the beach", "in a park", "next to a river", "on a table", "in the snow",
                                             "in front of a building", "on a busy street", "in the kitchen", "under a tree",
                                             "in a field of grass"};
    const std::vector<std::string> endings = {".", "", " at sunset.", " during the day.", "!", ", shot on film.", " (HD)",
                                              " - stock photo", " in 2019.", "..."};
    const std::vector<std::string> foreign = {"café", "naïve", "Zürich", "東京", "Привет", "façade", "piñata", "crème brûlée",
                                              "São Paulo", "Ελλάδα", "jalapeño", "über"};
    std::mt19937 random(20240611);
    const auto pick = [&](const std::vector<std::string>& words) {
        return words[std::uniform_int_distribution<std::size_t>(0, words.size() - 1)(random)];
    };
    std::vector<std::string> captions;
    captions.reserve(caption_count);
    for (std::size_t i = 0; i < caption_count; ++i) {
        std::string caption = pick(openings) + " " + pick(counts) + " " + pick(adjectives) + " " + pick(nouns) + " " +
                              pick(verbs) + " " + pick(places);
        if (random() % 8 == 0) caption += " near " + pick(foreign);
        caption += pick(endings);
        if (random() % 4 == 0) caption[0] = static_cast<char>(caption[0] - 'a' + 'A');
        captions.push_back(std::move(caption));
    }
    return captions;
}

struct input {
    clip::tokenizer tokenizer;
    fs::path path;
    std::vector<std::string> captions = synthetic_captions();
    std::int64_t tokens = 0; // BPE ids in the batch

    explicit input(const fs::path& vocabulary) : tokenizer(clip::tokenizer::load(vocabulary)), path(vocabulary) {
        for (const std::string& caption : captions) tokens += static_cast<std::int64_t>(tokenizer.encode(caption).size());
    }
};

input* data = nullptr;
int default_threads = 1;

struct thread_scope {
    explicit thread_scope(int threads) { clip::set_num_threads(threads); }
    ~thread_scope() { clip::set_num_threads(default_threads); }
};

void report(benchmark::State& state, std::int64_t tokens, std::int64_t captions) {
    state.SetItemsProcessed(state.iterations() * tokens);
    state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["captions/s"] = benchmark::Counter(static_cast<double>(captions), benchmark::Counter::kIsIterationInvariantRate);
}

void tokenize_warm(benchmark::State& state) {
    const thread_scope threads(static_cast<int>(state.range(0)));
    for (auto _ : state) benchmark::DoNotOptimize(data->tokenizer.tokenize(data->captions, 77, true));
    report(state, data->tokens, static_cast<std::int64_t>(data->captions.size()));
    state.counters["threads"] = static_cast<double>(state.range(0));
}

void tokenize_cold(benchmark::State& state) {
    const thread_scope threads(static_cast<int>(state.range(0)));
    const auto vocabulary = std::make_shared<const clip::bpe_vocabulary>(data->tokenizer.vocabulary());
    for (auto _ : state) {
        state.PauseTiming();
        const clip::tokenizer fresh(vocabulary); // an empty word cache
        state.ResumeTiming();
        benchmark::DoNotOptimize(fresh.tokenize(data->captions, 77, true));
    }
    report(state, data->tokens, static_cast<std::int64_t>(data->captions.size()));
    state.counters["threads"] = static_cast<double>(state.range(0));
}

void encode_one(benchmark::State& state) {
    std::size_t next = 0;
    std::int64_t tokens = 0, captions = 0;
    for (auto _ : state) {
        const std::vector<std::int64_t> ids = data->tokenizer.encode(data->captions[next]);
        benchmark::DoNotOptimize(ids.data());
        tokens += static_cast<std::int64_t>(ids.size());
        ++captions;
        next = (next + 1) % data->captions.size();
    }
    state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
    state.counters["captions/s"] = benchmark::Counter(static_cast<double>(captions), benchmark::Counter::kIsRate);
}

} // namespace

int main(int argc, char** argv) {
    const std::optional<fs::path> path = vocabulary_path();
    if (!path) {
        std::printf("bench-tokenizer: skipped: no vocabulary (set CLIP_VOCAB to bpe_simple_vocab_16e6.txt.gz, or put "
                    "../shared/reference beside the sources)\n");
        return 0;
    }
    default_threads = clip::num_threads();
    std::optional<input> loaded;
    try {
        loaded.emplace(*path);
    } catch (const clip::error& e) {
        std::fprintf(stderr, "bench-tokenizer: %s\n", e.what());
        return 1;
    }
    data = &*loaded;
    std::printf("bench-tokenizer: %zu captions, %lld BPE tokens, vocabulary %s\n", data->captions.size(),
                static_cast<long long>(data->tokens), path->string().c_str());
    benchmark::RegisterBenchmark("tok/tokenize_warm", tokenize_warm)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("tok/tokenize_cold", tokenize_cold)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("tok/encode_one", encode_one)->Unit(benchmark::kMicrosecond);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
