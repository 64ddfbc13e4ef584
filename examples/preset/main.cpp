// preset: build a CLIP architecture from its name, with OpenAI's random initialisation, and run
// both encoders, the way a training run or a benchmark starts.
//
//   clip-preset [PRESET]      (default ViT-B/32; `clip info` lists RN50 ... ViT-L/14@336px)
#include <clip/clip.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>

int main(int argc, char** argv) {
    const std::string name = argc > 1 ? argv[1] : "ViT-B/32";
    try {
        const clip::clip_config config = clip::preset(name);
        const clip::model model = clip::model::random(config, /*seed=*/0);
        std::printf("%s: %lld parameters, images %lld px, embeddings of %lld\n", name.c_str(),
                    static_cast<long long>(model.parameter_count()), static_cast<long long>(config.vision.image_size),
                    static_cast<long long>(config.embed_dim));

        // Four random "images" (already preprocessed: [N, 3, R, R]) and three token rows.
        const std::int64_t R = config.vision.image_size, V = config.text.vocab_size;
        const clip::tensor images = clip::rand_normal({4, 3, R, R}, /*seed=*/1);
        clip::tensor tokens = clip::tensor::zeros({3, config.text.context_length}, clip::dtype::i64);
        for (std::int64_t i = 0; i < 3; ++i) {
            std::int64_t* row = tokens.data<std::int64_t>() + i * config.text.context_length;
            row[0] = V - 2;                                  // <|startoftext|>
            for (std::int64_t j = 1; j <= 5 + i; ++j) row[j] = 1000 + 7 * j + i;
            row[6 + i] = V - 1;                              // <|endoftext|>: pooled by argmax
        }

        const auto start = std::chrono::steady_clock::now();
        const auto logits = model.logits(images, tokens); // normalise both, scale, multiply
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        std::cout << "logits per image [4, 3] (" << ms << " ms for both encoders):\n" << logits.per_image << '\n';
    } catch (const clip::error& e) {
        std::cerr << "error: " << e.what() << '\n';
        return 1;
    }
}
