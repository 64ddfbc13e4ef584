// Tests for clip/dist/nccl.hpp on the GPUs present (a world of one rank per GPU, one thread per
// rank): all-reduce, all-gather with even and uneven counts, reduce-scatter, broadcast and the
// value gather. Without a GPU the test reports that it skipped; CI compiles it everywhere.
#include "../support.hpp"

#include <clip/dist/nccl.hpp>

#include <thread>

namespace dist_nccl_test {

namespace dist = clip::dist;

namespace {

int device_count() {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

/// A device copy of `host`, and back.
float* to_device(const std::vector<float>& host) {
    float* p = nullptr;
    REQUIRE(cudaMalloc(&p, std::max<std::size_t>(1, host.size()) * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemcpy(p, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    return p;
}
std::vector<float> to_host(const float* p, std::size_t n) {
    std::vector<float> out(n);
    if (cudaMemcpy(out.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess) out.assign(n, -1.0f);
    return out;
}

} // namespace

TEST_CASE("NCCL collectives over every GPU present") {
    const int W = device_count();
    if (W == 0) {
        MESSAGE("skipped: no CUDA device");
        return;
    }
    const ncclUniqueId id = dist::nccl_communicator::new_id();
    std::vector<int> failures(static_cast<std::size_t>(W), 0);
    std::vector<std::string> errors(static_cast<std::size_t>(W));
    std::vector<std::thread> threads;
    for (int r = 0; r < W; ++r)
        threads.emplace_back([&, r] {
            int& bad = failures[static_cast<std::size_t>(r)];
            try {
                dist::nccl_communicator me(r, W, id, r, 60.0);
                cudaSetDevice(r);
                float* x = to_device({static_cast<float>(r), 1.0f});
                me.all_reduce_sum({x, 2});
                const float total = static_cast<float>(W * (W - 1) / 2);
                bad += to_host(x, 2) != std::vector<float>{total, static_cast<float>(W)};
                me.all_reduce_sum_async({x, 2})->wait();
                bad += to_host(x, 2) != std::vector<float>{total * W, static_cast<float>(W * W)};
                // Uneven counts: rank r gives r + 1 values of 10 r.
                std::vector<std::int64_t> counts;
                std::vector<float> expected;
                for (int q = 0; q < W; ++q) {
                    counts.push_back(q + 1);
                    expected.insert(expected.end(), static_cast<std::size_t>(q + 1), 10.0f * static_cast<float>(q));
                }
                float* mine = to_device(std::vector<float>(static_cast<std::size_t>(r + 1), 10.0f * static_cast<float>(r)));
                float* all = to_device(std::vector<float>(expected.size(), 0.0f));
                me.all_gather({mine, static_cast<std::size_t>(r + 1)}, {all, expected.size()}, counts);
                bad += to_host(all, expected.size()) != expected;
                me.reduce_scatter_sum({all, expected.size()}, {mine, static_cast<std::size_t>(r + 1)}, counts);
                bad += to_host(mine, static_cast<std::size_t>(r + 1)) !=
                       std::vector<float>(static_cast<std::size_t>(r + 1), 10.0f * static_cast<float>(r) * static_cast<float>(W));
                // Even counts take NCCL's own all-gather.
                const std::vector<std::int64_t> even(static_cast<std::size_t>(W), 1);
                float* one = to_device({static_cast<float>(r)});
                float* each = to_device(std::vector<float>(static_cast<std::size_t>(W), 0.0f));
                me.all_gather({one, 1}, {each, static_cast<std::size_t>(W)}, even);
                std::vector<float> ranks(static_cast<std::size_t>(W));
                for (int q = 0; q < W; ++q) ranks[static_cast<std::size_t>(q)] = static_cast<float>(q);
                bad += to_host(each, static_cast<std::size_t>(W)) != ranks;
                me.broadcast(std::span<float>(one, 1), W - 1);
                bad += to_host(one, 1)[0] != static_cast<float>(W - 1);
                const std::vector<std::int64_t> values = me.all_gather_value(r * r);
                for (int q = 0; q < W; ++q) bad += values[static_cast<std::size_t>(q)] != q * q;
                me.barrier();
                for (float* p : {x, mine, all, one, each}) cudaFree(p);
            } catch (const std::exception& e) {
                errors[static_cast<std::size_t>(r)] = e.what();
                ++bad;
            }
        });
    for (std::thread& t : threads) t.join();
    for (const std::string& e : errors) CHECK_MESSAGE(e.empty(), e);
    CHECK(failures == std::vector<int>(static_cast<std::size_t>(W), 0));
}

} // namespace dist_nccl_test
