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
//
// Several ranks (set_world): each rank runs its own rows of the global batch through the towers;
// the normalised features are all-gathered and the loss is OpenCLIP's with world_size > 1: the
// whole batch's ClipLoss on every rank, or with local_loss each rank's rows against all columns
// (local_clip_loss). With gather_with_grad (OpenCLIP's --gather-with-grad) the gradient of the
// gathered features goes back to the rank that produced them (a reduce-scatter; without local
// loss every rank holds the same gradient, so its own rows times W are that sum); without it a
// rank keeps only its own rows' gradient, as OpenCLIP's detached gather does. backward() then
// averages every parameter gradient over the ranks (DistributedDataParallel's all-reduce), the
// image tower's bucket reduced on a helper thread while the text tower's backward runs. With
// gather_with_grad the result is the gradient of the global batch, equal to one process
// training on it up to float rounding. The all-reduce sums the whole gradient block: zero the
// gradients before each distributed backward (a training step does). A ResNet's BatchNorm
// statistics are broadcast from rank 0 before each forward (DDP's broadcast_buffers).
// SigLIP over several ranks is OpenCLIP's: each rank's images against every rank's texts (only
// the texts are gathered), divided by its own rows, the texts' gradient always summed back onto
// their owners (OpenCLIP exchanges them with grad whatever --gather-with-grad says; local_loss
// does not apply). Gradient accumulation (forward_backward_accumulated) over several ranks
// gathers the features of all of a rank's micro-batches once, takes the loss and its feature
// gradient once, and all-reduces once after the last micro-batch's backward: the gradient of
// the whole step (every rank's every micro-batch), with the same gather_with_grad / local_loss
// semantics.
//
// The model trains on the device of its store (parameter_store::to): a CUDA device trains with
// either loss, with or without micro-batches, alone or as one rank of several (over NCCL
// on the GPU's memory, or over a host communicator through host copies of the features and the
// gradients: train/collectives.hpp). Both image towers train there; a ModifiedResNet's layers
// run their device-generic formulations (buffers.hpp, detail::portable).
#pragma once

#include <variant>

#include "clip/dist/communicator.hpp"

#include "clip/train/collectives.hpp"
#include "clip/train/loss.hpp"
#include "clip/train/modified_resnet.hpp"
#include "clip/train/normalize.hpp"
#include "clip/train/text_transformer.hpp"
#include "clip/train/vision_transformer.hpp"

namespace clip::train {

/// A trainable image tower and the buffers of its last forward pass.
using image_tower = std::variant<vision_transformer, modified_resnet>;
using image_tower_cache = std::variant<vision_transformer::cache, modified_resnet::cache>;

/// How a clip_model trains as one rank of several (clip_model::set_world).
struct world_options {
    bool local_loss = false;      ///< OpenCLIP's --local-loss
    bool gather_with_grad = true; ///< OpenCLIP's --gather-with-grad
};

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

    /// The dtype of the products: f32 (the default), or bf16 for mixed precision on a GPU, as
    /// PyTorch's autocast to bf16 does for products: each forward converts the f32 weights into a
    /// bf16 copy, every product takes bf16 operands with f32 accumulation and f32 output, and
    /// everything else (layer norms, softmax, the loss, gradients, AdamW) stays f32. A
    /// ModifiedResNet image tower keeps f32 products (only the text tower's are bf16).
    void set_precision(dtype products) {
        detail::check<dtype_error>(products == dtype::f32 || products == dtype::bf16, "clip_model: products in ", products,
                                   "; f32 or bf16 (mixed precision)");
        detail::check<device_error>(products == dtype::f32 || store_->device().is_cuda(), "clip_model: bf16 products train on a GPU; this store is on ",
                                    store_->device());
        precision_ = products;
        detail::half_weights half;
        half_values_ = tensor{};
        if (products != dtype::f32) {
            half_values_ = tensor::empty(store_->value_block().shape(), products, store_->device());
            const float* base = store_->value_block().data<float>();
            half = [this, base](const tensor& w) {
                const std::int64_t at = w.data<float>() - base;
                return half_values_.slice(0, at, at + w.numel()).view(w.shape());
            };
        }
        if (auto* vit = std::get_if<vision_transformer>(&visual_)) vit->set_half(half);
        text_.set_half(half);
    }
    dtype precision() const noexcept { return precision_; }

    /// Trains as one rank of `world` (which must outlive the model); see the header.
    void set_world(dist::communicator& world, world_options options = {}) {
        world_ = &world;
        collectives_ = std::make_unique<detail::tensor_collectives>(world);
        world_options_ = options;
        const parameter_store& s = *store_;
        const float* base = s.gradient_block().data<float>();
        std::int64_t first = -1, last = -1;
        for (const parameter& p : s.parameters())
            if (p.name.rfind("visual.", 0) == 0) {
                const std::int64_t at = p.grad.data<float>() - base;
                if (first < 0) first = at;
                last = at + p.grad.numel();
            }
        visual_bucket_ = {std::max<std::int64_t>(first, 0), std::max<std::int64_t>(last, 0)};
    }
    /// Whether the model trains as one rank of several.
    bool distributed() const noexcept { return world_ && world_->size() > 1; }

    /// images [N, 3, R, R] f32 and ids [N, ctx] (pair k matches image k with text k) -> loss.
    float forward(const tensor& images, const tensor& ids) {
        detail::check<shape_error>(images.ndim() == 4 && ids.ndim() == 2 && images.size(0) == ids.size(0),
                                   "clip_model: ", images.ndim() == 4 ? images.size(0) : -1, " images and ",
                                   ids.ndim() == 2 ? ids.size(0) : -1, " texts: a batch needs one text per image (images ",
                                   images.shape(), ", ids ", ids.shape(), ")");
        refresh_half_weights();
        const auto [i, t] = encode(images, ids);
        return loss_forward(i, t);
    }

    /// Adds grad_loss · d loss / d θ to every parameter's gradient (forward must come first).
    void backward(float grad_loss = 1.0f) {
        const auto [di, dt] = loss_backward(grad_loss);
        backward_towers(di, dt, /*all_reduce*/ true);
    }

    /// forward + backward over `images`/`ids` split into `micro_batches` consecutive parts, with
    /// the loss still over the whole batch (OpenCLIP's --accum-freq): the gradients are those of
    /// the whole batch, while activations are kept for one part at a time. Every part's features
    /// are computed first without backward; the loss and its gradient with respect to each
    /// feature are computed once over all of them (over several ranks: every rank's, gathered
    /// once); then each part runs forward again and backward with its rows of that gradient, and
    /// over several ranks the gradients are all-reduced once, after the last part. Every rank
    /// calls it in the same step (with its own rows; at least `micro_batches` of them). Returns
    /// the loss (this rank's share of it under a local loss, as forward's).
    float forward_backward_accumulated(const tensor& images, const tensor& ids, std::int64_t micro_batches,
                                       float grad_loss = 1.0f) {
        detail::check<shape_error>(images.ndim() == 4 && ids.ndim() == 2 && images.size(0) == ids.size(0),
                                   "clip_model: a batch needs one text per image (images ", images.shape(), ", ids ", ids.shape(), ")");
        const std::int64_t n = images.size(0);
        detail::check(micro_batches >= 1 && micro_batches <= n, "clip_model: ", micro_batches, " micro-batches for a batch of ", n);
        refresh_half_weights();
        const auto part = [&](std::int64_t p) { return std::pair{n * p / micro_batches, n * (p + 1) / micro_batches}; };
        const std::int64_t E = store_->config().embed_dim;
        const tensor& step_i = detail::reuse(step_image_, {n, E}, dtype::f32, store_->device());
        const tensor& step_t = detail::reuse(step_text_, {n, E}, dtype::f32, store_->device());
        for (std::int64_t p = 0; p < micro_batches; ++p) {
            const auto [a, b] = part(p);
            const auto [i, t] = encode(images.slice(0, a, b), ids.slice(0, a, b));
            step_i.slice(0, a, b).copy_from(i);
            step_t.slice(0, a, b).copy_from(t);
        }
        const float loss = loss_forward(step_i, step_t);
        const auto [di, dt] = loss_backward(grad_loss);
        for (std::int64_t p = 0; p < micro_batches; ++p) {
            const auto [a, b] = part(p);
            (void)encode(images.slice(0, a, b), ids.slice(0, a, b));
            backward_towers(di.slice(0, a, b), dt.slice(0, a, b), /*all_reduce*/ p == micro_batches - 1);
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
    /// This step's weights in bf16 (mixed precision), once per forward.
    void refresh_half_weights() {
        if (half_values_.defined()) half_values_.copy_from(store_->value_block());
    }

    /// images [N, 3, R, R], ids [N, ctx] -> the normalised features i, t [N, E] (the
    /// normalisation caches' outputs, valid until the next call).
    std::pair<tensor, tensor> encode(const tensor& images, const tensor& ids) {
        if (distributed() && std::holds_alternative<modified_resnet>(visual_) && store_->buffer_block().defined()) {
            collectives_->broadcast(store_->buffer_block(), 0);
            collectives_->broadcast(store_->counter_block(), 0);
        }
        const tensor& i = normalize_.forward(encode_image(images), image_norm_);
        const tensor& t = normalize_.forward(text_.forward(ids, text_cache_), text_norm_);
        return {i, t};
    }

    /// This rank's normalised features i, t [n, E] (contiguous, alive until loss_backward) ->
    /// the loss; over several ranks after gathering every rank's features (SigLIP: texts only).
    float loss_forward(const tensor& i, const tensor& t) {
        const float scale = store_->at("logit_scale").value.item<float>();
        const bool siglip = store_->kind() == objective::siglip;
        const float bias = siglip ? store_->at("logit_bias").value.item<float>() : 0.0f;
        rows_ = i.size(0);
        if (!distributed()) return siglip ? siglip_.forward(i, t, scale, bias, siglip_cache_) : clip_.forward(i, t, scale, clip_cache_);
        const std::int64_t n = rows_, E = i.size(1);
        const std::vector<std::int64_t> rows = collectives_->all_gather_value(n);
        offset_ = 0;
        std::int64_t B = 0;
        element_counts_.clear();
        for (std::size_t r = 0; r < rows.size(); ++r) {
            if (static_cast<int>(r) < world_->rank()) offset_ += rows[r];
            B += rows[r];
            element_counts_.push_back(rows[r] * E);
        }
        const tensor& all_t = detail::reuse(all_text_, {B, E}, t);
        collectives_->all_gather(t, all_t, element_counts_);
        if (siglip) return siglip_.forward(i, all_t, scale, bias, siglip_cache_, offset_);
        const tensor& all_i = detail::reuse(all_image_, {B, E}, i);
        collectives_->all_gather(i, all_i, element_counts_);
        if (world_options_.local_loss) return local_.forward(all_i, all_t, offset_, n, scale, local_cache_);
        return clip_.forward(all_i, all_t, scale, clip_cache_);
    }

    /// -> the gradient of (grad_loss ·) the loss, averaged over the ranks as DDP does, with
    /// respect to this rank's features di, dt [n, E]; adds logit_scale's (and logit_bias's).
    std::pair<tensor, tensor> loss_backward(float grad_loss) {
        const std::int64_t n = rows_, E = store_->config().embed_dim;
        const tensor& di = detail::reuse(grad_image_, {n, E}, dtype::f32, store_->device());
        const tensor& dt = detail::reuse(grad_text_, {n, E}, dtype::f32, store_->device());
        const bool siglip = store_->kind() == objective::siglip;
        if (!distributed()) {
            if (siglip) {
                const siglip_loss::scalar_gradients g = siglip_.backward(siglip_cache_, di, dt, grad_loss);
                detail::add_to_scalar(store_->at("logit_scale").grad, g.logit_scale);
                detail::add_to_scalar(store_->at("logit_bias").grad, g.logit_bias);
            } else {
                detail::add_to_scalar(store_->at("logit_scale").grad, clip_.backward(clip_cache_, di, dt, grad_loss));
            }
            return {di, dt};
        }
        const tensor& grad_scale = store_->at("logit_scale").grad;
        // DDP averages the ranks' gradients; every gradient is linear in the features' and the
        // scalars', so the 1/W is applied to those here rather than to the whole gradient block
        // after the all-reduce.
        const float average = 1.0f / static_cast<float>(world_->size());
        const std::int64_t B = all_text_.size(0);
        const tensor& dT = detail::reuse(grad_all_text_, {B, E}, dt);
        if (siglip) {
            // The own images' gradient stays here; every rank's gradient of rank r's texts is
            // summed onto rank r.
            const siglip_loss::scalar_gradients g = siglip_.backward(siglip_cache_, di, dT, grad_loss * average);
            detail::add_to_scalar(grad_scale, g.logit_scale);
            detail::add_to_scalar(store_->at("logit_bias").grad, g.logit_bias);
            collectives_->reduce_scatter_sum(dT, dt, element_counts_);
            return {di, dt};
        }
        const tensor& dI = detail::reuse(grad_all_image_, {B, E}, di);
        const float d_scale = world_options_.local_loss ? local_.backward(local_cache_, dI, dT, grad_loss)
                                                        : clip_.backward(clip_cache_, dI, dT, grad_loss);
        detail::add_to_scalar(grad_scale, d_scale * average);
        if (world_options_.gather_with_grad && world_options_.local_loss) {
            collectives_->reduce_scatter_sum(dI, di, element_counts_);
            collectives_->reduce_scatter_sum(dT, dt, element_counts_);
            assign(di, di * average);
            assign(dt, dt * average);
        } else {
            // Every rank holds the same gradient of the same loss: the reduce-scatter would add W
            // copies of this rank's rows, which the average divides by W again.
            const float factor = world_options_.gather_with_grad ? 1.0f : average;
            assign(di, dI.slice(0, offset_, offset_ + n) * factor);
            assign(dt, dT.slice(0, offset_, offset_ + n) * factor);
        }
        return {di, dt};
    }

    /// d normalised features di, dt [n, E] of the last encode (overwritten) -> every parameter's
    /// gradient; over several ranks with `all_reduce`, then averaged over the ranks: the image
    /// tower's bucket is reduced on a helper thread while the text tower's backward runs.
    void backward_towers(const tensor& di, const tensor& dt, bool all_reduce) {
        normalize_.backward(di, image_norm_, di);
        normalize_.backward(dt, text_norm_, dt);
        backward_image(di);
        if (!distributed() || !all_reduce) {
            text_.backward(dt, text_cache_);
            return;
        }
        const tensor& all = store_->gradient_block();
        const auto [first, last] = visual_bucket_;
        std::unique_ptr<dist::pending> visual = collectives_->all_reduce_sum_async(all.slice(0, first, last));
        text_.backward(dt, text_cache_);
        visual->wait();
        collectives_->all_reduce_sum(all.slice(0, 0, first));
        collectives_->all_reduce_sum(all.slice(0, last, all.size(0)));
    }

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
    dtype precision_ = dtype::f32;
    tensor half_values_; // the value block in bf16 (mixed precision), refreshed by every forward
    text_transformer text_;
    l2_normalize normalize_;
    clip_loss clip_;
    local_clip_loss local_;
    siglip_loss siglip_;
    image_tower_cache visual_cache_;
    text_transformer::cache text_cache_;
    l2_normalize::cache image_norm_, text_norm_;
    clip_loss::cache clip_cache_;
    local_clip_loss::cache local_cache_;
    siglip_loss::cache siglip_cache_;
    detail::buffer grad_image_, grad_text_;         // [n, E]: the loss's gradient, this rank's rows
    detail::buffer step_image_, step_text_;         // [n, E]: every micro-batch's normalised features
    detail::buffer all_image_, all_text_;           // [B, E]: every rank's normalised features
    detail::buffer grad_all_image_, grad_all_text_; // [B, E]: the loss's gradient, every rank's rows
    dist::communicator* world_ = nullptr;
    std::unique_ptr<detail::tensor_collectives> collectives_; // world_'s collectives on this store's device
    world_options world_options_;
    std::pair<std::int64_t, std::int64_t> visual_bucket_{0, 0}; // the image tower's range of the gradient block
    std::vector<std::int64_t> element_counts_;                 // per rank: its rows · E
    std::int64_t offset_ = 0;                                  // this rank's first row in the batch
    std::int64_t rows_ = 0;                                    // n: this rank's rows in the last loss
};

} // namespace clip::train
