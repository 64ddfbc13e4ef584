// Tests for clip/ops/attention.hpp: scaled dot-product attention against a double-precision
// softmax(q·kᵀ)·v, with and without the causal mask, on the strided heads of a packed qkv
// projection, for the tiled AVX-512 kernel (where the CPU has it) and the row kernel alike;
// and shape errors.
#include "../support.hpp"

namespace ops_attention_test {

using clip::shape;
using clip::tensor;

namespace {

/// [B, H, T, D] views of q, k, v split out of one [B, T, 3, H, D] projection.
struct heads {
    tensor qkv, q, k, v;
    heads(std::int64_t B, std::int64_t T, std::int64_t H, std::int64_t D, std::uint64_t seed)
        : qkv(clip::rand_normal({B, T, 3, H, D}, seed)), q(qkv.select(2, 0).transpose(1, 2)),
          k(qkv.select(2, 1).transpose(1, 2)), v(qkv.select(2, 2).transpose(1, 2)) {}
};

tensor expected(const tensor& q, const tensor& k, const tensor& v, float scale, bool causal) {
    const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), S = k.size(2);
    const std::vector<float> qv = q.contiguous().to_vector<float>(), kv = k.contiguous().to_vector<float>(),
                             vv = v.contiguous().to_vector<float>();
    std::vector<float> out(static_cast<std::size_t>(B * T * H * D));
    std::vector<double> p(static_cast<std::size_t>(S));
    for (std::int64_t b = 0; b < B; ++b)
        for (std::int64_t h = 0; h < H; ++h)
            for (std::int64_t i = 0; i < T; ++i) {
                const std::int64_t visible = causal ? i + 1 : S;
                const auto at = [&](std::int64_t t, std::int64_t d) { return static_cast<std::size_t>(((b * H + h) * T + t) * D + d); };
                const auto key_at = [&](std::int64_t t, std::int64_t d) { return static_cast<std::size_t>(((b * H + h) * S + t) * D + d); };
                double top = -1e300, total = 0;
                for (std::int64_t j = 0; j < visible; ++j) {
                    double s = 0;
                    for (std::int64_t d = 0; d < D; ++d) s += static_cast<double>(qv[at(i, d)]) * kv[key_at(j, d)];
                    p[static_cast<std::size_t>(j)] = s * scale;
                    top = std::max(top, s * scale);
                }
                for (std::int64_t j = 0; j < visible; ++j) total += p[static_cast<std::size_t>(j)] = std::exp(p[static_cast<std::size_t>(j)] - top);
                for (std::int64_t d = 0; d < D; ++d) {
                    double s = 0;
                    for (std::int64_t j = 0; j < visible; ++j) s += p[static_cast<std::size_t>(j)] * vv[key_at(j, d)];
                    out[static_cast<std::size_t>(((b * T + i) * H + h) * D + d)] = static_cast<float>(s / total);
                }
            }
    return tensor::from(out, shape{B, T, H * D});
}

/// Runs `f` on the row kernel (the tiled one switched off where it exists).
template <class F>
tensor on_row_kernel(F&& f) {
#if defined(CLIP_HAS_AVX512_GEMM)
    clip::detail::cpu_gemm::enabled() = false;
    const tensor out = f();
    clip::detail::cpu_gemm::enabled() = true;
    return out;
#else
    return f();
#endif
}

} // namespace

TEST_CASE("attention matches a double-precision softmax, with and without the causal mask") {
    struct config {
        std::int64_t B, T, H, D;
    };
    for (const config c : {config{2, 50, 3, 64}, config{1, 77, 2, 64}, config{3, 7, 2, 8}, config{1, 33, 1, 80},
                           config{2, 1, 4, 16}, config{1, 97, 1, 40}}) {
        for (const bool causal : {false, true}) {
            CAPTURE(c.T);
            CAPTURE(c.D);
            CAPTURE(causal);
            const heads x(c.B, c.T, c.H, c.D, static_cast<std::uint64_t>(c.T * 10 + c.D));
            const float scale = 1.0f / std::sqrt(static_cast<float>(c.D));
            const tensor want = expected(x.q, x.k, x.v, scale, causal);
            clip::test::check_close(clip::attention(x.q, x.k, x.v, scale, causal), want, 2e-6);
            clip::test::check_close(on_row_kernel([&] { return clip::attention(x.q, x.k, x.v, scale, causal); }), want, 2e-6);
        }
    }
}

TEST_CASE("attention with more keys than queries, and with large scores") {
    const tensor q = clip::rand_normal({2, 3, 1, 64}, 1), kv = clip::rand_normal({2, 3, 50, 64}, 2);
    const tensor k = clip::eval(kv * 6.0f), v = clip::rand_normal({2, 3, 50, 64}, 3); // scores in the hundreds
    const tensor want = expected(q, k, v, 0.125f, false);
    clip::test::check_close(clip::attention(q, k, v, 0.125f, false), want, 1e-5);
    clip::test::check_close(on_row_kernel([&] { return clip::attention(q, k, v, 0.125f, false); }), want, 1e-5);
}

TEST_CASE("attention rejects operands that do not fit") {
    CHECK_THROWS_AS(clip::attention(tensor::zeros({1, 2, 3, 4}), tensor::zeros({1, 2, 3, 5}), tensor::zeros({1, 2, 3, 5}), 1.0f, false),
                    clip::shape_error);
    CHECK_THROWS_AS(clip::attention(tensor::zeros({1, 2, 3, 4}), tensor::zeros({1, 2, 5, 4}), tensor::zeros({1, 2, 5, 4}), 1.0f, true),
                    clip::shape_error);
    CHECK_THROWS_AS(clip::attention(tensor::zeros({2, 3, 4}), tensor::zeros({2, 3, 4}), tensor::zeros({2, 3, 4}), 1.0f, false),
                    clip::shape_error);
}

} // namespace ops_attention_test
