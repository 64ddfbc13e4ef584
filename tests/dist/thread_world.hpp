// tests/dist/thread_world.hpp: a world of W ranks as W threads of one process, for testing code
// written against clip::dist::communicator without MPI (and under the sanitizers). Every
// collective is a rendezvous: each rank publishes its buffer, all wait, each reads what it needs,
// all wait again before anyone reuses a buffer.
//
//   clip::test::thread_world world(2);
//   std::thread a([&] { use(world.rank(0)); }), b([&] { use(world.rank(1)); });
#pragma once

#include <barrier>
#include <cstring>
#include <memory>
#include <vector>

#include "clip/dist/communicator.hpp"

namespace clip::test {

class thread_world {
public:
    explicit thread_world(int size) : size_(size), sync_(size), pointers_(static_cast<std::size_t>(size)),
                                      values_(static_cast<std::size_t>(size)) {
        for (int r = 0; r < size; ++r) ranks_.push_back(std::make_unique<member>(*this, r));
    }
    dist::communicator& rank(int r) { return *ranks_[static_cast<std::size_t>(r)]; }

private:
    class member final : public dist::communicator {
    public:
        member(thread_world& w, int rank) : w_(w), rank_(rank) {}
        int rank() const noexcept override { return rank_; }
        int size() const noexcept override { return w_.size_; }
        std::string_view backend() const noexcept override { return "threads"; }

        void all_reduce_sum(std::span<float> data) override {
            publish(data.data());
            std::vector<float> sum(data.size(), 0.0f);
            for (int r = 0; r < w_.size_; ++r) {
                const auto* in = static_cast<const float*>(w_.pointers_[static_cast<std::size_t>(r)]);
                for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += in[i];
            }
            w_.sync_.arrive_and_wait(); // everyone has read
            std::memcpy(data.data(), sum.data(), data.size_bytes());
        }
        std::unique_ptr<dist::pending> all_reduce_sum_async(std::span<float> data) override {
            all_reduce_sum(data);
            struct done final : dist::pending {
                void wait() override {}
            };
            return std::make_unique<done>();
        }
        void all_gather(std::span<const float> mine, std::span<float> all, std::span<const std::int64_t> counts) override {
            publish(mine.data());
            std::size_t offset = 0;
            for (int r = 0; r < w_.size_; ++r) {
                const auto n = static_cast<std::size_t>(counts[static_cast<std::size_t>(r)]);
                std::memcpy(all.data() + offset, w_.pointers_[static_cast<std::size_t>(r)], n * sizeof(float));
                offset += n;
            }
            w_.sync_.arrive_and_wait();
        }
        void reduce_scatter_sum(std::span<const float> all, std::span<float> mine, std::span<const std::int64_t> counts) override {
            publish(all.data());
            std::size_t offset = 0;
            for (int r = 0; r < rank_; ++r) offset += static_cast<std::size_t>(counts[static_cast<std::size_t>(r)]);
            std::vector<float> sum(mine.size(), 0.0f);
            for (int r = 0; r < w_.size_; ++r) {
                const auto* in = static_cast<const float*>(w_.pointers_[static_cast<std::size_t>(r)]) + offset;
                for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += in[i];
            }
            w_.sync_.arrive_and_wait();
            std::memcpy(mine.data(), sum.data(), mine.size_bytes());
        }
        void broadcast(std::span<std::byte> data, int root) override {
            publish(data.data());
            if (rank_ != root) std::memcpy(data.data(), w_.pointers_[static_cast<std::size_t>(root)], data.size());
            w_.sync_.arrive_and_wait();
        }
        using dist::communicator::broadcast;
        std::vector<std::int64_t> all_gather_value(std::int64_t mine) override {
            w_.values_[static_cast<std::size_t>(rank_)] = mine;
            w_.sync_.arrive_and_wait();
            std::vector<std::int64_t> all = w_.values_;
            w_.sync_.arrive_and_wait();
            return all;
        }
        void barrier() override { w_.sync_.arrive_and_wait(); }

    private:
        void publish(const void* p) {
            w_.pointers_[static_cast<std::size_t>(rank_)] = p;
            w_.sync_.arrive_and_wait();
        }
        thread_world& w_;
        int rank_;
    };

    int size_;
    std::barrier<> sync_;
    std::vector<const void*> pointers_;
    std::vector<std::int64_t> values_;
    std::vector<std::unique_ptr<member>> ranks_;
};

} // namespace clip::test
