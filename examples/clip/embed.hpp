// examples/clip/embed.hpp: `clip embed`: image and text embeddings of tensors in safetensors
// files, written to a safetensors file.
//
//   in:  images [N, 3, R, R] f32 (f16/bf16 converted), token ids [M, ctx] i64/i32
//   out: image_embeds [N, E] f32, text_embeds [M, E] f32 (encoder outputs, before L2
//        normalisation, in input order) and logit_scale [] f32 (the stored log value)
// as OpenAI's `model.encode_image(images)`, `model.encode_text(tokens)` and `model.logit_scale`.
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>

#include "common.hpp"

namespace clip_tool {

struct embed_options {
    std::string model;
    std::string config;
    std::string images_from;
    std::string tokens_from;
    std::string out;
    int batch = 32;
    int threads = 0;  ///< 0: the library's default (CLIP_NUM_THREADS, else OpenMP's)
};

inline CLI::App* add_embed_command(CLI::App& app, embed_options& o) {
    CLI::App* cmd = app.add_subcommand("embed", "Image and/or text embeddings of tensors stored in safetensors files");
    const auto tensor_argument_validator = CLI::Validator(check_tensor_argument, "", "tensor_argument");
    cmd->add_option("--model", o.model, "Checkpoint (.safetensors, OpenAI/OpenCLIP or Hugging Face names) or preset")
        ->required();
    cmd->add_option("--config", o.config, "Model config JSON (OpenCLIP or Hugging Face); default: infer from shapes");
    cmd->add_option("--images-from", o.images_from, "Images [N, 3, R, R] f32/f16/bf16, preprocessed: tensor NAME in FILE.safetensors")
        ->type_name("FILE:NAME")
        ->check(tensor_argument_validator);
    cmd->add_option("--tokens-from", o.tokens_from, "Token ids [M, context] i64/i32: tensor NAME in FILE.safetensors")
        ->type_name("FILE:NAME")
        ->check(tensor_argument_validator);
    cmd->add_option("--out", o.out, "Output safetensors: image_embeds [N, E], text_embeds [M, E], logit_scale []")
        ->required();
    cmd->add_option("--batch", o.batch, "Rows encoded at a time (bounds memory)")->capture_default_str()->check(at_least(1));
    cmd->add_option("--threads", o.threads, "Threads (default: CLIP_NUM_THREADS, else all cores)")->check(at_least(1));
    cmd->footer("Writes the encoder outputs before L2 normalisation, in input order, atomically.\n"
                "Example: clip embed --model vit.safetensors --images-from io.safetensors:image --out emb.safetensors");
    return cmd;
}

namespace detail {

/// `encode` over the rows of `input`, `batch` rows at a time, into one [N, E] f32 tensor.
template <class Encode>
clip::tensor encode_in_batches(const clip::tensor& input, std::int64_t batch, std::int64_t embed_dim, Encode encode) {
    const std::int64_t n = input.size(0);
    clip::tensor out = clip::tensor::empty({n, embed_dim}); // [N, E]
    for (std::int64_t start = 0; start < n; start += batch) {
        const std::int64_t stop = std::min(n, start + batch);
        out.slice(0, start, stop).copy_from(encode(input.slice(0, start, stop)));
    }
    return out;
}

} // namespace detail

inline void run_embed(const embed_options& o) {
    if (o.images_from.empty() && o.tokens_from.empty())
        throw clip::error("embed: nothing to encode: give --images-from, --tokens-from or both");
    if (o.threads > 0) clip::set_num_threads(o.threads);

    // Inputs are read and checked before the model loads and before any batch runs, so a wrong
    // shape in the second input does not surface after minutes spent on the first.
    clip::tensor images, tokens;
    if (!o.images_from.empty()) images = read_tensor(parse_tensor_argument(o.images_from));
    if (!o.tokens_from.empty()) tokens = read_tensor(parse_tensor_argument(o.tokens_from));
    const opened_model opened = open_model(o.model, o.config);
    const clip::clip_config& c = opened.model.config();

    std::vector<std::pair<std::string, clip::tensor>> outputs;
    if (images.defined()) {
        const std::int64_t R = c.vision.image_size;
        if (images.ndim() != 4 || images.size(1) != 3 || images.size(2) != R || images.size(3) != R)
            throw clip::shape_error(message("--images-from ", o.images_from, ": images must be [N, 3, ", R, ", ", R,
                                            "] for this model, got ", images.shape()));
        const clip::dtype t = images.dtype();
        if (t != clip::dtype::f32 && t != clip::dtype::f16 && t != clip::dtype::bf16)
            throw clip::dtype_error(message("--images-from ", o.images_from, ": images must be f32, f16 or bf16, got ", t));
        outputs.emplace_back("image_embeds", detail::encode_in_batches(images, o.batch, c.embed_dim, [&](const clip::tensor& rows) {
            return opened.model.encode_image(rows.to(clip::dtype::f32)); // a copy only for f16/bf16
        }));
    }
    if (tokens.defined()) {
        const std::int64_t ctx = c.text.context_length;
        if (tokens.ndim() != 2 || tokens.size(1) != ctx)
            throw clip::shape_error(message("--tokens-from ", o.tokens_from, ": token ids must be [M, ", ctx,
                                            "] for this model, got ", tokens.shape()));
        if (tokens.dtype() != clip::dtype::i64 && tokens.dtype() != clip::dtype::i32)
            throw clip::dtype_error(message("--tokens-from ", o.tokens_from, ": token ids must be i64 or i32, got ", tokens.dtype()));
        outputs.emplace_back("text_embeds", detail::encode_in_batches(tokens, o.batch, c.embed_dim, [&](const clip::tensor& rows) {
            return opened.model.encode_text(rows);
        }));
    }
    outputs.emplace_back("logit_scale", clip::tensor::full({}, opened.model.logit_scale()));
    // "format": "pt" lets safetensors' PyTorch loader read the file as its own.
    clip::save_safetensors(o.out, outputs, {{"format", "pt"}, {"producer", "clip embed"}, {"model", opened.name}});

    std::cout << "wrote " << o.out << ":";
    for (std::size_t i = 0; i < outputs.size(); ++i)
        std::cout << (i ? ", " : " ") << outputs[i].first << ' ' << outputs[i].second.shape();
    std::cout << '\n';
}

} // namespace clip_tool
