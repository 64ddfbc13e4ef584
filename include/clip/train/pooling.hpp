// clip/train/pooling.hpp: one token per sequence, the class token (ViT) or the EOT token (text).
//
//   forward   pooled[m] = x[m, position[m]]          x [M, T, W] -> pooled [M, W]
//   backward  dx = 0 except dx[m, position[m]] = dpooled[m]
// The ViT pools position 0; the text tower pools argmax(ids[m]), the first occurrence of the
// highest id (the EOT token), as OpenAI's `x[arange(M), text.argmax(-1)]`.
#pragma once

#include <algorithm>
#include <cstring>

#include "clip/train/buffers.hpp"

namespace clip::train {

struct token_pooling {
    struct cache {
        detail::buffer positions; // [M] i64
        detail::buffer output;    // [M, W]
        detail::buffer device_positions; // the positions on the tokens' GPU
        shape input;              // [M, T, W]
    };

    /// Pools the class token (position 0) of every sequence.
    static const tensor& class_token(const tensor& x, cache& c) {
        detail::check<shape_error>(x.ndim() == 3, "token_pooling: tokens must be [M, T, W], got ", x.shape());
        std::fill_n(detail::reuse(c.positions, {x.size(0)}, dtype::i64).data<std::int64_t>(), x.size(0), 0);
        return gather(x, c);
    }

    /// Pools the token at argmax(ids[m]) of every sequence; ids [M, T] i32 or i64.
    static const tensor& eot_token(const tensor& x, const tensor& ids, cache& c) {
        detail::check<shape_error>(ids.ndim() == 2 && x.ndim() == 3 && ids.size(0) == x.size(0) && ids.size(1) == x.size(1),
                                   "token_pooling: ids of shape ", ids.shape(), " do not fit tokens of shape ", x.shape());
        eot_positions(ids, c);
        return gather(x, c);
    }

    /// The first position of the highest id of each row of ids [M, T] (OpenAI's
    /// `text.argmax(-1)`), kept in `c.positions` for `gather`.
    static const tensor& eot_positions(const tensor& ids, cache& c) {
        detail::check<shape_error>(ids.ndim() == 2, "token_pooling: ids must be [M, T], got ", ids.shape());
        const std::int64_t M = ids.size(0), T = ids.size(1);
        const tensor& positions = detail::reuse(c.positions, {M}, dtype::i64);
        std::int64_t* position = positions.data<std::int64_t>();
        detail::visit_dtype(ids.dtype(), [&]<class I>() {
            if constexpr (std::is_same_v<I, std::int64_t> || std::is_same_v<I, std::int32_t>) {
                const I* row = static_cast<const I*>(ids.data_ptr());
                const std::int64_t along = ids.stride(1);
                for (std::int64_t m = 0; m < M; ++m, row += ids.stride(0)) {
                    std::int64_t best = 0;
                    for (std::int64_t t = 1; t < T; ++t)
                        if (row[t * along] > row[best * along]) best = t;
                    position[m] = best;
                }
            } else {
                throw dtype_error(detail::message("token_pooling: ids must be i32 or i64, got ", ids.dtype()));
            }
        });
        return positions;
    }

    /// pooled[m] = x[m, c.positions[m]] for tokens x [M, T, W].
    static const tensor& gather(const tensor& x, cache& c) {
        detail::require_buffer(x, x.shape(), "token_pooling", "tokens", x.device());
        detail::check<shape_error>(x.ndim() == 3 && c.positions.defined() && c.positions.size(0) == x.size(0),
                                   "token_pooling: tokens must be [M, T, W] with one position per sequence, got ",
                                   x.shape());
        const std::int64_t M = x.size(0), T = x.size(1), W = x.size(2);
        c.input = x.shape();
        const tensor& out = detail::reuse(c.output, {M, W}, x);
        const std::int64_t* position = c.positions.data<std::int64_t>();
        for (std::int64_t m = 0; m < M; ++m)
            detail::check<index_error>(position[m] >= 0 && position[m] < T, "token_pooling: position ", position[m],
                                       " is outside the ", T, " tokens");
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(x)) {
            const tensor& at = detail::reuse(c.device_positions, {M}, dtype::i64, x.device());
            detail::cuda::copy(at.data_ptr(), position, static_cast<std::size_t>(M) * sizeof(std::int64_t), x.device().index);
            detail::cuda::pool_rows(x, at, out, false);
            return out;
        }
#endif
        for (std::int64_t m = 0; m < M; ++m) {
            std::memcpy(out.data<float>() + m * W, x.data<float>() + (m * T + position[m]) * W,
                        static_cast<std::size_t>(W) * sizeof(float));
        }
        return out;
    }

    /// dpooled [M, W] -> dx [M, T, W] (written: zero except the pooled rows).
    static void backward(const tensor& dpooled, const cache& c, const tensor& dx) {
        const std::int64_t M = c.input[0], T = c.input[1], W = c.input[2];
        detail::require_buffer(dpooled, {M, W}, "token_pooling backward", "gradient", c.output.device());
        detail::require_buffer(dx, c.input, "token_pooling backward", "input gradient", c.output.device());
#if defined(CLIP_WITH_CUDA)
        if (detail::on_gpu(dx)) {
            detail::cuda::zero(dx.data_ptr(), dx.nbytes(), dx.device().index);
            detail::cuda::pool_rows(dx, c.device_positions, dpooled, true);
            return;
        }
#endif
        std::memset(dx.data_ptr(), 0, dx.nbytes());
        const std::int64_t* position = c.positions.data<std::int64_t>();
        for (std::int64_t m = 0; m < M; ++m)
            std::memcpy(dx.data<float>() + (m * T + position[m]) * W, dpooled.data<float>() + m * W,
                        static_cast<std::size_t>(W) * sizeof(float));
    }

};

} // namespace clip::train
