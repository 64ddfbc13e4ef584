// clip/train/modified_resnet.hpp: the trainable ModifiedResNet image tower (`visual.*` of RN models).
//
//   forward   stem:        x = pool₂(cbr3(cbr2(cbr1(images))))        cbr = ReLU(BN(conv)), cbr1 stride 2
//             Bottleneck:  a = cbr1(x) (1×1),  b = cbr2(a) (3×3),  b = pool_s(b) when stride s > 1
//                          identity = x, or BN(conv(pool_s(x))) (downsample.0/.1) when the shape changes
//                          y = ReLU(BN3(conv3(b)) + identity)          (one batch-norm call with the residual)
//             features = attnpool(x)                                    [N, E]
//   backward  the same layers in reverse. In a Bottleneck the gradient g = dy ⊙ [y > 0] goes
//             both ways: through bn3, conv3, (pool), cbr2, cbr1 into dx (written), and through
//             the downsample branch (or directly) into dx (added).
// Activations are channels-last [N, H, W, C] buffers throughout (the images are copied into one
// first, on the device of the parameters); each Bottleneck keeps its convolutions' and batch norms' outputs, and the gradient
// buffers are shared by all blocks (two for the residual stream, three inside a block).
//
// Mode: `training` is PyTorch's module.training. true (the default, as OpenCLIP trains ResNets):
// every BatchNorm normalises with its batch's statistics and updates its running statistics;
// false (eval): the running statistics normalise, nothing is updated, and the features equal the
// inference model's (models/modified_resnet.hpp, where BatchNorm is folded into the convolutions)
// up to float rounding.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "clip/train/attention_pool.hpp"
#include "clip/train/batch_norm.hpp"
#include "clip/train/conv.hpp"
#include "clip/train/pool.hpp"

namespace clip::train {

/// A bias-free convolution, a BatchNorm and optionally a ReLU (after an optional residual).
struct conv_batch_norm {
    conv2d conv;
    batch_norm bn;
    bool relu = true;

    struct cache {
        conv2d::cache conv;
        batch_norm::cache bn; // its output is the unit's
    };

    static conv_batch_norm bind(const parameter_store& store, const std::string& conv_name, const std::string& bn_name,
                                std::int64_t stride, std::int64_t padding, bool relu) {
        return {conv2d::bind(store, conv_name, stride, padding), batch_norm::bind(store, bn_name), relu};
    }

    /// x [N, H, W, C] -> act(BN(conv(x)) + residual) [N, H', W', O], kept in c.bn.output.
    const tensor& forward(const tensor& x, cache& c, bool training, const tensor& residual = {}) const {
        return bn.forward(conv.forward(x, c.conv), c.bn, training, residual, relu);
    }

    /// dy [N, H', W', O] (consumed: masked by the ReLU, so that it is then the residual's
    /// gradient) -> dx [N, H, W, C] (written; skipped when undefined). The gradient at the
    /// convolution's output goes to `through` when given, else over dy.
    void backward(const tensor& dy, cache& c, const tensor& dx, const tensor& through = {}) const {
        const tensor& grad_conv = through.defined() ? through : dy;
        bn.backward(dy, c.bn, grad_conv);
        conv.backward(grad_conv, c.conv, dx);
    }
};

struct bottleneck {
    conv_batch_norm conv1, conv2, conv3; // 1×1, 3×3, 1×1 (conv3's ReLU comes after the residual)
    std::optional<conv_batch_norm> downsample;
    avg_pool pool;
    std::int64_t stride = 1;

    struct cache {
        tensor input; // x [N, H, W, C]: the previous block's output
        conv_batch_norm::cache conv1, conv2, conv3, downsample;
        avg_pool::cache pool, pool_identity;
    };
    /// Gradient buffers of one block's backward pass, shared by all blocks.
    struct scratch {
        detail::buffer wide;   // [N, h, w, 4·planes]: at conv3's output, then at the downsample's input
        detail::buffer first;  // [N, h, w, planes] or [N, H, W, planes]
        detail::buffer second; // [N, H, W, planes]
    };

    static bottleneck bind(const parameter_store& store, const std::string& prefix, std::int64_t in,
                           std::int64_t planes, std::int64_t stride) {
        bottleneck b;
        b.conv1 = conv_batch_norm::bind(store, prefix + ".conv1", prefix + ".bn1", 1, 0, true);
        b.conv2 = conv_batch_norm::bind(store, prefix + ".conv2", prefix + ".bn2", 1, 1, true);
        b.conv3 = conv_batch_norm::bind(store, prefix + ".conv3", prefix + ".bn3", 1, 0, true);
        b.pool = avg_pool{stride};
        b.stride = stride;
        if (stride > 1 || in != 4 * planes)
            b.downsample = conv_batch_norm::bind(store, prefix + ".downsample.0", prefix + ".downsample.1", 1, 0, false);
        return b;
    }

    /// x [N, H, W, C] -> [N, H/s, W/s, 4·planes], kept in c.conv3.bn.output; x must live until
    /// backward.
    const tensor& forward(const tensor& x, cache& c, bool training) const {
        c.input = x;
        const tensor* b = &conv2.forward(conv1.forward(x, c.conv1, training), c.conv2, training);
        if (stride > 1) b = &pool.forward(*b, c.pool);
        tensor identity = x;
        if (downsample)
            identity = downsample->forward(stride > 1 ? pool.forward(x, c.pool_identity) : x, c.downsample, training);
        return conv3.forward(*b, c.conv3, training, identity);
    }

    /// dy [N, h, w, 4·planes] (consumed) -> dx [N, H, W, C] (written).
    void backward(const tensor& dy, cache& c, const tensor& dx, scratch& s) const {
        // The main branch writes dx. A buffer is reshaped only once what it held has been read.
        const tensor& grad_z3 = detail::reuse(s.wide, dy.shape(), dy);                           // [N, h, w, 4p]
        const tensor& grad_pooled = detail::reuse(s.first, c.conv3.conv.input.shape(), dy);      // [N, h, w, p]
        conv3.backward(dy, c.conv3, grad_pooled, grad_z3); // dy is now g, the residual's gradient too
        const tensor* grad_b = &grad_pooled;
        if (stride > 1) {
            const tensor& unpooled = detail::reuse(s.second, c.conv2.bn.output.shape(), dy); // [N, H, W, p]
            pool.backward(grad_pooled, c.pool, unpooled);
            grad_b = &unpooled;
        }
        const tensor& grad_a = detail::reuse(stride > 1 ? s.first : s.second, c.conv1.bn.output.shape(), dy); // [N, H, W, p]
        conv2.backward(*grad_b, c.conv2, grad_a);
        conv1.backward(grad_a, c.conv1, dx);
        // The identity branch adds g, or what the downsample makes of it.
        if (!downsample) {
            assign(dx, dx + dy);
            return;
        }
        const tensor& grad_identity = detail::reuse(s.wide, c.downsample.conv.input.shape(), dy); // [N, h, w, C] or [N, H, W, C]
        downsample->backward(dy, c.downsample, grad_identity);
        if (stride > 1) pool.backward(grad_identity, c.pool_identity, dx, true);
        else assign(dx, dx + grad_identity);
    }
};

struct modified_resnet {
    conv_batch_norm stem1, stem2, stem3; // 3 -> W/2 (stride 2), W/2 -> W/2, W/2 -> W
    avg_pool stem_pool;
    std::vector<bottleneck> blocks; // layer1.0, layer1.1, ..., layer4.*
    attention_pool attnpool;
    bool training = true;

    struct cache {
        detail::buffer images; // [N, R, R, 3]
        conv_batch_norm::cache stem1, stem2, stem3;
        avg_pool::cache stem_pool;
        std::vector<bottleneck::cache> blocks;
        attention_pool::cache attnpool; // its c.output is the features [N, E]
        bottleneck::scratch scratch;
        detail::buffer grad_stream, grad_other; // the gradient between blocks, ping-pong
    };

    static modified_resnet bind(const parameter_store& store) {
        const vision_config& v = store.config().vision;
        detail::check(v.kind == vision_kind::resnet, "train::modified_resnet: the store holds a ViT image tower");
        const std::int64_t width = v.width;
        modified_resnet m;
        m.stem1 = conv_batch_norm::bind(store, "visual.conv1", "visual.bn1", 2, 1, true);
        m.stem2 = conv_batch_norm::bind(store, "visual.conv2", "visual.bn2", 1, 1, true);
        m.stem3 = conv_batch_norm::bind(store, "visual.conv3", "visual.bn3", 1, 1, true);
        m.stem_pool = avg_pool{2};
        m.attnpool = attention_pool::bind(store, v.heads);
        std::int64_t in = width;
        for (std::size_t stage = 0; stage < 4; ++stage) {
            const std::int64_t planes = width << stage;
            for (std::int64_t i = 0; i < v.resnet_layers[stage]; ++i) {
                const std::string prefix = "visual.layer" + std::to_string(stage + 1) + "." + std::to_string(i);
                m.blocks.push_back(bottleneck::bind(store, prefix, in, planes, i == 0 && stage > 0 ? 2 : 1));
                in = 4 * planes;
            }
        }
        return m;
    }

    /// The features of the last forward pass [N, E].
    static const tensor& features(const cache& c) noexcept { return c.attnpool.c.output; }

    /// images [N, 3, R, R] f32 (any layout) -> features [N, E] (before normalisation), kept in
    /// c.attnpool.c.output.
    const tensor& forward(const tensor& images, cache& c) const {
        detail::require_defined(images, "modified_resnet");
        detail::check<dtype_error>(images.dtype() == dtype::f32, "modified_resnet: images must be f32, got ",
                                   images.dtype());
        detail::check<shape_error>(images.ndim() == 4 && images.size(1) == 3,
                                   "modified_resnet: images must be [N, 3, R, R], got ", images.shape());
        const std::int64_t N = images.size(0), R = images.size(2);
        const device where = stem1.conv.weight.device();
        const tensor& pixels = detail::reuse(c.images, {N, R, images.size(3), 3}, dtype::f32, where); // channels-last copy
        conv2d::nchw(pixels).copy_from(images.device() == where ? images : images.to(where));
        const tensor* x = &stem1.forward(pixels, c.stem1, training);
        x = &stem3.forward(stem2.forward(*x, c.stem2, training), c.stem3, training);
        x = &stem_pool.forward(*x, c.stem_pool);
        c.blocks.resize(blocks.size());
        for (std::size_t i = 0; i < blocks.size(); ++i) x = &blocks[i].forward(*x, c.blocks[i], training);
        return attnpool.forward(*x, c.attnpool);
    }

    /// grad_features [N, E]: accumulates the gradients of every visual parameter.
    void backward(const tensor& grad_features, cache& c) const {
        detail::buffer* stream = &c.grad_stream;
        detail::buffer* other = &c.grad_other;
        const shape last = blocks.empty() ? c.stem_pool.output.shape() : c.blocks.back().conv3.bn.output.shape();
        attnpool.backward(grad_features, c.attnpool, detail::reuse(*stream, last, grad_features)); // [N, R/32, R/32, 32·W]
        for (std::size_t i = blocks.size(); i-- > 0;) {
            const tensor& grad_input = detail::reuse(*other, c.blocks[i].input.shape(), grad_features); // the block's input's
            blocks[i].backward(*stream, c.blocks[i], grad_input, c.scratch);
            std::swap(stream, other);
        }
        bottleneck::scratch& s = c.scratch;
        const tensor& unpooled = detail::reuse(s.first, c.stem3.bn.output.shape(), grad_features);    // [N, R/2, R/2, W]
        stem_pool.backward(*stream, c.stem_pool, unpooled);
        const tensor& grad_relu2 = detail::reuse(s.second, c.stem2.bn.output.shape(), grad_features); // [N, R/2, R/2, W/2]
        stem3.backward(unpooled, c.stem3, grad_relu2);
        const tensor& grad_relu1 = detail::reuse(s.wide, c.stem1.bn.output.shape(), grad_features);   // [N, R/2, R/2, W/2]
        stem2.backward(grad_relu2, c.stem2, grad_relu1);
        stem1.backward(grad_relu1, c.stem1, {}); // no gradient for the images
    }
};

} // namespace clip::train
