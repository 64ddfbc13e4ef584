// clip/search/exact.hpp: exact k-nearest-neighbour search by inner product.
//
//   hits h = exact_search(database /* f32 [N, D] */, queries /* f32 [Q, D] */, k);
//   h.indices   i64 [Q, min(k, N)]   database rows, best first
//   h.scores    f32 [Q, min(k, N)]   query · row for those rows
//
// With L2-normalised rows (embeddings after `l2_normalize`) the inner product is the cosine
// similarity CLIP ranks by. Scores come from clip::matmul on blocks of database rows, so the
// memory beyond the inputs and outputs stays near 32 MiB even for millions of rows; each query
// keeps its best k in a small heap. Equal scores rank the lower database row first, and NaN
// ranks after every number, so results are deterministic and a brute-force loop with the same
// rule reproduces them. This is the ground truth the approximate index (hnsw.hpp) is measured
// against.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "clip/core/tensor.hpp"
#include "clip/ops/matmul.hpp"

namespace clip {

/// The best database rows of each query, best first.
struct hits {
    tensor indices; // i64 [Q, k]: database rows
    tensor scores;  // f32 [Q, k]: their inner products with the query
};

namespace detail {

/// A candidate: a database row and its score.
struct scored_row {
    float score;
    std::int64_t row;
};

/// True when `a` ranks before `b`: higher score first, then lower row; NaN after every number
/// (a strict weak order even with NaN, which the heap algorithms need).
inline bool ranks_before(const scored_row& a, const scored_row& b) noexcept {
    const bool a_nan = std::isnan(a.score), b_nan = std::isnan(b.score);
    if (a_nan != b_nan) return b_nan;
    if (!a_nan && a.score != b.score) return a.score > b.score;
    return a.row < b.row;
}

/// A [rows, D] operand of a search as f32 on the CPU; f16 and bf16 embeddings are converted.
inline tensor search_matrix(const tensor& t, const char* op, const char* name) {
    require_defined(t, op);
    require_cpu(t, op);
    check<shape_error>(t.ndim() == 2, op, ": ", name, " must be a matrix [rows, D], got shape ", t.shape());
    check<dtype_error>(is_floating(t.dtype()), op, ": ", name,
                       " must hold floating-point embeddings (f32, f16 or bf16), got ", t.dtype());
    return t.to(dtype::f32);
}

/// exact_search with database blocks of `block_rows` rows (a parameter so that tests can cross
/// block boundaries on small inputs).
inline hits exact_search(const tensor& database, const tensor& queries, std::int64_t k, std::int64_t block_rows) {
    const char* op = "exact_search";
    const tensor x = search_matrix(database, op, "database");   // [N, D]
    const tensor q = search_matrix(queries, op, "queries");     // [Q, D]
    check<shape_error>(q.size(1) == x.size(1), op, ": queries have D = ", q.size(1), " but the database rows have D = ",
                       x.size(1), " (queries ", q.shape(), ", database ", x.shape(), ")");
    check(k >= 1, op, ": k must be at least 1, got ", k);
    check(block_rows >= 1, op, ": block_rows must be at least 1, got ", block_rows);
    const std::int64_t N = x.size(0), Q = q.size(0), columns = std::min(k, N);
    hits out{tensor::empty({Q, columns}, dtype::i64), tensor::empty({Q, columns}, dtype::f32)};
    if (Q == 0 || columns == 0) return out;

    // Queries in chunks too, so that the score buffer [chunk, block_rows] stays bounded for any Q.
    const std::int64_t query_chunk = std::min<std::int64_t>(Q, 1024);
    tensor buffer = tensor::empty({query_chunk * std::min(block_rows, N)}); // [chunk · block]
    std::vector<scored_row> best(static_cast<std::size_t>(query_chunk * columns)); // a heap per query
    for (std::int64_t q0 = 0; q0 < Q; q0 += query_chunk) {
        const std::int64_t count = std::min(Q - q0, query_chunk);
        const tensor chunk = q.slice(0, q0, q0 + count); // [count, D]
        for (std::int64_t r0 = 0; r0 < N; r0 += block_rows) {
            const std::int64_t width = std::min(N - r0, block_rows);
            const tensor scores = buffer.slice(0, 0, count * width).view({count, width}); // [count, width]
            matmul_into(scores, chunk, x.slice(0, r0, r0 + width).t());
            const float* s = scores.data<float>();
            parallel_for(count, width, [&](std::int64_t first, std::int64_t last) {
                for (std::int64_t i = first; i < last; ++i) {
                    scored_row* heap = best.data() + i * columns; // worst kept on top
                    const float* row = s + i * width;
                    // The first `columns` rows of the database fill the heap (every query has
                    // seen the same rows); rows arrive in increasing order, so afterwards an equal
                    // score never displaces a kept row.
                    const std::int64_t kept = std::min(r0, columns), filling = std::min(width, columns - kept);
                    std::int64_t j = 0;
                    for (; j < filling; ++j) {
                        heap[kept + j] = {row[j], r0 + j};
                        std::push_heap(heap, heap + kept + j + 1, ranks_before);
                    }
                    for (; j < width; ++j) {
                        if (row[j] < heap[0].score) continue; // the common case, decided without the full order
                        const scored_row candidate{row[j], r0 + j};
                        if (!ranks_before(candidate, heap[0])) continue;
                        std::pop_heap(heap, heap + columns, ranks_before);
                        heap[columns - 1] = candidate;
                        std::push_heap(heap, heap + columns, ranks_before);
                    }
                }
            });
        }
        std::int64_t* indices = out.indices.data<std::int64_t>() + q0 * columns;
        float* values = out.scores.data<float>() + q0 * columns;
        for (std::int64_t i = 0; i < count * columns; i += columns) {
            std::sort_heap(best.begin() + i, best.begin() + i + columns, ranks_before);
            for (std::int64_t j = 0; j < columns; ++j) {
                indices[i + j] = best[static_cast<std::size_t>(i + j)].row;
                values[i + j] = best[static_cast<std::size_t>(i + j)].score;
            }
        }
    }
    return out;
}

} // namespace detail

/// The min(k, N) database rows with the largest inner product with each query, best first
/// (equal scores: lower row first). database [N, D] and queries [Q, D] are f32 (f16 and bf16 are
/// converted), any layout; N = 0 gives [Q, 0].
inline hits exact_search(const tensor& database, const tensor& queries, std::int64_t k) {
    // About 8M scores (32 MiB) per block: fewer, larger products for small batches, bounded memory
    // for large ones; never under 1024 rows, so that a block amortises a product call.
    const std::int64_t score_budget = std::int64_t{1} << 23;
    const std::int64_t chunk =
        queries.defined() && queries.ndim() == 2 ? std::clamp<std::int64_t>(queries.size(0), 1, 1024) : 1;
    return detail::exact_search(database, queries, k, std::clamp<std::int64_t>(score_budget / chunk, 1024, 32768));
}

} // namespace clip
