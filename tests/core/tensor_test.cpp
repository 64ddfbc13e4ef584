// Tests for clip/core/tensor.hpp: creation, views without copies, copies only when needed.
#include "../support.hpp"

namespace core_tensor_test {

using clip::shape;
using clip::tensor;

namespace {
tensor iota(const shape& s) { return clip::test::generate(s, [](std::int64_t i) { return static_cast<float>(i); }); }
} // namespace

TEST_CASE("creation") {
    const tensor z = tensor::zeros({2, 3});
    CHECK(z.shape() == shape{2, 3});
    CHECK(z.dtype() == clip::dtype::f32);
    CHECK(z.device() == clip::device::cpu());
    CHECK(z.is_contiguous());
    CHECK(z.to_vector<float>() == std::vector<float>(6, 0.0f));
    CHECK(tensor::full({2}, 7, clip::dtype::i64).to_vector<std::int64_t>() == std::vector<std::int64_t>{7, 7});
    CHECK(tensor::ones({3}, clip::dtype::bf16).to_vector<float>() == std::vector<float>{1, 1, 1});
    CHECK(reinterpret_cast<std::uintptr_t>(tensor::empty({5}).data_ptr()) % 64 == 0);
    CHECK(tensor::from<float>({5.5f}).item<float>() == 5.5f);
    CHECK(tensor::from<std::int64_t>({9}).item<float>() == 9.0f);
    CHECK_THROWS_AS(tensor::from<float>({1, 2}).item<float>(), clip::shape_error);
    CHECK_THROWS_AS(tensor::from<float>({1, 2, 3}, shape{2, 2}), clip::shape_error);
    CHECK(tensor::zeros({}).numel() == 1);
    CHECK(tensor::zeros({0, 4}).numel() == 0);
    CHECK_FALSE(tensor().defined());
}

TEST_CASE("typed access checks the dtype") {
    const tensor t = tensor::zeros({2}, clip::dtype::i32);
    CHECK_NOTHROW(t.data<std::int32_t>());
    const std::string message = clip::test::error_message([&] { (void)t.data<float>(); });
    CHECK(clip::test::contains(message, "i32"));
    CHECK(clip::test::contains(message, "f32"));
}

TEST_CASE("views share memory and copy nothing") {
    const tensor t = iota({2, 3, 4});
    const tensor tr = t.transpose(0, 2);
    CHECK(tr.shape() == shape{4, 3, 2});
    CHECK(tr.storage() == t.storage());
    CHECK_FALSE(tr.is_contiguous());
    CHECK(tr.contiguous().storage() != t.storage());
    CHECK(t.contiguous().storage() == t.storage()); // already row-major: no copy
    CHECK(tr.contiguous().to_vector<float>()[1] == 12.0f); // element [0, 0, 1] is t[1, 0, 0]

    const tensor p = t.permute({1, 2, 0});
    CHECK(p.shape() == shape{3, 4, 2});
    CHECK(p.contiguous().to_vector<float>()[1] == 12.0f);

    const tensor s = t.slice(2, 1, 4, 2); // columns 1 and 3
    CHECK(s.shape() == shape{2, 3, 2});
    CHECK(s.to_vector<float>() == std::vector<float>{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23});
    CHECK(t.slice(0, -1, 100).shape() == shape{1, 3, 4}); // Python-style clamping
    CHECK(t.slice(1, 2, 1).shape() == shape{2, 0, 4});
    CHECK(t.select(1, -1).to_vector<float>() == std::vector<float>{8, 9, 10, 11, 20, 21, 22, 23});

    const tensor u = t.unsqueeze(1);
    CHECK(u.shape() == shape{2, 1, 3, 4});
    CHECK(u.squeeze(1).shape() == t.shape());
    CHECK(t.unsqueeze(-1).shape() == shape{2, 3, 4, 1});
    CHECK(t.select(0, 0).expand({5, 3, 4}).strides() == shape{0, 4, 1});
}

TEST_CASE("view and reshape copy only when the strides cannot express the shape") {
    const tensor t = iota({2, 3, 4});
    const tensor v = t.view({6, -1});
    CHECK(v.shape() == shape{6, 4});
    CHECK(v.storage() == t.storage());
    // Splitting and merging inside a contiguous run works on a non-contiguous tensor too.
    const tensor tr = t.transpose(0, 1); // [3, 2, 4], the last axis still contiguous
    CHECK(tr.view({3, 2, 2, 2}).storage() == t.storage());
    CHECK_THROWS_AS(tr.view({6, 4}), clip::shape_error);
    const tensor r = tr.reshape({6, 4});
    CHECK(r.storage() != t.storage());
    CHECK(r.to_vector<float>() == tr.contiguous().to_vector<float>());
    CHECK_THROWS_AS(t.view({5, -1}), clip::shape_error);
    CHECK_THROWS_AS(t.view({-1, -1}), clip::shape_error);
}

TEST_CASE("misuse throws with a clear message") {
    const tensor t = iota({2, 3});
    CHECK(clip::test::contains(clip::test::error_message([&] { t.select(1, 3); }), "out of range"));
    CHECK_THROWS_AS(t.select(1, 3), clip::index_error);
    CHECK_THROWS_AS(t.slice(2, 0, 1), clip::index_error);
    CHECK_THROWS_AS(t.slice(0, 0, 1, 0), clip::index_error);
    CHECK_THROWS_AS(t.squeeze(0), clip::shape_error);
    CHECK_THROWS_AS(t.permute({0, 0}), clip::index_error);
    CHECK_THROWS_AS(t.expand({4, 3, 2}), clip::shape_error);
    const std::string message = clip::test::error_message([&] { t.view({4, 2}); });
    CHECK(clip::test::contains(message, "[2, 3]"));
    CHECK(clip::test::contains(message, "[4, 2]"));
}

TEST_CASE("dtype conversion and copies") {
    const tensor t = clip::test::generate({2, 3}, [](std::int64_t i) { return static_cast<float>(i) - 2.5f; });
    CHECK(t.to(clip::dtype::f32).storage() == t.storage());
    CHECK(t.to(clip::dtype::f16).to_vector<float>() == t.to_vector<float>());
    CHECK(t.to(clip::dtype::bf16).to(clip::dtype::f32).to_vector<float>() == t.to_vector<float>());
    CHECK(t.to(clip::dtype::i32).to_vector<std::int32_t>() == std::vector<std::int32_t>{-2, -1, 0, 0, 1, 2});
    const tensor clone = t.clone();
    CHECK(clone.storage() != t.storage());
    tensor dst = tensor::zeros({4, 2, 3}, clip::dtype::f16);
    dst.copy_from(t); // broadcast along the new leading axis, convert to f16
    CHECK(dst.select(0, 3).to_vector<float>() == t.to_vector<float>());
    CHECK_THROWS_AS(dst.copy_from(tensor::zeros({3, 2})), clip::shape_error);
}

TEST_CASE("from_blob views caller memory and keeps its owner alive") {
    auto owner = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4, 5, 6});
    std::weak_ptr<std::vector<float>> watch = owner;
    tensor view = tensor::from_blob(owner->data(), {3, 2}, clip::dtype::f32, owner);
    owner.reset();
    CHECK_FALSE(watch.expired());
    CHECK(view.t().contiguous().to_vector<float>() == std::vector<float>{1, 3, 5, 2, 4, 6});
    view = tensor();
    CHECK(watch.expired());
    std::vector<float> plain{1, 2};
    CHECK(tensor::from_blob(plain.data(), {2}, clip::dtype::f32).to_vector<float>() == plain);
}

TEST_CASE("device is carried and checked") {
    const tensor t = tensor::zeros({2});
    CHECK(t.device().is_cpu());
    CHECK(clip::test::str(clip::device::cuda(1)) == "cuda:1");
    CHECK_THROWS_AS(tensor::empty({2}, clip::dtype::f32, clip::device::cuda(7)), clip::device_error);
}

TEST_CASE("printing") {
    const tensor t = tensor::from<float>({1, 2.5f, -3, 4}, shape{2, 2});
    CHECK(clip::test::str(t) == "tensor(f32 [2, 2], cpu)\n[[1, 2.5],\n [-3, 4]]");
    CHECK(clip::test::str(tensor::full({}, 3, clip::dtype::i64)) == "tensor(i64 [], cpu)\n3");
    const std::string big = clip::test::str(iota({100}));
    CHECK(clip::test::contains(big, "[0, 1, 2, ..., 97, 98, 99]"));
    CHECK(clip::test::str(tensor()) == "tensor(undefined)");
}

} // namespace core_tensor_test
