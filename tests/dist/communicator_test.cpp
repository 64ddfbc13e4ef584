// Tests for clip/dist/communicator.hpp and connect.hpp: the world of one (identity collectives,
// counts checked), connect() choosing it outside mpirun and refusing to run under mpirun in a
// build without MPI, and the collectives' contract on a world of threads (the same test world
// tests/train/distributed_test.cpp trains on).
#include "../support.hpp"
#include "thread_world.hpp"

#include <clip/dist/connect.hpp>

#include <cstdlib>
#include <thread>

namespace dist_communicator_test {

namespace dist = clip::dist;

TEST_CASE("single_process: every collective is the identity") {
    dist::single_process one;
    CHECK(one.rank() == 0);
    CHECK(one.size() == 1);
    CHECK(one.backend() == "single");
    std::vector<float> data = {1, 2, 3}, all(3);
    one.all_reduce_sum(data);
    one.all_reduce_mean(data);
    one.all_reduce_sum_async(data)->wait();
    CHECK(data == std::vector<float>{1, 2, 3});
    const std::vector<std::int64_t> counts = {3};
    one.all_gather(data, all, counts);
    CHECK(all == data);
    std::vector<float> mine(3);
    one.reduce_scatter_sum(all, mine, counts);
    CHECK(mine == data);
    one.broadcast(std::span<float>(data), 0);
    CHECK(one.all_gather_value(7) == std::vector<std::int64_t>{7});
    one.barrier();
    const std::vector<std::int64_t> wrong = {2};
    CHECK_THROWS_AS(one.all_gather(data, all, wrong), clip::distributed_error);
    CHECK_THROWS_AS(one.broadcast(std::span<float>(data), 1), clip::distributed_error);
}

TEST_CASE("connect(): one process outside a launcher; under mpirun without MPI, refused") {
#if !CLIP_WITH_MPI
    ::unsetenv("OMPI_COMM_WORLD_SIZE");
    ::unsetenv("PMI_SIZE");
    ::unsetenv("PMIX_RANK");
    ::unsetenv("MPI_LOCALNRANKS");
    CHECK(dist::connect()->backend() == "single");
    ::setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    CHECK(clip::test::error_message([] { (void)dist::connect(); }).find("built without MPI") != std::string::npos);
    ::unsetenv("OMPI_COMM_WORLD_SIZE");
#endif
}

TEST_CASE("a world of three threads: sums, gathers with uneven counts, reduce-scatter, broadcast") {
    clip::test::thread_world world(3);
    std::vector<std::thread> threads;
    std::vector<int> failures(3, 0);
    for (int r = 0; r < 3; ++r)
        threads.emplace_back([&, r] {
            dist::communicator& me = world.rank(r);
            int& bad = failures[static_cast<std::size_t>(r)];
            std::vector<float> x = {static_cast<float>(r), 1.0f};
            me.all_reduce_sum(x);
            bad += x != std::vector<float>{3.0f, 3.0f};
            const std::vector<std::int64_t> counts = {1, 2, 3};
            std::vector<float> mine(static_cast<std::size_t>(r + 1), static_cast<float>(10 * r)), all(6);
            me.all_gather(mine, all, counts);
            bad += all != std::vector<float>{0, 10, 10, 20, 20, 20};
            std::vector<float> part(static_cast<std::size_t>(r + 1));
            me.reduce_scatter_sum(all, part, counts); // three copies of all
            bad += part != std::vector<float>(static_cast<std::size_t>(r + 1), 30.0f * static_cast<float>(r));
            std::vector<float> b = {static_cast<float>(r)};
            me.broadcast(std::span<float>(b), 2);
            bad += b[0] != 2.0f;
            bad += me.all_gather_value(r * r) != std::vector<std::int64_t>{0, 1, 4};
        });
    for (std::thread& t : threads) t.join();
    CHECK(failures == std::vector<int>{0, 0, 0});
}

} // namespace dist_communicator_test
