// Tests for clip/backend/cuda/train.hpp: training on a GPU. The PyTorch training step of the
// reference fixtures reproduced on the GPU (loss, features, logits, every gradient, AdamW, two
// steps); a larger random model with several heads trained side by side on the GPU and the CPU,
// with ClipLoss and SigLIP; gradient accumulation; two ranks on one GPU over a host
// communicator against one CPU process; a ModifiedResNet side by side on both devices, in both
// modes; the error for tensors on the wrong device. Without a device the cases
// say so; the kernel sources are still compiled with NVRTC, which needs no GPU.
#include "../support.hpp"

#include <map>
#include <thread>

#include "../dist/thread_world.hpp"
#include "clip/train/adamw.hpp"
#include "clip/train/grad_clip.hpp"
#include "clip/train/model.hpp"

namespace backend_cuda_train_test {

using clip::shape;
using clip::tensor;
namespace train = clip::train;

TEST_CASE("the CUDA training kernel sources compile (NVRTC, no GPU needed)") {
#if defined(CLIP_WITH_CUDA)
    namespace cuda = clip::detail::cuda;
    for (const char* arch : {"compute_90", "sm_90"})
        CHECK(!cuda::compile(cuda::train_kernels_source(), "train_kernels", arch).empty());
#else
    MESSAGE("skipped: clip is built without CUDA");
#endif
}

#if defined(CLIP_WITH_CUDA)

namespace {

const clip::device gpu = clip::device::cuda();
const clip::device cpu = clip::device::cpu();

bool have_gpu() {
    if (clip::detail::cuda::device_count() > 0) return true;
    MESSAGE("skipped: clip is built with CUDA but no CUDA device is present");
    return false;
}

/// max |a − b| and max |b| over two tensors on any devices.
std::pair<double, double> difference(const tensor& actual, const tensor& expected) {
    REQUIRE(actual.shape() == expected.shape());
    const std::vector<float> a = actual.to_vector<float>(), b = expected.to_vector<float>();
    double error = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        error = std::max(error, std::abs(static_cast<double>(a[i]) - b[i]));
        scale = std::max(scale, std::abs(static_cast<double>(b[i])));
    }
    return {error, scale};
}

/// max |a − b| ≤ rel · max(floor, max |b|).
void check_close(const std::string& what, const tensor& actual, const tensor& expected, double rel, double floor = 0.0) {
    const auto [error, scale] = difference(actual, expected);
    INFO(what << ": max abs error " << error << ", max |expected| " << scale << ", allowed " << rel * std::max(floor, scale));
    CHECK(error <= rel * std::max(floor, scale));
}

/// Every gradient of `store` against `<prefix><name>` of `expected` (a store or the fixture file).
template <class Get>
void check_gradients(const train::parameter_store& store, Get&& expected, double rel) {
    double worst = 0.0;
    std::string worst_name;
    for (const train::parameter& p : store.parameters()) {
        const tensor reference = expected(p.name);
        const auto [error, scale] = difference(p.grad, reference);
        INFO(p.name << ": max |g - g_ref| " << error << ", max |g_ref| " << scale);
        CHECK(error <= rel * scale);
        if (scale > 0 && error / scale > worst) worst = error / scale, worst_name = p.name;
    }
    MESSAGE("worst max|g - g_ref| / max|g_ref| = " << worst << " (" << worst_name << ")");
}

/// One OpenCLIP step: zero_grad, forward, backward, clipping, AdamW, the logit_scale clamp.
float train_step(const train::parameter_store& store, train::clip_model& model, train::adamw& optimizer, const tensor& images,
                 const tensor& ids, bool backward_only = false) {
    store.zero_grad();
    const float loss = model.forward(images, ids);
    model.backward();
    if (backward_only) return loss;
    train::clip_grad_norm(store, 1.0);
    optimizer.step();
    train::clamp_logit_scale(store);
    return loss;
}

/// The fixture's parameters, stored as `param.<name>`.
struct prefixed_source : clip::nn::parameter_source {
    explicit prefixed_source(const clip::safetensors& file) : file(file) {}
    tensor get(const std::string& name, const shape&) override { return file.get("param." + name); }
    bool contains(const std::string& name) const override { return file.contains("param." + name); }
    const clip::safetensors& file;
};

/// Rows of random token ids below `vocab` whose EOT (the highest id, vocab − 1) is at position
/// 3 + 5m in row m, zero after it (as the tokenizer pads).
tensor caption_ids(std::int64_t rows, std::int64_t vocab, std::uint64_t seed) {
    const tensor ids = tensor::zeros({rows, 77}, clip::dtype::i64);
    std::uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
    for (std::int64_t m = 0; m < rows; ++m) {
        const std::int64_t eot = 3 + 5 * m;
        for (std::int64_t t = 0; t < eot; ++t) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            ids.select(0, m).select(0, t).copy_from(tensor::full({}, static_cast<double>((state >> 33) % (vocab - 2) + 1), clip::dtype::i64));
        }
        ids.select(0, m).select(0, eot).copy_from(tensor::full({}, static_cast<double>(vocab - 1), clip::dtype::i64));
    }
    return ids;
}

/// ViT image 32, patch 8, width 128 with 2 heads of 64; text width 128, 2 heads, 2 layers;
/// vocabulary 500; embed 64.
clip::clip_config multi_head_config() {
    clip::clip_config c = clip::detail::make_vit(64, 32, 2, 128, 8, 128, 2);
    c.vision.heads = 2;
    c.text.heads = 2;
    c.text.vocab_size = 500;
    return c;
}

/// A random store on the CPU and its copy on the GPU, each with a model and an AdamW, stepped
/// side by side.
struct side_by_side {
    train::parameter_store on_cpu, on_gpu;
    train::clip_model cpu_model, gpu_model;
    train::adamw cpu_optimizer, gpu_optimizer;

    side_by_side(const clip::clip_config& c, std::uint64_t seed, train::objective kind = train::objective::clip)
        : on_cpu(train::parameter_store::random(c, seed, kind)), on_gpu(on_cpu.to(gpu)), cpu_model(on_cpu), gpu_model(on_gpu),
          cpu_optimizer(on_cpu, {.lr = 1e-3, .weight_decay = 0.1}), gpu_optimizer(on_gpu, {.lr = 1e-3, .weight_decay = 0.1}) {}

    /// forward + backward on both (the batch copied to the GPU for it): the same loss, and every
    /// gradient within 1e-4 of its largest element.
    void forward_backward(const tensor& images, const tensor& ids) {
        const float cpu_loss = train_step(on_cpu, cpu_model, cpu_optimizer, images, ids, true);
        const float gpu_loss = train_step(on_gpu, gpu_model, gpu_optimizer, images.to(gpu), ids.to(gpu), true);
        CHECK(std::abs(gpu_loss - cpu_loss) <= 1e-5 * std::abs(cpu_loss));
        check_gradients(on_gpu, [&](const std::string& name) { return on_cpu.at(name).grad; }, 1e-4);
    }

    /// AdamW on both from the CPU's gradients: its first steps move a parameter by about ±lr
    /// whatever the gradient's size, so a gradient within rounding of zero could step either way.
    void step_from_cpu_gradients() {
        clip::detail::copy_between(on_gpu.gradient_block(), on_cpu.gradient_block());
        cpu_optimizer.step();
        gpu_optimizer.step();
        train::clamp_logit_scale(on_cpu);
        train::clamp_logit_scale(on_gpu);
    }
};

} // namespace

TEST_CASE("training attention on the GPU matches the CPU, in shared memory and for long sequences") {
    if (!have_gpu()) return;
    namespace cuda = clip::detail::cuda;
    // (sequences, tokens, heads, head width, causal): the shared-memory kernels take the first
    // three; 200 tokens of 64 need more than 48 KB, so the last two take the warp-per-row ones.
    struct shape_case { std::int64_t B, T, H, D; bool causal; };
    for (const shape_case k : {shape_case{3, 17, 2, 64, false}, shape_case{2, 77, 3, 64, true}, shape_case{2, 9, 1, 40, true},
                               shape_case{2, 200, 2, 64, false}, shape_case{1, 150, 1, 64, true}}) {
        INFO("B " << k.B << ", T " << k.T << ", H " << k.H << ", D " << k.D << (k.causal ? ", causal" : ""));
        CHECK((cuda::attention_shared_bytes(k.T, k.D) == 0) == (k.T >= 150));
        const std::int64_t W = k.H * k.D;
        const float scale = 1.0f / std::sqrt(static_cast<float>(k.D));
        const tensor qkv = clip::rand_normal({k.B, k.T, 3 * W}, 21), grad_context = clip::rand_normal({k.B, k.T, W}, 22);
        const tensor probs = tensor::empty({k.B, k.H, k.T, k.T}), context = tensor::empty({k.B, k.T, W});
        const tensor grad_qkv = tensor::empty({k.B, k.T, 3 * W});
        clip::detail::attention_forward(qkv, k.H, k.causal, scale, probs, context);
        clip::detail::attention_backward(qkv, probs, grad_context, k.H, k.causal, scale, grad_qkv);
        const tensor qkv_gpu = qkv.to(gpu), grad_context_gpu = grad_context.to(gpu);
        const tensor probs_gpu = tensor::empty(probs.shape(), clip::dtype::f32, gpu);
        const tensor context_gpu = tensor::empty(context.shape(), clip::dtype::f32, gpu);
        const tensor scores_gpu = tensor::empty(probs.shape(), clip::dtype::f32, gpu);
        const tensor grad_qkv_gpu = tensor::empty(grad_qkv.shape(), clip::dtype::f32, gpu);
        cuda::attention_forward(qkv_gpu, k.H, k.causal, scale, probs_gpu, context_gpu);
        cuda::attention_backward(qkv_gpu, probs_gpu, grad_context_gpu, k.H, k.causal, scale, scores_gpu, grad_qkv_gpu);
        check_close("probabilities", probs_gpu, probs, 1e-5, 1.0);
        check_close("context", context_gpu, context, 1e-5, 1.0);
        check_close("d qkv", grad_qkv_gpu, grad_qkv, 1e-5, 1.0);
    }
}

TEST_CASE("two OpenCLIP training steps on the GPU match PyTorch: loss, features, logits, every gradient, AdamW") {
    if (!have_gpu()) return;
    const auto dir = clip::test::fixtures();
    if (!dir) return;
    const clip::safetensors io = clip::safetensors::open(*dir / "train_step.safetensors");
    prefixed_source source(io);
    clip::clip_config c = clip::detail::make_vit(32, 32, 2, 64, 8, 64, 2);
    c.text.vocab_size = 1000;
    const train::parameter_store store = train::parameter_store::from(c, source).to(gpu);
    REQUIRE(store.device() == gpu);
    train::clip_model model(store);
    train::adamw optimizer(store, {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-6, .weight_decay = 0.2});
    const auto grads = [&](const char* prefix) { return [&io, prefix](const std::string& name) { return io.get(prefix + name); }; };

    for (const std::string step : {"", "2"}) {
        if (step == "2")
            for (const train::parameter& p : store.parameters()) p.value.copy_from(io.get("param_after." + p.name).to(gpu));
        store.zero_grad();
        // Images on the GPU, ids on the CPU: both are accepted.
        const float loss = model.forward(io.get("image" + step).to(gpu), io.get("text" + step));
        const float expected = io.get("loss" + step).item<float>();
        MESSAGE("loss" << step << " " << loss << ", PyTorch " << expected);
        CHECK(std::abs(loss - expected) <= 1e-5 * std::abs(expected));
        CHECK(model.image_features().device() == gpu);
        check_close("image_features" + step, model.image_features(), io.get("image_features" + step), 1e-4, 1.0);
        check_close("text_features" + step, model.text_features(), io.get("text_features" + step), 1e-4, 1.0);
        check_close("logits_per_image" + step, model.logits(), io.get("logits_per_image" + step), 1e-4, 1.0);
        model.backward();
        check_gradients(store, grads(step == "2" ? "grad2." : "grad."), 1e-4);
        optimizer.step();
        train::clamp_logit_scale(store);
        for (const train::parameter& p : store.parameters())
            check_close(p.name + " after step " + (step.empty() ? "1" : step), p.value,
                        io.get("param_after" + step + "." + p.name), 1e-4, 1.0);
    }
}

TEST_CASE("a model with several heads trains the same on the GPU and the CPU, step after step, with either loss") {
    if (!have_gpu()) return;
    const clip::clip_config c = multi_head_config();
    for (const train::objective kind : {train::objective::clip, train::objective::siglip}) {
        INFO((kind == train::objective::siglip ? "SigLIP" : "ClipLoss"));
        side_by_side both(c, 7, kind);
        const tensor images = clip::rand_normal({6, 3, 32, 32}, 3);
        const tensor ids = caption_ids(6, c.text.vocab_size, 4);
        for (int step = 1; step <= 3; ++step) {
            INFO("step " << step);
            both.forward_backward(images, ids);
            check_close("logits", both.gpu_model.logits(), both.cpu_model.logits(), 1e-5, 1.0);
            const double cpu_norm = train::clip_grad_norm(both.on_cpu, 1.0), gpu_norm = train::clip_grad_norm(both.on_gpu, 1.0);
            CHECK(std::abs(gpu_norm - cpu_norm) <= 1e-5 * cpu_norm);
            check_gradients(both.on_gpu, [&](const std::string& name) { return both.on_cpu.at(name).grad; }, 1e-4);
            both.step_from_cpu_gradients();
            for (const train::parameter& p : both.on_gpu.parameters())
                check_close(p.name + " after the step", p.value, both.on_cpu.at(p.name).value, 1e-6, 1.0);
        }
        // The key bias cannot change the loss: its gradient stays exactly zero on the GPU too.
        const std::vector<float> key_bias =
            both.on_gpu.at("transformer.resblocks.0.attn.in_proj_bias").grad.slice(0, 128, 256).to_vector<float>();
        CHECK(std::all_of(key_bias.begin(), key_bias.end(), [](float g) { return g == 0.0f; }));
    }
}

TEST_CASE("bf16 mixed precision: gradients within bf16's rounding of the f32 step, and it trains as f32 does") {
    if (!have_gpu()) return;
    const clip::clip_config c = multi_head_config();
    const train::parameter_store full = train::parameter_store::random(c, 9).to(gpu);
    const train::parameter_store half = full.to(gpu);
    train::clip_model full_model(full), half_model(half);
    half_model.set_precision(clip::dtype::bf16);
    CHECK(half_model.precision() == clip::dtype::bf16);
    const tensor images = clip::rand_normal({6, 3, 32, 32}, 12).to(gpu);
    const tensor ids = caption_ids(6, c.text.vocab_size, 13);
    full.zero_grad();
    half.zero_grad();
    const float full_loss = full_model.forward(images, ids), half_loss = half_model.forward(images, ids);
    full_model.backward();
    half_model.backward();
    MESSAGE("loss f32 " << full_loss << ", bf16 products " << half_loss);
    CHECK(std::abs(half_loss - full_loss) <= 1e-2 * std::abs(full_loss));
    // Documented bound: every gradient within 5% of its f32 value in L2 norm.
    double worst = 0.0;
    std::string worst_name;
    for (const train::parameter& p : half.parameters()) {
        const std::vector<float> a = p.grad.to_vector<float>(), b = full.at(p.name).grad.to_vector<float>();
        double error = 0.0, norm = 0.0;
        for (std::size_t i = 0; i < a.size(); ++i) {
            error += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
            norm += static_cast<double>(b[i]) * b[i];
        }
        const double relative = norm > 0 ? std::sqrt(error / norm) : std::sqrt(error);
        INFO(p.name << ": |g_bf16 - g_f32| / |g_f32| = " << relative);
        CHECK(relative <= 5e-2);
        if (relative > worst) worst = relative, worst_name = p.name;
    }
    MESSAGE("worst |g_bf16 - g_f32| / |g_f32| = " << worst << " (" << worst_name << ")");
    // Twenty steps on the batch: both fit it, bf16 about as well as f32.
    train::adamw full_optimizer(full, {.lr = 1e-3, .weight_decay = 0.1}), half_optimizer(half, {.lr = 1e-3, .weight_decay = 0.1});
    float full_last = 0.0f, half_last = 0.0f;
    for (int step = 0; step < 20; ++step) {
        full_last = train_step(full, full_model, full_optimizer, images, ids);
        half_last = train_step(half, half_model, half_optimizer, images, ids);
    }
    MESSAGE("after 20 steps: loss f32 " << full_last << ", bf16 products " << half_last << " (from " << full_loss << ")");
    CHECK(full_last < 0.5f * full_loss);
    CHECK(half_last < 0.5f * full_loss);
    CHECK(std::abs(half_last - full_last) <= 0.1f * full_loss);

    const train::parameter_store on_cpu = train::parameter_store::random(c, 9);
    train::clip_model cpu_model(on_cpu);
    CHECK(clip::test::contains(clip::test::error_message([&] { cpu_model.set_precision(clip::dtype::bf16); }),
                               "bf16 products train on a GPU"));
    CHECK(clip::test::contains(clip::test::error_message([&] { half_model.set_precision(clip::dtype::f16); }), "f32 or bf16"));
}

TEST_CASE("gradient accumulation on the GPU gives the whole batch's loss and gradients") {
    if (!have_gpu()) return;
    const clip::clip_config c = multi_head_config();
    const train::parameter_store whole = train::parameter_store::random(c, 11).to(gpu);
    const train::parameter_store parts = whole.to(gpu);
    train::clip_model whole_model(whole), parts_model(parts);
    const tensor images = clip::rand_normal({6, 3, 32, 32}, 5).to(gpu);
    const tensor ids = caption_ids(6, c.text.vocab_size, 6);
    whole.zero_grad();
    const float loss = whole_model.forward(images, ids);
    whole_model.backward();
    parts.zero_grad();
    const float accumulated = parts_model.forward_backward_accumulated(images, ids, 3);
    CHECK(std::abs(accumulated - loss) <= 1e-5 * std::abs(loss));
    check_gradients(parts, [&](const std::string& name) { return whole.at(name).grad; }, 1e-4);
}

TEST_CASE("two ranks on one GPU over a host communicator give one CPU process's gradients of the whole batch") {
    if (!have_gpu()) return;
    const clip::clip_config c = multi_head_config();
    const tensor images = clip::rand_normal({6, 3, 32, 32}, 21);
    const tensor ids = caption_ids(6, c.text.vocab_size, 22);
    struct variant {
        const char* name;
        train::objective kind;
        train::world_options world;
        std::int64_t micro_batches;
    };
    for (const variant& v : {variant{"ClipLoss", train::objective::clip, {}, 0},
                             variant{"ClipLoss, local loss", train::objective::clip, {.local_loss = true}, 0},
                             variant{"SigLIP", train::objective::siglip, {}, 0},
                             variant{"ClipLoss, two micro-batches", train::objective::clip, {}, 2}}) {
        INFO(v.name);
        const train::parameter_store whole = train::parameter_store::random(c, 9, v.kind);
        train::clip_model whole_model(whole);
        whole.zero_grad();
        const float loss = whole_model.forward(images, ids);
        whole_model.backward();

        // The ranks hold 2 and 4 rows, on one GPU; thread_world's collectives work on host
        // memory, so features and gradients go through host copies.
        clip::test::thread_world world(2);
        const std::int64_t first[3] = {0, 2, 6};
        std::vector<std::map<std::string, tensor>> gradients(2);
        std::vector<float> losses(2);
        std::vector<std::thread> ranks;
        for (int r = 0; r < 2; ++r)
            ranks.emplace_back([&, r] {
                const train::parameter_store store = train::parameter_store::random(c, 9, v.kind).to(gpu);
                train::clip_model model(store);
                model.set_world(world.rank(r), v.world);
                store.zero_grad();
                const tensor my_images = images.slice(0, first[r], first[r + 1]).to(gpu);
                const tensor my_ids = ids.slice(0, first[r], first[r + 1]).contiguous();
                if (v.micro_batches > 0) {
                    losses[static_cast<std::size_t>(r)] = model.forward_backward_accumulated(my_images, my_ids, v.micro_batches);
                } else {
                    losses[static_cast<std::size_t>(r)] = model.forward(my_images, my_ids);
                    model.backward();
                }
                for (const train::parameter& p : store.parameters()) gradients[static_cast<std::size_t>(r)][p.name] = p.grad.to(cpu);
            });
        for (std::thread& t : ranks) t.join();
        for (int r = 0; r < 2; ++r) {
            INFO("rank " << r);
            if (v.kind == train::objective::clip && !v.world.local_loss)
                CHECK(std::abs(losses[static_cast<std::size_t>(r)] - loss) <= 1e-5 * std::abs(loss));
            check_gradients(whole, [&](const std::string& name) { return gradients[static_cast<std::size_t>(r)].at(name); }, 1e-4);
        }
    }
}

TEST_CASE("a ModifiedResNet trains the same on the GPU and the CPU: loss, gradients, running statistics") {
    if (!have_gpu()) return;
    clip::clip_config c = clip::detail::make_resnet(64, 64, {1, 2, 1, 1}, 16, 64, 1);
    c.text.vocab_size = 500;
    for (const bool training : {true, false}) {
        INFO((training ? "training mode" : "eval mode"));
        side_by_side both(c, 17);
        both.cpu_model.set_training(training);
        both.gpu_model.set_training(training);
        const tensor images = clip::rand_normal({4, 3, 64, 64}, 18);
        const tensor ids = caption_ids(4, c.text.vocab_size, 19);
        for (int step = 1; step <= 2; ++step) {
            INFO("step " << step);
            both.forward_backward(images, ids);
            check_close("image features", both.gpu_model.image_features(), both.cpu_model.image_features(), 1e-4, 1.0);
            for (const train::model_buffer& b : both.on_gpu.buffers()) {
                INFO(b.name);
                const tensor& expected = both.on_cpu.buffer(b.name).value;
                if (b.value.dtype() == clip::dtype::i64) CHECK(b.value.to(cpu).to_vector<std::int64_t>() == expected.to_vector<std::int64_t>());
                else check_close(b.name, b.value, expected, 1e-5, 1.0);
            }
            both.step_from_cpu_gradients();
        }
    }
}

TEST_CASE("devices do not mix") {
    if (!have_gpu()) return;
    const train::parameter_store store = train::parameter_store(multi_head_config()).to(gpu);
    const train::layer_norm ln = train::layer_norm::bind(store, "ln_final", 1e-5f);
    train::layer_norm::cache cache;
    const std::string mixed = clip::test::error_message([&] { (void)ln.forward(tensor::zeros({2, 128}), cache); });
    CHECK(clip::test::contains(mixed, "layer_norm: input is on cpu, expected cuda:0"));
}

#endif

} // namespace backend_cuda_train_test
