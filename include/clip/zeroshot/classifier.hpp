// clip/zeroshot/classifier.hpp: zero-shot classification by prompt ensembling, as CLIP's
// ImageNet notebook builds its classifier:
//
//   for each label c:  e_t = normalize(encode_text(template_t.format(c)))   for every template t
//                      w_c = normalize(mean_t e_t)
//   logits = exp(logit_scale) · normalize(image_features) · Wᵀ     [N, C]
//   probabilities = softmax(logits) along the labels
//
// The class weights W [C, E] are computed once; classifying then costs one image encoding and a
// [N, E] × [E, C] product.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "clip/core/error.hpp"
#include "clip/core/tensor.hpp"
#include "clip/models/clip_model.hpp"
#include "clip/ops/matmul.hpp"
#include "clip/ops/rowwise.hpp"
#include "clip/text/tokenizer.hpp"
#include "clip/zeroshot/templates.hpp"

namespace clip {

/// One ranked label of one image.
struct prediction {
    std::int64_t index = 0;   ///< the label's position
    float probability = 0.0f;
};

/// The k most probable labels of each row of `probabilities` [N, C], best first (ties: lower
/// index first); k is capped at C.
inline std::vector<std::vector<prediction>> top_k(const tensor& probabilities, std::int64_t k) {
    detail::check<shape_error>(probabilities.ndim() == 2, "top_k: probabilities must be [N, C], got ", probabilities.shape());
    detail::check(k >= 1, "top_k: k must be at least 1, got ", k);
    const tensor p = probabilities.to(dtype::f32).contiguous();
    const std::int64_t n = p.size(0), c = p.size(1), keep = std::min(k, c);
    std::vector<std::vector<prediction>> out(static_cast<std::size_t>(n));
    std::vector<std::int64_t> order(static_cast<std::size_t>(c));
    for (std::int64_t i = 0; i < n; ++i) {
        const float* row = p.data<float>() + i * c;
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + keep, order.end(), [row](std::int64_t a, std::int64_t b) {
            return row[a] > row[b] || (row[a] == row[b] && a < b);
        });
        for (std::int64_t j = 0; j < keep; ++j) out[static_cast<std::size_t>(i)].push_back({order[static_cast<std::size_t>(j)], row[order[static_cast<std::size_t>(j)]]});
    }
    return out;
}

struct zero_shot_options {
    std::int64_t batch = 256; ///< texts encoded at a time (bounds memory with many labels × templates)
    bool truncate = false;    ///< cut prompts too long for the context, as clip.tokenize(truncate=True)
};

class zero_shot_classifier {
public:
    /// Class weights by prompt ensembling over `templates` (see the top of this file).
    zero_shot_classifier(const model& m, const tokenizer& tok, std::vector<std::string> labels,
                         std::span<const std::string> templates, const zero_shot_options& options = {})
        : labels_(std::move(labels)), logit_scale_(std::exp(m.logit_scale())) {
        detail::check_labels(labels_, "zero-shot classifier");
        detail::check(!templates.empty(), "zero-shot classifier: no templates");
        detail::check(options.batch >= 1, "zero-shot classifier: batch must be at least 1, got ", options.batch);
        for (const std::string& t : templates) detail::check_template(t);
        detail::check(static_cast<std::int64_t>(tok.vocabulary().size()) <= m.config().text.vocab_size,
                      "zero-shot classifier: the vocabulary has ", tok.vocabulary().size(),
                      " tokens but the model's token embedding has ", m.config().text.vocab_size,
                      " rows (the model was trained with another vocabulary)");

        const auto n_labels = static_cast<std::int64_t>(labels_.size());
        const auto n_templates = static_cast<std::int64_t>(templates.size());
        const std::int64_t embed = m.config().embed_dim, ctx = m.config().text.context_length;
        tensor sums = tensor::zeros({n_labels, embed}); // Σ_t normalize(e_t) per label
        float* sum = sums.data<float>();
        // Prompts in label-major order, a batch at a time: prompt p is label p / T, template p % T.
        const std::int64_t total = n_labels * n_templates;
        std::vector<std::string> prompts;
        for (std::int64_t first = 0; first < total; first += options.batch) {
            const std::int64_t last = std::min(total, first + options.batch);
            prompts.clear();
            for (std::int64_t p = first; p < last; ++p)
                prompts.push_back(format_template(templates[static_cast<std::size_t>(p % n_templates)],
                                                  labels_[static_cast<std::size_t>(p / n_templates)]));
            const tensor features =
                l2_normalize(m.encode_text(tok.tokenize(std::span<const std::string>(prompts), ctx, options.truncate)).to(device::cpu()));
            const float* f = features.data<float>();
            for (std::int64_t p = first; p < last; ++p) {
                float* dst = sum + (p / n_templates) * embed;
                const float* src = f + (p - first) * embed;
                for (std::int64_t e = 0; e < embed; ++e) dst[e] += src[e];
            }
        }
        // normalize(mean) = normalize(sum): the 1/T factor cancels.
        weights_ = l2_normalize(sums);
    }

    /// A classifier from weights computed elsewhere: `weights` [C, E] (rows are normalised here)
    /// and the model's exp(logit_scale).
    zero_shot_classifier(std::vector<std::string> labels, const tensor& weights, float scale)
        : labels_(std::move(labels)), logit_scale_(scale) {
        detail::check_labels(labels_, "zero-shot classifier");
        detail::check<shape_error>(weights.ndim() == 2 && weights.size(0) == static_cast<std::int64_t>(labels_.size()),
                                   "zero-shot classifier: weights must be [", labels_.size(), ", E], got ", weights.shape());
        weights_ = l2_normalize(weights.to(dtype::f32));
    }

    const std::vector<std::string>& labels() const noexcept { return labels_; }
    /// [C, E], unit rows.
    const tensor& weights() const noexcept { return weights_; }
    /// exp(logit_scale): the temperature the model was trained with.
    float scale() const noexcept { return logit_scale_; }

    /// image_features [N, E] (encode_image's output; normalised here) -> [N, C] scaled cosines.
    tensor logits(const tensor& image_features) const {
        detail::check<shape_error>(image_features.ndim() == 2 && image_features.size(1) == weights_.size(1),
                                   "zero-shot classifier: image features must be [N, ", weights_.size(1), "], got ",
                                   image_features.shape());
        return matmul(l2_normalize(image_features.to(device::cpu()).to(dtype::f32)), weights_.t(), {.scale = logit_scale_});
    }

    /// image_features [N, E] -> [N, C] probabilities over the labels.
    tensor probabilities(const tensor& image_features) const { return softmax(logits(image_features)); }

    /// Preprocessed images [N, 3, R, R] through `m` -> the k most probable labels of each.
    std::vector<std::vector<prediction>> classify(const model& m, const tensor& images, std::int64_t k = 5) const {
        return top_k(probabilities(m.encode_image(images)), k);
    }

private:
    std::vector<std::string> labels_;
    tensor weights_;
    float logit_scale_ = 1.0f;
};

} // namespace clip
