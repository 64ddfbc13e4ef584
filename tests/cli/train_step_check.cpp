// tests/cli/train_step_check.cpp: the weights `clip train` wrote after one step from a CSV of the
// reference photos and captions equal one step of the library's training loop on the same
// inputs (clip::preprocess of the photos, clip.tokenize of the captions), bit for bit. The
// library's step is itself checked against PyTorch (tests/train/model_test.cpp, train_step).
//
//   train-step-check REFERENCE_DIR CLI_WEIGHTS LR WD
#include <clip/clip.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 5) {
        std::cerr << "usage: " << argv[0] << " REFERENCE_DIR CLI_WEIGHTS LR WD\n";
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    clip::train::parameter_store store = clip::train::parameter_store::load(dir / "e2e.safetensors");
    clip::train::clip_model model(store);
    clip::train::adamw optimizer(store, {.lr = std::atof(argv[3]), .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-6, .weight_decay = std::atof(argv[4])});
    std::vector<std::filesystem::path> photos;
    for (const char* name : {"chelsea_cat.png", "rocket.jpg", "camera_gray_small.png", "astronaut_rgba_portrait.png"})
        photos.push_back(dir / "images" / name);
    const std::vector<std::string> captions = {"a photo of a cat", "a rocket on a launch pad at night",
                                               "a black and white photo of a man with a camera", "an astronaut in an orange suit"};
    const clip::tokenizer tok = clip::tokenizer::load(dir / "bpe_simple_vocab_16e6.txt.gz");
    store.zero_grad();
    const float loss = model.forward(clip::preprocess(photos, 224), tok.tokenize(std::span<const std::string>(captions), 77, true));
    model.backward();
    optimizer.step();
    clip::train::clamp_logit_scale(store);

    const clip::safetensors cli = clip::safetensors::open(argv[2]);
    std::size_t different = 0;
    for (const clip::train::parameter& p : store.parameters()) {
        const std::vector<float> want = p.value.to_vector<float>(), got = cli.get(p.name).to_vector<float>();
        if (want != got) {
            ++different;
            std::cerr << p.name << " differs\n";
        }
    }
    std::printf("loss %.6f; %zu of %zu tensors differ from the library's step\n", static_cast<double>(loss), different, store.size());
    return different == 0 ? 0 : 1;
}
