// examples/clip/preprocess.hpp: `clip preprocess`: image files through CLIP's transform, written
// to a safetensors file.
//
//   in:  IMAGE... (JPEG or PNG files), --size N
//   out: one tensor [3, N, N] f32 per image, named by the image's file name ("photos/cat.png" ->
//        "cat.png"), in input order
// as OpenAI's `clip._transform(N)(Image.open(file))` (resize, center crop, RGB, normalise).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"

namespace clip_tool {

struct preprocess_options {
    std::vector<std::string> images;
    std::int64_t size = 224;
    std::string out;
    int threads = 0;  ///< 0: the library's default (CLIP_NUM_THREADS, else OpenMP's)
};

inline CLI::App* add_preprocess_command(CLI::App& app, preprocess_options& o) {
    CLI::App* cmd = app.add_subcommand("preprocess", "Image files through CLIP's transform (clip._transform), to safetensors");
    cmd->add_option("image", o.images, "Image files (JPEG, PNG)")->type_name("IMAGE")->required();
    cmd->add_option("--size", o.size, "Output side in pixels (the model's input resolution)")
        ->capture_default_str()
        ->check(at_least(1));
    cmd->add_option("--out", o.out, "Output safetensors: one [3, size, size] f32 tensor per image, named by its file name")
        ->type_name("OUT.safetensors")
        ->required();
    cmd->add_option("--threads", o.threads, "Threads (default: CLIP_NUM_THREADS, else all cores)")->check(at_least(1));
    cmd->footer("Resize (shorter side, bicubic), center crop, RGB, normalise with CLIP's mean and std.\n"
                "Tensors are named by file name without the directory, so the inputs' file names must differ.\n"
                "Writes atomically: on any error nothing is written.\n"
                "Example: clip preprocess --size 224 photos/cat.png photos/dog.jpg --out images.safetensors");
    return cmd;
}

inline void run_preprocess(const preprocess_options& o) {
    if (o.threads > 0) clip::set_num_threads(o.threads);

    // The names first: a clash is found before any image is decoded.
    std::vector<std::filesystem::path> files(o.images.begin(), o.images.end());
    std::map<std::string, std::string> first_with_name; // tensor name -> the argument that gave it
    for (const std::string& argument : o.images) {
        const std::string name = std::filesystem::path(argument).filename().string();
        if (name.empty() || name == "." || name == "..")
            throw clip::error(message("preprocess: '", argument, "' is not a file name"));
        const auto [at, inserted] = first_with_name.emplace(name, argument);
        if (!inserted)
            throw clip::error(message("preprocess: '", at->second, "' and '", argument, "' share the file name '", name,
                                      "', which names the output tensor; rename one or run them separately"));
    }

    const clip::tensor batch = clip::preprocess(files, o.size); // [N, 3, size, size] f32
    std::vector<std::pair<std::string, clip::tensor>> outputs;
    for (std::size_t i = 0; i < files.size(); ++i)
        outputs.emplace_back(files[i].filename().string(), batch.select(0, static_cast<std::int64_t>(i))); // [3, size, size]
    clip::save_safetensors(o.out, outputs,
                           {{"format", "pt"}, {"producer", "clip preprocess"}, {"size", std::to_string(o.size)}});

    std::cout << "wrote " << o.out << ": " << outputs.size() << (outputs.size() == 1 ? " image " : " images ")
              << clip::shape{3, o.size, o.size} << " f32\n";
}

} // namespace clip_tool
