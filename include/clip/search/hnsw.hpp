// clip/search/hnsw.hpp: approximate nearest-neighbour search over embeddings (HNSW).
//
//   hnsw_index index = hnsw_index::build(database /* f32 [N, D] */, {.m = 32, .ef_construction = 200});
//   hits h = index.search(queries /* f32 [Q, D] */, k, ef);   // as exact_search: [Q, min(k, N)]
//   std::vector<std::uint8_t> blob = index.serialize();       // hnswlib's own file format
//   hnsw_index again = hnsw_index::deserialize(blob, D, "images.index");
//
// A hierarchical navigable small-world graph (Malkov & Yashunin, 2016) from hnswlib 0.6.2
// (Debian's libhnswlib-dev, header-only), ranking by inner product as exact_search does: with
// L2-normalised rows that is the cosine similarity. Labels are database rows. `ef` (the search's
// candidate list, at least k) trades speed for recall; measure recall against exact_search
// (bench/search.cpp does: i.i.d. random 512-d vectors, the worst case, need ef 4096 for recall@10
// 0.99 at 100,000 rows). Build and search run on clip's thread pool.
//
// When <hnswlib/hnswlib.h> is missing this header declares only what exact.hpp does, and
// CLIP_HAVE_HNSWLIB is 0.
//
// hnswlib is included with NO_MANUAL_VECTORIZATION: its SIMD kernels are non-inline globals
// (function pointers and CPU probes), which fail to link as soon as two translation units
// include the header. The distance kernel is clip's own instead (xsimd, see inner_product below);
// searches run as fast as with hnswlib's AVX kernel and prefetches.
#pragma once

#if __has_include(<hnswlib/hnswlib.h>)
#define CLIP_HAVE_HNSWLIB 1
#else
#define CLIP_HAVE_HNSWLIB 0
#endif

#include "clip/search/exact.hpp"

#if CLIP_HAVE_HNSWLIB

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <queue>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "clip/expr/simd.hpp"

// hnswlib relies on its includers for some standard headers (included above).
#pragma push_macro("NO_MANUAL_VECTORIZATION")
#undef NO_MANUAL_VECTORIZATION
#define NO_MANUAL_VECTORIZATION
#include <hnswlib/hnswlib.h>
#pragma pop_macro("NO_MANUAL_VECTORIZATION")

namespace clip {

/// Graph parameters of hnsw_index::build.
struct hnsw_options {
    std::int64_t m = 32;                // links per node and layer (2·m on the bottom layer), 2..10000
    std::int64_t ef_construction = 200; // candidate list while inserting: higher builds slower, better graphs
    std::uint64_t seed = 100;           // the level draw (hnswlib's default seed)
};

namespace detail {

/// Σ a[i]·b[i]; four accumulators, so that the adds do not wait on each other's latency.
inline float inner_product(const float* a, const float* b, std::int64_t n) noexcept {
    simd acc0(0.0f), acc1(0.0f), acc2(0.0f), acc3(0.0f);
    std::int64_t i = 0;
    const auto product = [&](std::int64_t at, simd acc) {
        return xsimd::fma(simd::load_unaligned(a + at), simd::load_unaligned(b + at), acc);
    };
    for (; i + 4 * simd_width <= n; i += 4 * simd_width) {
        acc0 = product(i, acc0);
        acc1 = product(i + simd_width, acc1);
        acc2 = product(i + 2 * simd_width, acc2);
        acc3 = product(i + 3 * simd_width, acc3);
    }
    for (; i + simd_width <= n; i += simd_width) acc0 = product(i, acc0);
    float s = reduce_add((acc0 + acc1) + (acc2 + acc3));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

/// hnswlib's inner-product space with clip's kernel: distance = 1 − a·b (as InnerProductSpace).
class inner_product_space final : public hnswlib::SpaceInterface<float> {
public:
    explicit inner_product_space(std::size_t dim) : dim_(dim) {}
    std::size_t get_data_size() override { return dim_ * sizeof(float); }
    hnswlib::DISTFUNC<float> get_dist_func() override { return &distance; }
    void* get_dist_func_param() override { return &dim_; }

    static float distance(const void* a, const void* b, const void* dim) {
        return 1.0f - inner_product(static_cast<const float*>(a), static_cast<const float*>(b),
                                    static_cast<std::int64_t>(*static_cast<const std::size_t*>(dim)));
    }

private:
    std::size_t dim_;
};

using hnsw_graph = hnswlib::HierarchicalNSW<float>;

/// The space and the graph that points into it (so neither may move).
struct hnsw_state {
    explicit hnsw_state(std::int64_t d) : dim(d), space(static_cast<std::size_t>(d)) {}
    std::int64_t dim;
    inner_product_space space;
    std::unique_ptr<hnsw_graph> graph; // declared after `space`, destroyed before it
};

// The layout hnswlib 0.6.2's saveIndex writes (native endianness, size_t of 8 bytes):
//   header: offsetLevel0, max_elements, count, size_data_per_element, label_offset, offsetData
//           (size_t each), maxlevel (int), enterpoint (u32), maxM, maxM0, M (size_t),
//           mult (double), ef_construction (size_t)                                  96 bytes
//   count × bottom-layer records: [links: u16 count, u8 flags, u8, maxM0 × u32]
//                                 [dim × f32 vector] [size_t label]
//   count × upper layers: u32 byte size, then level × [u16 count, u16, maxM × u32]
inline constexpr std::size_t hnsw_header_bytes = 6 * sizeof(std::size_t) + sizeof(int) + sizeof(unsigned) +
                                                 3 * sizeof(std::size_t) + sizeof(double) + sizeof(std::size_t);
static_assert(hnsw_header_bytes == 96, "hnswlib's index header is 96 bytes on LP64 platforms");

/// Reads fixed-size values from a byte span, throwing io_error at its end.
class byte_reader {
public:
    byte_reader(std::span<const std::uint8_t> bytes, const std::string& what) : bytes_(bytes), what_(what) {}

    template <class T>
    T at(std::size_t offset, const char* field) const {
        check<io_error>(offset <= bytes_.size() && bytes_.size() - offset >= sizeof(T), what_,
                        ": truncated hnsw index: ", field, " at byte ", offset, " lies beyond its end (", bytes_.size(),
                        " bytes)");
        T value;
        std::memcpy(&value, bytes_.data() + offset, sizeof(T));
        return value;
    }
    template <class T>
    T next(const char* field) {
        const T value = at<T>(position, field);
        position += sizeof(T);
        return value;
    }

    std::size_t position = 0;

private:
    std::span<const std::uint8_t> bytes_;
    const std::string& what_;
};

/// Checks that `bytes` is a complete, consistent hnswlib index of `dim`-float vectors, and
/// returns its element count. hnswlib trusts every count and offset it reads, so a truncated or
/// corrupted file would otherwise make it read (or free) wild memory: every offset, list length
/// and link is checked here, and every link points to a node that has that layer.
inline std::size_t check_hnsw_index(std::span<const std::uint8_t> bytes, std::int64_t dim, const std::string& what) {
    using tableint = hnswlib::tableint;
    byte_reader in(bytes, what);
    const auto corrupt = [&](auto&&... args) { return io_error(message(what, ": corrupted hnsw index: ", args...)); };
    const auto offset_level0 = in.next<std::size_t>("the header");
    const auto max_elements = in.next<std::size_t>("the header");
    const auto count = in.next<std::size_t>("the header");
    const auto size_per_element = in.next<std::size_t>("the header");
    const auto label_offset = in.next<std::size_t>("the header");
    const auto data_offset = in.next<std::size_t>("the header");
    const auto max_level = in.next<int>("the header");
    const auto entry_point = in.next<tableint>("the header");
    const auto max_links = in.next<std::size_t>("the header");
    const auto max_links0 = in.next<std::size_t>("the header");
    (void)in.next<std::size_t>("the header"); // M, used only while inserting
    (void)in.next<double>("the header");      // the level multiplier, used only while inserting
    (void)in.next<std::size_t>("the header"); // ef_construction, used only while inserting

    // List lengths are u16 in hnswlib's records.
    if (max_links < 1 || max_links > 65535 || max_links0 < 1 || max_links0 > 65535)
        throw corrupt("link capacities ", max_links, " and ", max_links0, " (bottom layer) are not in 1..65535");
    const std::size_t links0_bytes = sizeof(unsigned) + max_links0 * sizeof(tableint);
    const std::size_t links_bytes = sizeof(unsigned) + max_links * sizeof(tableint);
    const std::size_t vector_bytes = static_cast<std::size_t>(dim) * sizeof(float);
    if (offset_level0 != 0 || data_offset != links0_bytes || label_offset != data_offset + vector_bytes ||
        size_per_element != label_offset + sizeof(hnswlib::labeltype)) {
        // The vector size is the one field that says which dimension the file was built for.
        if (offset_level0 == 0 && data_offset == links0_bytes && label_offset > data_offset &&
            size_per_element == label_offset + sizeof(hnswlib::labeltype) &&
            (label_offset - data_offset) % sizeof(float) == 0)
            throw io_error(message(what, ": the hnsw index holds vectors of dimension ",
                                   (label_offset - data_offset) / sizeof(float), ", expected ", dim));
        throw corrupt("the record layout (offsets ", offset_level0, ", ", data_offset, ", ", label_offset,
                      ", record size ", size_per_element, ") does not fit dimension ", dim,
                      " with ", max_links0, " bottom-layer links");
    }
    const std::size_t records_begin = in.position, available = bytes.size() - records_begin;
    check<io_error>(count <= available / size_per_element && count <= std::numeric_limits<tableint>::max(), what,
                    ": truncated hnsw index: ", count, " elements of ", size_per_element,
                    " bytes do not fit in the ", available, " bytes after the header");
    if (max_elements < count) throw corrupt("capacity ", max_elements, " below the element count ", count);
    if (count > 0 && (entry_point >= count || max_level < 0))
        throw corrupt("entry point ", entry_point, " at level ", max_level, " for ", count, " elements");

    // Upper layers: each element's level, and where its lists are.
    std::vector<int> levels(count);
    std::vector<std::size_t> upper(count);
    in.position = records_begin + count * size_per_element;
    for (std::size_t i = 0; i < count; ++i) {
        const auto size = in.next<unsigned>("an upper-layer size");
        if (size % links_bytes != 0 || size / links_bytes > static_cast<std::size_t>(max_level))
            throw corrupt("element ", i, " has ", size, " bytes of upper-layer links, not a multiple of ", links_bytes,
                          " up to level ", max_level);
        check<io_error>(bytes.size() - in.position >= size, what, ": truncated hnsw index: the upper layers of ",
                        "element ", i, " end at byte ", in.position + size, ", the index has ", bytes.size());
        levels[i] = static_cast<int>(size / links_bytes);
        upper[i] = in.position;
        in.position += size;
    }
    if (in.position != bytes.size())
        throw corrupt(bytes.size() - in.position, " bytes after the last element");
    if (count > 0 && levels[entry_point] != max_level)
        throw corrupt("entry point ", entry_point, " has level ", levels[entry_point], ", the index says ", max_level);

    const auto check_links = [&](std::size_t i, int level, std::size_t offset, std::size_t capacity) {
        const auto links = in.at<std::uint16_t>(offset, "a link count");
        if (links > capacity)
            throw corrupt("element ", i, " has ", links, " links at level ", level, ", at most ", capacity);
        for (std::size_t j = 0; j < links; ++j) {
            const auto to = in.at<tableint>(offset + sizeof(unsigned) + j * sizeof(tableint), "a link");
            if (to >= count || levels[to] < level)
                throw corrupt("element ", i, " links to element ", to, " at level ", level, ", which ",
                              to >= count ? "does not exist" : "is not on that level");
        }
    };
    std::vector<bool> seen(count);
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t record = records_begin + i * size_per_element;
        // hnswlib marks deleted elements in the flags byte; clip never deletes.
        if (in.at<std::uint8_t>(record + 2, "the flags") != 0) throw corrupt("element ", i, " has flags set");
        check_links(i, 0, record, max_links0);
        for (int level = 1; level <= levels[i]; ++level)
            check_links(i, level, upper[i] + static_cast<std::size_t>(level - 1) * links_bytes, max_links);
        const auto label = in.at<hnswlib::labeltype>(record + label_offset, "a label");
        if (label >= count || seen[label]) throw corrupt("element ", i, " has label ", label, " of ", count, " rows");
        seen[label] = true;
    }
    return count;
}

/// A file hnswlib can save to and load from by name (0.6.2 has no stream interface): an
/// anonymous memfd named /proc/self/fd/N, or a mkstemp file in the temp directory where memfds
/// or /proc are missing. Closed, and removed, at scope exit.
class scratch_file {
public:
    scratch_file() {
#if defined(__linux__)
        fd_ = ::memfd_create("clip-hnsw", MFD_CLOEXEC);
        if (fd_ >= 0) {
            path_ = "/proc/self/fd/" + std::to_string(fd_);
            if (::access(path_.c_str(), R_OK | W_OK) == 0) return;
            ::close(fd_);
        }
#endif
        std::error_code ignored;
        std::filesystem::path directory = std::filesystem::temp_directory_path(ignored);
        if (directory.empty()) directory = "/tmp";
        std::string name = (directory / "clip-hnsw-XXXXXX").string();
        fd_ = ::mkstemp(name.data());
        check<io_error>(fd_ >= 0, "hnsw_index: cannot create a temporary file in ", directory.string(), ": ",
                        std::strerror(errno));
        path_ = name;
        remove_ = true;
    }
    scratch_file(const scratch_file&) = delete;
    scratch_file& operator=(const scratch_file&) = delete;
    ~scratch_file() {
        ::close(fd_);
        if (remove_) ::unlink(path_.c_str());
    }

    const std::string& path() const noexcept { return path_; }

    void write(std::span<const std::uint8_t> bytes) const {
        for (std::size_t done = 0; done < bytes.size();) {
            const ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
            if (n < 0 && errno == EINTR) continue;
            check<io_error>(n > 0, "hnsw_index: writing ", path_, ": ", std::strerror(errno));
            done += static_cast<std::size_t>(n);
        }
    }

    std::vector<std::uint8_t> read() const {
        struct stat info {};
        check<io_error>(::fstat(fd_, &info) == 0, "hnsw_index: ", path_, ": ", std::strerror(errno));
        std::vector<std::uint8_t> bytes(static_cast<std::size_t>(info.st_size));
        for (std::size_t done = 0; done < bytes.size();) {
            const ssize_t n = ::pread(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
            if (n < 0 && errno == EINTR) continue;
            check<io_error>(n > 0, "hnsw_index: reading ", path_, ": ",
                            n == 0 ? "unexpected end" : std::strerror(errno));
            done += static_cast<std::size_t>(n);
        }
        return bytes;
    }

private:
    int fd_ = -1;
    std::string path_;
    bool remove_ = false;
};

} // namespace detail

/// An HNSW graph over the rows of a database, searched by inner product.
class hnsw_index {
public:
    /// Builds the graph over database [N, D] (f32; f16 and bf16 converted), label = row. Rows are
    /// inserted in parallel (the first alone, as the entry point), so the graph, unlike its
    /// quality, depends on thread timing; with one thread it is a function of the data and seed.
    static hnsw_index build(const tensor& database, const hnsw_options& options = {}) {
        const char* op = "hnsw_index::build";
        const tensor x = detail::search_matrix(database, op, "database").contiguous(); // [N, D]
        const std::int64_t N = x.size(0), D = x.size(1);
        detail::check<shape_error>(D >= 1, op, ": rows of dimension 0 (database ", x.shape(), ")");
        detail::check(options.m >= 2 && options.m <= 10000, op, ": m must be in 2..10000, got ", options.m);
        detail::check(options.ef_construction >= 1, op, ": ef_construction must be at least 1, got ",
                      options.ef_construction);
        auto state = std::make_unique<detail::hnsw_state>(D);
        try {
            // Capacity of at least one: an empty index still allocates its (empty) arrays.
            state->graph = std::make_unique<detail::hnsw_graph>(
                &state->space, static_cast<std::size_t>(std::max<std::int64_t>(N, 1)),
                static_cast<std::size_t>(options.m), static_cast<std::size_t>(options.ef_construction),
                static_cast<std::size_t>(options.seed));
        } catch (const std::runtime_error& e) {
            throw backend_error(detail::message(op, ": hnswlib: ", e.what()));
        }
        detail::hnsw_graph& graph = *state->graph;
        const float* rows = x.data<float>();
        std::exception_ptr failure;
        const auto insert = [&](std::int64_t i) {
            try {
                graph.addPoint(rows + i * D, static_cast<hnswlib::labeltype>(i));
            } catch (...) {
#pragma omp critical(clip_hnsw_build)
                if (!failure) failure = std::current_exception();
            }
        };
        if (N > 0) insert(0);
        // Insertions take hnswlib's per-node locks. (Its level draw is not locked in 0.6.2:
        // concurrent draws may repeat a value, which leaves the level distribution as it was.)
        // Dynamic chunks: an insertion's cost varies with the node's level.
#pragma omp parallel for schedule(dynamic, 16) num_threads(num_threads())
        for (std::int64_t i = 1; i < N; ++i) insert(i);
        if (failure) {
            try {
                std::rethrow_exception(failure);
            } catch (const std::runtime_error& e) {
                throw backend_error(detail::message(op, ": hnswlib: ", e.what()));
            }
        }
        return hnsw_index(std::move(state));
    }

    /// The index in hnswlib 0.6.2's saveIndex format (hnswlib's own loadIndex reads it).
    std::vector<std::uint8_t> serialize() const {
        const detail::hnsw_state& s = state("hnsw_index::serialize");
        const detail::hnsw_graph& graph = *s.graph;
        std::size_t expected = detail::hnsw_header_bytes + graph.cur_element_count * graph.size_data_per_element_;
        for (std::size_t i = 0; i < graph.cur_element_count; ++i)
            expected += sizeof(unsigned) +
                        static_cast<std::size_t>(graph.element_levels_[i]) * graph.size_links_per_element_;
        detail::scratch_file file;
        try {
            s.graph->saveIndex(file.path());
        } catch (const std::exception& e) {
            throw io_error(detail::message("hnsw_index::serialize: hnswlib: ", e.what()));
        }
        std::vector<std::uint8_t> bytes = file.read();
        // saveIndex does not report failed writes; a short file is one.
        detail::check<io_error>(bytes.size() == expected, "hnsw_index::serialize: hnswlib wrote ", bytes.size(),
                                " bytes to ", file.path(), ", expected ", expected);
        return bytes;
    }

    /// Reads an index that `serialize` wrote for vectors of dimension `dim`. Anything that is not
    /// such an index, truncated or corrupted included, throws io_error naming `what` (e.g. the
    /// file it came from) and the problem; hnswlib never sees bytes that failed the checks.
    static hnsw_index deserialize(std::span<const std::uint8_t> bytes, std::int64_t dim, const std::string& what) {
        detail::check<shape_error>(dim >= 1 && dim <= (std::int64_t{1} << 30), "hnsw_index::deserialize: ", what,
                                   ": dimension ", dim, " out of range");
        const std::size_t count = detail::check_hnsw_index(bytes, dim, what);
        detail::scratch_file file;
        file.write(bytes);
        auto state = std::make_unique<detail::hnsw_state>(dim);
        try {
            // The loading constructor: when it throws, no destructor runs on half-read members.
            state->graph = std::make_unique<detail::hnsw_graph>(&state->space, file.path(), false,
                                                                std::max<std::size_t>(count, 1));
        } catch (const std::runtime_error& e) {
            throw io_error(detail::message(what, ": hnswlib could not load the index: ", e.what()));
        }
        state->graph->num_deleted_ = 0; // loadIndex only counts up from an uninitialised value
        return hnsw_index(std::move(state));
    }

    /// The min(k, size()) rows with the largest inner product with each query [Q, D], best first
    /// (equal scores: lower row first), searching with a candidate list of max(ef, k). Columns the
    /// search could not fill hold index -1 and score -inf: possible only when fewer than k rows
    /// are reachable in the graph from its entry point. Safe to call from several threads at once.
    hits search(const tensor& queries, std::int64_t k, std::int64_t ef) const {
        const char* op = "hnsw_index::search";
        const detail::hnsw_state& s = state(op);
        const tensor q = detail::search_matrix(queries, op, "queries").contiguous(); // [Q, D]
        detail::check<shape_error>(q.size(1) == s.dim, op, ": queries have D = ", q.size(1),
                                   " but the index holds D = ", s.dim, " (queries ", q.shape(), ")");
        detail::check(k >= 1, op, ": k must be at least 1, got ", k);
        detail::check(ef >= 1, op, ": ef must be at least 1, got ", ef);
        const std::int64_t Q = q.size(0), columns = std::min(k, size());
        hits out{tensor::empty({Q, columns}, dtype::i64), tensor::empty({Q, columns}, dtype::f32)};
        if (Q == 0 || columns == 0) return out;
        const float* rows = q.data<float>();
        std::int64_t* indices = out.indices.data<std::int64_t>();
        float* scores = out.scores.data<float>();
        const std::size_t candidates = static_cast<std::size_t>(std::max(ef, columns));
        const std::int64_t cost = static_cast<std::int64_t>(candidates) * s.dim * 16; // ~16 distances per candidate
        detail::parallel_for(Q, cost, [&](std::int64_t first, std::int64_t last) {
            std::vector<detail::scored_row> found;
            for (std::int64_t i = first; i < last; ++i) {
                search_one(*s.graph, rows + i * s.dim, candidates, found);
                const std::size_t n = std::min(found.size(), static_cast<std::size_t>(columns));
                std::partial_sort(found.begin(), found.begin() + static_cast<std::ptrdiff_t>(n), found.end(),
                                  detail::ranks_before);
                for (std::int64_t j = 0; j < columns; ++j) {
                    const bool reached = static_cast<std::size_t>(j) < n;
                    indices[i * columns + j] = reached ? found[static_cast<std::size_t>(j)].row : -1;
                    scores[i * columns + j] =
                        reached ? found[static_cast<std::size_t>(j)].score : -std::numeric_limits<float>::infinity();
                }
            }
        });
        return out;
    }

    /// Rows in the index (0 for a moved-from index).
    std::int64_t size() const noexcept {
        return state_ ? static_cast<std::int64_t>(state_->graph->cur_element_count) : 0;
    }
    /// Dimension of the rows (0 for a moved-from index).
    std::int64_t dim() const noexcept { return state_ ? state_->dim : 0; }

private:
    explicit hnsw_index(std::unique_ptr<detail::hnsw_state> state) : state_(std::move(state)) {}

    const detail::hnsw_state& state(const char* op) const {
        detail::check(state_ != nullptr, op, ": the index was moved from");
        return *state_;
    }

    /// hnswlib's searchKnn with `ef` passed in, rather than set on the shared index (setEf), and
    /// without its shared hop counters, which every thread would write: descend the upper layers
    /// greedily, then search the bottom layer with `ef` candidates. Scores are 1 − distance.
    static void search_one(const detail::hnsw_graph& graph, const float* query, std::size_t ef,
                           std::vector<detail::scored_row>& found) {
        using hnswlib::tableint;
        found.clear();
        tableint current = graph.enterpoint_node_;
        float current_distance = graph.fstdistfunc_(query, graph.getDataByInternalId(current), graph.dist_func_param_);
        for (int level = graph.maxlevel_; level > 0; --level) {
            for (bool changed = true; changed;) {
                changed = false;
                hnswlib::linklistsizeint* list = graph.get_linklist(current, level);
                const tableint* links = reinterpret_cast<const tableint*>(list + 1);
                for (unsigned j = 0, n = graph.getListCount(list); j < n; ++j) {
                    const float d =
                        graph.fstdistfunc_(query, graph.getDataByInternalId(links[j]), graph.dist_func_param_);
                    if (d < current_distance) {
                        current_distance = d;
                        current = links[j];
                        changed = true;
                    }
                }
            }
        }
        auto top = graph.searchBaseLayerST<false>(current, query, ef);
        for (; !top.empty(); top.pop())
            found.push_back(
                {1.0f - top.top().first, static_cast<std::int64_t>(graph.getExternalLabel(top.top().second))});
    }

    std::unique_ptr<detail::hnsw_state> state_;
};

} // namespace clip

#endif // CLIP_HAVE_HNSWLIB
