// clip/data/dataset.hpp: what the batch loader (clip/data/loader.hpp) reads: N image–caption
// pairs, each fetched on its own by index.
//
//   class dataset { size(); get(i) -> example{picture, caption}; name(i) }
//
// The implementations are csv_dataset (clip/data/csv.hpp), webdataset (clip/data/webdataset.hpp)
// and synthetic_dataset (clip/data/synthetic.hpp). A dataset is one small virtual seam, so a
// program can pick its source at run time and hand the loader a shared_ptr<const dataset>.
//
// get(i) is called from several threads at once, for different i, and must give the same
// example for the same i every time (the loader's resume relies on it): datasets are immutable
// after construction and read their files anew on each call. A sample that cannot be read throws
// clip::io_error naming it (the loader skips and counts it, see clip/data/loader.hpp).
#pragma once

#include <cstddef>
#include <string>

#include "clip/image/image.hpp"

namespace clip {

/// One training pair: the decoded image (any mode, any size) and its caption (UTF-8).
struct example {
    image picture;
    std::string caption;
};

class dataset {
public:
    virtual ~dataset() = default;
    /// Number of examples.
    virtual std::size_t size() const = 0;
    /// Example i (0 ≤ i < size()); thread-safe and deterministic (see the header comment).
    virtual example get(std::size_t i) const = 0;
    /// How example i is called in messages: a file path, a shard and key.
    virtual std::string name(std::size_t i) const { return "example " + std::to_string(i); }

protected:
    dataset() = default;
    dataset(const dataset&) = default;
    dataset& operator=(const dataset&) = default;
};

} // namespace clip
