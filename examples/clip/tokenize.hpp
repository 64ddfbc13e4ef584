// examples/clip/tokenize.hpp: `clip tokenize`: the token ids of texts, as OpenAI's
// `clip.tokenize(texts, context_length, truncate)` gives them.
//
//   in:  TEXT... (UTF-8), the BPE vocabulary (--vocab, else $CLIP_VOCAB)
//   out: one line per text: the JSON array of its context_length ids, [<|startoftext|>] + ids +
//        [<|endoftext|>] zero-padded, e.g. [49406, 320, 1125, 539, 320, 2368, 49407, 0, ...]
//
// A text too long for the context is an error (exit 1) unless --truncate, as in clip.tokenize.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "common.hpp"

namespace clip_tool {

struct tokenize_options {
    std::vector<std::string> texts;
    std::string vocab;
    std::int64_t context_length = clip::tokenizer::default_context_length;
    bool truncate = false;
};

inline CLI::App* add_tokenize_command(CLI::App& app, tokenize_options& o) {
    CLI::App* cmd = app.add_subcommand("tokenize", "Token ids of texts (clip.tokenize), one JSON array per line");
    cmd->add_option("text", o.texts, "Texts (UTF-8), one row each")->type_name("TEXT")->required();
    cmd->add_option("--vocab", o.vocab, "BPE vocabulary: OpenAI's bpe_simple_vocab_16e6.txt.gz, or a Hugging Face "
                                        "vocab.json with merges.txt beside it (default: $CLIP_VOCAB)")
        ->type_name("FILE");
    cmd->add_option("--context-length", o.context_length, "Ids per row, padded with 0")
        ->capture_default_str()
        ->check(at_least(2));
    cmd->add_flag("--truncate", o.truncate, "Cut a text that does not fit (the row ends with <|endoftext|>) instead of failing");
    cmd->footer("Each row is [<|startoftext|>] + ids + [<|endoftext|>], zero-padded.\n"
                "Put -- before a text that starts with '-'.\n"
                "Example: clip tokenize --vocab bpe_simple_vocab_16e6.txt.gz \"a photo of a cat\"\n"
                "  [49406, 320, 1125, 539, 320, 2368, 49407, 0, 0, ...]");
    return cmd;
}

inline void run_tokenize(const tokenize_options& o) {
    const clip::tokenizer tokenizer = load_tokenizer(o.vocab, std::nullopt);
    const clip::tensor tokens = tokenize_texts(tokenizer, o.texts, o.context_length, o.truncate); // [N, ctx] i64
    const std::int64_t* ids = tokens.data<std::int64_t>();
    std::string line;
    for (std::int64_t row = 0; row < tokens.size(0); ++row) {
        line = "[";
        for (std::int64_t k = 0; k < o.context_length; ++k) {
            if (k > 0) line += ", ";
            line += std::to_string(ids[row * o.context_length + k]);
        }
        line += "]\n";
        std::cout << line;
    }
}

} // namespace clip_tool
