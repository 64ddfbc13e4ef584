// Tests for clip/core/shape.hpp: shapes, strides and NumPy broadcasting.
#include "../support.hpp"

namespace core_shape_test {

using clip::shape;

TEST_CASE("shape basics") {
    const shape s{2, 3, 4};
    CHECK(s.size() == 3);
    CHECK(s.numel() == 24);
    CHECK(shape{}.numel() == 1);
    CHECK(shape{3, 0}.numel() == 0);
    CHECK(clip::test::str(s) == "[2, 3, 4]");
    CHECK(clip::detail::contiguous_strides(s) == shape{12, 4, 1});
    CHECK_THROWS_AS(shape({1, 2, 3, 4, 5, 6, 7, 8, 9}), clip::shape_error);
    CHECK_THROWS_AS(shape({2, -1}), clip::shape_error);
}

TEST_CASE("broadcasting follows NumPy") {
    using clip::detail::broadcast_shapes;
    CHECK(broadcast_shapes({2, 1, 4}, {3, 1}) == shape{2, 3, 4});
    CHECK(broadcast_shapes({}, {5}) == shape{5});
    CHECK(broadcast_shapes({0, 1}, {1, 3}) == shape{0, 3});
    const std::string message = clip::test::error_message([] { broadcast_shapes({2, 3}, {4}, "add"); });
    CHECK(clip::test::contains(message, "[2, 3]"));
    CHECK(clip::test::contains(message, "[4]"));
    CHECK(clip::test::contains(message, "add"));
}

TEST_CASE("axis normalisation") {
    CHECK(clip::detail::normalize_axis(-1, 3, "op") == 2);
    CHECK(clip::detail::normalize_axis(0, 3, "op") == 0);
    CHECK_THROWS_AS(clip::detail::normalize_axis(3, 3, "op"), clip::index_error);
    CHECK_THROWS_AS(clip::detail::normalize_axis(-4, 3, "op"), clip::index_error);
}

} // namespace core_shape_test
