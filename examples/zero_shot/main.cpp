// zero-shot: classify photos among labels given in words, with CLIP's 80 ImageNet prompts.
//
//   clip-zero-shot MODEL.safetensors VOCAB "cat,dog,car" photo.jpg [more.jpg ...]
//
// MODEL is an OpenAI/OpenCLIP or Hugging Face checkpoint; VOCAB is bpe_simple_vocab_16e6.txt.gz
// (or a Hugging Face vocab.json with merges.txt beside it).
#include <clip/clip.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 5) {
        std::cerr << "usage: " << argv[0] << " MODEL.safetensors VOCAB LABEL,LABEL,... IMAGE...\n";
        return 2;
    }
    try {
        const clip::model model = clip::model::load(argv[1]);
        const clip::tokenizer tokenizer = clip::tokenizer::load(argv[2]);
        const std::vector<std::string> labels = clip::split_labels(argv[3]);

        // One embedding per label, averaged over the prompts ("a photo of a {}.", "a sketch of the {}.", ...).
        const clip::zero_shot_classifier classifier(model, tokenizer, labels, clip::imagenet_templates());

        const std::vector<std::filesystem::path> files(argv + 4, argv + argc);
        const clip::tensor images = clip::preprocess(files, model.config().vision.image_size); // [N, 3, R, R]
        const auto ranked = classifier.classify(model, images, /*k=*/3);

        for (std::size_t i = 0; i < files.size(); ++i) {
            std::cout << files[i].string() << '\n';
            for (const clip::prediction& p : ranked[i])
                std::printf("  %5.1f%%  %s\n", 100.0 * p.probability, labels[static_cast<std::size_t>(p.index)].c_str());
        }
    } catch (const clip::error& e) {
        std::cerr << "error: " << e.what() << '\n';
        return 1;
    }
}
