// bench/preprocess.cpp: images per second through CLIP's image preprocessing
// (clip/image/preprocess.hpp) on a 640×427 baseline JPEG (the fixture rocket.jpg from
// $CLIP_REFERENCE_DIR or ../shared/reference beside the sources; without it, a JPEG of the same
// size and subsampling written in memory with libjpeg), to 224 × 224.
//
//   pre/decode_jpeg            decode_image(bytes): libjpeg-turbo alone (one thread whatever the
//                              setting), the floor (peer) of the rows below, which all decode too
//   pre/transform              preprocess(image, 224) on a decoded image: resize (Pillow's
//                              bicubic), crop, normalise; its passes split rows over the threads
//   pre/decode_and_transform   preprocess(decode_image(bytes), 224): one image, start to finish
//   pre/batch_files            preprocess(paths, 224) on 16 files: read, decode and transform,
//                              the images spread over the threads
//
// Each at threads:1 and threads:2 (clip::set_num_threads). Counter: images/s.
#include <benchmark/benchmark.h>

#include <clip/clip.hpp>

#include <cstdio> // before jpeglib.h
#include <jpeglib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

constexpr std::int64_t n_px = 224;
constexpr int batch_images = 16;

/// A 640×427 4:2:0 JPEG (quality 90) of a smooth pattern with some texture, written with libjpeg.
std::vector<std::uint8_t> synthetic_jpeg() {
    const int width = 640, height = 427;
    std::vector<std::uint8_t> pixels(static_cast<std::size_t>(width * height * 3));
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x)
            for (int c = 0; c < 3; ++c)
                pixels[static_cast<std::size_t>((y * width + x) * 3 + c)] =
                    static_cast<std::uint8_t>((x * (c + 1) + y * (3 - c) + ((x * 7919 + y * 104729) % 23)) & 0xff);
    jpeg_compress_struct info;
    jpeg_error_mgr errors;
    info.err = jpeg_std_error(&errors); // default handler (exits): fine for a benchmark's own input
    jpeg_create_compress(&info);
    unsigned char* buffer = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&info, &buffer, &size);
    info.image_width = width;
    info.image_height = height;
    info.input_components = 3;
    info.in_color_space = JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, 90, TRUE);
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = pixels.data() + static_cast<std::size_t>(info.next_scanline) * width * 3;
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    std::vector<std::uint8_t> out(buffer, buffer + size);
    std::free(buffer);
    return out;
}

/// The JPEG every benchmark uses, and where it came from.
struct input {
    std::vector<std::uint8_t> bytes;
    std::string source;
    fs::path directory; // the batch's copies
    std::vector<fs::path> files;

    input() {
        fs::path reference;
        if (const char* env = std::getenv("CLIP_REFERENCE_DIR"); env && *env) reference = env;
        else reference = fs::path(CLIP_SOURCE_DIR).parent_path() / "shared" / "reference";
        const fs::path rocket = reference / "images" / "rocket.jpg";
        if (fs::is_regular_file(rocket)) {
            std::ifstream in(rocket, std::ios::binary);
            bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
            source = rocket.string();
        } else {
            bytes = synthetic_jpeg();
            source = "synthetic 640x427 JPEG (no fixture found)";
        }
        directory = fs::temp_directory_path() / ("clip-bench-preprocess-" + std::to_string(::getpid()));
        fs::create_directories(directory);
        for (int i = 0; i < batch_images; ++i) {
            files.push_back(directory / ("image-" + std::to_string(i) + ".jpg"));
            std::ofstream out(files.back(), std::ios::binary);
            out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        }
    }
    ~input() {
        std::error_code ignored;
        fs::remove_all(directory, ignored);
    }
};

input& data() {
    static input d;
    return d;
}

int default_threads = 1;

struct thread_scope {
    explicit thread_scope(const benchmark::State& state) { clip::set_num_threads(static_cast<int>(state.range(0))); }
    ~thread_scope() { clip::set_num_threads(default_threads); }
};

void report(benchmark::State& state, int images_per_iteration) {
    state.SetItemsProcessed(state.iterations() * images_per_iteration);
    state.counters["images/s"] =
        benchmark::Counter(static_cast<double>(images_per_iteration), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["threads"] = static_cast<double>(state.range(0));
}

void BM_decode_jpeg(benchmark::State& state) {
    thread_scope threads(state);
    const input& d = data();
    for (auto _ : state) {
        clip::image img = clip::decode_image(d.bytes);
        benchmark::DoNotOptimize(img.data());
    }
    report(state, 1);
}

void BM_transform(benchmark::State& state) {
    thread_scope threads(state);
    const clip::image img = clip::decode_image(data().bytes);
    for (auto _ : state) {
        clip::tensor t = clip::preprocess(img, n_px);
        benchmark::DoNotOptimize(t.data_ptr());
    }
    report(state, 1);
}

void BM_decode_and_transform(benchmark::State& state) {
    thread_scope threads(state);
    const input& d = data();
    for (auto _ : state) {
        clip::tensor t = clip::preprocess(clip::decode_image(d.bytes), n_px);
        benchmark::DoNotOptimize(t.data_ptr());
    }
    report(state, 1);
}

void BM_batch_files(benchmark::State& state) {
    thread_scope threads(state);
    const input& d = data();
    for (auto _ : state) {
        clip::tensor t = clip::preprocess(d.files, n_px); // [16, 3, 224, 224]
        benchmark::DoNotOptimize(t.data_ptr());
    }
    report(state, batch_images);
}

void register_all() {
    const std::pair<const char*, void (*)(benchmark::State&)> all[] = {
        {"pre/decode_jpeg", BM_decode_jpeg},
        {"pre/transform", BM_transform},
        {"pre/decode_and_transform", BM_decode_and_transform},
        {"pre/batch_files", BM_batch_files},
    };
    for (const auto& [name, fn] : all)
        benchmark::RegisterBenchmark(name, fn)
            ->ArgName("threads")
            ->Arg(1)
            ->Arg(2)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
}

} // namespace

int main(int argc, char** argv) {
    // A default minimum time that keeps the run short; a --benchmark_min_time given on the
    // command line comes later in argv and wins.
    std::vector<char*> args(argv, argv + argc);
    static char default_min_time[] = "--benchmark_min_time=0.3";
    args.insert(args.begin() + 1, default_min_time);
    int count = static_cast<int>(args.size());
    benchmark::Initialize(&count, args.data());
    if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
    default_threads = clip::num_threads();
    register_all();
    const clip::image probe = clip::decode_image(data().bytes);
    benchmark::AddCustomContext("clip_threads", std::to_string(default_threads));
    benchmark::AddCustomContext("input", data().source + " (" + std::to_string(probe.width()) + "x" +
                                             std::to_string(probe.height()) + ", " + std::to_string(data().bytes.size()) +
                                             " bytes) -> " + std::to_string(n_px) + "x" + std::to_string(n_px));
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
