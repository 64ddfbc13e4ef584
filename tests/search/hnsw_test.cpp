// Tests for clip/search/hnsw.hpp: recall@10 against exact_search on random unit vectors; the
// serialize → deserialize round trip (same bytes, same results); k > size and the empty index;
// truncated, extended and mutated blobs, which must give clip::io_error and never a crash (run
// this under ASan); bad arguments.
#include "../support.hpp"

#include <clip/search/hnsw.hpp>

#if CLIP_HAVE_HNSWLIB

#include <algorithm>
#include <random>
#include <set>

namespace search_hnsw_test {

using clip::hnsw_index;
using clip::shape;
using clip::tensor;
using clip::test::check_identical;
using clip::test::contains;
using clip::test::error_message;

namespace {

tensor unit_rows(std::int64_t rows, std::int64_t D, std::uint64_t seed) {
    return clip::l2_normalize(clip::rand_normal({rows, D}, seed));
}

/// Mean fraction of each query's exact top-k found in its approximate top-k.
double recall(const clip::hits& approximate, const clip::hits& exact) {
    REQUIRE(approximate.indices.shape() == exact.indices.shape());
    const std::int64_t Q = exact.indices.size(0), k = exact.indices.size(1);
    const std::vector<std::int64_t> a = approximate.indices.to_vector<std::int64_t>(), e = exact.indices.to_vector<std::int64_t>();
    std::int64_t found = 0;
    for (std::int64_t i = 0; i < Q; ++i) {
        const std::set<std::int64_t> truth(e.begin() + i * k, e.begin() + (i + 1) * k);
        for (std::int64_t j = 0; j < k; ++j) found += truth.count(a[static_cast<std::size_t>(i * k + j)]) ? 1 : 0;
    }
    return static_cast<double>(found) / static_cast<double>(Q * k);
}

/// Scores are the inner products of the returned rows, in non-increasing order.
void check_scores(const clip::hits& h, const tensor& database, const tensor& queries) {
    const std::int64_t Q = h.indices.size(0), k = h.indices.size(1), D = database.size(1);
    const std::vector<std::int64_t> indices = h.indices.to_vector<std::int64_t>();
    const std::vector<float> scores = h.scores.to_vector<float>(), x = database.to_vector<float>(), q = queries.to_vector<float>();
    double worst = 0;
    bool ordered = true;
    for (std::int64_t i = 0; i < Q; ++i)
        for (std::int64_t j = 0; j < k; ++j) {
            const std::int64_t row = indices[static_cast<std::size_t>(i * k + j)];
            REQUIRE(row >= 0);
            REQUIRE(row < database.size(0));
            double dot = 0;
            for (std::int64_t d = 0; d < D; ++d)
                dot += static_cast<double>(q[static_cast<std::size_t>(i * D + d)]) * x[static_cast<std::size_t>(row * D + d)];
            worst = std::max(worst, std::abs(dot - scores[static_cast<std::size_t>(i * k + j)]));
            if (j > 0 && scores[static_cast<std::size_t>(i * k + j)] > scores[static_cast<std::size_t>(i * k + j - 1)]) ordered = false;
        }
    CHECK(worst < 1e-5);
    CHECK(ordered);
}

/// A small index with several layers (m = 4 puts a quarter of the nodes above the bottom).
struct small_index {
    tensor database = unit_rows(300, 16, 21);
    hnsw_index index = hnsw_index::build(database, {.m = 4, .ef_construction = 40});
    std::vector<std::uint8_t> blob = index.serialize();
};

/// Deserializes `bytes`; when that succeeds, searches it. Returns the io_error message, or "".
std::string load_and_search(const std::vector<std::uint8_t>& bytes, const tensor& queries) {
    try {
        const hnsw_index loaded = hnsw_index::deserialize(bytes, 16, "mutated.index");
        const std::vector<std::int64_t> indices = loaded.search(queries, 10, 20).indices.to_vector<std::int64_t>();
        REQUIRE(std::all_of(indices.begin(), indices.end(), [&](std::int64_t i) { return i >= -1 && i < loaded.size(); }));
        return "";
    } catch (const clip::io_error& e) {
        return e.what();
    }
}

} // namespace

TEST_CASE("hnsw search reaches recall@10 >= 0.95 on 5000 random unit vectors (ef 200)") {
    const tensor database = unit_rows(5000, 64, 1), queries = unit_rows(200, 64, 2);
    const hnsw_index index = hnsw_index::build(database);
    CHECK(index.size() == 5000);
    CHECK(index.dim() == 64);
    const clip::hits exact = clip::exact_search(database, queries, 10);
    const clip::hits approximate = index.search(queries, 10, 200);
    CHECK(approximate.indices.shape() == shape{200, 10});
    CHECK(approximate.scores.dtype() == clip::dtype::f32);
    const double r = recall(approximate, exact);
    MESSAGE("recall@10 at ef 200: " << r);
    CHECK(r >= 0.95);
    check_scores(approximate, database, queries);
    // A small candidate list finds fewer, but still most.
    CHECK(recall(index.search(queries, 10, 10), exact) > 0.5);

    // One query at a time gives what the batch gave.
    check_identical(index.search(queries.slice(0, 7, 8), 10, 200),
                    {approximate.indices.slice(0, 7, 8), approximate.scores.slice(0, 7, 8)});

    SUBCASE("serialize -> deserialize gives the same bytes and the same results") {
        const std::vector<std::uint8_t> blob = index.serialize();
        const hnsw_index loaded = hnsw_index::deserialize(blob, 64, "round-trip.index");
        CHECK(loaded.size() == 5000);
        CHECK(loaded.dim() == 64);
        CHECK(loaded.serialize() == blob);
        check_identical(loaded.search(queries, 10, 200), approximate);
        check_identical(loaded.search(queries, 3, 50), index.search(queries, 3, 50));
    }
}

TEST_CASE("hnsw with one thread builds a graph that depends only on the data and the seed") {
    const int threads = clip::num_threads();
    clip::set_num_threads(1);
    const tensor database = unit_rows(400, 8, 3);
    const std::vector<std::uint8_t> a = hnsw_index::build(database, {.m = 8, .seed = 5}).serialize();
    const std::vector<std::uint8_t> b = hnsw_index::build(database, {.m = 8, .seed = 5}).serialize();
    clip::set_num_threads(threads);
    CHECK(a == b);
}

TEST_CASE("hnsw search with k > size returns every row once, as exact_search orders them") {
    const tensor database = unit_rows(20, 8, 4), queries = unit_rows(5, 8, 5);
    const hnsw_index index = hnsw_index::build(database);
    const clip::hits h = index.search(queries, 50, 10);
    CHECK(h.indices.shape() == shape{5, 20});
    const clip::hits exact = clip::exact_search(database, queries, 50);
    CHECK(h.indices.to_vector<std::int64_t>() == exact.indices.to_vector<std::int64_t>());
    clip::test::check_close(h.scores, exact.scores, 1e-5);
}

TEST_CASE("an empty hnsw index searches to [Q, 0] and round-trips") {
    const hnsw_index index = hnsw_index::build(tensor::zeros({0, 8}));
    CHECK(index.size() == 0);
    const clip::hits h = index.search(unit_rows(3, 8, 6), 5, 10);
    CHECK(h.indices.shape() == shape{3, 0});
    CHECK(h.scores.shape() == shape{3, 0});
    const hnsw_index loaded = hnsw_index::deserialize(index.serialize(), 8, "empty.index");
    CHECK(loaded.size() == 0);
    CHECK(loaded.search(unit_rows(2, 8, 7), 1, 1).indices.shape() == shape{2, 0});
}

TEST_CASE("a truncated or extended hnsw blob gives io_error naming the source") {
    const small_index s;
    const tensor queries = unit_rows(4, 16, 22);
    std::vector<std::size_t> lengths;
    for (std::size_t n = 0; n < 300; ++n) lengths.push_back(n);
    for (std::size_t n = 300; n < s.blob.size(); n += 97) lengths.push_back(n);
    lengths.push_back(s.blob.size() - 1);
    for (const std::size_t n : lengths) {
        CAPTURE(n);
        const std::vector<std::uint8_t> cut(s.blob.begin(), s.blob.begin() + static_cast<std::ptrdiff_t>(n));
        CHECK_THROWS_AS(hnsw_index::deserialize(cut, 16, "cut.index"), clip::io_error);
    }
    const std::string message = error_message([&] {
        (void)hnsw_index::deserialize(std::vector<std::uint8_t>(s.blob.begin(), s.blob.begin() + 50), 16, "cut.index");
    });
    CHECK(contains(message, "cut.index"));
    CHECK(contains(message, "truncated"));

    std::vector<std::uint8_t> longer = s.blob;
    longer.push_back(0);
    CHECK(contains(error_message([&] { (void)hnsw_index::deserialize(longer, 16, "long.index"); }), "1 bytes after the last element"));
    CHECK(load_and_search(s.blob, queries).empty());
}

TEST_CASE("a mutated hnsw blob gives io_error or a usable index, never a crash") {
    const small_index s;
    const tensor queries = unit_rows(4, 16, 23);
    std::mt19937_64 rng(24);
    std::vector<std::size_t> positions;
    for (std::size_t i = 0; i < 96; ++i) positions.push_back(i); // the whole header
    const std::size_t record = 4 + 8 * 4 + 16 * 4 + 8;              // one bottom-layer record of m = 4, D = 16
    for (std::size_t i = 96; i < 96 + 2 * record; ++i) positions.push_back(i); // two records entirely
    for (int i = 0; i < 600; ++i) positions.push_back(96 + rng() % (s.blob.size() - 96));
    int rejected = 0, loaded = 0;
    for (const std::size_t at : positions) {
        for (const std::uint8_t value : {std::uint8_t{0x00}, std::uint8_t{0xff}, static_cast<std::uint8_t>(s.blob[at] ^ 0x01),
                                         static_cast<std::uint8_t>(s.blob[at] ^ 0x80)}) {
            if (value == s.blob[at]) continue;
            std::vector<std::uint8_t> bytes = s.blob;
            bytes[at] = value;
            CAPTURE(at);
            CAPTURE(static_cast<int>(value));
            const std::string message = load_and_search(bytes, queries);
            if (message.empty()) ++loaded;
            else {
                ++rejected;
                CHECK(contains(message, "mutated.index"));
            }
        }
    }
    MESSAGE(rejected << " mutated blobs rejected, " << loaded << " loaded (vector bytes and harmless fields)");
    CHECK(rejected > 0);
    CHECK(loaded > 0);
}

TEST_CASE("hnsw deserialize reports a dimension mismatch") {
    const small_index s;
    const std::string message = error_message([&] { (void)hnsw_index::deserialize(s.blob, 32, "images.index"); });
    CHECK(contains(message, "images.index"));
    CHECK(contains(message, "dimension 16, expected 32"));
    CHECK_THROWS_AS(hnsw_index::deserialize(s.blob, 0, "images.index"), clip::shape_error);
}

TEST_CASE("hnsw rejects bad arguments with typed errors") {
    const tensor database = unit_rows(50, 8, 8);
    CHECK_THROWS_AS(hnsw_index::build(tensor::zeros({8})), clip::shape_error);
    CHECK_THROWS_AS(hnsw_index::build(tensor::zeros({3, 0})), clip::shape_error);
    CHECK_THROWS_AS(hnsw_index::build(tensor::zeros({3, 4}, clip::dtype::i32)), clip::dtype_error);
    CHECK(contains(error_message([&] { (void)hnsw_index::build(database, {.m = 1}); }), "m must be in 2..10000"));
    CHECK_THROWS_AS(hnsw_index::build(database, {.ef_construction = 0}), clip::error);
    const hnsw_index index = hnsw_index::build(database, {.m = 8});
    CHECK(contains(error_message([&] { (void)index.search(tensor::zeros({2, 9}), 1, 10); }),
                   "queries have D = 9 but the index holds D = 8"));
    CHECK_THROWS_AS(index.search(tensor::zeros({2, 8}), 0, 10), clip::error);
    CHECK_THROWS_AS(index.search(tensor::zeros({2, 8}), 1, 0), clip::error);
    // f16 queries are converted.
    check_identical(index.search(database.slice(0, 0, 3).to(clip::dtype::f16), 4, 20),
                    index.search(database.slice(0, 0, 3).to(clip::dtype::f16).to(clip::dtype::f32), 4, 20));
}

#else

TEST_CASE("hnsw search (skipped)") {
    MESSAGE("built without <hnswlib/hnswlib.h> (Debian: libhnswlib-dev): CLIP_HAVE_HNSWLIB is 0");
}

#endif

} // namespace search_hnsw_test
