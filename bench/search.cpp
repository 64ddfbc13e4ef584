// bench-search: exact and HNSW nearest-neighbour search over CLIP-sized embeddings.
//
// The database is N random unit vectors of dimension D (default 100,000 × 512, ViT-B/32's
// embedding size). Two query sets of Q vectors (default 1,000), k = 10:
//   random       random unit vectors: no query has a near neighbour, the hard case for HNSW;
//   noisy copy   a random database row plus Gaussian noise of norm ≈ 0.5, normalised (cosine
//                ≈ 0.9 to its source): closer to searching a collection for something like an
//                item in it.
// Prints the exact search's throughput (one batch of all queries, cold and warm median of 3; one
// query at a time), the HNSW build time, and per query set and ef the recall@10 against the
// exact result and the throughput of a batch search. Queries/s use every thread (--threads, else
// CLIP_NUM_THREADS, else OpenMP's default); on a busy machine they are indicative only, recall
// is deterministic given the graph.
//
// Usage: bench-search [--n N] [--dim D] [--queries Q] [--k K] [--m M] [--ef-construction E]
//                     [--ef 64,128,...] [--threads T]
#include <clip/clip.hpp>
#include <clip/search/hnsw.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace {

struct options {
    std::int64_t n = 100000, dim = 512, queries = 1000, k = 10, m = 32, ef_construction = 200, threads = 0;
    std::vector<std::int64_t> ef{64, 128, 256, 512, 1024, 2048, 4096};
};

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string name = argv[i], value;
        if (const auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
        } else if (i + 1 < argc) {
            value = argv[++i];
        }
        const auto number = [&] { return std::stoll(value); };
        if (name == "--n") o.n = number();
        else if (name == "--dim") o.dim = number();
        else if (name == "--queries") o.queries = number();
        else if (name == "--k") o.k = number();
        else if (name == "--m") o.m = number();
        else if (name == "--ef-construction") o.ef_construction = number();
        else if (name == "--threads") o.threads = number();
        else if (name == "--ef") {
            o.ef.clear();
            std::stringstream list(value);
            for (std::string item; std::getline(list, item, ',');) o.ef.push_back(std::stoll(item));
        } else {
            std::fprintf(stderr, "bench-search: unknown option %s\nusage: bench-search [--n N] [--dim D] [--queries Q] "
                                 "[--k K] [--m M] [--ef-construction E] [--ef 64,128,...] [--threads T]\n",
                         name.c_str());
            std::exit(2);
        }
    }
    return o;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

template <class F>
double time_once(F&& f) {
    const auto start = std::chrono::steady_clock::now();
    f();
    return seconds_since(start);
}

/// Row i of the result: database row r_i plus noise of norm ≈ `noise`, normalised.
clip::tensor noisy_copies(const clip::tensor& database, std::int64_t count, float noise, std::uint64_t seed) {
    const std::int64_t N = database.size(0), D = database.size(1);
    std::mt19937_64 rng(seed);
    clip::tensor out = clip::rand_normal({count, D}, seed + 1, 0.0f, noise / std::sqrt(static_cast<float>(D)));
    float* q = out.data<float>();
    const float* x = database.data<float>();
    for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t row = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(N));
        for (std::int64_t d = 0; d < D; ++d) q[i * D + d] += x[row * D + d];
    }
    return clip::l2_normalize(out);
}

/// Mean fraction of each query's exact top-k among its approximate top-k (k = 1: the best row found).
double recall(const clip::hits& approximate, const clip::hits& exact, std::int64_t k) {
    const std::int64_t Q = exact.indices.size(0), columns = exact.indices.size(1);
    const std::vector<std::int64_t> a = approximate.indices.to_vector<std::int64_t>(), e = exact.indices.to_vector<std::int64_t>();
    std::int64_t found = 0;
    for (std::int64_t i = 0; i < Q; ++i) {
        const std::set<std::int64_t> truth(e.begin() + i * columns, e.begin() + i * columns + k);
        for (std::int64_t j = 0; j < k; ++j) found += truth.count(a[static_cast<std::size_t>(i * columns + j)]) ? 1 : 0;
    }
    return static_cast<double>(found) / static_cast<double>(std::max<std::int64_t>(1, Q * k));
}

} // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0); // each line as it comes, also into a file: runs take minutes
    const options o = parse(argc, argv);
    if (o.threads > 0) clip::set_num_threads(static_cast<int>(o.threads));
    std::printf("bench-search: N = %lld, D = %lld, Q = %lld, k = %lld, threads = %d\n", static_cast<long long>(o.n),
                static_cast<long long>(o.dim), static_cast<long long>(o.queries), static_cast<long long>(o.k),
                clip::num_threads());
    const clip::tensor database = clip::l2_normalize(clip::rand_normal({o.n, o.dim}, 1)); // [N, D]
    const clip::tensor random = clip::l2_normalize(clip::rand_normal({o.queries, o.dim}, 2)); // [Q, D]
    const clip::tensor noisy = noisy_copies(database, o.queries, 0.5f, 3);                // [Q, D]

    // ---- exact ----------------------------------------------------------------------------
    clip::hits exact_random, exact_noisy;
    std::vector<double> batch;
    for (int run = 0; run < 3; ++run) batch.push_back(time_once([&] { exact_random = clip::exact_search(database, random, o.k); }));
    const double cold = batch[0];
    std::sort(batch.begin(), batch.end());
    const double warm = batch[1];
    exact_noisy = clip::exact_search(database, noisy, o.k);
    const std::int64_t singles = std::min<std::int64_t>(o.queries, 100);
    const double single = time_once([&] {
        for (std::int64_t i = 0; i < singles; ++i) (void)clip::exact_search(database, random.slice(0, i, i + 1), o.k);
    });
    std::printf("\nexact search (matmul over blocks of database rows + per-query top-k)\n");
    std::printf("  batch of %lld queries: cold %.3f s, warm median of 3 %.3f s -> %.0f queries/s\n",
                static_cast<long long>(o.queries), cold, warm, static_cast<double>(o.queries) / warm);
    std::printf("  one query at a time (%lld queries): %.2f ms/query -> %.1f queries/s\n", static_cast<long long>(singles),
                single * 1e3 / static_cast<double>(singles), static_cast<double>(singles) / single);

#if CLIP_HAVE_HNSWLIB
    // ---- hnsw -----------------------------------------------------------------------------
    std::optional<clip::hnsw_index> index;
    const double build = time_once([&] {
        index = clip::hnsw_index::build(database, {.m = o.m, .ef_construction = o.ef_construction});
    });
    std::printf("\nhnsw build: m = %lld, ef_construction = %lld: %.1f s (%.0f rows/s), serialized %.1f MB\n",
                static_cast<long long>(o.m), static_cast<long long>(o.ef_construction), build,
                static_cast<double>(o.n) / build, static_cast<double>(index->serialize().size()) / 1e6);
    const double exact_qps = static_cast<double>(o.queries) / warm;
    for (const auto& [name, queries, truth] : {std::tuple{"random unit vectors", random, exact_random},
                                                std::tuple{"noisy copies of database rows", noisy, exact_noisy}}) {
        std::printf("\nhnsw search, queries: %s\n  %6s  recall@%-3lld  recall@1  %10s  %s\n", name, "ef",
                    static_cast<long long>(o.k), "queries/s", "vs exact batch");
        for (const std::int64_t ef : o.ef) {
            clip::hits h;
            const double t = time_once([&] { h = index->search(queries, o.k, ef); });
            const double qps = static_cast<double>(o.queries) / t;
            std::printf("  %6lld  %9.4f  %8.4f  %10.0f  %.2fx\n", static_cast<long long>(ef), recall(h, truth, o.k),
                        recall(h, truth, 1), qps, qps / exact_qps);
        }
    }
#else
    std::printf("\nhnsw: skipped (built without <hnswlib/hnswlib.h>, Debian: libhnswlib-dev)\n");
#endif
    return 0;
}
