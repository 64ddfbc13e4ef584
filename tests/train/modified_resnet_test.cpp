// Tests for clip/train/modified_resnet.hpp: in eval mode the trainable tower reproduces the
// PyTorch fixture (../shared/reference/resnet*.safetensors: features and every intermediate) and
// the inference model; in training mode every BatchNorm updates its running statistics as
// PyTorch does, and gradients through the whole tower (stem, Bottlenecks with and without
// downsampling, attention pool) match finite differences in both modes; the device-generic
// formulation of the layers (what a GPU runs) gives the CPU kernels' results.
#include "gradient_check.hpp"

#include "clip/train/modified_resnet.hpp"

namespace train_modified_resnet_test {

using clip::shape;
using clip::tensor;
using clip::test::check_gradient;
using clip::test::weighted_sum;
namespace train = clip::train;

namespace {

/// A [N, H, W, C] activation as the fixture's [N, C, H, W].
tensor as_nchw(const tensor& nhwc) { return nhwc.permute({0, 3, 1, 2}); }

/// The fixture's geometry (image 64, one block per stage, width 8: attention pool width 256 with
/// 4 heads over 2×2 + 1 tokens), embedding 16, random values with BatchNorm gains in [0.5, 1.5]
/// (bn3 starts at 0 otherwise, which would hide the residual branches) and biases N(0, 0.2²):
/// about half of the ReLUs are off. With `smooth`, gains in [0.3, 0.6] and biases N(2, 0.2²) keep
/// the normalised values above 0 (ReLUs on, far from their kink), so that difference quotients
/// measure derivatives; the half-off case has so many units near 0 that a step moving a whole
/// feature map crosses kinks (errors of a few percent, shrinking with the step, down to the
/// f32 noise floor).
train::parameter_store small_store(bool smooth = false) {
    const clip::clip_config c = clip::detail::make_resnet(16, 64, {1, 1, 1, 1}, 8, 64, 1);
    train::parameter_store store = train::parameter_store::random(c, 7);
    std::uint64_t seed = 300;
    for (const train::parameter& p : store.parameters()) {
        const bool norm = p.name.find("bn") != std::string::npos || p.name.find("downsample.1") != std::string::npos;
        if (norm && p.name.ends_with(".weight"))
            p.value.copy_from(clip::rand_uniform(p.value.shape(), seed++, smooth ? 0.3f : 0.5f, smooth ? 0.6f : 1.5f));
        else if (p.name.ends_with(".bias"))
            p.value.copy_from(clip::rand_normal(p.value.shape(), seed++, norm && smooth ? 2.0f : 0.0f, 0.2f));
    }
    for (const train::model_buffer& b : store.buffers()) {
        if (b.name.ends_with("running_mean")) b.value.copy_from(clip::rand_normal(b.value.shape(), seed++, 0.0f, 0.3f));
        if (b.name.ends_with("running_var")) b.value.copy_from(clip::rand_uniform(b.value.shape(), seed++, 0.5f, 2.0f));
    }
    return store;
}

/// The step for a parameter's differences: for a convolution kernel 3 % of its root mean
/// square, else 1e-2. A training-mode BatchNorm makes the output invariant to the scale of the
/// convolution before it, so the curvature in a kernel entry grows as the kernel shrinks; a step
/// relative to the kernel keeps the truncation error in proportion.
float relative_step(const tensor& value) {
    if (value.ndim() != 4) return 1e-2f;
    double sum = 0.0;
    for (float v : value.to_vector<float>()) sum += static_cast<double>(v) * v;
    return static_cast<float>(3e-2 * std::sqrt(sum / static_cast<double>(value.numel())));
}

/// Runs the scope on one thread: hundreds of small forward passes are fastest without waking a
/// pool (and the kernels give the same results for any thread count).
struct single_thread {
    int saved = clip::num_threads();
    single_thread() { clip::set_num_threads(1); }
    ~single_thread() { clip::set_num_threads(saved); }
};

/// Checks the gradients of `names` through `tower` against central differences.
void check_tower(train::parameter_store& store, const train::modified_resnet& tower, const std::vector<std::string>& names,
                 double tolerance) {
    const single_thread scope;
    const tensor images = clip::rand_normal({3, 3, 64, 64}, 3);
    const tensor weights = clip::rand_normal({3, 16}, 4);
    train::modified_resnet::cache c;
    const auto objective = [&] { return weighted_sum(tower.forward(images, c), weights); };
    store.zero_grad();
    (void)objective();
    tower.backward(weights, c);
    for (const std::string& name : names) {
        const train::parameter& p = store.at(name);
        check_gradient(name, p.value, p.grad, objective, tolerance, relative_step(p.value), 4);
    }
}

/// Parameters of every kind and depth. In training mode a BatchNorm's bias is left out when a
/// convolution and another training-mode BatchNorm follow it with every ReLU on: that BatchNorm
/// subtracts any per-channel shift again, so the true gradient is zero up to border effects of
/// the padding and the check would compare rounding noise.
std::vector<std::string> tower_parameters(bool training) {
    std::vector<std::string> names{"visual.conv1.weight",
                                   "visual.bn1.weight",
                                   "visual.conv3.weight",
                                   "visual.layer1.0.conv1.weight",
                                   "visual.layer1.0.downsample.0.weight",
                                   "visual.layer1.0.downsample.1.weight",
                                   "visual.layer2.0.conv2.weight",
                                   "visual.layer2.0.bn3.weight",
                                   "visual.layer3.0.downsample.0.weight",
                                   "visual.layer4.0.conv3.weight",
                                   "visual.layer4.0.bn3.bias",
                                   "visual.layer4.0.downsample.1.bias",
                                   "visual.attnpool.positional_embedding",
                                   "visual.attnpool.q_proj.weight",
                                   "visual.attnpool.v_proj.bias",
                                   "visual.attnpool.c_proj.weight"};
    if (!training)
        for (const char* bias : {"visual.bn1.bias", "visual.bn3.bias", "visual.layer1.0.bn2.bias"}) names.push_back(bias);
    return names;
}

} // namespace

TEST_CASE("eval mode reproduces the PyTorch ResNet fixture: features and every intermediate") {
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    train::parameter_store store = train::parameter_store::load(*dir / "resnet.safetensors");
    const clip::safetensors io = clip::safetensors::open(*dir / "resnet_io.safetensors");
    train::modified_resnet tower = train::modified_resnet::bind(store);
    tower.training = false;
    train::modified_resnet::cache c;
    const tensor& features = tower.forward(io.get("image"), c);
    const auto compare = [&](const std::string& key, const tensor& actual) {
        const double error = clip::test::max_relative_error(actual, io.get(key));
        MESSAGE(key << ": max |error| / max(1, |ref|) = " << error);
        CHECK(error <= 1e-4);
    };
    compare("vis.stem.relu1", as_nchw(c.stem1.bn.output));
    compare("vis.stem.relu2", as_nchw(c.stem2.bn.output));
    compare("vis.stem.relu3", as_nchw(c.stem3.bn.output));
    compare("vis.stem", as_nchw(c.stem_pool.output));
    for (std::size_t stage = 0; stage < 4; ++stage)
        compare("vis.layer" + std::to_string(stage + 1), as_nchw(c.blocks[stage].conv3.bn.output));
    compare("vis.attnpool", features);
    compare("image_features", features);
    // Eval mode leaves the running statistics as they were.
    const clip::safetensors weights = clip::safetensors::open(*dir / "resnet.safetensors");
    for (const train::model_buffer& b : store.buffers())
        CHECK(b.value.to(clip::dtype::f32).to_vector<float>() == weights.get(b.name).to(clip::dtype::f32).to_vector<float>());
}

TEST_CASE("training mode: batch statistics normalise, and every BatchNorm updates its running statistics") {
    train::parameter_store store = small_store();
    const train::modified_resnet tower = train::modified_resnet::bind(store);
    CHECK(tower.training); // PyTorch modules, and OpenCLIP's training, start in train mode
    std::vector<std::vector<float>> before;
    for (const train::model_buffer& b : store.buffers()) before.push_back(b.value.to_vector<float>());
    const tensor images = clip::rand_normal({3, 3, 64, 64}, 1);
    train::modified_resnet::cache c;
    (void)tower.forward(images, c);
    for (std::size_t i = 0; i < store.buffers().size(); ++i) {
        const train::model_buffer& b = store.buffers()[i];
        if (b.name.ends_with("num_batches_tracked")) CHECK(b.value.item<std::int64_t>() == 1);
        else CHECK(b.value.to_vector<float>() != before[i]);
    }
    // One BatchNorm in detail, from the input it saw: running ← 0.9·running + 0.1·batch
    // statistic, the variance unbiased; its output has the batch mean β (no ReLU in bn3).
    const train::bottleneck::cache& block = c.blocks[1];
    const tensor x = block.conv3.conv.output; // [3, 8, 8, 64]: 192 values per channel
    const std::int64_t C = x.size(3), M = x.numel() / C;
    const std::vector<float> xv = x.to_vector<float>();
    const std::size_t index = [&] {
        for (std::size_t i = 0; i < store.buffers().size(); ++i)
            if (store.buffers()[i].name == "visual.layer2.0.bn3.running_mean") return i;
        return std::size_t{0};
    }();
    const std::vector<float> mean = store.buffers()[index].value.to_vector<float>();
    const std::vector<float> var = store.buffers()[index + 1].value.to_vector<float>();
    for (std::int64_t ch = 0; ch < C; ++ch) {
        double sum = 0.0, squares = 0.0;
        for (std::int64_t r = 0; r < M; ++r) sum += xv[static_cast<std::size_t>(r * C + ch)];
        const double mu = sum / static_cast<double>(M);
        for (std::int64_t r = 0; r < M; ++r) squares += std::pow(xv[static_cast<std::size_t>(r * C + ch)] - mu, 2);
        const auto k = static_cast<std::size_t>(ch);
        CHECK(mean[k] == doctest::Approx(0.9 * before[index][k] + 0.1 * mu).epsilon(1e-5));
        CHECK(var[k] == doctest::Approx(0.9 * before[index + 1][k] + 0.1 * squares / static_cast<double>(M - 1)).epsilon(1e-5));
    }
}

TEST_CASE("eval mode gives the inference model's features") {
    train::parameter_store store = small_store();
    train::modified_resnet tower = train::modified_resnet::bind(store);
    tower.training = false;
    const tensor images = clip::rand_normal({2, 3, 64, 64}, 2);
    train::modified_resnet::cache c;
    const clip::model inference = clip::model::build(store.config(), store);
    clip::test::check_close(tower.forward(images, c), inference.encode_image(images), 1e-5);
}

TEST_CASE("ResNet tower: gradients against finite differences, training mode") {
    train::parameter_store store = small_store(true);
    const train::modified_resnet tower = train::modified_resnet::bind(store);
    check_tower(store, tower, tower_parameters(true), 2e-3);
    // Every visual parameter received a gradient but the key bias (exactly zero: the softmax
    // ignores it); the text tower's none.
    for (const train::parameter& p : store.parameters()) {
        const std::vector<float> g = p.grad.to_vector<float>();
        const bool any = std::any_of(g.begin(), g.end(), [](float v) { return v != 0.0f; });
        CAPTURE(p.name);
        CHECK(any == (p.name.starts_with("visual.") && p.name != "visual.attnpool.k_proj.bias"));
    }
}

TEST_CASE("ResNet tower: gradients against finite differences, eval mode") {
    train::parameter_store store = small_store(true);
    train::modified_resnet tower = train::modified_resnet::bind(store);
    // Running statistics near the batch's (as after training on it), so that the signal neither
    // dies nor explodes, and every ReLU stays on: 60 training-mode passes leave 0.9⁶⁰ = 0.2 % of
    // the random start.
    {
        const single_thread scope;
        const tensor images = clip::rand_normal({3, 3, 64, 64}, 3);
        train::modified_resnet::cache c;
        for (int i = 0; i < 60; ++i) (void)tower.forward(images, c);
    }
    tower.training = false;
    check_tower(store, tower, tower_parameters(false), 2e-3);
}

TEST_CASE("the device-generic formulation a GPU runs gives the CPU kernels' features, statistics and gradients") {
    // detail::portable_on_cpu() makes the CPU run what a GPU runs: batch norm as column sums and
    // expressions, pooling as avg_pool2d and a broadcast expression, the attention pool as
    // reductions over [N, S, H, D] views.
    struct portable_scope {
        bool saved = clip::detail::portable_on_cpu();
        explicit portable_scope(bool on) { clip::detail::portable_on_cpu() = on; }
        ~portable_scope() { clip::detail::portable_on_cpu() = saved; }
    };
    struct step {
        tensor features;
        std::vector<tensor> gradients, buffers;
    };
    const tensor images = clip::rand_normal({3, 3, 64, 64}, 11);
    const tensor weights = clip::rand_normal({3, 16}, 12);
    for (const bool training : {true, false}) {
        CAPTURE(training);
        const auto run = [&](bool portable) {
            const portable_scope scope(portable);
            train::parameter_store store = small_store();
            train::modified_resnet tower = train::modified_resnet::bind(store);
            tower.training = training;
            train::modified_resnet::cache c;
            store.zero_grad();
            step out{tower.forward(images, c).clone(), {}, {}};
            tower.backward(weights, c);
            for (const train::parameter& p : store.parameters()) out.gradients.push_back(p.grad.clone());
            for (const train::model_buffer& b : store.buffers()) out.buffers.push_back(b.value.clone());
            return out;
        };
        const step kernels = run(false), generic = run(true);
        CHECK(clip::test::max_relative_error(generic.features, kernels.features) <= 1e-5);
        const train::parameter_store names = small_store();
        double worst = 0.0;
        for (std::size_t k = 0; k < kernels.gradients.size(); ++k) {
            const std::vector<float> a = generic.gradients[k].to_vector<float>(), b = kernels.gradients[k].to_vector<float>();
            double error = 0.0, scale = 0.0;
            for (std::size_t i = 0; i < a.size(); ++i) {
                error = std::max(error, std::abs(static_cast<double>(a[i]) - b[i]));
                scale = std::max(scale, std::abs(static_cast<double>(b[i])));
            }
            CAPTURE(names.parameters()[k].name);
            CHECK(error <= 1e-4 * scale);
            if (scale > 0) worst = std::max(worst, error / scale);
        }
        MESSAGE("worst gradient error / max |gradient| = " << worst);
        for (std::size_t k = 0; k < kernels.buffers.size(); ++k) {
            CAPTURE(names.buffers()[k].name);
            if (kernels.buffers[k].dtype() == clip::dtype::i64)
                CHECK(generic.buffers[k].to_vector<std::int64_t>() == kernels.buffers[k].to_vector<std::int64_t>());
            else
                CHECK(clip::test::max_relative_error(generic.buffers[k], kernels.buffers[k]) <= 1e-5);
        }
    }
}

TEST_CASE("ResNet tower: with half of the ReLUs off, the later layers' gradients still match") {
    train::parameter_store store = small_store(false);
    const train::modified_resnet tower = train::modified_resnet::bind(store);
    check_tower(store, tower,
                {"visual.layer4.0.conv1.weight", "visual.layer4.0.bn2.weight", "visual.layer4.0.bn3.weight",
                 "visual.attnpool.positional_embedding", "visual.attnpool.k_proj.weight"},
                5e-3);
}

} // namespace train_modified_resnet_test
