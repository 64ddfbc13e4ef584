// clip-demo: a short tour of the library until the training demo lands.
//
// Builds tensors, fuses an element-wise chain, runs one transformer block of ViT-B/32's geometry
// (batch 8: 400 tokens of width 768) from fused products, and reports its speed.
#include <clip/clip.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// A pre-norm transformer block as in OpenAI's CLIP (ResidualAttentionBlock), attention kept
/// per head for clarity:  x += attn(ln_1(x));  x += mlp(ln_2(x)).
struct block {
    std::int64_t width, heads;
    clip::tensor ln_1_weight, ln_1_bias, ln_2_weight, ln_2_bias; // [W]
    clip::packed_weights in_proj, out_proj, c_fc, c_proj;        // [W, 3W], [W, W], [W, 4W], [4W, W]
    clip::tensor in_proj_bias, out_proj_bias, c_fc_bias, c_proj_bias;

    block(std::int64_t w, std::uint64_t seed)
        : width(w), heads(w / 64), ln_1_weight(clip::tensor::ones({w})), ln_1_bias(clip::tensor::zeros({w})),
          ln_2_weight(clip::tensor::ones({w})), ln_2_bias(clip::tensor::zeros({w})),
          in_proj(clip::rand_normal({3 * w, w}, seed, 0.0f, 0.02f).t()),
          out_proj(clip::rand_normal({w, w}, seed + 1, 0.0f, 0.02f).t()),
          c_fc(clip::rand_normal({4 * w, w}, seed + 2, 0.0f, 0.02f).t()),
          c_proj(clip::rand_normal({w, 4 * w}, seed + 3, 0.0f, 0.02f).t()), in_proj_bias(clip::tensor::zeros({3 * w})),
          out_proj_bias(clip::tensor::zeros({w})), c_fc_bias(clip::tensor::zeros({4 * w})),
          c_proj_bias(clip::tensor::zeros({w})) {}

    /// x: [B, T, W], updated in place.
    void forward(const clip::tensor& x) const {
        const std::int64_t B = x.size(0), T = x.size(1), D = width / heads;
        const clip::tensor qkv = clip::matmul(clip::layer_norm(x, ln_1_weight, ln_1_bias), in_proj, {.bias = in_proj_bias});
        // [B, T, 3, H, D] -> three [B, H, T, D] views, no copies
        const clip::tensor split = qkv.view({B, T, 3, heads, D});
        const clip::tensor q = split.select(2, 0).transpose(1, 2), k = split.select(2, 1).transpose(1, 2);
        const clip::tensor v = split.select(2, 2).transpose(1, 2);
        const clip::tensor scores = clip::matmul(q, k.t(), {.scale = 1.0f / std::sqrt(static_cast<float>(D))}); // [B, H, T, T]
        const clip::tensor context = clip::matmul(clip::softmax(scores), v);                                    // [B, H, T, D]
        clip::matmul_into(x, context.transpose(1, 2).reshape({B, T, width}), out_proj,
                          {.bias = out_proj_bias, .residual = x});
        const clip::tensor hidden = clip::matmul(clip::layer_norm(x, ln_2_weight, ln_2_bias), c_fc,
                                                 {.bias = c_fc_bias, .act = clip::activation::quick_gelu});
        clip::matmul_into(x, hidden, c_proj, {.bias = c_proj_bias, .residual = x});
    }
};

} // namespace

int main() {
    std::cout << "clip " << clip::version_string() << ", " << clip::num_threads() << " thread(s), CPU backend: "
#if defined(CLIP_WITH_ONEDNN)
              << "oneDNN"
#else
              << "reference (Eigen)"
#endif
              << "\n\n";

    const clip::tensor a = clip::tensor::from<float>({1, 2, 3, 4, 5, 6}, clip::shape{2, 3});
    const clip::tensor b = clip::tensor::from<float>({0.5f, -1, 2});
    std::cout << "a =\n" << a << "\n\nb =\n" << b << "\n\n";
    std::cout << "gelu(a * b + 1), one fused pass:\n" << clip::eval(clip::gelu(a * b + 1.0f)) << "\n\n";
    std::cout << "softmax(a) =\n" << clip::softmax(a) << "\n\n";

    const block layer(768, 1);
    const clip::tensor x = clip::rand_normal({8, 50, 768}, 2);
    layer.forward(x); // first call: oneDNN plans are created and weights packed
    const int repeats = 5;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < repeats; ++i) layer.forward(x);
    const double per_block = seconds_since(start) / repeats;
    // 4 products of 400 rows (qkv 768x2304, out 768x768, fc 768x3072, proj 3072x768) + attention
    const double flops = 2.0 * 400 * 768 * (2304 + 768 + 3072 + 3072) + 2.0 * 2 * 8 * 12 * 50 * 50 * 64;
    std::printf("ViT-B/32 transformer block, batch 8 (x: [8, 50, 768]): %.2f ms, %.1f GFLOP/s\n", per_block * 1e3,
                flops / per_block * 1e-9);
    std::printf("output row 0, first values: %.4f %.4f %.4f\n", x.to_vector<float>()[0], x.to_vector<float>()[1],
                x.to_vector<float>()[2]);
    return 0;
}
