// Tests for clip/search/index.hpp: the index file round trip (with and without an HNSW graph),
// search against exact_search, malformed files, finding images in a folder, file stamps.
#include "../support.hpp"

#include <random>

namespace search_index_test {

using clip::test::contains;
using clip::test::error_message;
namespace fs = std::filesystem;

namespace {

clip::tensor random_rows(std::int64_t n, std::int64_t d, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    return clip::test::generate({n, d}, [&](std::int64_t) { return normal(rng); });
}

clip::embedding_index sample_index(std::int64_t n, std::int64_t d) {
    std::vector<std::string> paths;
    std::vector<clip::file_stamp> stamps;
    for (std::int64_t i = 0; i < n; ++i) {
        paths.push_back("photos/" + std::to_string(i) + (i % 3 ? ".jpg" : ".png"));
        stamps.push_back({1000 + i, 1'700'000'000'000'000'000 + i});
    }
    clip::embedding_index index("weights 12345678-9abcdef0-42", paths, stamps, random_rows(n, d, 3));
    index.info()["model_name"] = "test.safetensors";
    return index;
}

} // namespace

TEST_CASE("an index saves and loads exactly, with and without its graph") {
    clip::test::temp_dir tmp;
    for (bool graph : {false, true}) {
        INFO("graph " << graph);
        clip::embedding_index index = sample_index(300, 16);
        if (graph) index.build_graph({.m = 16, .ef_construction = 100});
        index.save(tmp / "i.index");
        const clip::embedding_index loaded = clip::embedding_index::load(tmp / "i.index");
        CHECK(loaded.model() == index.model());
        CHECK(loaded.paths() == index.paths());
        CHECK(loaded.stamps() == index.stamps());
        CHECK(loaded.has_graph() == graph);
        CHECK(loaded.info().at("model_name") == "test.safetensors");
        CHECK(clip::test::max_relative_error(loaded.embeddings(), index.embeddings()) == 0);
        CHECK(loaded.find("photos/7.jpg") == 7);
        CHECK(!loaded.find("photos/7.png"));
        // Rows are unit vectors.
        const std::vector<float> e = loaded.embeddings().to_vector<float>();
        double norm = 0;
        for (int j = 0; j < 16; ++j) norm += double(e[j]) * e[j];
        CHECK(norm == doctest::Approx(1.0).epsilon(1e-6));

        const clip::tensor queries = random_rows(5, 16, 11);
        const clip::hits exact = clip::exact_search(loaded.embeddings(), clip::l2_normalize(queries), 10);
        const clip::hits brute = loaded.search(queries, 10, {.exact = true});
        CHECK(brute.indices.to_vector<std::int64_t>() == exact.indices.to_vector<std::int64_t>());
        if (graph) {
            // On 300 rows with ef 300 the graph search finds the exact neighbours.
            const clip::hits approximate = loaded.search(queries, 10, {.ef = 300});
            CHECK(approximate.indices.to_vector<std::int64_t>() == exact.indices.to_vector<std::int64_t>());
        }
    }
    CHECK(tmp.listing() == std::set<std::string>{"i.index"}); // no temporary left behind
}

TEST_CASE("malformed index files give io_error naming the file") {
    clip::test::temp_dir tmp;
    const fs::path file = tmp / "x.index";
    const auto expect = [&](const std::string& what) {
        const std::string message = error_message([&] { (void)clip::embedding_index::load(file); });
        INFO(message);
        CHECK(contains(message, "x.index"));
        CHECK(contains(message, what));
        CHECK_THROWS_AS((void)clip::embedding_index::load(file), clip::io_error);
    };
    clip::test::write_file(file, "garbage");
    expect("x.index");
    clip::save_safetensors(file, {{"embeddings", clip::tensor::zeros({2, 4})}});
    expect("not an index written by clip index");
    clip::save_safetensors(file, {{"embeddings", clip::tensor::zeros({2, 4})}}, {{"format", "other"}});
    expect("is not clip-index");

    const clip::embedding_index index = sample_index(4, 8);
    index.save(file);
    const clip::safetensors st = clip::safetensors::open(file);
    std::map<std::string, std::string> meta(st.metadata().begin(), st.metadata().end());
    // The good file's tensors, with `changes` replacing (or, when undefined, removing) some.
    auto rewrite = [&](std::map<std::string, clip::tensor> changes, const std::map<std::string, std::string>& m) {
        std::vector<std::pair<std::string, clip::tensor>> tensors;
        for (const std::string n : {"embeddings", "path_bytes", "path_offsets", "file_sizes", "file_mtimes"}) {
            const auto it = changes.find(n);
            const clip::tensor t = it == changes.end() ? st.get(n).contiguous().to(st.get(n).dtype()) : it->second;
            if (t.defined()) tensors.emplace_back(n, t);
        }
        clip::save_safetensors(tmp / "y.index", tensors, m);
        fs::rename(tmp / "y.index", file);
    };
    rewrite({{"path_offsets", clip::tensor::from(std::vector<std::int64_t>{0, 5, 3, 8, 10})}}, meta);
    expect("out of order");
    rewrite({{"path_offsets", clip::tensor::from(std::vector<std::int64_t>{0, 1, 2})}}, meta);
    expect("path offsets");
    rewrite({{"file_sizes", clip::tensor{}}}, meta);
    expect("no tensor \"file_sizes\"");
    rewrite({{"embeddings", clip::tensor::zeros({4, 8}, clip::dtype::i64)}}, meta);
    expect("expected f32");
    auto wrong_version = meta;
    wrong_version["version"] = "9";
    rewrite({}, wrong_version);
    expect("version 9");
    auto wrong_dim = meta;
    wrong_dim["dim"] = "7";
    rewrite({}, wrong_dim);
    expect("dim 7");
    // Two rows with one path.
    rewrite({{"path_bytes", clip::tensor::from(std::vector<std::uint8_t>{'a', 'a', 'b', 'c'})},
             {"path_offsets", clip::tensor::from(std::vector<std::int64_t>{0, 1, 2, 3, 4})}},
            meta);
    expect("appears twice");
}

TEST_CASE("a corrupt graph is reported, not trusted") {
    clip::test::temp_dir tmp;
    clip::embedding_index index = sample_index(50, 8);
    index.build_graph({.m = 8, .ef_construction = 50});
    index.save(tmp / "g.index");
    const clip::safetensors st = clip::safetensors::open(tmp / "g.index");
    std::vector<std::pair<std::string, clip::tensor>> tensors;
    for (const std::string& n : st.names()) {
        clip::tensor t = st.get(n).contiguous().to(st.get(n).dtype());
        if (n == "hnsw") { // cut to its first 100 bytes
            std::vector<std::uint8_t> bytes = t.to_vector<std::uint8_t>();
            bytes.resize(100);
            t = clip::tensor::from(bytes);
        }
        tensors.emplace_back(n, t);
    }
    clip::save_safetensors(tmp / "bad.index", tensors, {st.metadata().begin(), st.metadata().end()});
    const std::string message = error_message([&] { (void)clip::embedding_index::load(tmp / "bad.index"); });
    INFO(message);
    CHECK(contains(message, "bad.index"));
}

TEST_CASE("find_images and stamp_of") {
    clip::test::temp_dir tmp;
    fs::create_directories(tmp / "a" / "deep");
    for (const char* name : {"x.jpg", "y.JPEG", "a/z.png", "a/deep/w.PnG", "notes.txt", "a/image.gif", "noext"})
        clip::test::write_file(tmp / name, "bytes");
    fs::create_directories(tmp / "dir.jpg"); // a directory named like an image is not one
    const std::vector<fs::path> found = clip::find_images(tmp.path());
    CHECK(found == std::vector<fs::path>{tmp / "a/deep/w.PnG", tmp / "a/z.png", tmp / "x.jpg", tmp / "y.JPEG"});
    CHECK(contains(error_message([&] { (void)clip::find_images(tmp / "nowhere"); }), "no such directory"));
    CHECK(contains(error_message([&] { (void)clip::find_images(tmp / "x.jpg"); }), "not a directory"));

    const clip::file_stamp before = clip::stamp_of(tmp / "x.jpg");
    CHECK(before.size == 5);
    clip::test::write_file(tmp / "x.jpg", "other bytes");
    CHECK(clip::stamp_of(tmp / "x.jpg") != before);
    CHECK_THROWS_AS((void)clip::stamp_of(tmp / "missing.jpg"), clip::io_error);
}

TEST_CASE("index construction errors") {
    const clip::tensor rows = random_rows(2, 4, 1);
    CHECK(contains(error_message([&] { clip::embedding_index("m", {"a"}, {{}, {}}, rows); }), "1 paths"));
    CHECK(contains(error_message([&] { clip::embedding_index("m", {"a", "a"}, {{}, {}}, rows); }), "appears twice"));
    CHECK(contains(error_message([&] { clip::embedding_index("", {"a", "b"}, {{}, {}}, rows); }), "fingerprint"));
    const clip::embedding_index index("m", {"a", "b"}, {{}, {}}, rows);
    CHECK(contains(error_message([&] { (void)index.search(clip::tensor::zeros({1, 3}), 1); }), "[Q, 4]"));
}

} // namespace search_index_test
