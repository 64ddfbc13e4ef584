// clip/train/model.hpp: a trainable CLIP: both towers, the normalisation and the loss.
//
//   forward   i = normalize(visual(images)),  t = normalize(text(ids)),  loss = ClipLoss or SigLipLoss
//   backward  dloss = grad_loss  ->  di, dt, d logit_scale (, d logit_bias)  ->  both towers
// Every gradient is added to the parameter store's; a training step is
//
//     store.zero_grad();
//     const float loss = model.forward(images, ids);
//     model.backward();
//     clip::train::clip_grad_norm(store, 1.0);        // optional
//     optimizer.step(schedule(step));
//     clip::train::clamp_logit_scale(store);
//
// The model keeps every activation its backward pass needs, in buffers reused from one step to
// the next: once a step has run at the largest batch (and caption length) it will see, a step
// allocates no tensor memory. The store must outlive the model. The features and logits of the
// last forward pass stay readable until the next one.
//
// The image tower is a ViT or a ModifiedResNet, as the store's config says. A model starts in
// training mode (PyTorch's model.train(), what OpenCLIP trains with): a ResNet's BatchNorm layers
// normalise with batch statistics and update their running statistics in the store on every
// forward pass. set_training(false) is model.eval(): the running statistics normalise and stay
// as they are. ViT and text towers have neither BatchNorm nor dropout; the mode does not change
// them.
#pragma once

#include <variant>

#include "clip/train/loss.hpp"
#include "clip/train/modified_resnet.hpp"
#include "clip/train/normalize.hpp"
#include "clip/train/text_transformer.hpp"
#include "clip/train/vision_transformer.hpp"

namespace clip::train {

/// A trainable image tower and the buffers of its last forward pass.
using image_tower = std::variant<vision_transformer, modified_resnet>;
using image_tower_cache = std::variant<vision_transformer::cache, modified_resnet::cache>;

class clip_model {
public:
    /// A model over the parameters of `store` (which it reads and whose gradients it writes).
    explicit clip_model(const parameter_store& store)
        : store_(&store), visual_(bind_visual(store)), text_(text_transformer::bind(store)) {
        if (std::holds_alternative<modified_resnet>(visual_)) visual_cache_.emplace<modified_resnet::cache>();
    }
    /// A model keeps a pointer to its store: a temporary one would dangle.
    explicit clip_model(const parameter_store&&) = delete;

    /// PyTorch's model.train() (true, the default) or model.eval() (false); see above.
    void set_training(bool training) {
        if (auto* resnet = std::get_if<modified_resnet>(&visual_)) resnet->training = training;
        training_ = training;
    }
    bool training() const noexcept { return training_; }

    /// images [N, 3, R, R] f32 and ids [N, ctx] (pair k matches image k with text k) -> loss.
    float forward(const tensor& images, const tensor& ids) {
        detail::check<shape_error>(images.ndim() == 4 && ids.ndim() == 2 && images.size(0) == ids.size(0),
                                   "clip_model: ", images.ndim() == 4 ? images.size(0) : -1, " images and ",
                                   ids.ndim() == 2 ? ids.size(0) : -1, " texts: a batch needs one text per image (images ",
                                   images.shape(), ", ids ", ids.shape(), ")");
        const tensor& i = normalize_.forward(encode_image(images), image_norm_);
        const tensor& t = normalize_.forward(text_.forward(ids, text_cache_), text_norm_);
        const float scale = store_->at("logit_scale").value.item<float>();
        if (store_->kind() == objective::siglip)
            return siglip_.forward(i, t, scale, store_->at("logit_bias").value.item<float>(), siglip_cache_);
        return clip_.forward(i, t, scale, clip_cache_);
    }

    /// Adds grad_loss · d loss / d θ to every parameter's gradient (forward must come first).
    void backward(float grad_loss = 1.0f) {
        const tensor& di = detail::reuse(grad_image_, image_norm_.output.shape());
        const tensor& dt = detail::reuse(grad_text_, text_norm_.output.shape());
        float* grad_scale = store_->at("logit_scale").grad.data<float>();
        if (store_->kind() == objective::siglip) {
            const siglip_loss::scalar_gradients g = siglip_.backward(siglip_cache_, di, dt, grad_loss);
            *grad_scale += g.logit_scale;
            *store_->at("logit_bias").grad.data<float>() += g.logit_bias;
        } else {
            *grad_scale += clip_.backward(clip_cache_, di, dt, grad_loss);
        }
        normalize_.backward(di, image_norm_, di);
        normalize_.backward(dt, text_norm_, dt);
        backward_image(di);
        text_.backward(dt, text_cache_);
    }

    /// forward + backward over `images`/`ids` split into `micro_batches` consecutive parts, with
    /// the loss still over the whole batch (OpenCLIP's --accum-freq): the gradients are those of
    /// the whole batch, while activations are kept for one part at a time. Every part's features
    /// are computed first without backward; the loss and its gradient with respect to each
    /// feature are computed once over all of them; then each part runs forward again and
    /// backward with its rows of that gradient. Returns the loss.
    float forward_backward_accumulated(const tensor& images, const tensor& ids, std::int64_t micro_batches,
                                       float grad_loss = 1.0f) {
        detail::check<shape_error>(images.ndim() == 4 && ids.ndim() == 2 && images.size(0) == ids.size(0),
                                   "clip_model: a batch needs one text per image (images ", images.shape(), ", ids ", ids.shape(), ")");
        const std::int64_t n = images.size(0);
        detail::check(micro_batches >= 1 && micro_batches <= n, "clip_model: ", micro_batches, " micro-batches for a batch of ", n);
        const auto part = [&](std::int64_t p) { return std::pair{n * p / micro_batches, n * (p + 1) / micro_batches}; };
        const std::int64_t E = store_->config().embed_dim;
        const tensor& all_i = detail::reuse(all_image_, {n, E});
        const tensor& all_t = detail::reuse(all_text_, {n, E});
        for (std::int64_t p = 0; p < micro_batches; ++p) {
            const auto [a, b] = part(p);
            all_i.slice(0, a, b).copy_from(normalize_.forward(encode_image(images.slice(0, a, b)), image_norm_));
            all_t.slice(0, a, b).copy_from(normalize_.forward(text_.forward(ids.slice(0, a, b), text_cache_), text_norm_));
        }
        const float scale = store_->at("logit_scale").value.item<float>();
        const tensor& di = detail::reuse(grad_image_, {n, E});
        const tensor& dt = detail::reuse(grad_text_, {n, E});
        float loss = 0.0f;
        float* grad_scale = store_->at("logit_scale").grad.data<float>();
        if (store_->kind() == objective::siglip) {
            loss = siglip_.forward(all_i, all_t, scale, store_->at("logit_bias").value.item<float>(), siglip_cache_);
            const siglip_loss::scalar_gradients g = siglip_.backward(siglip_cache_, di, dt, grad_loss);
            *grad_scale += g.logit_scale;
            *store_->at("logit_bias").grad.data<float>() += g.logit_bias;
        } else {
            loss = clip_.forward(all_i, all_t, scale, clip_cache_);
            *grad_scale += clip_.backward(clip_cache_, di, dt, grad_loss);
        }
        for (std::int64_t p = 0; p < micro_batches; ++p) {
            const auto [a, b] = part(p);
            const tensor di_p = di.slice(0, a, b), dt_p = dt.slice(0, a, b);
            (void)normalize_.forward(encode_image(images.slice(0, a, b)), image_norm_);
            normalize_.backward(di_p, image_norm_, di_p);
            backward_image(di_p);
            (void)normalize_.forward(text_.forward(ids.slice(0, a, b), text_cache_), text_norm_);
            normalize_.backward(dt_p, text_norm_, dt_p);
            text_.backward(dt_p, text_cache_);
        }
        return loss;
    }

    /// The last forward pass's encoder outputs (before normalisation) [N, E].
    const tensor& image_features() const noexcept {
        if (const auto* resnet = std::get_if<modified_resnet::cache>(&visual_cache_))
            return modified_resnet::features(*resnet);
        return std::get<vision_transformer::cache>(visual_cache_).proj.output;
    }
    const tensor& text_features() const noexcept { return text_cache_.proj.output; }
    /// Its logits [N, N]: exp(logit_scale) · i tᵀ (+ logit_bias for SigLIP), logits_per_image.
    const tensor& logits() const noexcept {
        return store_->kind() == objective::siglip ? siglip_cache_.logits : clip_cache_.logits;
    }

    const image_tower& visual() const noexcept { return visual_; }
    const text_transformer& text() const noexcept { return text_; }

private:
    static image_tower bind_visual(const parameter_store& store) {
        if (store.config().vision.kind == vision_kind::resnet) return modified_resnet::bind(store);
        return vision_transformer::bind(store);
    }

    /// images -> the image tower's features [N, E].
    const tensor& encode_image(const tensor& images) {
        return std::visit(
            [&](const auto& tower) -> const tensor& {
                return tower.forward(images, std::get<typename std::decay_t<decltype(tower)>::cache>(visual_cache_));
            },
            visual_);
    }

    /// d features [N, E] -> the image tower's parameter gradients.
    void backward_image(const tensor& grad_features) {
        std::visit(
            [&](const auto& tower) {
                tower.backward(grad_features, std::get<typename std::decay_t<decltype(tower)>::cache>(visual_cache_));
            },
            visual_);
    }

    const parameter_store* store_;
    image_tower visual_;
    bool training_ = true;
    text_transformer text_;
    l2_normalize normalize_;
    clip_loss clip_;
    siglip_loss siglip_;
    image_tower_cache visual_cache_;
    text_transformer::cache text_cache_;
    l2_normalize::cache image_norm_, text_norm_;
    clip_loss::cache clip_cache_;
    siglip_loss::cache siglip_cache_;
    detail::buffer grad_image_, grad_text_; // [N, E]
    detail::buffer all_image_, all_text_;   // [N, E]: every micro-batch's normalised features
};

} // namespace clip::train
