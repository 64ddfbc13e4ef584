// Tests for clip/search/exact.hpp: exact_search against a double-precision brute-force loop with
// the same tie rule, on integer-valued data (every score exact in f32, so ties are real ties and
// results must match bit for bit) and on Gaussian data; block and query-chunk boundaries; k > N,
// N = 0, Q = 0 and 1; views and 16-bit inputs; NaN; errors.
#include "../support.hpp"

#include <clip/search/exact.hpp>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>

namespace search_exact_test {

using clip::shape;
using clip::tensor;
using clip::test::check_identical;

namespace {

/// Brute force in double: every score, then a stable sort (higher score first, NaN last), so
/// equal scores keep increasing row order.
clip::hits oracle(const tensor& database, const tensor& queries, std::int64_t k) {
    const std::int64_t N = database.size(0), D = database.size(1), Q = queries.size(0), columns = std::min(k, N);
    const std::vector<float> x = database.to_vector<float>(), q = queries.to_vector<float>();
    std::vector<std::int64_t> indices;
    std::vector<float> scores;
    for (std::int64_t i = 0; i < Q; ++i) {
        std::vector<double> s(static_cast<std::size_t>(N));
        for (std::int64_t r = 0; r < N; ++r) {
            double dot = 0;
            for (std::int64_t d = 0; d < D; ++d)
                dot += static_cast<double>(q[static_cast<std::size_t>(i * D + d)]) * x[static_cast<std::size_t>(r * D + d)];
            s[static_cast<std::size_t>(r)] = dot;
        }
        std::vector<std::int64_t> order(static_cast<std::size_t>(N));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
            const double sa = s[static_cast<std::size_t>(a)], sb = s[static_cast<std::size_t>(b)];
            if (std::isnan(sa) || std::isnan(sb)) return !std::isnan(sa) && std::isnan(sb);
            return sa > sb;
        });
        for (std::int64_t j = 0; j < columns; ++j) {
            indices.push_back(order[static_cast<std::size_t>(j)]);
            scores.push_back(static_cast<float>(s[static_cast<std::size_t>(order[static_cast<std::size_t>(j)])]));
        }
    }
    return {tensor::from(indices, shape{Q, columns}), tensor::from(scores, shape{Q, columns})};
}

/// Rows drawn from `distinct` integer-valued rows with entries in -2..2: many exact duplicates and
/// many equal scores, all computed exactly in f32.
tensor integer_rows(std::int64_t rows, std::int64_t D, std::int64_t distinct, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<float> pool(static_cast<std::size_t>(distinct * D));
    for (float& v : pool) v = static_cast<float>(static_cast<int>(rng() % 5) - 2);
    std::vector<float> out;
    for (std::int64_t r = 0; r < rows; ++r) {
        const std::size_t from = static_cast<std::size_t>(rng() % static_cast<std::uint64_t>(distinct)) * static_cast<std::size_t>(D);
        out.insert(out.end(), pool.begin() + static_cast<std::ptrdiff_t>(from), pool.begin() + static_cast<std::ptrdiff_t>(from + static_cast<std::size_t>(D)));
    }
    return tensor::from(out, shape{rows, D});
}

} // namespace

TEST_CASE("exact_search equals the brute-force oracle, ties included, on integer-valued rows") {
    const tensor database = integer_rows(1000, 16, 40, 1), queries = integer_rows(37, 16, 30, 2);
    for (const std::int64_t k : {1, 7, 25, 200}) {
        CAPTURE(k);
        check_identical(clip::exact_search(database, queries, k), oracle(database, queries, k));
    }
}

TEST_CASE("exact_search gives the same result for any block size, N a multiple of none") {
    const tensor database = integer_rows(1001, 12, 50, 3), queries = integer_rows(19, 12, 10, 4);
    const clip::hits expected = oracle(database, queries, 25);
    for (const std::int64_t block : {1, 7, 24, 25, 26, 64, 1000, 1001, 5000}) {
        CAPTURE(block);
        check_identical(clip::detail::exact_search(database, queries, 25, block), expected);
    }
}

TEST_CASE("exact_search crosses the 32768-row block of a single query") {
    const tensor database = integer_rows(40000, 8, 300, 5), queries = integer_rows(1, 8, 5, 6);
    check_identical(clip::exact_search(database, queries, 12), oracle(database, queries, 12));
}

TEST_CASE("exact_search crosses the 1024-query chunk") {
    const tensor database = integer_rows(300, 8, 20, 7), queries = integer_rows(1500, 8, 40, 8);
    check_identical(clip::exact_search(database, queries, 5), oracle(database, queries, 5));
}

TEST_CASE("exact_search on Gaussian unit rows matches the oracle's order and scores") {
    const tensor database = clip::l2_normalize(clip::rand_normal({3000, 48}, 9));
    const tensor queries = clip::l2_normalize(clip::rand_normal({50, 48}, 10));
    const clip::hits actual = clip::exact_search(database, queries, 10), expected = oracle(database, queries, 10);
    CHECK(actual.indices.to_vector<std::int64_t>() == expected.indices.to_vector<std::int64_t>());
    clip::test::check_close(actual.scores, expected.scores, 1e-5);
}

TEST_CASE("exact_search returns min(k, N) columns: k > N, N = 0, Q = 0, Q = 1") {
    const tensor database = integer_rows(5, 4, 5, 11), queries = integer_rows(3, 4, 3, 12);
    const clip::hits all = clip::exact_search(database, queries, 9);
    CHECK(all.indices.shape() == shape{3, 5});
    check_identical(all, oracle(database, queries, 9));
    for (std::int64_t i = 0; i < 3; ++i) { // every row exactly once
        std::vector<std::int64_t> row = all.indices.select(0, i).to_vector<std::int64_t>();
        std::sort(row.begin(), row.end());
        CHECK(row == std::vector<std::int64_t>{0, 1, 2, 3, 4});
    }

    const clip::hits none = clip::exact_search(tensor::zeros({0, 4}), queries, 3);
    CHECK(none.indices.shape() == shape{3, 0});
    CHECK(none.scores.shape() == shape{3, 0});
    CHECK(clip::exact_search(database, tensor::zeros({0, 4}), 3).indices.shape() == shape{0, 3});

    const tensor one = queries.slice(0, 1, 2);
    check_identical(clip::exact_search(database, one, 2), oracle(database, one, 2));
}

TEST_CASE("exact_search takes views and 16-bit embeddings") {
    const tensor database = integer_rows(200, 16, 30, 13), queries = integer_rows(9, 16, 9, 14);
    const clip::hits expected = oracle(database, queries, 6);
    // Column-major copies (same values, transposed strides) and every other row of a taller matrix.
    check_identical(clip::exact_search(database.t().contiguous().t(), queries.t().contiguous().t(), 6), expected);
    const tensor taller = tensor::full({400, 16}, 7.0);
    taller.slice(0, 0, 400, 2).copy_from(database);
    check_identical(clip::exact_search(taller.slice(0, 0, 400, 2), queries, 6), expected);
    // Small integers are exact in f16 and bf16.
    check_identical(clip::exact_search(database.to(clip::dtype::f16), queries.to(clip::dtype::bf16), 6), expected);
}

TEST_CASE("exact_search ranks NaN scores after every number") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const tensor database = tensor::from<float>({nan, 0, 1, 0, -1, 0, 2, 0}, shape{4, 2});
    const clip::hits h = clip::exact_search(database, tensor::from<float>({1, 0}, shape{1, 2}), 4);
    CHECK(h.indices.to_vector<std::int64_t>() == std::vector<std::int64_t>{3, 1, 2, 0});
    CHECK(std::isnan(h.scores.to_vector<float>()[3]));
    CHECK(clip::exact_search(database, tensor::from<float>({1, 0}, shape{1, 2}), 3).indices.to_vector<std::int64_t>() ==
          std::vector<std::int64_t>{3, 1, 2});
}

TEST_CASE("exact_search rejects bad inputs with typed errors") {
    using clip::test::contains;
    using clip::test::error_message;
    const tensor database = tensor::zeros({10, 4}), queries = tensor::zeros({2, 4});
    CHECK_THROWS_AS(clip::exact_search(tensor::zeros({10}), queries, 1), clip::shape_error);
    CHECK(contains(error_message([&] { (void)clip::exact_search(tensor::zeros({10}), queries, 1); }), "database must be a matrix"));
    CHECK_THROWS_AS(clip::exact_search(database, tensor::zeros({2, 2, 4}), 1), clip::shape_error);
    CHECK_THROWS_AS(clip::exact_search(database, tensor::zeros({2, 5}), 1), clip::shape_error);
    CHECK(contains(error_message([&] { (void)clip::exact_search(database, tensor::zeros({2, 5}), 1); }),
                   "queries have D = 5 but the database rows have D = 4"));
    CHECK_THROWS_AS(clip::exact_search(database, queries, 0), clip::error);
    CHECK(contains(error_message([&] { (void)clip::exact_search(database, queries, 0); }), "k must be at least 1"));
    CHECK_THROWS_AS(clip::exact_search(tensor::zeros({10, 4}, clip::dtype::i64), queries, 1), clip::dtype_error);
    CHECK_THROWS_AS(clip::exact_search(tensor(), queries, 1), clip::error);
}

} // namespace search_exact_test
