// examples/clip/common.hpp: what the subcommands share: opening `--model` (preset or checkpoint),
// `FILE:NAME` tensor arguments, finding the vocabulary (`--vocab`), tokenizing `--text`/TEXT
// arguments, option validators, and error messages.
#pragma once

#include <CLI/CLI.hpp>
#include <clip/clip.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace clip_tool {

/// Concatenates the arguments with operator<< (shapes and dtypes print themselves).
template <class... Args>
std::string message(const Args&... args) {
    std::ostringstream out;
    (out << ... << args);
    return out.str();
}

/// An integer option's lower bound. CLI11's own PositiveNumber prints the whole double range in
/// its message; this one says what is wrong in a few words.
inline CLI::Validator at_least(long long minimum) {
    return CLI::Validator(
        [minimum](std::string& text) -> std::string {
            std::size_t used = 0;
            long long value = 0;
            try {
                value = std::stoll(text, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used == 0 || used != text.size()) return message("'", text, "' is not an integer");
            if (value < minimum) return message("must be at least ", minimum, ", got ", value);
            return {};
        },
        message(">=", minimum), "at_least");
}

/// A model and what `--model` said, for reports.
/// "cpu", "cuda" or "cuda:N" as a device.
inline clip::device parse_device(const std::string& text) {
    if (text == "cpu") return clip::device::cpu();
    if (text == "cuda") return clip::device::cuda(0);
    if (text.rfind("cuda:", 0) == 0 && text.size() > 5 && text.find_first_not_of("0123456789", 5) == std::string::npos &&
        text.size() < 9)
        return clip::device::cuda(std::stoi(text.substr(5)));
    throw clip::error("--device " + text + ": expected cpu, cuda or cuda:N");
}

struct opened_model {
    clip::model model;
    std::string name;        ///< the preset name, or the file as given
    bool is_preset = false;  ///< random OpenAI initialisation (seed 0) rather than a checkpoint
};

inline bool is_preset(const std::string& name) {
    const std::vector<std::string> presets = clip::preset_names();
    return std::find(presets.begin(), presets.end(), name) != presets.end();
}

/// `--model` is a preset name or a safetensors checkpoint. A preset name wins: "ViT-B/32" also
/// reads as a relative path, and a file of that name is far less likely than the preset.
/// `config` (OpenCLIP or Hugging Face JSON) applies to checkpoints only; empty = infer from shapes.
inline opened_model open_model(const std::string& spec, const std::string& config) {
    if (is_preset(spec)) {
        if (!config.empty())
            throw clip::error(message("--config ", config, ": a preset (", spec, ") has its own architecture; "
                                      "--config applies to checkpoint files"));
        return {clip::model::random(spec, 0), spec, true};
    }
    std::optional<std::filesystem::path> config_file;
    if (!config.empty()) config_file = config;
    // A typo in a preset name would otherwise read as a missing file only.
    if (!std::filesystem::exists(spec)) {
        std::string known;
        for (const std::string& n : clip::preset_names()) known += (known.empty() ? "" : ", ") + n;
        throw clip::io_error(message("--model ", spec, ": no such file, and not a preset (", known, ")"));
    }
    return {clip::model::load(spec, config_file), spec, false};
}

/// What identifies the model's embedding space, for indexes: a preset by name (its weights are a
/// function of the name and seed 0), a checkpoint by its content, plus the config file's content
/// when one is given (it can change the activation, hence every embedding).
inline std::string model_identity(const opened_model& opened, const std::string& config) {
    std::string id = opened.is_preset ? "preset " + opened.name + " seed 0" : "weights " + clip::file_fingerprint(opened.name);
    if (!config.empty()) id += " config " + clip::file_fingerprint(config);
    return id;
}

/// A `FILE:NAME` argument: the tensor NAME inside the safetensors file FILE.
struct tensor_argument {
    std::filesystem::path file;
    std::string name;
    std::string text;  ///< as given, for messages
};

/// Splits at the last colon, so that FILE may contain colons and NAME may not. Returns an empty
/// string when `text` is well formed, else the problem (the shape of a CLI11 validator).
inline std::string check_tensor_argument(const std::string& text) {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos)
        return message("'", text, "' names no tensor: expected FILE.safetensors:NAME (e.g. inputs.safetensors:images)");
    if (colon == 0) return message("'", text, "' names no file: expected FILE.safetensors:NAME");
    if (colon + 1 == text.size()) return message("'", text, "' has an empty tensor name after the colon");
    return {};
}

inline tensor_argument parse_tensor_argument(const std::string& text) {
    if (const std::string problem = check_tensor_argument(text); !problem.empty()) throw clip::error(problem);
    const std::size_t colon = text.rfind(':');
    return {text.substr(0, colon), text.substr(colon + 1), text};
}

/// The tensor, a zero-copy view of the mapped file (the view keeps the mapping alive).
inline clip::tensor read_tensor(const tensor_argument& argument) {
    return clip::safetensors::open(argument.file).get(argument.name);
}

/// The tokenizer of `--vocab` (empty: not given), else of clip::find_vocabulary's other choices
/// ($CLIP_VOCAB, then the vocabulary beside `model_file`). The library's message lists the
/// choices in its own terms; this adds the option's name.
inline clip::tokenizer load_tokenizer(const std::string& vocab, const std::optional<std::filesystem::path>& model_file) {
    std::filesystem::path path;
    try {
        path = clip::find_vocabulary(vocab.empty() ? std::nullopt : std::optional<std::filesystem::path>(vocab), model_file);
    } catch (const clip::io_error& e) {
        if (!vocab.empty()) throw clip::io_error(message("--vocab ", vocab, ": ", e.what()));
        if (const char* from_environment = std::getenv("CLIP_VOCAB"); from_environment && *from_environment)
            throw clip::io_error(message(e.what(), " (--vocab FILE takes precedence over CLIP_VOCAB)"));
        throw clip::io_error(message(e.what(), ". Give it with --vocab FILE or CLIP_VOCAB=FILE"));
    }
    return clip::tokenizer::load(path);
}

/// load_tokenizer for `model`: its vocabulary must fit the model's token table, else every
/// text would fail in the embedding with a message that does not name the vocabulary.
inline clip::tokenizer load_tokenizer(const std::string& vocab, const opened_model& opened, const std::string& model_file) {
    clip::tokenizer tokenizer = load_tokenizer(vocab, opened.is_preset ? std::nullopt : std::optional<std::filesystem::path>(model_file));
    const auto tokens = static_cast<std::int64_t>(tokenizer.vocabulary().size());
    const std::int64_t rows = opened.model.config().text.vocab_size;
    if (tokens > rows)
        throw clip::error(message("the vocabulary has ", tokens, " tokens but the model's token embedding has ", rows,
                                  " rows: it was trained with another vocabulary (give the right one with --vocab)"));
    return tokenizer;
}

/// clip.tokenize(texts, context_length, truncate): i64 [N, context_length]. A text too long for
/// the context (with `truncate` off) keeps the library's message ("Input ... is too long for
/// context length 77") and gains the option that cuts it.
inline clip::tensor tokenize_texts(const clip::tokenizer& tokenizer, const std::vector<std::string>& texts,
                                   std::int64_t context_length, bool truncate) {
    try {
        return tokenizer.tokenize(std::span<const std::string>(texts), context_length, truncate);
    } catch (const clip::shape_error& e) {
        if (truncate) throw;
        throw clip::shape_error(message(e.what(), " (--truncate cuts such a row to ", context_length,
                                        " tokens, the last one <|endoftext|>)"));
    }
}

} // namespace clip_tool
