// Shared helpers for the tests: comparisons that say where and by how much two tensors differ.
#pragma once

#include <doctest/doctest.h>

#include <clip/clip.hpp>

#include <atomic>
#include <unistd.h>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace clip::test {

/// Largest |a - b| relative to max(1, |b|), over all elements (same shape required).
inline double max_relative_error(const tensor& actual, const tensor& expected) {
    REQUIRE(actual.shape() == expected.shape());
    const std::vector<float> a = actual.to_vector<float>(), b = expected.to_vector<float>();
    double worst = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) && std::isnan(b[i])) continue;
        if (a[i] == b[i]) continue; // equal infinities
        worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]) / std::max(1.0, std::abs(static_cast<double>(b[i]))));
    }
    return worst;
}

/// Checks every element within `tolerance` (relative, see above), reporting the worst one.
inline void check_close(const tensor& actual, const tensor& expected, double tolerance = 1e-5) {
    const double error = max_relative_error(actual, expected);
    INFO("shape " << actual.shape() << ": worst relative error " << error << " (tolerance " << tolerance << ")");
    CHECK(error <= tolerance);
}

/// A tensor from f32 values computed by `f(i)` for each linear index i of shape s.
template <class F>
tensor generate(const shape& s, F&& f) {
    std::vector<float> v(static_cast<std::size_t>(s.numel()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = f(static_cast<std::int64_t>(i));
    return tensor::from(v, s);
}

/// Applies `f` to each element of x (any layout), giving a contiguous f32 tensor: the oracle
/// for element-wise expressions.
template <class F>
tensor map_scalar(const tensor& x, F&& f) {
    std::vector<float> v = x.to_vector<float>();
    for (float& e : v) e = f(e);
    return tensor::from(v, x.shape());
}

/// Message of the clip::error that `f` throws ("" if none).
template <class F>
std::string error_message(F&& f) {
    try {
        f();
    } catch (const clip::error& e) {
        return e.what();
    }
    return "";
}

inline bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

template <class T>
std::string str(const T& value) {
    std::ostringstream out;
    out << value;
    return out.str();
}

/// The directory of the PyTorch reference fixtures: $CLIP_REFERENCE_DIR if set, else
/// ../shared/reference beside the source tree; nullopt when it does not exist (tests that need
/// it then skip with a message).
inline std::optional<std::filesystem::path> reference_dir() {
    std::filesystem::path dir;
    if (const char* from_environment = std::getenv("CLIP_REFERENCE_DIR"); from_environment && *from_environment)
        dir = from_environment;
#if defined(CLIP_SOURCE_DIR)
    else dir = std::filesystem::path(CLIP_SOURCE_DIR).parent_path() / "shared" / "reference";
#endif
    std::error_code error;
    if (dir.empty() || !std::filesystem::is_directory(dir, error)) return std::nullopt;
    return dir;
}

/// reference_dir(), saying in the test's output that the case is skipped when there is none.
inline std::optional<std::filesystem::path> fixtures() {
    auto dir = reference_dir();
    if (!dir) MESSAGE("skipped: the reference fixtures (../shared/reference, or CLIP_REFERENCE_DIR) are not present");
    return dir;
}


/// A fresh directory under the system temp dir, removed with everything in it at scope exit
/// (write permission is restored first, so tests may make it read-only).
class temp_dir {
public:
    explicit temp_dir(const std::string& stem = "clip-test") {
        static std::atomic<int> counter{0};
        path_ = std::filesystem::temp_directory_path() /
                (stem + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ignored;
        std::filesystem::permissions(path_, std::filesystem::perms::owner_all, std::filesystem::perm_options::add,
                                     ignored);
        std::filesystem::remove_all(path_, ignored);
    }
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
    /// The names of the files in the directory, sorted (to prove no temporary is left).
    std::set<std::string> listing() const {
        std::set<std::string> out;
        for (const auto& entry : std::filesystem::directory_iterator(path_)) out.insert(entry.path().filename().string());
        return out;
    }

private:
    std::filesystem::path path_;
};


/// A whole file's bytes.
inline std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Writes `bytes` as the whole content of `path`.
inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

/// Checks two search results for exact equality: same shapes, dtypes, indices and scores.
inline void check_identical(const hits& actual, const hits& expected) {
    REQUIRE(actual.indices.shape() == expected.indices.shape());
    REQUIRE(actual.scores.shape() == expected.scores.shape());
    CHECK(actual.indices.dtype() == dtype::i64);
    CHECK(actual.scores.dtype() == dtype::f32);
    CHECK(actual.indices.to_vector<std::int64_t>() == expected.indices.to_vector<std::int64_t>());
    CHECK(actual.scores.to_vector<float>() == expected.scores.to_vector<float>());
}

} // namespace clip::test
