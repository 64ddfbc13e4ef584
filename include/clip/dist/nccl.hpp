// clip/dist/nccl.hpp: the communicator over NCCL (in the CUDA toolkit), for tensors in GPU
// memory: one process (or thread) per GPU.
//
//   auto world = clip::dist::nccl_communicator::from_environment();  // WORLD_SIZE, RANK, LOCAL_RANK
//   world->all_reduce_sum(device_gradients);
//
// Needs CLIP_WITH_NCCL=1 (and CUDA; Meson: dependency('clip-nccl')). Spans hold device pointers.
// Ranks meet through a unique id that rank 0 creates: handed over by another communicator (MPI:
// over()), or through a file every rank can read (from_file(); from_environment() uses
// CLIP_NCCL_ID_FILE), written atomically by rank 0 and polled by the others.
//
// NCCL's communicator is created non-blocking and every collective runs on the communicator's own
// stream; completion is polled (cudaStreamQuery, ncclCommGetAsyncError) against the timeout, and a
// collective that does not finish aborts the communicator (ncclCommAbort) and throws
// distributed_error, instead of hanging in a kernel that waits for a dead peer.
#pragma once

#if !CLIP_WITH_NCCL
#error "clip/dist/nccl.hpp needs NCCL: build with CLIP_WITH_NCCL=1 and CUDA (Meson: dependency('clip-nccl'))"
#endif

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "clip/dist/communicator.hpp"

namespace clip::dist {

class nccl_communicator final : public communicator {
public:
    /// A new unique id (rank 0 makes it, every rank passes the same one).
    static ncclUniqueId new_id() {
        ncclUniqueId id{};
        check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId", -1, 0);
        return id;
    }

    /// Rank `rank` of `size` on CUDA device `device`, meeting the others through `id`.
    nccl_communicator(int rank, int size, const ncclUniqueId& id, int device, double timeout_seconds = 300.0)
        : rank_(rank), size_(size), device_(device), timeout_(timeout_seconds) {
        clip::detail::check<distributed_error>(size >= 1 && rank >= 0 && rank < size, "nccl_communicator: rank ", rank,
                                               " of a world of ", size);
        check_cuda(cudaSetDevice(device), "cudaSetDevice");
        check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
        check_cuda(cudaMalloc(&scratch_, sizeof(std::int64_t) * static_cast<std::size_t>(size + 1)), "cudaMalloc");
        ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
        config.blocking = 0;
        ncclResult_t r = ncclCommInitRankConfig(&comm_, size, id, rank, &config);
        if (r != ncclSuccess && r != ncclInProgress) check_nccl(r, "ncclCommInitRankConfig", rank_, size_);
        wait_for_communicator("ncclCommInitRankConfig (the other ranks did not join)");
    }
    nccl_communicator(const nccl_communicator&) = delete;
    nccl_communicator& operator=(const nccl_communicator&) = delete;

    ~nccl_communicator() override {
        if (comm_) {
            if (aborted_) ncclCommAbort(comm_);
            else ncclCommDestroy(comm_);
        }
        if (scratch_) cudaFree(scratch_);
        if (stream_) cudaStreamDestroy(stream_);
    }

    /// Rank 0 of `host` (e.g. an mpi_communicator) creates the id and broadcasts it.
    static std::unique_ptr<nccl_communicator> over(communicator& host, int device, double timeout_seconds = 300.0) {
        ncclUniqueId id{};
        if (host.rank() == 0) id = new_id();
        host.broadcast(std::as_writable_bytes(std::span<ncclUniqueId>(&id, 1)), 0);
        return std::make_unique<nccl_communicator>(host.rank(), host.size(), id, device, timeout_seconds);
    }

    /// Rank 0 writes a new id to `file` (atomically); the others wait for it, up to the timeout.
    static std::unique_ptr<nccl_communicator> from_file(const std::filesystem::path& file, int rank, int size, int device,
                                                        double timeout_seconds = 300.0) {
        ncclUniqueId id{};
        if (rank == 0) {
            id = new_id();
            const std::filesystem::path temporary = file.string() + ".tmp";
            {
                std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
                out.write(reinterpret_cast<const char*>(&id), sizeof id);
                if (!out) throw distributed_error("nccl_communicator: cannot write the unique id to " + temporary.string());
            }
            std::filesystem::rename(temporary, file);
        } else {
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
            for (;;) {
                std::ifstream in(file, std::ios::binary);
                if (in && in.read(reinterpret_cast<char*>(&id), sizeof id)) break;
                if (std::chrono::steady_clock::now() > deadline)
                    throw distributed_error(clip::detail::message("nccl_communicator: rank ", rank, " found no unique id in ",
                                                                  file.string(), " within ", timeout_seconds, " s (is rank 0 running?)"));
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
        }
        return std::make_unique<nccl_communicator>(rank, size, id, device, timeout_seconds);
    }

    /// torchrun's variables: WORLD_SIZE, RANK, LOCAL_RANK (the device); the id through the file
    /// CLIP_NCCL_ID_FILE (on a file system every rank shares).
    static std::unique_ptr<nccl_communicator> from_environment(double timeout_seconds = 300.0) {
        const auto number = [](const char* name, int fallback) {
            const char* v = std::getenv(name);
            return v ? std::atoi(v) : fallback;
        };
        const int size = number("WORLD_SIZE", 1), rank = number("RANK", 0), local = number("LOCAL_RANK", 0);
        const char* file = std::getenv("CLIP_NCCL_ID_FILE");
        if (size > 1 && !file)
            throw distributed_error("nccl_communicator: WORLD_SIZE > 1 needs CLIP_NCCL_ID_FILE, a path every rank can read");
        return from_file(file ? file : "/tmp/clip-nccl-id", rank, size, local, timeout_seconds);
    }

    int rank() const noexcept override { return rank_; }
    int size() const noexcept override { return size_; }
    std::string_view backend() const noexcept override { return "nccl"; }
    bool works_on(clip::device where) const noexcept override { return where.is_cuda() && where.index == device_; }
    cudaStream_t stream() const noexcept { return stream_; }
    int device() const noexcept { return device_; }

    void all_reduce_sum(std::span<float> data) override {
        start_all_reduce(data);
        complete("all_reduce of ", data.size(), " floats");
    }

    std::unique_ptr<pending> all_reduce_sum_async(std::span<float> data) override {
        struct on_stream final : pending {
            nccl_communicator* self;
            std::size_t count;
            bool waited = false;
            void wait() override {
                if (waited) return;
                waited = true;
                self->complete("all_reduce of ", count, " floats");
            }
            on_stream(nccl_communicator* s, std::size_t n) : self(s), count(n) {}
        };
        start_all_reduce(data);
        return std::make_unique<on_stream>(this, data.size());
    }

    void all_gather(std::span<const float> mine, std::span<float> all, std::span<const std::int64_t> counts) override {
        detail::check_counts(counts, size_, all.size(), "all_gather");
        check_mine(mine.size(), counts, "all_gather");
        if (equal(counts)) {
            launch(ncclAllGather(mine.data(), all.data(), mine.size(), ncclFloat, comm_, stream_), "ncclAllGather");
        } else {
            // Unequal counts: one broadcast per root, grouped into one launch.
            launch(ncclGroupStart(), "ncclGroupStart");
            std::size_t offset = 0;
            for (int r = 0; r < size_; ++r) {
                const auto n = static_cast<std::size_t>(counts[static_cast<std::size_t>(r)]);
                launch(ncclBroadcast(r == rank_ ? mine.data() : all.data() + offset, all.data() + offset, n, ncclFloat, r, comm_, stream_),
                       "ncclBroadcast");
                offset += n;
            }
            launch(ncclGroupEnd(), "ncclGroupEnd");
        }
        complete("all_gather of ", all.size(), " floats");
    }

    void reduce_scatter_sum(std::span<const float> all, std::span<float> mine, std::span<const std::int64_t> counts) override {
        detail::check_counts(counts, size_, all.size(), "reduce_scatter_sum");
        check_mine(mine.size(), counts, "reduce_scatter_sum");
        if (equal(counts)) {
            launch(ncclReduceScatter(all.data(), mine.data(), mine.size(), ncclFloat, ncclSum, comm_, stream_), "ncclReduceScatter");
        } else {
            launch(ncclGroupStart(), "ncclGroupStart");
            std::size_t offset = 0;
            for (int r = 0; r < size_; ++r) {
                const auto n = static_cast<std::size_t>(counts[static_cast<std::size_t>(r)]);
                launch(ncclReduce(all.data() + offset, r == rank_ ? mine.data() : nullptr, n, ncclFloat, ncclSum, r, comm_, stream_),
                       "ncclReduce");
                offset += n;
            }
            launch(ncclGroupEnd(), "ncclGroupEnd");
        }
        complete("reduce_scatter of ", all.size(), " floats");
    }

    void broadcast(std::span<std::byte> data, int root) override {
        clip::detail::check<distributed_error>(root >= 0 && root < size_, "broadcast: root ", root, " in a world of ", size_);
        launch(ncclBroadcast(data.data(), data.data(), data.size(), ncclUint8, root, comm_, stream_), "ncclBroadcast");
        complete("broadcast of ", data.size(), " bytes from rank ", root);
    }
    using communicator::broadcast;

    std::vector<std::int64_t> all_gather_value(std::int64_t mine) override {
        std::int64_t* device = static_cast<std::int64_t*>(scratch_);
        check_cuda(cudaMemcpyAsync(device + size_, &mine, sizeof mine, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
        launch(ncclAllGather(device + size_, device, 1, ncclInt64, comm_, stream_), "ncclAllGather");
        std::vector<std::int64_t> all(static_cast<std::size_t>(size_));
        check_cuda(cudaMemcpyAsync(all.data(), device, sizeof(std::int64_t) * all.size(), cudaMemcpyDeviceToHost, stream_),
                   "cudaMemcpyAsync");
        complete("all_gather of one value");
        return all;
    }

    void barrier() override {
        launch(ncclAllReduce(scratch_, scratch_, 1, ncclInt64, ncclSum, comm_, stream_), "ncclAllReduce");
        complete("barrier");
    }

private:
    static void check_nccl(ncclResult_t r, const char* what, int rank, int size) {
        if (r == ncclSuccess) return;
        throw distributed_error(clip::detail::message("distributed (NCCL, rank ", rank, " of ", size, "): ", what, " failed: ",
                                                      ncclGetErrorString(r)));
    }
    void check_cuda(cudaError_t e, const char* what) const {
        if (e == cudaSuccess) return;
        throw distributed_error(clip::detail::message("distributed (NCCL, rank ", rank_, " of ", size_, "): ", what, " failed: ",
                                                      cudaGetErrorString(e)));
    }
    void launch(ncclResult_t r, const char* what) {
        if (r == ncclSuccess || r == ncclInProgress) return;
        check_nccl(r, what, rank_, size_);
    }
    void start_all_reduce(std::span<float> data) {
        launch(ncclAllReduce(data.data(), data.data(), data.size(), ncclFloat, ncclSum, comm_, stream_), "ncclAllReduce");
    }
    static bool equal(std::span<const std::int64_t> counts) {
        for (const std::int64_t c : counts)
            if (c != counts[0]) return false;
        return true;
    }
    void check_mine(std::size_t n, std::span<const std::int64_t> counts, const char* what) const {
        clip::detail::check<distributed_error>(static_cast<std::int64_t>(n) == counts[static_cast<std::size_t>(rank_)], what,
                                               ": rank ", rank_, " has ", n, " elements, its count is ",
                                               counts[static_cast<std::size_t>(rank_)]);
    }

    /// The communicator's initialisation, polled until done, failed or out of time.
    void wait_for_communicator(const char* what) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_);
        for (;;) {
            ncclResult_t state = ncclSuccess;
            check_nccl(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", rank_, size_);
            if (state == ncclSuccess) return;
            if (state != ncclInProgress) check_nccl(state, what, rank_, size_);
            if (std::chrono::steady_clock::now() > deadline) timed_out(what);
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    }

    /// Polls the stream until the work queued on it is done, NCCL reports an error, or time runs out.
    template <class... What>
    void complete(const What&... what) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_);
        for (std::int64_t polls = 0;; ++polls) {
            const cudaError_t e = cudaStreamQuery(stream_);
            if (e == cudaSuccess) return;
            if (e != cudaErrorNotReady) check_cuda(e, "cudaStreamQuery");
            ncclResult_t state = ncclSuccess;
            check_nccl(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", rank_, size_);
            if (state != ncclSuccess && state != ncclInProgress) {
                aborted_ = true;
                check_nccl(state, "a collective", rank_, size_);
            }
            if (polls > 1000) {
                if (std::chrono::steady_clock::now() > deadline) timed_out(clip::detail::message(what...).c_str());
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            }
        }
    }

    [[noreturn]] void timed_out(const char* what) {
        aborted_ = true;
        throw distributed_error(clip::detail::message("distributed (NCCL, rank ", rank_, " of ", size_, "): ", what,
                                                      " did not complete within ", timeout_,
                                                      " s: another rank has stopped, failed or is stuck"));
    }

    ncclComm_t comm_ = nullptr;
    cudaStream_t stream_ = nullptr;
    void* scratch_ = nullptr; // size + 1 int64 on the device: all_gather_value, barrier
    int rank_ = 0, size_ = 1, device_ = 0;
    double timeout_;
    bool aborted_ = false;
};

} // namespace clip::dist
