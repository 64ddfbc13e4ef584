// clip: the command-line tool. Subcommands (one header each):
//   clip embed      --model W [--images-from F:NAME] [--image FILE...] [--tokens-from F:NAME]
//                   [--text STRING...] [--vocab V] [--truncate] --out OUT.safetensors
//   clip tokenize   [--vocab V] [--context-length N] [--truncate] TEXT...
//   clip preprocess [--size N] IMAGE... --out OUT.safetensors
//   clip info       --model W|PRESET
//   clip bench      --model PRESET|W --task encode_image|encode_text --batch B --threads T [--json]
//   clip zeroshot   --model W (--labels L,L,... | --labels-file F) [--template T | --templates imagenet|F]
//                   [--top-k K] [--json] IMAGE...
//   clip index      --model W --images DIR --out INDEX [--ann auto|always|never]
//   clip search     --index INDEX --model W (--text Q | --image F)... [--top-k K] [--json] [--exact]
//   clip train      --dataset-type synthetic|csv|webdataset [--train-data D] (--model P | --config C |
//                   --init W) --batch-size B (--steps N | --epochs E) [--save DIR] [--resume DIR] ...
// Exit status: 0 success, 1 runtime error ("clip: <message>" on stderr), 2 usage error, 3 (index)
// written, but some files could not be read.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "bench.hpp"
#include "embed.hpp"
#include "index.hpp"
#include "info.hpp"
#include "preprocess.hpp"
#include "search.hpp"
#include "tokenize.hpp"
#include "train.hpp"
#include "zeroshot.hpp"

int main(int argc, char** argv) {
    CLI::App app{"clip: CLIP image and text embeddings, tokenization, image preprocessing, model inspection and "
                 "benchmarks",
                 "clip"};
    // No require_subcommand: with it CLI11 answers `clip frobnicate` with "A subcommand is
    // required" instead of naming the unexpected word.
    app.footer("Run `clip <command> --help` for a command's options.");

    clip_tool::embed_options embed;
    clip_tool::tokenize_options tokenize;
    clip_tool::preprocess_options preprocess;
    clip_tool::info_options info;
    clip_tool::bench_options bench;
    clip_tool::zeroshot_options zeroshot;
    clip_tool::index_options index;
    clip_tool::search_options search;
    clip_tool::train_options train;
    CLI::App* embed_command = clip_tool::add_embed_command(app, embed);
    CLI::App* tokenize_command = clip_tool::add_tokenize_command(app, tokenize);
    CLI::App* preprocess_command = clip_tool::add_preprocess_command(app, preprocess);
    CLI::App* info_command = clip_tool::add_info_command(app, info);
    CLI::App* bench_command = clip_tool::add_bench_command(app, bench);
    CLI::App* zeroshot_command = clip_tool::add_zeroshot_command(app, zeroshot);
    CLI::App* index_command = clip_tool::add_index_command(app, index);
    CLI::App* search_command = clip_tool::add_search_command(app, search);
    CLI::App* train_command = clip_tool::add_train_command(app, train);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // CLI11 prints help (exit 0) or the problem; every usage problem is exit status 2.
        return app.exit(e) == 0 ? 0 : 2;
    }

    try {
        if (embed_command->parsed()) clip_tool::run_embed(embed);
        else if (tokenize_command->parsed()) clip_tool::run_tokenize(tokenize);
        else if (preprocess_command->parsed()) clip_tool::run_preprocess(preprocess);
        else if (info_command->parsed()) clip_tool::run_info(info);
        else if (bench_command->parsed()) clip_tool::run_bench(bench);
        else if (zeroshot_command->parsed()) return clip_tool::run_zeroshot(zeroshot) == 0 ? 0 : 1;
        else if (index_command->parsed()) return clip_tool::run_index(index) == 0 ? 0 : 3;
        else if (search_command->parsed()) clip_tool::run_search(search);
        else if (train_command->parsed()) clip_tool::run_train(train);
        else {
            std::cerr << "clip: a command is required (embed, zeroshot, index, search, train, tokenize, preprocess, info or bench)\n\n" << app.help();
            return 2;
        }
        return 0;
    } catch (const std::exception& e) {
        // clip::error carries the library's messages; anything else (std::bad_alloc,
        // std::filesystem::filesystem_error) is reported the same way.
        std::cerr << "clip: " << e.what() << '\n';
        return 1;
    }
}
