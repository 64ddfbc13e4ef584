// clip/dist/communicator.hpp: the collectives data-parallel training needs, behind one interface
// with three implementations: one process (this header: every collective is a copy or nothing),
// MPI between processes on CPU tensors (clip/dist/mpi.hpp) and NCCL between GPUs
// (clip/dist/nccl.hpp).
//
//   std::unique_ptr<clip::dist::communicator> world = clip::dist::connect();  // MPI under mpirun
//   world->all_reduce_sum(gradients);              // every rank ends with the sum
//   world->all_gather(mine, all, counts);          // rank order; counts may differ per rank
//
// Buffers are spans of floats in the memory the implementation works on (host for MPI, device
// for NCCL: works_on says which). A collective that does not complete within the
// communicator's timeout throws distributed_error naming the operation, the rank and the
// timeout, instead of hanging: a rank that died or stopped calling leaves the others waiting,
// and under mpirun a rank that exits with an error makes mpirun stop the rest.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <span>
#include <string_view>
#include <vector>

#include "clip/core/device.hpp"
#include "clip/core/error.hpp"

namespace clip {

/// A collective that failed or did not complete in time, or ranks that disagree.
class distributed_error : public error {
public:
    using error::error;
};

} // namespace clip

namespace clip::dist {

/// An operation started by an `_async` call; wait() completes it (and throws what it failed with).
class pending {
public:
    virtual ~pending() = default;
    virtual void wait() = 0;
};

class communicator {
public:
    virtual ~communicator() = default;

    virtual int rank() const noexcept = 0;
    virtual int size() const noexcept = 0;
    /// "single", "mpi" or "nccl".
    virtual std::string_view backend() const noexcept = 0;
    /// Whether the spans of its collectives may point into the memory of `where`: host memory,
    /// or (NCCL) its own GPU's.
    virtual bool works_on(device where) const noexcept { return where.is_cpu(); }

    /// data <- Σ over ranks of data, on every rank.
    virtual void all_reduce_sum(std::span<float> data) = 0;
    /// Starts all_reduce_sum(data); data must stay untouched until wait().
    virtual std::unique_ptr<pending> all_reduce_sum_async(std::span<float> data) = 0;
    /// all <- every rank's `mine` in rank order; counts[r] is rank r's element count (the
    /// same list on every rank), all.size() = Σ counts.
    virtual void all_gather(std::span<const float> mine, std::span<float> all, std::span<const std::int64_t> counts) = 0;
    /// mine <- rank r's slice (counts as in all_gather) of Σ over ranks of `all`.
    virtual void reduce_scatter_sum(std::span<const float> all, std::span<float> mine, std::span<const std::int64_t> counts) = 0;
    /// data <- root's data, on every rank.
    virtual void broadcast(std::span<std::byte> data, int root) = 0;
    /// Every rank's value, in rank order (host memory whatever the backend).
    virtual std::vector<std::int64_t> all_gather_value(std::int64_t mine) = 0;
    virtual void barrier() = 0;

    void broadcast(std::span<float> data, int root) { broadcast(std::as_writable_bytes(data), root); }
    /// data <- the mean over ranks of data.
    void all_reduce_mean(std::span<float> data) {
        all_reduce_sum(data);
        const float inverse = 1.0f / static_cast<float>(size());
        for (float& v : data) v *= inverse;
    }
};

/// Whether this process was started by an MPI launcher (mpirun/mpiexec of Open MPI, MPICH, or a
/// PMI-based scheduler such as srun): the environment names a world size.
inline bool launched_by_mpi() noexcept {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
        if (std::getenv(name)) return true;
    return false;
}

namespace detail {

inline void check_counts(std::span<const std::int64_t> counts, int size, std::size_t total, std::string_view what) {
    clip::detail::check<distributed_error>(counts.size() == static_cast<std::size_t>(size), what, ": ", counts.size(),
                                           " counts for a world of ", size);
    const std::int64_t sum = std::accumulate(counts.begin(), counts.end(), std::int64_t{0});
    clip::detail::check<distributed_error>(sum == static_cast<std::int64_t>(total), what, ": the counts add up to ", sum,
                                           ", the gathered buffer holds ", total);
}

} // namespace detail

/// A world of one: every collective is the identity (or a copy).
class single_process final : public communicator {
public:
    int rank() const noexcept override { return 0; }
    int size() const noexcept override { return 1; }
    std::string_view backend() const noexcept override { return "single"; }

    void all_reduce_sum(std::span<float>) override {}
    std::unique_ptr<pending> all_reduce_sum_async(std::span<float>) override {
        struct done final : pending {
            void wait() override {}
        };
        return std::make_unique<done>();
    }
    void all_gather(std::span<const float> mine, std::span<float> all, std::span<const std::int64_t> counts) override {
        detail::check_counts(counts, 1, all.size(), "all_gather");
        clip::detail::check<distributed_error>(mine.size() == all.size(), "all_gather: ", mine.size(), " elements for a count of ",
                                               all.size());
        if (!mine.empty() && mine.data() != all.data()) std::memcpy(all.data(), mine.data(), mine.size_bytes());
    }
    void reduce_scatter_sum(std::span<const float> all, std::span<float> mine, std::span<const std::int64_t> counts) override {
        detail::check_counts(counts, 1, all.size(), "reduce_scatter_sum");
        clip::detail::check<distributed_error>(mine.size() == all.size(), "reduce_scatter_sum: ", mine.size(),
                                               " elements for a count of ", all.size());
        if (!all.empty() && mine.data() != all.data()) std::memcpy(mine.data(), all.data(), all.size_bytes());
    }
    void broadcast(std::span<std::byte>, int root) override {
        clip::detail::check<distributed_error>(root == 0, "broadcast: root ", root, " in a world of 1");
    }
    using communicator::broadcast;
    std::vector<std::int64_t> all_gather_value(std::int64_t mine) override { return {mine}; }
    void barrier() override {}
};

} // namespace clip::dist
