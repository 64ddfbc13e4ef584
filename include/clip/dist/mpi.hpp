// clip/dist/mpi.hpp: the communicator over MPI (Open MPI from Debian's libopenmpi-dev), for CPU
// tensors: one process per rank, launched by `mpirun -np N program ...`.
//
//   clip::dist::mpi_communicator world;         // MPI_Init_thread unless already initialised
//   world.all_reduce_sum(gradients);
//
// Needs CLIP_WITH_MPI=1 and MPI's headers and libraries (Meson: dependency('clip-mpi')).
//
// Every collective is MPI's non-blocking one (MPI_Iallreduce, MPI_Iallgatherv, ...) completed by
// polling MPI_Test against a deadline, so a peer that died or stopped calling gives a
// distributed_error after `timeout` seconds instead of a hang. The communicator works on a
// duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN, so an MPI failure is a typed exception
// naming the call. all_reduce_sum_async runs the collective on a helper thread (MPI is initialised
// with MPI_THREAD_SERIALIZED: one thread calls MPI at a time, which the pending handle enforces by
// being waited for before the next collective); that lets the reduction of one gradient bucket
// proceed while the backward pass computes the next.
#pragma once

#if !CLIP_WITH_MPI
#error "clip/dist/mpi.hpp needs MPI: build with CLIP_WITH_MPI=1 and MPI's flags (Meson: dependency('clip-mpi'))"
#endif

// The C API only: Open MPI's and MPICH's deprecated C++ bindings do not compile warning-free.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>

#include "clip/dist/communicator.hpp"

namespace clip::dist {

class mpi_communicator final : public communicator {
public:
    /// Joins MPI_COMM_WORLD; collectives give up after `timeout_seconds`.
    explicit mpi_communicator(double timeout_seconds = 300.0) : timeout_(timeout_seconds) {
        clip::detail::check<distributed_error>(timeout_seconds > 0, "mpi_communicator: the timeout must be positive, got ",
                                               timeout_seconds);
        int initialised = 0;
        MPI_Initialized(&initialised);
        if (!initialised) {
            int provided = 0;
            if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
                throw distributed_error("MPI_Init_thread failed: is this process started by mpirun?");
            owns_mpi_ = true;
            threads_ = provided >= MPI_THREAD_SERIALIZED;
        } else {
            int provided = 0;
            MPI_Query_thread(&provided);
            threads_ = provided >= MPI_THREAD_SERIALIZED;
        }
        call(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
        call(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
        call(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
        call(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    }
    mpi_communicator(const mpi_communicator&) = delete;
    mpi_communicator& operator=(const mpi_communicator&) = delete;

    /// Finalises MPI if it initialised it, except while an exception unwinds: MPI_Finalize waits
    /// for the other ranks, which may be the ones that failed; exiting without it makes mpirun
    /// stop the job.
    ~mpi_communicator() override {
        if (std::uncaught_exceptions() > 0) return;
        if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
        int finalised = 0;
        MPI_Finalized(&finalised);
        if (owns_mpi_ && !finalised) MPI_Finalize();
    }

    int rank() const noexcept override { return rank_; }
    int size() const noexcept override { return size_; }
    std::string_view backend() const noexcept override { return "mpi"; }
    double timeout() const noexcept { return timeout_; }

    void all_reduce_sum(std::span<float> data) override {
        // MPI counts are ints: reduce in chunks of at most 2^30 elements.
        constexpr std::size_t chunk = std::size_t{1} << 30;
        for (std::size_t first = 0; first < data.size(); first += chunk) {
            const std::size_t n = std::min(chunk, data.size() - first);
            MPI_Request request = MPI_REQUEST_NULL;
            call(MPI_Iallreduce(MPI_IN_PLACE, data.data() + first, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_, &request),
                 "MPI_Iallreduce");
            complete(request, "all_reduce of ", data.size(), " floats");
        }
    }

    std::unique_ptr<pending> all_reduce_sum_async(std::span<float> data) override {
        struct deferred final : pending {
            mpi_communicator* self;
            std::span<float> data;
            std::thread worker;
            std::exception_ptr failure;
            bool waited = false;
            deferred(mpi_communicator* s, std::span<float> d, bool threaded) : self(s), data(d) {
                if (threaded)
                    worker = std::thread([this] {
                        try {
                            self->all_reduce_sum(data);
                        } catch (...) {
                            failure = std::current_exception();
                        }
                    });
            }
            void wait() override {
                if (waited) return;
                waited = true;
                if (worker.joinable()) worker.join();
                else self->all_reduce_sum(data);
                if (failure) std::rethrow_exception(failure);
            }
            ~deferred() override {
                if (worker.joinable()) worker.join();
            }
        };
        return std::make_unique<deferred>(this, data, threads_);
    }

    void all_gather(std::span<const float> mine, std::span<float> all, std::span<const std::int64_t> counts) override {
        detail::check_counts(counts, size_, all.size(), "all_gather");
        clip::detail::check<distributed_error>(static_cast<std::int64_t>(mine.size()) == counts[static_cast<std::size_t>(rank_)],
                                               "all_gather: rank ", rank_, " gives ", mine.size(), " elements, its count is ",
                                               counts[static_cast<std::size_t>(rank_)]);
        const auto [sizes, offsets] = layout(counts, "all_gather");
        MPI_Request request = MPI_REQUEST_NULL;
        call(MPI_Iallgatherv(mine.data(), static_cast<int>(mine.size()), MPI_FLOAT, all.data(), sizes.data(), offsets.data(),
                             MPI_FLOAT, comm_, &request),
             "MPI_Iallgatherv");
        complete(request, "all_gather of ", all.size(), " floats");
    }

    void reduce_scatter_sum(std::span<const float> all, std::span<float> mine, std::span<const std::int64_t> counts) override {
        detail::check_counts(counts, size_, all.size(), "reduce_scatter_sum");
        clip::detail::check<distributed_error>(static_cast<std::int64_t>(mine.size()) == counts[static_cast<std::size_t>(rank_)],
                                               "reduce_scatter_sum: rank ", rank_, " receives ", mine.size(),
                                               " elements, its count is ", counts[static_cast<std::size_t>(rank_)]);
        const auto [sizes, offsets] = layout(counts, "reduce_scatter_sum");
        MPI_Request request = MPI_REQUEST_NULL;
        call(MPI_Ireduce_scatter(all.data(), mine.data(), sizes.data(), MPI_FLOAT, MPI_SUM, comm_, &request),
             "MPI_Ireduce_scatter");
        complete(request, "reduce_scatter of ", all.size(), " floats");
    }

    void broadcast(std::span<std::byte> data, int root) override {
        clip::detail::check<distributed_error>(root >= 0 && root < size_, "broadcast: root ", root, " in a world of ", size_);
        constexpr std::size_t chunk = std::size_t{1} << 30;
        for (std::size_t first = 0; first < data.size(); first += chunk) {
            const std::size_t n = std::min(chunk, data.size() - first);
            MPI_Request request = MPI_REQUEST_NULL;
            call(MPI_Ibcast(data.data() + first, static_cast<int>(n), MPI_BYTE, root, comm_, &request), "MPI_Ibcast");
            complete(request, "broadcast of ", data.size(), " bytes from rank ", root);
        }
    }
    using communicator::broadcast;

    std::vector<std::int64_t> all_gather_value(std::int64_t mine) override {
        std::vector<std::int64_t> all(static_cast<std::size_t>(size_));
        MPI_Request request = MPI_REQUEST_NULL;
        call(MPI_Iallgather(&mine, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T, comm_, &request), "MPI_Iallgather");
        complete(request, "all_gather of one value");
        return all;
    }

    void barrier() override {
        MPI_Request request = MPI_REQUEST_NULL;
        call(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
        complete(request, "barrier");
    }

private:
    void call(int code, const char* what) const {
        if (code == MPI_SUCCESS) return;
        char text[MPI_MAX_ERROR_STRING] = {};
        int length = 0;
        MPI_Error_string(code, text, &length);
        throw distributed_error(clip::detail::message("distributed (MPI, rank ", rank_, " of ", size_, "): ", what, " failed: ",
                                                      std::string(text, static_cast<std::size_t>(length))));
    }

    /// Polls `request` until it completes or the timeout passes.
    template <class... What>
    void complete(MPI_Request& request, const What&... what) {
        using clock = std::chrono::steady_clock;
        const auto deadline = clock::now() + std::chrono::duration<double>(timeout_);
        for (std::int64_t polls = 0;; ++polls) {
            int done = 0;
            call(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
            if (done) return;
            if (polls > 1000) {
                if (clock::now() > deadline) {
                    throw distributed_error(clip::detail::message(
                        "distributed (MPI, rank ", rank_, " of ", size_, "): ", what..., " did not complete within ", timeout_,
                        " s: another rank has stopped, failed or is stuck"));
                }
                std::this_thread::sleep_for(std::chrono::microseconds(polls > 100000 ? 1000 : 20));
            }
        }
    }

    struct counts_layout {
        std::vector<int> sizes, offsets;
    };
    counts_layout layout(std::span<const std::int64_t> counts, const char* what) const {
        counts_layout l;
        std::int64_t offset = 0;
        for (const std::int64_t c : counts) {
            clip::detail::check<distributed_error>(c >= 0 && offset + c <= INT_MAX, what, ": ", offset + c,
                                                   " elements are beyond MPI's int counts");
            l.sizes.push_back(static_cast<int>(c));
            l.offsets.push_back(static_cast<int>(offset));
            offset += c;
        }
        return l;
    }

    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0, size_ = 1;
    double timeout_;
    bool owns_mpi_ = false;
    bool threads_ = false;
};

} // namespace clip::dist
