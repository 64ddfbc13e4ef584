// Tests for clip/train/buffers.hpp: buffers keep their memory while the shape stays, and column
// sums match double sums and do not depend on the thread count.
#include "gradient_check.hpp"

#include "clip/train/buffers.hpp"

namespace train_buffers_test {

using clip::tensor;

TEST_CASE("reuse keeps a buffer's memory while it is large enough") {
    clip::detail::buffer buffer;
    const void* first = clip::detail::reuse(buffer, {3, 4}).data_ptr();
    CHECK(buffer.shape() == clip::shape{3, 4});
    const std::int64_t allocations = clip::detail::allocation_counter().load();
    CHECK(clip::detail::reuse(buffer, {3, 4}).data_ptr() == first);
    CHECK(clip::detail::reuse(buffer, {2, 5}).data_ptr() == first); // smaller: a view of the same memory
    CHECK(buffer.shape() == clip::shape{2, 5});
    CHECK(buffer.is_contiguous());
    CHECK(clip::detail::reuse(buffer, {12}).data_ptr() == first);
    CHECK(clip::detail::allocation_counter().load() == allocations);
    CHECK(clip::detail::reuse(buffer, {13}).data_ptr() != first); // larger: new memory
    CHECK(buffer.capacity == 13);
    CHECK(clip::detail::reuse(buffer, {2, 2}, clip::dtype::i64).dtype() == clip::dtype::i64);
}

TEST_CASE("add_column_sums adds each column's sum, in row order") {
    for (const std::int64_t cols : {1, 7, 32, 33, 100}) {
        CAPTURE(cols);
        const std::int64_t rows = 57, stride = cols + 3;
        const tensor x = clip::rand_normal({rows, stride}, static_cast<std::uint64_t>(cols));
        const std::vector<float> v = x.to_vector<float>();
        std::vector<float> sums(static_cast<std::size_t>(cols), 1.0f);
        clip::detail::add_column_sums(sums.data(), x.data<float>(), rows, cols, stride);
        for (std::int64_t c = 0; c < cols; ++c) {
            double expected = 1.0;
            for (std::int64_t r = 0; r < rows; ++r) expected += v[static_cast<std::size_t>(r * stride + c)];
            CHECK(sums[static_cast<std::size_t>(c)] == doctest::Approx(expected).epsilon(1e-5));
        }
        const int saved = clip::num_threads();
        clip::set_num_threads(1);
        std::vector<float> serial(static_cast<std::size_t>(cols), 1.0f);
        clip::detail::add_column_sums(serial.data(), x.data<float>(), rows, cols, stride);
        clip::set_num_threads(saved);
        CHECK(serial == sums);
    }
}

} // namespace train_buffers_test
