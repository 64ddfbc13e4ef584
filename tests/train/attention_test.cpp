// Tests for clip/train/attention.hpp: the forward pass gives nn::multihead_attention's output
// (the context bit for bit with ops/attention.hpp's row kernel), the probabilities are a (causal)
// softmax, and every gradient (in_proj, out_proj, input) matches finite differences, with and
// without the causal mask, for one and several heads.
#include "gradient_check.hpp"

#include "clip/train/attention.hpp"

namespace train_attention_test {

using clip::shape;
using clip::tensor;
using clip::test::check_gradient;
using clip::test::test_parameter;
using clip::test::weighted_sum;
namespace train = clip::train;

namespace {

struct attention_case {
    std::int64_t B, T, W, heads;
    bool causal;
};

} // namespace

TEST_CASE("multihead attention: forward as the inference layer, gradients against finite differences") {
    for (const attention_case& k : {attention_case{2, 5, 8, 1, false}, attention_case{2, 6, 8, 2, true},
                                    attention_case{1, 9, 16, 2, false}, attention_case{3, 7, 12, 3, true}}) {
        CAPTURE(k.T);
        CAPTURE(k.heads);
        CAPTURE(k.causal);
        const std::int64_t W = k.W;
        test_parameter in_w({3 * W, W}, 1, 0.0f, 0.4f), in_b({3 * W}, 2, 0.0f, 0.2f);
        test_parameter out_w({W, W}, 3, 0.0f, 0.4f), out_b({W}, 4, 0.0f, 0.2f);
        const train::multihead_attention layer{{in_w.value, in_w.grad, in_b.value, in_b.grad, clip::activation::none},
                                               {out_w.value, out_w.grad, out_b.value, out_b.grad, clip::activation::none},
                                               k.heads,
                                               k.causal};
        const tensor x = clip::rand_normal({k.B, k.T, W}, 5);
        const tensor residual = clip::rand_normal({k.B, k.T, W}, 6);
        const tensor weights = clip::rand_normal({k.B, k.T, W}, 7);
        train::multihead_attention::cache c;
        train::multihead_attention::scratch s;
        const auto objective = [&] { return weighted_sum(layer.forward(x, c, residual), weights); };
        (void)objective();

        const clip::nn::multihead_attention inference{clip::nn::linear::from(in_w.value, in_b.value),
                                                      clip::nn::linear::from(out_w.value, out_b.value), k.heads};
        clip::test::check_close(c.out_proj.output, inference(x, k.causal, residual), 1e-6);
        const std::int64_t D = W / k.heads;
        const tensor split = c.in_proj.output.view({k.B, k.T, 3, k.heads, D});
        const auto inference_context = [&] {
            return clip::attention(split.select(2, 0).transpose(1, 2), split.select(2, 1).transpose(1, 2),
                                   split.select(2, 2).transpose(1, 2), layer.scale(), k.causal);
        };
        // Bit for bit with the row kernel, whose helpers it shares; close to the tiled kernel that
        // AVX-512 CPUs run for inference (another order of additions).
        clip::test::check_close(c.context, inference_context(), 1e-6);
#if defined(CLIP_HAS_AVX512_GEMM)
        clip::detail::cpu_gemm::enabled() = false;
#endif
        const tensor row_kernel = inference_context();
#if defined(CLIP_HAS_AVX512_GEMM)
        clip::detail::cpu_gemm::enabled() = true;
#endif
        CHECK(c.context.to_vector<float>() == row_kernel.to_vector<float>());
        // Rows of P sum to one, and nothing is attended above the diagonal when causal.
        const std::vector<float> p = c.probabilities.to_vector<float>();
        for (std::int64_t row = 0; row < k.B * k.heads * k.T; ++row) {
            double total = 0.0, masked = 0.0;
            for (std::int64_t j = 0; j < k.T; ++j) {
                total += p[static_cast<std::size_t>(row * k.T + j)];
                if (j > row % k.T) masked += p[static_cast<std::size_t>(row * k.T + j)];
            }
            CHECK(total == doctest::Approx(1.0).epsilon(1e-5));
            if (k.causal) CHECK(masked == 0.0);
        }

        const tensor dx = tensor::empty(x.shape());
        layer.backward(weights, c, dx, false, s);
        check_gradient("in_proj_weight", in_w.value, in_w.grad, objective);
        check_gradient("in_proj_bias", in_b.value, in_b.grad, objective);
        // The key bias shifts whole rows of scores, which the softmax ignores: exactly zero.
        const std::vector<float> key_bias = in_b.grad.slice(0, W, 2 * W).contiguous().to_vector<float>();
        CHECK(std::all_of(key_bias.begin(), key_bias.end(), [](float g) { return g == 0.0f; }));
        check_gradient("out_proj.weight", out_w.value, out_w.grad, objective);
        check_gradient("out_proj.bias", out_b.value, out_b.grad, objective);
        check_gradient("input", x, dx, objective);
    }
}

TEST_CASE("the attention gradients do not depend on the thread count") {
    const std::int64_t W = 16;
    test_parameter in_w({3 * W, W}, 1, 0.0f, 0.4f), in_b({3 * W}, 2), out_w({W, W}, 3), out_b({W}, 4);
    const train::multihead_attention layer{{in_w.value, in_w.grad, in_b.value, in_b.grad, clip::activation::none},
                                           {out_w.value, out_w.grad, out_b.value, out_b.grad, clip::activation::none},
                                           2,
                                           true};
    const tensor x = clip::rand_normal({8, 40, W}, 5);
    const tensor dy = clip::rand_normal({8, 40, W}, 6);
    const auto run = [&](int threads) {
        const int saved = clip::num_threads();
        clip::set_num_threads(threads);
        in_w.grad.copy_from(tensor::zeros(in_w.grad.shape()));
        train::multihead_attention::cache c;
        train::multihead_attention::scratch s;
        (void)layer.forward(x, c);
        const tensor dx = tensor::empty(x.shape());
        layer.backward(dy, c, dx, false, s);
        clip::set_num_threads(saved);
        return std::vector<float>(s.qkv.to_vector<float>());
    };
    CHECK(run(1) == run(4));
}

} // namespace train_attention_test
