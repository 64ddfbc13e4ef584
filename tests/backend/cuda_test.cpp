// Tests for clip/backend/cuda/memory.hpp: device memory round trips when a GPU is present;
// without CUDA or without a device the cases say so and check the errors instead.
#include "../support.hpp"

TEST_CASE("cuda tensors round-trip through device memory") {
#if defined(CLIP_WITH_CUDA)
    if (clip::detail::cuda::device_count() == 0) {
        MESSAGE("skipped: clip is built with CUDA but no CUDA device is present");
        const std::string message = clip::test::error_message([] { clip::tensor::empty({4}, clip::dtype::f32, clip::device::cuda()); });
        CHECK(clip::test::contains(message, "cuda:0 does not exist"));
        return;
    }
    const clip::tensor host = clip::rand_normal({3, 5}, 1);
    const clip::tensor device = host.t().to(clip::device::cuda());
    CHECK(device.device() == clip::device::cuda());
    CHECK(device.shape() == clip::shape{5, 3});
    CHECK(device.to(clip::device::cpu()).to_vector<float>() == host.t().contiguous().to_vector<float>());
    CHECK_THROWS_AS(clip::eval(device + 1.0f), clip::device_error); // element-wise GPU kernels come with the CUDA backend
#else
    MESSAGE("skipped: clip is built without CUDA");
    CHECK_THROWS_AS(clip::tensor::zeros({2}).to(clip::device::cuda()), clip::device_error);
#endif
}
