// examples/clip/embed.hpp: `clip embed`: image and text embeddings of image files, strings, and
// tensors in safetensors files, written to a safetensors file.
//
//   in:  images: --images-from rows [N, 3, R, R] f32 (f16/bf16 converted), then --image files
//        (JPEG/PNG, through clip._transform(R) at the model's resolution R);
//        texts: --tokens-from rows [M, ctx] i64/i32, then --text strings (clip.tokenize at the
//        model's context length, with the vocabulary of --vocab, $CLIP_VOCAB, or the one beside
//        the model file)
//   out: image_embeds [N, E] f32, text_embeds [M, E] f32 (encoder outputs, before L2
//        normalisation, in that input order) and logit_scale [] f32 (the stored log value)
// as OpenAI's `model.encode_image(images)`, `model.encode_text(tokens)` and `model.logit_scale`.
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"

namespace clip_tool {

struct embed_options {
    std::string device = "cpu";
    std::string precision = "f32";
    std::string model;
    std::string config;
    std::string images_from;
    std::string tokens_from;
    std::vector<std::string> image_files;
    std::vector<std::string> texts;
    std::string vocab;
    bool truncate = false;
    std::string out;
    int batch = 32;
    int threads = 0;  ///< 0: the library's default (CLIP_NUM_THREADS, else OpenMP's)
};

inline CLI::App* add_embed_command(CLI::App& app, embed_options& o) {
    CLI::App* cmd = app.add_subcommand("embed", "Image and/or text embeddings of image files, strings, or tensors in safetensors files");
    const auto tensor_argument_validator = CLI::Validator(check_tensor_argument, "", "tensor_argument");
    cmd->add_option("--model", o.model, "Checkpoint (.safetensors, OpenAI/OpenCLIP or Hugging Face names) or preset")
        ->required();
    cmd->add_option("--config", o.config, "Model config JSON (OpenCLIP or Hugging Face); default: infer from shapes");
    cmd->add_option("--images-from", o.images_from, "Images [N, 3, R, R] (or one [3, R, R]) f32/f16/bf16, preprocessed: tensor NAME in FILE.safetensors")
        ->type_name("FILE:NAME")
        ->check(tensor_argument_validator);
    cmd->add_option("--tokens-from", o.tokens_from, "Token ids [M, context] i64/i32: tensor NAME in FILE.safetensors")
        ->type_name("FILE:NAME")
        ->check(tensor_argument_validator);
    cmd->add_option("--image", o.image_files, "Image files (JPEG, PNG), preprocessed at the model's resolution; after --images-from's rows")
        ->type_name("FILE");
    cmd->add_option("--text", o.texts, "Texts, tokenized at the model's context length; after --tokens-from's rows")
        ->type_name("STRING");
    cmd->add_option("--vocab", o.vocab, "BPE vocabulary for --text (default: $CLIP_VOCAB, else bpe_simple_vocab_16e6.txt.gz "
                                        "or vocab.json beside the model file)")
        ->type_name("FILE");
    cmd->add_flag("--truncate", o.truncate, "Cut a --text too long for the context instead of failing (as clip.tokenize)");
    cmd->add_option("--out", o.out, "Output safetensors: image_embeds [N, E], text_embeds [M, E], logit_scale []")
        ->required();
    cmd->add_option("--batch", o.batch, "Rows encoded at a time (bounds memory)")->capture_default_str()->check(at_least(1));
    cmd->add_option("--threads", o.threads, "Threads (default: CLIP_NUM_THREADS, else all cores)")->check(at_least(1));
    cmd->add_option("--device", o.device, "Where the model runs: cpu, cuda or cuda:N")->capture_default_str();
    cmd->add_option("--precision", o.precision, "f32, or int8 on the CPU (int8 transformer products)")
        ->capture_default_str()
        ->check(CLI::IsMember({"f32", "int8"}));
    cmd->footer("Row order: image_embeds holds the --images-from rows, then the --image files, in the order given;\n"
                "text_embeds holds the --tokens-from rows, then the --text strings, in the order given.\n"
                "Writes the encoder outputs before L2 normalisation, atomically: on any error nothing is written.\n"
                "Examples:\n"
                "  clip embed --model vit.safetensors --image cat.png dog.jpg --text \"a cat\" \"a dog\" --out emb.safetensors\n"
                "  clip embed --model vit.safetensors --images-from io.safetensors:image --out emb.safetensors");
    return cmd;
}

namespace detail {

/// One input of an encoder: `count` rows, of which `rows(start, stop)` gives rows [start, stop)
/// as the encoder takes them.
struct row_source {
    std::int64_t count = 0;
    std::function<clip::tensor(std::int64_t start, std::int64_t stop)> rows;
};

/// `encode` over the rows of every source, in order, `batch` rows at a time (a batch does not
/// span two sources), into one [N, E] f32 tensor.
template <class Encode>
clip::tensor encode_in_batches(const std::vector<row_source>& sources, std::int64_t batch, std::int64_t embed_dim,
                               Encode encode) {
    std::int64_t n = 0;
    for (const row_source& source : sources) n += source.count;
    clip::tensor out = clip::tensor::empty({n, embed_dim}); // [N, E]
    std::int64_t first = 0;
    for (const row_source& source : sources) {
        for (std::int64_t start = 0; start < source.count; start += batch) {
            const std::int64_t stop = std::min(source.count, start + batch);
            out.slice(0, first + start, first + stop).copy_from(encode(source.rows(start, stop)));
        }
        first += source.count;
    }
    return out;
}

} // namespace detail

inline void run_embed(const embed_options& o) {
    if (o.images_from.empty() && o.image_files.empty() && o.tokens_from.empty() && o.texts.empty())
        throw clip::error("embed: nothing to encode: give --images-from, --image, --tokens-from or --text");
    if (o.threads > 0) clip::set_num_threads(o.threads);

    // Every input is checked before any batch runs (what needs no model, before the model
    // loads), so a problem with the last input does not surface after minutes spent on the
    // first. Image files are decoded batch by batch (--batch bounds memory), so only their
    // existence is checked up front; one that fails to decode stops the run when its batch comes
    // (nothing is written).
    clip::tensor images, tokens;
    if (!o.images_from.empty()) images = read_tensor(parse_tensor_argument(o.images_from));
    if (!o.tokens_from.empty()) tokens = read_tensor(parse_tensor_argument(o.tokens_from));
    const std::vector<std::filesystem::path> image_files(o.image_files.begin(), o.image_files.end());
    for (const std::filesystem::path& file : image_files) {
        std::error_code error;
        if (!std::filesystem::exists(file, error)) throw clip::io_error(message("--image \"", file.string(), "\": no such file"));
        if (std::filesystem::is_directory(file, error))
            throw clip::io_error(message("--image \"", file.string(), "\": a directory, not an image file"));
    }
    opened_model opened = open_model(o.model, o.config);
    if (const clip::device where = parse_device(o.device); where.is_cuda()) opened.model = opened.model.to(where);
    if (o.precision == "int8") opened.model = opened.model.quantized_int8();
    // After the model, so that a mistyped --model is reported as such rather than as a missing
    // vocabulary beside it.
    std::optional<clip::tokenizer> tokenizer;
    if (!o.texts.empty())
        tokenizer = load_tokenizer(o.vocab, opened, o.model);
    const clip::clip_config& c = opened.model.config();

    std::vector<detail::row_source> image_sources, text_sources;
    const std::int64_t R = c.vision.image_size;
    // One image [3, R, R] (as `clip preprocess` writes them) is a batch of one.
    if (images.defined() && images.ndim() == 3) images = images.unsqueeze(0);
    if (images.defined()) {
        if (images.ndim() != 4 || images.size(1) != 3 || images.size(2) != R || images.size(3) != R)
            throw clip::shape_error(message("--images-from ", o.images_from, ": images must be [N, 3, ", R, ", ", R,
                                            "] for this model, got ", images.shape()));
        const clip::dtype t = images.dtype();
        if (t != clip::dtype::f32 && t != clip::dtype::f16 && t != clip::dtype::bf16)
            throw clip::dtype_error(message("--images-from ", o.images_from, ": images must be f32, f16 or bf16, got ", t));
        image_sources.push_back({images.size(0), [&](std::int64_t start, std::int64_t stop) {
                                     return images.slice(0, start, stop).to(clip::dtype::f32); // a copy only for f16/bf16
                                 }});
    }
    if (!image_files.empty()) {
        image_sources.push_back({static_cast<std::int64_t>(image_files.size()), [&](std::int64_t start, std::int64_t stop) {
                                     const std::vector<std::filesystem::path> files(image_files.begin() + start, image_files.begin() + stop);
                                     return clip::preprocess(files, R); // [B, 3, R, R] f32, decoded in parallel
                                 }});
    }
    const std::int64_t ctx = c.text.context_length;
    if (tokens.defined()) {
        if (tokens.ndim() != 2 || tokens.size(1) != ctx)
            throw clip::shape_error(message("--tokens-from ", o.tokens_from, ": token ids must be [M, ", ctx,
                                            "] for this model, got ", tokens.shape()));
        if (tokens.dtype() != clip::dtype::i64 && tokens.dtype() != clip::dtype::i32)
            throw clip::dtype_error(message("--tokens-from ", o.tokens_from, ": token ids must be i64 or i32, got ", tokens.dtype()));
        text_sources.push_back({tokens.size(0), [&](std::int64_t start, std::int64_t stop) { return tokens.slice(0, start, stop); }});
    }
    clip::tensor text_tokens; // [T, ctx] i64, the --text strings
    if (tokenizer) {
        text_tokens = tokenize_texts(*tokenizer, o.texts, ctx, o.truncate);
        text_sources.push_back({text_tokens.size(0), [&](std::int64_t start, std::int64_t stop) { return text_tokens.slice(0, start, stop); }});
    }

    std::vector<std::pair<std::string, clip::tensor>> outputs;
    if (!image_sources.empty())
        outputs.emplace_back("image_embeds", detail::encode_in_batches(image_sources, o.batch, c.embed_dim, [&](const clip::tensor& rows) {
            return opened.model.encode_image(rows).to(clip::device::cpu());
        }));
    if (!text_sources.empty())
        outputs.emplace_back("text_embeds", detail::encode_in_batches(text_sources, o.batch, c.embed_dim, [&](const clip::tensor& rows) {
            return opened.model.encode_text(rows).to(clip::device::cpu());
        }));
    outputs.emplace_back("logit_scale", clip::tensor::full({}, opened.model.logit_scale()));
    // "format": "pt" lets safetensors' PyTorch loader read the file as its own.
    clip::save_safetensors(o.out, outputs, {{"format", "pt"}, {"producer", "clip embed"}, {"model", opened.name}});

    std::cout << "wrote " << o.out << ":";
    for (std::size_t i = 0; i < outputs.size(); ++i)
        std::cout << (i ? ", " : " ") << outputs[i].first << ' ' << outputs[i].second.shape();
    std::cout << '\n';
}

} // namespace clip_tool
