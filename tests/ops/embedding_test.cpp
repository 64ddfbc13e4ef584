// Tests for clip/ops/embedding.hpp: gathering rows, with ids checked against the table.
#include "../support.hpp"

namespace ops_embedding_test {

using clip::shape;
using clip::tensor;

TEST_CASE("embedding gathers rows for any id shape and dtype") {
    const tensor table = clip::test::generate({5, 3}, [](std::int64_t i) { return static_cast<float>(i); });
    const tensor ids = tensor::from<std::int64_t>({4, 0, 4, 2}, shape{2, 2});
    const tensor out = clip::embedding(table, ids);
    CHECK(out.shape() == shape{2, 2, 3});
    CHECK(out.to_vector<float>() == std::vector<float>{12, 13, 14, 0, 1, 2, 12, 13, 14, 6, 7, 8});
    CHECK(clip::embedding(table, tensor::from<std::int32_t>({1})).to_vector<float>() == std::vector<float>{3, 4, 5});
    CHECK(clip::embedding(table.to(clip::dtype::bf16), tensor::from<std::int32_t>({1})).dtype() == clip::dtype::bf16);
    CHECK(clip::embedding(table, tensor::zeros({0}, clip::dtype::i64)).shape() == shape{0, 3});
}

TEST_CASE("embedding rejects bad ids with their position") {
    const tensor table = tensor::zeros({5, 3});
    const std::string message = clip::test::error_message([&] { clip::embedding(table, tensor::from<std::int64_t>({1, 5})); });
    CHECK(clip::test::contains(message, "id 5"));
    CHECK(clip::test::contains(message, "position 1"));
    CHECK_THROWS_AS(clip::embedding(table, tensor::from<std::int64_t>({-1})), clip::index_error);
    CHECK_THROWS_AS(clip::embedding(table, tensor::from<float>({1})), clip::dtype_error);
    CHECK_THROWS_AS(clip::embedding(tensor::zeros({5}), tensor::from<std::int64_t>({1})), clip::shape_error);
}

} // namespace ops_embedding_test
