// clip/train/patch_embedding.hpp: the ViT's input: patch convolution, class token, positions.
//
//   forward   patches[n, p, :] = image[n, :, py·P .. py·P+P−1, px·P .. px·P+P−1]   (p = py·g + px,
//                                flattened as (channel, row, column): conv1.weight's order)
//             z = patches · Kᵀ                    K = conv1.weight viewed as [W, 3·P·P]
//             x[n, 0] = cls + pos[0],   x[n, 1 + p] = z[n, p] + pos[1 + p]             x [N, T, W]
//   backward  dK += dzᵀ patches   (dz = dx[:, 1:]),   dcls += Σ_n dx[n, 0],   dpos += Σ_n dx[n]
// A convolution whose kernel equals its stride is exactly this matrix product over the
// non-overlapping patches, so one GEMM forward and one backward replace a convolution and its
// weight-gradient primitive; no gradient flows to the images. The patches [N, g², 3P²] are kept
// for the backward product.
#pragma once

#include <cstring>

#include "clip/ops/matmul.hpp"
#include "clip/train/buffers.hpp"
#include "clip/train/parameters.hpp"

namespace clip::train {

struct patch_embedding {
    tensor weight, grad_weight;                   // conv1 K [W, 3, P, P]
    tensor class_embedding, grad_class_embedding; // cls [W]
    tensor positional, grad_positional;           // pos [T, W], T = g² + 1
    tensor weight16 = {};                         // K in bf16 for mixed-precision products, or undefined (f32)

    struct cache {
        detail::buffer patches;        // [N, g², 3P²]
        detail::buffer projected;      // z [N, g², W]
        detail::buffer output;         // x [N, T, W]
        detail::buffer grad_projected; // dz [N, g², W]
        detail::buffer patches16;      // the patches in bf16 (mixed precision)
        detail::buffer grad16;         // dz in bf16 (mixed precision)
    };

    void set_half(const detail::half_weights& half) { weight16 = half ? half(weight) : tensor{}; }

    static patch_embedding bind(const parameter_store& store) {
        const parameter& k = store.at("visual.conv1.weight");
        const parameter& c = store.at("visual.class_embedding");
        const parameter& p = store.at("visual.positional_embedding");
        return {k.value, k.grad, c.value, c.grad, p.value, p.grad};
    }

    std::int64_t width() const { return weight.size(0); }
    std::int64_t patch() const { return weight.size(3); }
    std::int64_t features() const { return 3 * patch() * patch(); }

    /// images [N, 3, R, R] f32 -> x [N, T, W], kept in `c.output`.
    const tensor& forward(const tensor& images, cache& c) const {
        const std::int64_t P = patch(), T = positional.size(0);
        detail::require_defined(images, "patch_embedding");
        detail::check<dtype_error>(images.dtype() == dtype::f32, "patch_embedding: images must be f32, got ",
                                   images.dtype());
        const std::int64_t R = P * detail::integer_sqrt(T - 1), g = R / P;
        detail::check<shape_error>(images.ndim() == 4 && images.size(1) == 3 && images.size(2) == R && images.size(3) == R,
                                   "patch_embedding: images must be [N, 3, ", R, ", ", R, "], got ", images.shape());
        const std::int64_t N = images.size(0);
        const tensor source = images.to(weight.device()).contiguous();
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(source)) {
            // The patches as a strided view of the images, copied by one element-wise kernel.
            const tensor& patches = detail::reuse(c.patches, {N, g * g, features()}, source);
            patches.view({N, g, g, 3, P, P}).copy_from(source.view({N, 3, g, P, g, P}).permute({0, 2, 4, 1, 3, 5}));
            return finish_forward(patches, c);
        }
#endif
        const float* image = source.data<float>();
        const tensor& patches = detail::reuse(c.patches, {N, g * g, features()});
        float* out = patches.data<float>();
        detail::parallel_for(N * g * g, features(), [&](std::int64_t first, std::int64_t last) {
            for (std::int64_t item = first; item < last; ++item) {
                const std::int64_t n = item / (g * g), py = item % (g * g) / g, px = item % g;
                float* dst = out + item * 3 * P * P;
                for (std::int64_t ch = 0; ch < 3; ++ch)
                    for (std::int64_t ky = 0; ky < P; ++ky)
                        std::memcpy(dst + (ch * P + ky) * P,
                                    image + ((n * 3 + ch) * R + py * P + ky) * R + px * P,
                                    static_cast<std::size_t>(P) * sizeof(float));
            }
        });
        return finish_forward(patches, c);
    }

    /// patches [N, g², 3P²] -> x [N, T, W], kept in `c.output`.
    const tensor& finish_forward(const tensor& patches, cache& c) const {
        const std::int64_t W = width(), T = positional.size(0), N = patches.size(0), G = patches.size(1);
        const tensor& z = detail::reuse(c.projected, {N, G, W}, patches);
        if (weight16.defined())
            matmul_into(z.view({N * G, W}), detail::converted(c.patches16, patches, weight16.dtype()).view({N * G, features()}),
                        weight16.view({W, features()}).t());
        else
            matmul_into(z.view({N * G, W}), patches.view({N * G, features()}), weight.view({W, features()}).t());
        const tensor& x = detail::reuse(c.output, {N, T, W}, patches);
        assign(x.slice(1, 0, 1), class_embedding + positional.slice(0, 0, 1));
        assign(x.slice(1, 1, T), z + positional.slice(0, 1, T));
        return x;
    }

    /// dx [N, T, W]: accumulates the gradients of the kernel, class and positional embeddings.
    void backward(const tensor& dx, cache& c) const {
        const std::int64_t W = width(), T = positional.size(0), N = c.output.size(0);
        detail::require_buffer(dx, {N, T, W}, "patch_embedding backward", "gradient", weight.device());
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(dx)) {
            detail::cuda::add_column_sums(grad_positional, dx, N, T * W, T * W);
            detail::cuda::add_column_sums(grad_class_embedding, dx, N, W, T * W);
        } else
#endif
        {
            const float* g = dx.data<float>();
            detail::add_column_sums(grad_positional.data<float>(), g, N, T * W, T * W);
            detail::add_column_sums(grad_class_embedding.data<float>(), g, N, W, T * W);
        }
        const tensor& dz = detail::reuse(c.grad_projected, c.projected.shape(), dx);
        dz.copy_from(dx.slice(1, 1, T));
        if (weight16.defined())
            matmul_into(grad_weight.view({W, features()}), detail::converted(c.grad16, dz, weight16.dtype()).view({-1, W}).t(),
                        c.patches16.view({-1, features()}), {.residual = grad_weight.view({W, features()})});
        else
            matmul_into(grad_weight.view({W, features()}), dz.view({-1, W}).t(), c.patches.view({-1, features()}),
                        {.residual = grad_weight.view({W, features()})});
    }
};

} // namespace clip::train
