// search: embed every photo under a folder, then find the ones that best match a sentence.
//
//   clip-search MODEL.safetensors VOCAB PHOTO_DIR "a dog on a beach" [K]
//
// The `clip index` / `clip search` commands do the same with an index file that is kept up to
// date between runs; this is the library underneath, in memory.
#include <clip/clip.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 5) {
        std::cerr << "usage: " << argv[0] << " MODEL.safetensors VOCAB PHOTO_DIR QUERY [K]\n";
        return 2;
    }
    try {
        const clip::model model = clip::model::load(argv[1]);
        const clip::tokenizer tokenizer = clip::tokenizer::load(argv[2]);
        const std::vector<std::filesystem::path> files = clip::find_images(argv[3]);
        const std::int64_t k = argc > 5 ? std::stoll(argv[5]) : 5;

        // Embed the photos 32 at a time; files that fail to decode are skipped.
        std::vector<std::string> paths;
        std::vector<clip::file_stamp> stamps;
        std::vector<clip::tensor> batches;
        for (std::size_t first = 0; first < files.size(); first += 32) {
            const std::vector<std::filesystem::path> batch(files.begin() + first, files.begin() + std::min(files.size(), first + 32));
            const clip::preprocessed_batch images = clip::preprocess_each(batch, model.config().vision.image_size);
            for (const auto& failure : images.failures) std::cerr << "skipped: " << failure.message << '\n';
            if (images.loaded.empty()) continue;
            batches.push_back(model.encode_image(images.images)); // [B, E]
            for (std::size_t i : images.loaded) {
                paths.push_back(batch[i].string());
                stamps.push_back(clip::stamp_of(batch[i]));
            }
        }
        clip::tensor embeddings = clip::tensor::empty({static_cast<std::int64_t>(paths.size()), model.config().embed_dim});
        std::int64_t row = 0;
        for (const clip::tensor& b : batches) {
            embeddings.slice(0, row, row + b.size(0)).copy_from(b);
            row += b.size(0);
        }
        const clip::embedding_index index("in memory", paths, stamps, embeddings); // rows are L2-normalised

        // The query in the same space: cosine similarity to every photo, best k first.
        const clip::tensor query = model.encode_text(tokenizer.tokenize(argv[4])); // [1, E]
        const clip::hits hits = index.search(query, k);
        for (std::int64_t j = 0; j < hits.indices.size(1); ++j)
            std::printf("%.4f  %s\n", static_cast<double>(hits.scores.data<float>()[j]),
                        paths[static_cast<std::size_t>(hits.indices.data<std::int64_t>()[j])].c_str());
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << '\n';
        return 1;
    }
}
