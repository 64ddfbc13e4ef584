// clip/search/index.hpp: an embedding index of image files, stored as one safetensors file.
//
//   embeddings    F32 [N, D]   L2-normalised image embeddings, rows in path order
//   path_bytes    U8  [B]      the N paths (UTF-8 or the file system's bytes), concatenated
//   path_offsets  I64 [N + 1]  path i is path_bytes[offsets[i], offsets[i + 1])
//   file_sizes    I64 [N]      the size and modification time (ns since the epoch) each file had
//   file_mtimes   I64 [N]      when embedded: a re-run re-embeds only files whose stamp changed
//   hnsw          U8  [G]      optional: an HNSW graph over the rows (hnswlib's own format)
//   __metadata__  format "clip-index", version "1", model (the model's fingerprint), dim, and
//                 free-form entries (model_name, root)
//
// The model fingerprint makes an index refuse queries embedded by another model: cosine scores
// between two models' embedding spaces are meaningless. Built without hnswlib (CLIP_HAVE_HNSWLIB
// 0), an index cannot build a graph, and one it loads is searched exactly (its graph is dropped). Saving is atomic (a temporary file renamed
// over the old one), so a run that is killed leaves the previous index intact.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "clip/core/error.hpp"
#include "clip/core/tensor.hpp"
#include "clip/io/safetensors.hpp"
#include "clip/ops/rowwise.hpp"
#include "clip/search/exact.hpp"
#include "clip/search/hnsw.hpp"

namespace clip {

/// What a file looked like when it was embedded.
struct file_stamp {
    std::int64_t size = -1;
    std::int64_t mtime_ns = 0;
    bool operator==(const file_stamp&) const = default;
};

/// The stamp of `path` now (following symbolic links); io_error when it cannot be read.
inline file_stamp stamp_of(const std::filesystem::path& path) {
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0)
        throw io_error(detail::message("\"", path.string(), "\": cannot stat: ", std::strerror(errno)));
    return {static_cast<std::int64_t>(status.st_size),
            static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1'000'000'000 + status.st_mtim.tv_nsec};
}

/// Every JPEG and PNG file under `dir` (by extension, any case: .jpg .jpeg .png), recursively,
/// lexically normalised and sorted; directories that cannot be read are skipped. io_error when `dir` is not a directory.
inline std::vector<std::filesystem::path> find_images(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::error_code code;
    if (!fs::is_directory(dir, code))
        throw io_error(detail::message("\"", dir.string(), "\": ", fs::exists(dir, code) ? "not a directory" : "no such directory"));
    std::vector<fs::path> out;
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, code);
    if (code) throw io_error(detail::message("\"", dir.string(), "\": cannot list: ", code.message()));
    for (const fs::recursive_directory_iterator end; it != end; it.increment(code)) {
        if (code) break;
        std::string extension = it->path().extension().string();
        std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
        if (extension != ".jpg" && extension != ".jpeg" && extension != ".png") continue;
        // Normalised ("./photos/a.jpg" and "photos//a.jpg" are "photos/a.jpg"), so that an index
        // keyed by these paths matches across spellings of the same folder.
        if (it->is_regular_file(code)) out.push_back(it->path().lexically_normal());
    }
    std::sort(out.begin(), out.end());
    return out;
}

struct index_search_options {
    bool exact = false;     ///< brute force even when the index has an HNSW graph
    std::int64_t ef = 0;    ///< HNSW candidate list size; 0: max(512, 16k) (bench/search.cpp measures recall)
};

class embedding_index {
public:
    embedding_index() = default;

    /// `embeddings` [N, D] (normalised here), one path and stamp per row, paths distinct.
    embedding_index(std::string model, std::vector<std::string> paths, std::vector<file_stamp> stamps, const tensor& embeddings)
        : embedding_index(std::move(model), std::move(paths), std::move(stamps), embeddings, true) {}

private:
    // Loading keeps the stored rows bit for bit: normalising a unit row again can move it by an ulp.
    embedding_index(std::string model, std::vector<std::string> paths, std::vector<file_stamp> stamps, const tensor& embeddings,
                    bool normalise)
        : model_(std::move(model)), paths_(std::move(paths)), stamps_(std::move(stamps)) {
        detail::check<shape_error>(embeddings.ndim() == 2 && embeddings.size(0) == static_cast<std::int64_t>(paths_.size()) &&
                                       stamps_.size() == paths_.size(),
                                   "embedding_index: ", paths_.size(), " paths and ", stamps_.size(), " stamps for embeddings of shape ",
                                   embeddings.shape());
        detail::check(!model_.empty(), "embedding_index: empty model fingerprint");
        embeddings_ = normalise ? l2_normalize(embeddings.to(dtype::f32)) : embeddings.to(dtype::f32).clone();
        for (std::size_t i = 0; i < paths_.size(); ++i)
            detail::check(rows_.emplace(paths_[i], i).second, "embedding_index: path \"", paths_[i], "\" appears twice");
    }

public:

    /// Reads and validates an index file; io_error naming the file and the problem.
    static embedding_index load(const std::filesystem::path& file) {
        const auto fail = [&](const auto&... args) -> void {
            throw io_error(detail::message("index \"", file.string(), "\": ", args...));
        };
        const safetensors st = safetensors::open(file);
        const auto& meta = st.metadata();
        const auto entry = [&](const char* key) -> std::string {
            const auto it = meta.find(key);
            if (it == meta.end()) fail("no \"", key, "\" in the metadata: not an index written by clip index");
            return it->second;
        };
        if (entry("format") != "clip-index") fail("format \"", entry("format"), "\" is not clip-index");
        if (entry("version") != "1") fail("version ", entry("version"), " is not supported (this build reads version 1)");
        const auto tensor_of = [&](const char* name, dtype t, std::int64_t ndim) {
            if (!st.contains(name)) fail("no tensor \"", name, "\"");
            const tensor x = st.get(name);
            if (x.dtype() != t || x.ndim() != ndim) fail("tensor \"", name, "\" is ", x.dtype(), " ", x.shape(), ", expected ", t, " of rank ", ndim);
            return x;
        };
        const tensor embeddings = tensor_of("embeddings", dtype::f32, 2);
        const tensor bytes = tensor_of("path_bytes", dtype::u8, 1), offsets = tensor_of("path_offsets", dtype::i64, 1);
        const tensor sizes = tensor_of("file_sizes", dtype::i64, 1), mtimes = tensor_of("file_mtimes", dtype::i64, 1);
        const std::int64_t n = embeddings.size(0);
        if (offsets.size(0) != n + 1 || sizes.size(0) != n || mtimes.size(0) != n)
            fail(n, " embeddings but ", offsets.size(0), " path offsets, ", sizes.size(0), " sizes, ", mtimes.size(0), " times");
        if (std::to_string(embeddings.size(1)) != entry("dim")) fail("dim ", entry("dim"), " but embeddings of shape ", embeddings.shape());
        const auto* o = offsets.data<std::int64_t>();
        const auto* b = reinterpret_cast<const char*>(bytes.data_ptr());
        std::vector<std::string> paths(static_cast<std::size_t>(n));
        std::vector<file_stamp> stamps(static_cast<std::size_t>(n));
        if (o[0] != 0) fail("path offsets start at ", o[0], ", not 0");
        for (std::int64_t i = 0; i < n; ++i) {
            if (o[i + 1] < o[i] || o[i + 1] > bytes.size(0)) fail("path offset ", i + 1, " (", o[i + 1], ") out of order or past the ", bytes.size(0), " path bytes");
            paths[static_cast<std::size_t>(i)].assign(b + o[i], static_cast<std::size_t>(o[i + 1] - o[i]));
            stamps[static_cast<std::size_t>(i)] = {sizes.data<std::int64_t>()[i], mtimes.data<std::int64_t>()[i]};
        }
        embedding_index index;
        try {
            index = embedding_index(entry("model"), std::move(paths), std::move(stamps), embeddings, false);
        } catch (const error& e) {
            fail(e.what());
        }
        for (const auto& [key, value] : meta)
            if (key != "format" && key != "version" && key != "model" && key != "dim") index.info_[key] = value;
#if CLIP_HAVE_HNSWLIB
        if (st.contains("hnsw")) {
            const tensor graph = tensor_of("hnsw", dtype::u8, 1);
            const std::span<const std::uint8_t> blob(static_cast<const std::uint8_t*>(graph.data_ptr()), static_cast<std::size_t>(graph.numel()));
            index.ann_ = hnsw_index::deserialize(blob, embeddings.size(1), "index \"" + file.string() + "\" (hnsw)");
            if (index.ann_->size() != n) fail("the HNSW graph has ", index.ann_->size(), " rows, the index ", n);
        }
#endif
        return index;
    }

    /// Writes the index atomically: the previous file stays intact until the new one is complete.
    void save(const std::filesystem::path& file) const {
        const auto n = static_cast<std::int64_t>(paths_.size());
        std::int64_t total = 0;
        for (const std::string& p : paths_) total += static_cast<std::int64_t>(p.size());
        tensor bytes = tensor::empty({total}, dtype::u8), offsets = tensor::empty({n + 1}, dtype::i64);
        tensor sizes = tensor::empty({n}, dtype::i64), mtimes = tensor::empty({n}, dtype::i64);
        auto* b = reinterpret_cast<char*>(bytes.data_ptr());
        auto* o = offsets.data<std::int64_t>();
        o[0] = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            const std::string& p = paths_[static_cast<std::size_t>(i)];
            std::memcpy(b + o[i], p.data(), p.size());
            o[i + 1] = o[i] + static_cast<std::int64_t>(p.size());
            sizes.data<std::int64_t>()[i] = stamps_[static_cast<std::size_t>(i)].size;
            mtimes.data<std::int64_t>()[i] = stamps_[static_cast<std::size_t>(i)].mtime_ns;
        }
        std::vector<std::pair<std::string, tensor>> tensors = {
            {"embeddings", embeddings_}, {"path_bytes", bytes}, {"path_offsets", offsets}, {"file_sizes", sizes}, {"file_mtimes", mtimes}};
#if CLIP_HAVE_HNSWLIB
        if (ann_) {
            std::vector<std::uint8_t> graph = ann_->serialize();
            tensor blob = tensor::empty({static_cast<std::int64_t>(graph.size())}, dtype::u8);
            std::copy(graph.begin(), graph.end(), static_cast<std::uint8_t*>(blob.data_ptr()));
            tensors.emplace_back("hnsw", blob);
        }
#endif
        std::map<std::string, std::string> meta(info_.begin(), info_.end());
        meta["format"] = "clip-index";
        meta["version"] = "1";
        meta["model"] = model_;
        meta["dim"] = std::to_string(dim());
        save_safetensors(file, tensors, meta);
    }

    const std::string& model() const noexcept { return model_; }
    std::int64_t size() const noexcept { return static_cast<std::int64_t>(paths_.size()); }
    std::int64_t dim() const noexcept { return embeddings_.defined() ? embeddings_.size(1) : 0; }
    const std::vector<std::string>& paths() const noexcept { return paths_; }
    const std::vector<file_stamp>& stamps() const noexcept { return stamps_; }
    /// [N, D], unit rows.
    const tensor& embeddings() const noexcept { return embeddings_; }
    /// Free-form metadata kept with the index (model_name, root, ...).
    std::map<std::string, std::string>& info() noexcept { return info_; }
    const std::map<std::string, std::string>& info() const noexcept { return info_; }

    /// The row of `path`, if indexed.
    std::optional<std::int64_t> find(const std::string& path) const {
        const auto it = rows_.find(path);
        if (it == rows_.end()) return std::nullopt;
        return static_cast<std::int64_t>(it->second);
    }

#if CLIP_HAVE_HNSWLIB
    bool has_graph() const noexcept { return ann_.has_value(); }
    /// Builds (or rebuilds) the HNSW graph over the rows, for approximate search.
    void build_graph(const hnsw_options& options = {}) { ann_ = hnsw_index::build(embeddings_, options); }
    void drop_graph() noexcept { ann_.reset(); }
#else
    bool has_graph() const noexcept { return false; }
    void build_graph() { throw error("embedding_index: built without hnswlib (Debian: libhnswlib-dev), no HNSW graph"); }
    void drop_graph() noexcept {}
#endif

    /// queries [Q, D] (normalised here) -> the k best rows of each, by cosine similarity: through
    /// the HNSW graph when there is one (unless options.exact), else exactly.
    hits search(const tensor& queries, std::int64_t k, const index_search_options& options = {}) const {
        detail::check<shape_error>(queries.ndim() == 2 && queries.size(1) == dim(), "index search: queries must be [Q, ", dim(),
                                   "] (this index's embedding size), got ", queries.shape());
        const tensor q = l2_normalize(queries.to(dtype::f32));
#if CLIP_HAVE_HNSWLIB
        if (ann_ && !options.exact) return ann_->search(q, k, options.ef > 0 ? options.ef : std::max<std::int64_t>(512, 16 * k));
#endif
        return exact_search(embeddings_, q, k);
    }

private:
    std::string model_;
    std::vector<std::string> paths_;
    std::vector<file_stamp> stamps_;
    tensor embeddings_;
    std::unordered_map<std::string, std::size_t> rows_;
    std::map<std::string, std::string> info_;
#if CLIP_HAVE_HNSWLIB
    std::optional<hnsw_index> ann_;
#endif
};

} // namespace clip
