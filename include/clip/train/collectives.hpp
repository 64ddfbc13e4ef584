// clip/train/collectives.hpp: a communicator's collectives on the tensors of a training step,
// on whichever device they live.
//
// A communicator works on one kind of memory (communicator::works_on): the host's for MPI and
// threads, its own GPU's for NCCL. When it reaches the tensors' memory a collective runs on them
// directly; on a GPU only after the work queued on the device has finished, since NCCL runs on
// its own stream. A GPU's tensors with a host communicator go through host copies kept from one
// step to the next: a model on a GPU trains over MPI (or several threads of one process) at the
// cost of moving its features and gradients through host memory. Tensors are contiguous; the
// float collectives take f32.
#pragma once

#include <memory>
#include <span>

#include "clip/dist/communicator.hpp"
#include "clip/train/buffers.hpp"

namespace clip::detail {

class tensor_collectives {
public:
    explicit tensor_collectives(dist::communicator& world) : world_(&world) {}

    std::vector<std::int64_t> all_gather_value(std::int64_t mine) { return world_->all_gather_value(mine); }

    /// all <- every rank's `mine` in rank order (dist::communicator::all_gather).
    void all_gather(const tensor& mine, const tensor& all, std::span<const std::int64_t> counts) {
        if (direct(all, mine)) return world_->all_gather(floats(mine), floats(all), counts);
        const tensor& m = staged(host_[0], mine);
        const tensor& a = reuse(host_[1], all.shape());
        world_->all_gather(floats(m), floats(a), counts);
        copy_between(all, a);
    }

    /// mine <- this rank's slice of the sum over ranks of `all` (dist::communicator::reduce_scatter_sum).
    void reduce_scatter_sum(const tensor& all, const tensor& mine, std::span<const std::int64_t> counts) {
        if (direct(all, mine)) return world_->reduce_scatter_sum(floats(all), floats(mine), counts);
        const tensor& a = staged(host_[0], all);
        const tensor& m = reuse(host_[1], mine.shape());
        world_->reduce_scatter_sum(floats(a), floats(m), counts);
        copy_between(mine, m);
    }

    /// data <- the sum over ranks of data.
    void all_reduce_sum(const tensor& data) {
        if (direct(data, data)) return world_->all_reduce_sum(floats(data));
        const tensor& h = staged(host_[0], data);
        world_->all_reduce_sum(floats(h));
        copy_between(data, h);
    }

    /// Starts all_reduce_sum(data); data must stay untouched until wait(). Through the host, its
    /// copy is a buffer of its own, so other collectives may run before the wait.
    std::unique_ptr<dist::pending> all_reduce_sum_async(const tensor& data) {
        if (direct(data, data)) return world_->all_reduce_sum_async(floats(data));
        struct staged_reduce final : dist::pending {
            std::unique_ptr<dist::pending> reduce;
            tensor device_data, host_data;
            bool waited = false;
            void wait() override {
                if (waited) return;
                waited = true;
                reduce->wait();
                copy_between(device_data, host_data);
            }
        };
        auto p = std::make_unique<staged_reduce>();
        p->device_data = data;
        p->host_data = staged(async_host_, data);
        p->reduce = world_->all_reduce_sum_async(floats(p->host_data));
        return p;
    }

    /// data <- root's data, on every rank (any dtype).
    void broadcast(const tensor& data, int root) {
        if (direct(data, data)) return world_->broadcast(bytes(data), root);
        const tensor& h = staged(host_[0], data);
        world_->broadcast(bytes(h), root);
        copy_between(data, h);
    }

private:
    /// Whether the collective runs on the tensors themselves; then their device's queued work
    /// has finished. Otherwise they must be a GPU's and the communicator work on the host.
    bool direct(const tensor& a, const tensor& b) const {
        check<device_error>(a.device() == b.device(), "distributed training: a collective between ", a.device(), " and ",
                            b.device());
        check<shape_error>(a.is_contiguous() && b.is_contiguous(), "distributed training: collectives take contiguous tensors");
        if (world_->works_on(a.device())) {
            if (on_gpu(a)) synchronize(a);
            return true;
        }
        check<device_error>(on_gpu(a) && world_->works_on(device::cpu()), "distributed training: the ", world_->backend(),
                            " communicator reaches neither ", a.device(), " nor host memory");
        return false;
    }

    static void synchronize([[maybe_unused]] const tensor& t) {
#if defined(CLIP_WITH_CUDA)
        cuda::synchronize(t.device().index);
#endif
    }

    /// A host copy of `t` in `b`.
    static const tensor& staged(buffer& b, const tensor& t) {
        const tensor& h = reuse(b, t.shape(), t.dtype());
        copy_between(h, t);
        return h;
    }

    static std::span<float> floats(const tensor& t) {
        check<dtype_error>(t.dtype() == dtype::f32, "distributed training: collectives on ", t.dtype(), " tensors; f32 expected");
        return {t.data<float>(), static_cast<std::size_t>(t.numel())};
    }
    static std::span<std::byte> bytes(const tensor& t) { return {static_cast<std::byte*>(t.data_ptr()), t.nbytes()}; }

    dist::communicator* world_;
    buffer host_[2];   // host copies of the synchronous collectives' operands
    buffer async_host_; // the host copy of all_reduce_sum_async's
};

} // namespace clip::detail
