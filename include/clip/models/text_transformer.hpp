// clip/models/text_transformer.hpp: the text tower of OpenAI CLIP (`encode_text`).
//
//   x = token_embedding[text] + positional_embedding            [M, ctx, W]
//   x = transformer(x) with the causal mask (token i attends to j ≤ i)
//   features = ln_final(x[m, argmax(text[m])]) · text_projection  [M, E]
// Pooling takes the position of the highest token id (the EOT token; the first one on ties).
// ln_final is per position, so it runs on the pooled rows only; so does the last block past its
// keys and values (its products for M rows instead of M·ctx).
//
// With the causal mask, position i depends on positions ≤ i only, so the positions after the
// last pooled one in the batch cannot change any output: the tower runs on the first
// max(eot) + 1 positions (a caption of 12 tokens costs 13 positions, not 77). When traced, it runs
// all ctx positions so that the intermediates have the reference's shapes. Intermediates:
// txt.embed, txt.block.K, txt.ln_final (all positions, only when traced), txt.eot_index,
// txt.pooled.
#pragma once

#include <algorithm>

#include "clip/expr/node.hpp"
#include "clip/models/config.hpp"
#include "clip/nn/transformer.hpp"
#include "clip/ops/embedding.hpp"
#include "clip/ops/reduce.hpp"

namespace clip {

struct text_transformer {
    text_config config;
    tensor token_embedding;      // [V, W]
    tensor positional_embedding; // [ctx, W]
    nn::transformer transformer;
    nn::layer_norm ln_final;
    tensor text_projection;      // [W, E]
    packed_weights projection_packed;

    static text_transformer load(nn::parameter_source& source, const clip_config& c) {
        const text_config& t = c.text;
        text_transformer m;
        m.config = t;
        m.token_embedding = source.get("token_embedding.weight", {t.vocab_size, t.width});
        m.positional_embedding = source.get("positional_embedding", {t.context_length, t.width});
        m.transformer = nn::transformer::load(source, "transformer", t.width, t.layers, t.heads, c.act, c.layer_norm_eps);
        m.ln_final = nn::layer_norm::load(source, "ln_final", t.width, c.layer_norm_eps);
        m.text_projection = source.get("text_projection", {t.width, c.embed_dim});
        m.projection_packed = packed_weights(m.text_projection);
        return m;
    }

    /// The tower with int8 transformer products (embeddings and projection stay f32).
    text_transformer quantized() const {
        text_transformer m = *this;
        m.transformer = transformer.quantized();
        return m;
    }

    /// The tower with its weights on `where`.
    text_transformer to(device where, dtype weights = dtype::f32) const {
        text_transformer m = *this;
        m.token_embedding = token_embedding.to(where);
        m.positional_embedding = positional_embedding.to(where);
        m.transformer = transformer.to(where, weights);
        m.ln_final = ln_final.to(where);
        m.text_projection = text_projection.to(where).to(weights);
        m.projection_packed = packed_weights(m.text_projection);
        return m;
    }

    /// text: [M, ctx] token ids (i32 or i64, on any device) -> features [M, E] on the weights' device
    tensor operator()(const tensor& ids, const nn::trace* observer = nullptr) const {
        const tensor text = ids.to(device::cpu()); // positions are decided on the host
        const std::int64_t M = text.size(0);
        const tensor eot = argmax(text, -1); // [M]
        const std::int64_t* position = eot.data<std::int64_t>();
        const bool traced = observer && *observer;
        const std::int64_t used = traced || M == 0 ? text.size(1) : *std::max_element(position, position + M) + 1;
        const tensor x = eval(embedding(token_embedding, text.slice(1, 0, used)) +
                              positional_embedding.slice(0, 0, used)); // [M, used, W]
        nn::record(observer, "txt.embed", x);
        nn::record(observer, "txt.eot_index", eot);
        const std::vector<std::int64_t> pooled_at(position, position + M);
        tensor last; // [M, W]: the last block's output at each EOT
        if (traced) {
            const tensor encoded = transformer(x, true, observer, "txt");
            nn::record(observer, "txt.ln_final", ln_final(encoded));
            last = nn::rows_at(encoded, pooled_at);
        } else {
            last = transformer.at_positions(x, pooled_at, true); // the last block for the EOT rows only
        }
        const tensor pooled = ln_final(last);
        nn::record(observer, "txt.pooled", pooled);
        return matmul(pooled, projection_packed);
    }
};

} // namespace clip
