// clip/models/modified_resnet.hpp: OpenAI CLIP's ModifiedResNet (`visual.*` of RN models).
//
//   stem:  3×(3×3 conv + BN + ReLU) (the first with stride 2), then AvgPool 2
//   layer1..4: Bottlenecks; the first block of layers 2-4 has stride 2, done by an AvgPool
//     after the 3×3 conv ("anti-aliased"), and its identity branch is AvgPool → 1×1 conv → BN
//   attnpool: tokens [HW, C] with their mean prepended, + positional embedding; one multi-head
//     attention whose only query is the mean token; c_proj to the embedding [N, E]
// BatchNorm (eval mode, eps 1e-5) is folded into the preceding convolution at load time:
//   w' = w · γ / sqrt(var + eps),  b' = β − mean · γ / sqrt(var + eps),
// so every conv + BN + ReLU is one oneDNN primitive with the ReLU as a post-op. Activations are
// kept channels-last (NHWC memory), where oneDNN runs direct convolutions.
// Intermediates: vis.stem.relu1..3, vis.stem, vis.layer1..4, vis.attnpool.
#pragma once

#include <cmath>
#include <optional>
#include <vector>

#include "clip/expr/node.hpp"
#include "clip/models/config.hpp"
#include "clip/nn/linear.hpp"
#include "clip/nn/trace.hpp"
#include "clip/ops/attention.hpp"
#include "clip/ops/conv.hpp"
#include "clip/ops/reduce.hpp"
#include "clip/ops/rowwise.hpp"

namespace clip {

/// A bias-free convolution followed by an eval-mode BatchNorm, folded into one convolution.
struct conv_bn {
    packed_weights weight; // [O, I, k, k] with the BatchNorm scale folded in
    conv2d_options options;

    static conv_bn load(nn::parameter_source& source, const std::string& conv, const std::string& bn, std::int64_t in,
                        std::int64_t out, std::int64_t kernel, std::int64_t padding, bool relu) {
        const tensor w = source.get(conv + ".weight", {out, in, kernel, kernel});
        const tensor gamma = source.get(bn + ".weight", {out}), beta = source.get(bn + ".bias", {out});
        const tensor mean = source.get(bn + ".running_mean", {out}), var = source.get(bn + ".running_var", {out});
        const tensor scale = eval(gamma * rsqrt(var + 1e-5f));                 // [O]
        const tensor folded = eval(w * scale.view({out, 1, 1, 1}));            // [O, I, k, k]
        conv_bn c;
        c.weight = packed_weights(folded);
        c.options = {.bias = eval(beta - mean * scale), .padding = {padding, padding},
                     .act = relu ? activation::relu : activation::none};
        return c;
    }

    conv_bn to(device where, dtype weights = dtype::f32) const {
        conv_bn c = *this;
        tensor w = weight.plain().to(where).to(weights);
#if defined(CLIP_WITH_CUDNN)
        // cuDNN reads kernels channels-last (KRSC): laid out so once here, not copied per call.
        if (where.is_cuda() && w.dtype() == dtype::f32 && w.size(2) * w.size(3) > 1) w = to_channels_last(w);
#endif
        c.weight = packed_weights(w);
        c.options.bias = options.bias.to(where);
        return c;
    }

    tensor operator()(const tensor& x) const { return conv2d(x, weight, options); }
};

struct bottleneck {
    conv_bn conv1, conv2, conv3;
    std::optional<conv_bn> downsample;
    std::int64_t stride = 1;

    static bottleneck load(nn::parameter_source& source, const std::string& prefix, std::int64_t in,
                           std::int64_t planes, std::int64_t stride) {
        bottleneck b;
        b.conv1 = conv_bn::load(source, prefix + ".conv1", prefix + ".bn1", in, planes, 1, 0, true);
        b.conv2 = conv_bn::load(source, prefix + ".conv2", prefix + ".bn2", planes, planes, 3, 1, true);
        b.conv3 = conv_bn::load(source, prefix + ".conv3", prefix + ".bn3", planes, planes * 4, 1, 0, false);
        if (stride > 1 || in != planes * 4)
            b.downsample = conv_bn::load(source, prefix + ".downsample.0", prefix + ".downsample.1", in, planes * 4, 1,
                                         0, false);
        b.stride = stride;
        return b;
    }

    bottleneck to(device where, dtype weights = dtype::f32) const {
        bottleneck b = *this;
        b.conv1 = conv1.to(where, weights);
        b.conv2 = conv2.to(where, weights);
        b.conv3 = conv3.to(where, weights);
        if (downsample) b.downsample = downsample->to(where, weights);
        return b;
    }

    /// x: [N, C, H, W] -> [N, 4·planes, H/stride, W/stride]
    tensor operator()(const tensor& x) const {
        tensor out = conv2(conv1(x));
        if (stride > 1) out = avg_pool2d(out, {.kernel = {stride, stride}});
        out = conv3(out);
        tensor identity = x;
        if (downsample) identity = (*downsample)(stride > 1 ? avg_pool2d(x, {.kernel = {stride, stride}}) : x);
        assign(out, relu(out + identity)); // in place: keeps out's (channels-last) layout
        return out;
    }
};

struct attention_pool {
    tensor positional_embedding; // [HW + 1, C]
    nn::linear q_proj, k_proj, v_proj, c_proj;
    std::int64_t heads = 1;

    static attention_pool load(nn::parameter_source& source, std::int64_t grid, std::int64_t width,
                               std::int64_t heads, std::int64_t embed) {
        return {source.get("visual.attnpool.positional_embedding", {grid * grid + 1, width}),
                nn::linear::load(source, "visual.attnpool.q_proj", width, width),
                nn::linear::load(source, "visual.attnpool.k_proj", width, width),
                nn::linear::load(source, "visual.attnpool.v_proj", width, width),
                nn::linear::load(source, "visual.attnpool.c_proj", width, embed), heads};
    }

    attention_pool to(device where, dtype weights = dtype::f32) const {
        return {positional_embedding.to(where), q_proj.to(where, weights), k_proj.to(where, weights), v_proj.to(where, weights),
                c_proj.to(where, weights), heads};
    }

    /// x: [N, C, H, W] -> [N, E]
    tensor operator()(const tensor& x) const {
        const std::int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3), S = HW + 1, D = C / heads;
        const tensor tokens = x.permute({0, 2, 3, 1}).reshape({N, HW, C}); // [N, HW, C], a view when channels-last
        const tensor seq = tensor::empty({N, S, C}, dtype::f32, x.device());
        seq.slice(1, 0, 1).copy_from(mean(tokens, 1, true));
        seq.slice(1, 1, S).copy_from(tokens);
        assign(seq, seq + positional_embedding);
        const tensor q = q_proj(seq.slice(1, 0, 1)).view({N, 1, heads, D}).transpose(1, 2); // [N, H, 1, D]
        const tensor k = k_proj(seq).view({N, S, heads, D}).transpose(1, 2);                // [N, H, S, D]
        const tensor v = v_proj(seq).view({N, S, heads, D}).transpose(1, 2);                // [N, H, S, D]
        const tensor context = attention(q, k, v, 1.0f / std::sqrt(static_cast<float>(D)), false); // [N, 1, C]
        return c_proj(context.view({N, C}));
    }
};

struct modified_resnet {
    vision_config config;
    conv_bn stem1, stem2, stem3;
    std::vector<std::vector<bottleneck>> stages;
    attention_pool attnpool;

    static modified_resnet load(nn::parameter_source& source, const clip_config& c) {
        const vision_config& v = c.vision;
        const std::int64_t width = v.width;
        modified_resnet m;
        m.config = v;
        m.stem1 = conv_bn::load(source, "visual.conv1", "visual.bn1", 3, width / 2, 3, 1, true);
        m.stem1.options.stride = {2, 2};
        m.stem2 = conv_bn::load(source, "visual.conv2", "visual.bn2", width / 2, width / 2, 3, 1, true);
        m.stem3 = conv_bn::load(source, "visual.conv3", "visual.bn3", width / 2, width, 3, 1, true);
        std::int64_t in = width;
        for (int stage = 0; stage < 4; ++stage) {
            const std::int64_t planes = width << stage;
            std::vector<bottleneck> blocks;
            for (std::int64_t i = 0; i < v.resnet_layers[static_cast<std::size_t>(stage)]; ++i) {
                const std::string prefix = "visual.layer" + std::to_string(stage + 1) + "." + std::to_string(i);
                blocks.push_back(bottleneck::load(source, prefix, in, planes, i == 0 && stage > 0 ? 2 : 1));
                in = planes * 4;
            }
            m.stages.push_back(std::move(blocks));
        }
        m.attnpool = attention_pool::load(source, v.resnet_grid(), v.resnet_embed_width(), v.heads, c.embed_dim);
        return m;
    }

    /// The tower with int8 attention-pool products (the convolutions stay f32).
    modified_resnet quantized() const {
        modified_resnet m = *this;
        m.attnpool = {attnpool.positional_embedding, attnpool.q_proj.quantized(), attnpool.k_proj.quantized(),
                      attnpool.v_proj.quantized(), attnpool.c_proj.quantized(), attnpool.heads};
        return m;
    }

    /// The tower with its weights on `where`.
    modified_resnet to(device where, dtype weights = dtype::f32) const {
        modified_resnet m = *this;
        m.stem1 = stem1.to(where, weights);
        m.stem2 = stem2.to(where, weights);
        m.stem3 = stem3.to(where, weights);
        for (auto& stage : m.stages)
            for (bottleneck& b : stage) b = b.to(where, weights);
        m.attnpool = attnpool.to(where, weights);
        return m;
    }

    /// images: [N, 3, R, R] f32 -> features [N, E]
    tensor operator()(const tensor& images, const nn::trace* observer = nullptr) const {
        tensor x = stem1(to_channels_last(images)); // channels-last from here on
        nn::record(observer, "vis.stem.relu1", x);
        x = stem2(x);
        nn::record(observer, "vis.stem.relu2", x);
        x = stem3(x);
        nn::record(observer, "vis.stem.relu3", x);
        x = avg_pool2d(x, {.kernel = {2, 2}});
        nn::record(observer, "vis.stem", x);
        for (std::size_t stage = 0; stage < stages.size(); ++stage) {
            for (const bottleneck& block : stages[stage]) x = block(x);
            nn::record(observer, "vis.layer" + std::to_string(stage + 1), x);
        }
        const tensor features = attnpool(x);
        nn::record(observer, "vis.attnpool", features);
        return features;
    }
};

} // namespace clip
