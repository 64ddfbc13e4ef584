// bench-checkpoint: how fast and how light loading a CLIP checkpoint is.
//
// Writes a random-initialised model of a preset (default ViT-B/32) to a safetensors file, then,
// in a fresh process, times `clip::model::load` (median of 5; the file is in the page cache after
// writing) and runs encode_image at batch 8, reporting the peak resident memory against the
// budget of the weights' size + 150 MB (the mapped weights are dropped once packed, see
// clip/core/mapped_memory.hpp). Usage: bench-checkpoint [PRESET] [PATH]
#include <clip/clip.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace {

/// Passes parameters through and keeps every one, to write them out afterwards.
struct recorder : clip::nn::parameter_source {
    explicit recorder(clip::nn::parameter_source& inner) : inner(inner) {}
    clip::tensor get(const std::string& name, const clip::shape& s) override {
        clip::tensor t = inner.get(name, s);
        all.emplace_back(name, t);
        return t;
    }
    bool contains(const std::string& name) const override { return inner.contains(name); }
    clip::nn::parameter_source& inner;
    std::vector<std::pair<std::string, clip::tensor>> all;
};

double peak_rss_mb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

} // namespace

/// Loads the checkpoint (timed), encodes a batch of 8 images, reports time and memory.
int measure(const std::filesystem::path& path) {
    const double weights_mb = static_cast<double>(std::filesystem::file_size(path)) / (1024.0 * 1024.0);
    std::vector<double> seconds;
    for (int i = 0; i < 5; ++i) {
        const auto start = std::chrono::steady_clock::now();
        const clip::model m = clip::model::load(path);
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(seconds.begin(), seconds.end());
    const clip::model m = clip::model::load(path);
    const std::int64_t R = m.config().vision.image_size;
    const clip::tensor images = clip::rand_normal({8, 3, R, R}, 1);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 3; ++i) (void)m.encode_image(images);
    const double per_batch = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 3;
    const double peak = peak_rss_mb(), budget = weights_mb + 150.0;
    std::printf("weights %.0f MB; load %.1f ms (median of 5); encode_image batch 8: %.0f ms; "
                "peak RSS %.0f MB, budget weights + 150 MB = %.0f MB (%.2f of it)\n",
                weights_mb, seconds[2] * 1e3, per_batch * 1e3, peak, budget, peak / budget);
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == "--measure") return measure(argv[2]);
    const std::string name = argc > 1 ? argv[1] : "ViT-B/32";
    const std::filesystem::path path =
        argc > 2 ? std::filesystem::path(argv[2]) : std::filesystem::temp_directory_path() / "clip-bench-checkpoint.safetensors";
    const clip::clip_config config = clip::preset(name);
    {
        clip::random_initialization init(config, 0);
        recorder source(init);
        (void)clip::model::build(config, source);
        clip::save_safetensors(path, source.all);
    }
    std::printf("%s written to %s\n", name.c_str(), path.c_str());
    std::fflush(stdout);
    // A fresh process, so that writing the file does not count in the peak memory.
    const std::string command = std::string("\"") + argv[0] + "\" --measure \"" + path.string() + "\"";
    const int status = std::system(command.c_str());
    std::filesystem::remove(path);
    return status == 0 ? 0 : 1;
}
