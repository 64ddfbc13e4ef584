// Tests for clip/io/safetensors.hpp: round trips of every dtype, zero copy and its alignment rule,
// the reference fixtures, a table of malformed files (each rejected at open with a message
// naming the file and the tensor), truncation and corruption sweeps, and the atomic writer.
#include "../support.hpp"

#include <array>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

namespace io_safetensors_test {

namespace {

namespace fs = std::filesystem;
using clip::test::contains;
using clip::test::error_message;

struct temp_dir : clip::test::temp_dir {
    temp_dir() : clip::test::temp_dir("clip-safetensors-test") {}
};

using clip::test::read_file;
using clip::test::write_file;

std::uint64_t header_length(const std::string& file) {
    REQUIRE(file.size() >= 8);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<unsigned char>(file[static_cast<std::size_t>(i)]);
    return n;
}

std::string length_prefix(std::uint64_t n) {
    std::string out(8, '\0');
    for (std::size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return out;
}

/// A safetensors file from a header text and a data section (no padding: the reader must not
/// depend on it).
std::string assemble(const std::string& header, const std::string& data) {
    return length_prefix(header.size()) + header + data;
}

/// The header and data section of a file.
std::pair<std::string, std::string> split(const std::string& file) {
    const std::uint64_t n = header_length(file);
    return {file.substr(8, n), file.substr(8 + n)};
}

/// The raw bytes of a tensor in row-major order.
std::string bytes_of(const clip::tensor& t) {
    const clip::tensor c = t.contiguous();
    return {static_cast<const char*>(c.data_ptr()), c.nbytes()};
}

template <class T>
clip::tensor from_bits(const std::vector<std::uint16_t>& bits, const clip::shape& s) {
    std::vector<T> values;
    for (std::uint16_t b : bits) values.push_back(T::from_bits(b));
    return clip::tensor::from(values, s);
}

/// `"text"`, built by appending: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string.
std::string in_quotes(std::string_view text) {
    std::string out = "\"";
    out += text;
    out += '"';
    return out;
}

bool is_aligned(const clip::tensor& t) {
    return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % clip::dtype_size(t.dtype()) == 0;
}

} // namespace

TEST_CASE("tensors of every dtype and layout round-trip bit-exactly") {
    const temp_dir dir;
    const fs::path path = dir / "all.safetensors";

    const clip::tensor matrix = clip::rand_normal({3, 4}, 7);
    const std::vector<std::pair<std::string, clip::tensor>> tensors = {
        {"f32", clip::rand_normal({2, 3, 4}, 1)},
        // NaN, infinities, subnormals, negative zero: the bits must survive, not just the values.
        {"f16", from_bits<clip::float16>({0x3c00, 0x7c00, 0xfc00, 0x7e01, 0x0001, 0x8000, 0x7bff}, {7})},
        {"bf16", from_bits<clip::bfloat16>({0x3f80, 0x7f80, 0xff80, 0x7fc1, 0x0001, 0x8000}, {2, 3})},
        {"i32", clip::tensor::from<std::int32_t>({-2147483647 - 1, -1, 0, 2147483647}, clip::shape{2, 2})},
        {"i64", clip::tensor::from<std::int64_t>({std::numeric_limits<std::int64_t>::min(), 49408}, clip::shape{2})},
        {"u8", clip::tensor::from<std::uint8_t>({0, 1, 127, 128, 255}, clip::shape{5})},
        {"scalar", clip::tensor::from<float>({3.2f}, clip::shape{})},
        {"i64 scalar", clip::tensor::from<std::int64_t>({224}, clip::shape{})},
        {"empty", clip::tensor::zeros({0, 3})},
        {"transposed", matrix.t()},                 // non-contiguous: written as a row-major copy
        {"strided", matrix.slice(1, 1, 4, 2)},      // a view with an offset and a step
        {"broadcast", clip::tensor::from<float>({1.0f, 2.0f}, clip::shape{2, 1}).expand({2, 3})},
        {"visual.conv1.weight", clip::rand_uniform({4, 3, 2, 2}, 3)},
    };
    const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ünïcode ✓"}};
    clip::save_safetensors(path, tensors, metadata);

    const std::string file = read_file(path);
    const std::uint64_t n = header_length(file);
    CHECK((8 + n) % 8 == 0); // the data section is 8-byte aligned
    std::uint64_t data_bytes = 0;
    for (const auto& [name, t] : tensors) data_bytes += t.nbytes();
    CHECK(file.size() == 8 + n + data_bytes);
    CHECK(dir.listing() == std::set<std::string>{"all.safetensors"}); // no temporary left

    const clip::safetensors f = clip::safetensors::open(path);
    CHECK(f.path() == path);
    CHECK(f.size() == tensors.size());
    CHECK(f.metadata() == std::map<std::string, std::string, std::less<>>(metadata.begin(), metadata.end()));
    std::vector<std::string> sorted;
    for (const auto& [name, t] : tensors) sorted.push_back(name);
    std::sort(sorted.begin(), sorted.end());
    CHECK(f.names() == sorted);

    std::uint64_t previous_end = 0;
    for (const auto& [name, expected] : tensors) {
        INFO("tensor " << name);
        REQUIRE(f.contains(name));
        const clip::safetensors::tensor_info& info = f.info(name);
        CHECK(info.dtype == expected.dtype());
        CHECK(info.shape == expected.shape());
        CHECK(info.begin == previous_end); // written in the given order, back to back
        CHECK(info.end - info.begin == expected.nbytes());
        previous_end = info.end;

        const clip::tensor got = f.get(name);
        CHECK(got.dtype() == expected.dtype());
        CHECK(got.shape() == expected.shape());
        CHECK(got.is_contiguous());
        CHECK(is_aligned(got));
        CHECK(bytes_of(got) == bytes_of(expected));
    }
    CHECK(f.get("scalar").item<float>() == 3.2f);
    CHECK(f.get("i64 scalar").item<std::int64_t>() == 224);
    CHECK(f.get("f16").to(clip::dtype::f32).to_vector<float>()[0] == 1.0f);
    CHECK_FALSE(f.contains("__metadata__"));
}

TEST_CASE("get returns views of the mapping that keep it alive") {
    const temp_dir dir;
    const fs::path path = dir / "weights.safetensors";
    const clip::tensor w = clip::rand_normal({64, 32}, 5);
    clip::save_safetensors(path, {{"w", w}, {"b", clip::rand_normal({32}, 6)}});

    clip::tensor kept;
    {
        const clip::safetensors f = clip::safetensors::open(path);
        const clip::tensor first = f.get("w"), second = f.get("w");
        CHECK(first.data_ptr() == second.data_ptr()); // zero copy: both view the mapped bytes
        kept = f.get("w").t();                         // a view of a view
    }
    fs::remove(path); // the mapping, not the file name, holds the data
    CHECK(bytes_of(kept) == bytes_of(w.t()));
    CHECK(clip::test::max_relative_error(kept, w.t()) == 0.0);
}

TEST_CASE("tensors whose bytes are not aligned to their element size are copied") {
    const temp_dir dir;
    const fs::path path = dir / "packed.safetensors";
    // u8[1] first: the f32 starts at byte 1 of the data section, the i64 at byte 9 (as an I64
    // num_batches_tracked after an odd number of F32s does in the reference fixtures).
    const clip::tensor f32 = clip::tensor::from<float>({1.5f, -2.25f}, clip::shape{2});
    const clip::tensor i64 = clip::tensor::from<std::int64_t>({-7}, clip::shape{});
    const clip::tensor f16 = from_bits<clip::float16>({0x3c00, 0xc000, 0x7c00}, {3});
    clip::save_safetensors(path, {{"byte", clip::tensor::from<std::uint8_t>({9}, clip::shape{1})},
                                  {"f32", f32}, {"i64", i64}, {"f16", f16}});
    const clip::safetensors f = clip::safetensors::open(path);
    CHECK(f.info("f32").begin == 1);
    CHECK(f.info("i64").begin == 9);
    CHECK(f.info("f16").begin == 17);
    for (const char* name : {"f32", "i64", "f16"}) {
        INFO("tensor " << name);
        const clip::tensor first = f.get(name), second = f.get(name);
        CHECK(is_aligned(first));
        CHECK(first.data_ptr() != second.data_ptr()); // a copy each time
    }
    CHECK(f.get("f32").to_vector<float>() == f32.to_vector<float>());
    CHECK(f.get("i64").item<std::int64_t>() == -7);
    CHECK(bytes_of(f.get("f16")) == bytes_of(f16));
    // The f16 at byte 17 is misaligned too; "byte" (u8) never is.
    CHECK(f.get("byte").item<std::int64_t>() == 9);

    // A header without padding misaligns the whole data section: every wider tensor is copied,
    // every value still right.
    const auto [header, data] = split(read_file(path));
    std::string unpadded = header;
    while (!unpadded.empty() && unpadded.back() == ' ') unpadded.pop_back();
    unpadded += "  "; // 8 + length is now ≡ 2 (mod 8) or so: anything but 0 mod 4
    if ((8 + unpadded.size()) % 4 == 0) unpadded += ' ';
    write_file(path, assemble(unpadded, data));
    const clip::safetensors g = clip::safetensors::open(path);
    CHECK(g.get("f32").to_vector<float>() == f32.to_vector<float>());
    CHECK(g.get("i64").item<std::int64_t>() == -7);
    CHECK(bytes_of(g.get("f16")) == bytes_of(f16));
}

TEST_CASE("the reference fixtures read, every tensor of every file") {
    const auto reference = clip::test::reference_dir();
    if (!reference) {
        MESSAGE("skipped: ../shared/reference not found (set CLIP_REFERENCE_DIR to the fixtures)");
        return;
    }
    const clip::detail::json files = clip::detail::parse_json(read_file(*reference / "files.json"), "files.json");
    const clip::detail::json models = clip::detail::parse_json(read_file(*reference / "models.json"), "models.json");

    int opened = 0;
    for (const auto& [file_name, entry] : files.items()) {
        if (!file_name.ends_with(".safetensors")) continue;
        INFO("fixture " << file_name);
        const fs::path path = *reference / file_name;
        const std::string bytes = read_file(path);
        REQUIRE(bytes.size() == entry.at("bytes").get<std::size_t>());
        const std::uint64_t data_start = 8 + header_length(bytes);

        const clip::safetensors f = clip::safetensors::open(path);
        ++opened;
        CHECK(f.size() > 0);
        CHECK(f.metadata().at("format") == "pt");
        std::uint64_t covered = 0;
        for (const std::string& name : f.names()) {
            INFO("tensor " << name);
            const auto& info = f.info(name);
            const clip::tensor t = f.get(name);
            CHECK(t.dtype() == info.dtype);
            CHECK(t.shape() == info.shape);
            CHECK(is_aligned(t));
            // Compared with the file read independently of the mapping.
            CHECK(bytes_of(t) == bytes.substr(data_start + info.begin, info.end - info.begin));
            covered += info.end - info.begin;
        }
        CHECK(data_start + covered == bytes.size()); // the reference writer leaves no gaps
    }
    CHECK(opened == 9);

    const clip::safetensors vit = clip::safetensors::open(*reference / "vit.safetensors");
    CHECK(vit.info("visual.conv1.weight").dtype == clip::dtype::f32);
    CHECK(vit.info("visual.conv1.weight").shape == clip::shape{128, 3, 8, 8});
    CHECK(vit.info("logit_scale").shape == clip::shape{});
    CHECK(vit.get("logit_scale").item<float>() == doctest::Approx(3.2));
    CHECK(vit.info("text_projection").shape == clip::shape{128, 64});

    const clip::safetensors e2e = clip::safetensors::open(*reference / "e2e.safetensors");
    const std::map<std::string, std::int64_t> scalars = {
        {"input_resolution", 224}, {"context_length", 77}, {"vocab_size", 49408}};
    for (const auto& [name, value] : scalars) {
        INFO("tensor " << name);
        CHECK(e2e.info(name).dtype == clip::dtype::i64);
        CHECK(e2e.info(name).shape == clip::shape{});
        CHECK(e2e.get(name).item<std::int64_t>() == value);
    }
    CHECK(e2e.info("token_embedding.weight").shape == clip::shape{49408, 64});

    const clip::safetensors resnet = clip::safetensors::open(*reference / "resnet.safetensors");
    CHECK(resnet.get("visual.bn1.num_batches_tracked").dtype() == clip::dtype::i64); // misaligned in the file

    // models.json lists each model's weight count and the dtype and shape of each I/O tensor.
    for (const auto& [model, description] : models.at("models").items()) {
        INFO("model " << model);
        const auto weights = clip::safetensors::open(*reference / description.at("weights").get<std::string>());
        CHECK(weights.size() == description.at("n_weight_tensors").get<std::size_t>());
        const auto io = clip::safetensors::open(*reference / description.at("io").get<std::string>());
        for (const auto& [name, spec] : description.at("io_tensors").items()) {
            INFO("tensor " << name);
            REQUIRE(io.contains(name));
            const std::string torch_dtype = spec.at(0).get<std::string>();
            CHECK(io.info(name).dtype == (torch_dtype == "int64" ? clip::dtype::i64 : clip::dtype::f32));
            CHECK(io.info(name).shape == clip::shape(std::span<const std::int64_t>(spec.at(1).get<std::vector<std::int64_t>>())));
        }
    }
}

namespace {

/// One malformed input: how to make it from a valid file, and what the error must say.
struct malformed_case {
    std::string name;     // also names the file: bad-<name>.safetensors
    std::function<void(const fs::path&, const std::string& valid)> create;
    std::string expected; // a piece of the message describing the problem
    std::string tensor;   // the tensor the message must name ("" when there is none)
    std::string get = {}; // when set, open succeeds and get(get) must throw
};

/// A case whose file is `mutate(valid)`.
std::function<void(const fs::path&, const std::string&)> bytes(std::function<std::string(const std::string&)> mutate) {
    return [mutate](const fs::path& path, const std::string& valid) { write_file(path, mutate(valid)); };
}

/// A case whose file is the valid one with its header JSON edited (and re-serialised unpadded).
std::function<void(const fs::path&, const std::string&)> edit(std::function<void(clip::detail::ordered_json&)> change) {
    return bytes([change](const std::string& valid) {
        const auto [header, data] = split(valid);
        auto json = clip::detail::ordered_json::parse(header);
        change(json);
        return assemble(json.dump(), data);
    });
}

/// A case whose header text is replaced by `header` (data section kept).
std::function<void(const fs::path&, const std::string&)> header_text(std::string header) {
    return bytes([header](const std::string& valid) { return assemble(header, split(valid).second); });
}

/// The valid file: alpha f32 [2, 3] at [0, 24), beta i64 [2] at [24, 40), gamma u8 [4] at [40, 44).
std::string valid_file(const temp_dir& dir) {
    const fs::path path = dir / "valid.safetensors";
    clip::save_safetensors(path,
                           {{"alpha", clip::rand_normal({2, 3}, 1)},
                            {"beta", clip::tensor::from<std::int64_t>({1, 2}, clip::shape{2})},
                            {"gamma", clip::tensor::from<std::uint8_t>({1, 2, 3, 4}, clip::shape{4})}},
                           {{"format", "pt"}});
    return read_file(path);
}

} // namespace

TEST_CASE("malformed files are rejected with a message naming the file and the tensor") {
    const temp_dir dir;
    const std::string valid = valid_file(dir);
    const std::uint64_t n = header_length(valid);
    using json = clip::detail::ordered_json;

    const std::vector<malformed_case> cases = {
        {"empty", bytes([](const std::string&) { return std::string(); }), "0 bytes, shorter than the 8-byte", ""},
        {"cut-in-prefix", bytes([](const std::string& v) { return v.substr(0, 5); }), "5 bytes, shorter than the 8-byte", ""},
        {"cut-in-header", bytes([n](const std::string& v) { return v.substr(0, 8 + n / 2); }),
         "runs past the end of the file", ""},
        {"cut-after-header", bytes([n](const std::string& v) { return v.substr(0, 8 + n); }),
         "run past the end of the data section", "alpha"},
        {"cut-in-data", bytes([](const std::string& v) { return v.substr(0, v.size() - 3); }),
         "run past the end of the data section", "gamma"},
        {"length-past-end", bytes([](const std::string& v) { return length_prefix(v.size()) + v.substr(8); }),
         "runs past the end of the file", ""},
        {"length-2^63", bytes([](const std::string& v) { return length_prefix(std::uint64_t{1} << 63) + v.substr(8); }),
         "header length 9223372036854775808", ""},
        {"length-over-limit",
         [](const fs::path& p, const std::string&) {
             // A sparse 200 MB file: a 150 MB header fits in it but is past the 100 MB limit.
             write_file(p, length_prefix(150'000'000) + "{}");
             fs::resize_file(p, 200'000'000);
         },
         "header length 150000000 exceeds the limit of 100000000 bytes", ""},
        {"length-zero", bytes([](const std::string& v) { return length_prefix(0) + v.substr(8); }), "invalid JSON", ""},
        {"invalid-json", header_text(R"({"alpha": {"dtype": "F32", )"), "invalid JSON: [json.exception.parse_error", ""},
        {"invalid-utf8", header_text("{\"alph\xff\": {}}"), "invalid JSON", ""},
        {"duplicate-name",
         header_text(R"({"alpha":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                     R"("alpha":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})"),
         "duplicate key \"alpha\"", ""},
        {"header-array", header_text("[1, 2]"), "must be a JSON object, it is an array", ""},
        {"header-string", header_text("\"alpha\""), "must be a JSON object, it is a string", ""},
        {"entry-number", edit([](json& h) { h["alpha"] = 5; }), "must be a JSON object, it is a number", "alpha"},
        {"entry-array", edit([](json& h) { h["beta"] = json::array(); }), "must be a JSON object, it is an array", "beta"},
        {"no-dtype", edit([](json& h) { h["alpha"].erase("dtype"); }), "no \"dtype\" field", "alpha"},
        {"no-shape", edit([](json& h) { h["beta"].erase("shape"); }), "no \"shape\" field", "beta"},
        {"no-offsets", edit([](json& h) { h["gamma"].erase("data_offsets"); }), "no \"data_offsets\" field", "gamma"},
        {"dtype-number", edit([](json& h) { h["alpha"]["dtype"] = 32; }), "\"dtype\" must be a string", "alpha"},
        {"dtype-unknown", edit([](json& h) { h["alpha"]["dtype"] = "F33"; }), "unknown dtype \"F33\"", "alpha"},
        {"dtype-lowercase", edit([](json& h) { h["alpha"]["dtype"] = "f32"; }), "unknown dtype \"f32\"", "alpha"},
        {"dtype-f64", edit([](json& h) { h["beta"]["dtype"] = "F64"; }), "unsupported dtype \"F64\"", "beta"},
        {"dtype-bool", edit([](json& h) { h["gamma"]["dtype"] = "BOOL"; }), "unsupported dtype \"BOOL\"", "gamma"},
        {"shape-object", edit([](json& h) { h["alpha"]["shape"] = json::object(); }), "\"shape\" must be an array", "alpha"},
        {"shape-negative", edit([](json& h) { h["alpha"]["shape"] = {-2, -3}; }), "negative extent -2", "alpha"},
        {"shape-float", edit([](json& h) { h["alpha"]["shape"] = {2.0, 3}; }), "not an integer", "alpha"},
        {"shape-string", edit([](json& h) { h["alpha"]["shape"] = {"2", 3}; }), "not an integer", "alpha"},
        {"shape-null", edit([](json& h) { h["alpha"]["shape"] = {nullptr, 3}; }), "not an integer", "alpha"},
        {"shape-rank-9", edit([](json& h) { h["gamma"]["shape"] = {1, 1, 1, 1, 1, 1, 1, 1, 4}; }), "at most 8", "gamma"},
        {"shape-overflow", edit([](json& h) { h["gamma"]["shape"] = {0, std::uint64_t{1} << 40, std::uint64_t{1} << 40}; }),
         "overflows", "gamma"},
        {"shape-huge-extent", edit([](json& h) { h["gamma"]["shape"] = {std::uint64_t{1} << 63}; }), "overflows", "gamma"},
        {"offsets-beyond-data", edit([](json& h) { h["alpha"]["data_offsets"] = {1000, 1024}; }),
         "run past the end of the data section", "alpha"},
        {"offsets-wrap", edit([](json& h) { h["gamma"]["data_offsets"] = {std::numeric_limits<std::uint64_t>::max() - 1, 2}; }),
         "end before they begin", "gamma"},
        {"offsets-reversed", edit([](json& h) { h["alpha"]["data_offsets"] = {24, 0}; }), "end before they begin", "alpha"},
        {"offsets-negative", edit([](json& h) { h["alpha"]["data_offsets"] = {-1, 23}; }), "non-negative integers", "alpha"},
        {"offsets-float", edit([](json& h) { h["alpha"]["data_offsets"] = {0.0, 24}; }), "non-negative integers", "alpha"},
        {"offsets-one", edit([](json& h) { h["alpha"]["data_offsets"] = {24}; }), "must be an array [begin, end]", "alpha"},
        {"offsets-three", edit([](json& h) { h["alpha"]["data_offsets"] = {0, 12, 24}; }), "must be an array [begin, end]", "alpha"},
        {"size-mismatch", edit([](json& h) { h["alpha"]["shape"] = {2, 2}; }), "span 24 bytes, but shape [2,2] of F32 needs 16",
         "alpha"},
        {"scalar-mismatch", edit([](json& h) { h["beta"]["shape"] = json::array(); }), "span 16 bytes, but shape [] of I64 needs 8",
         "beta"},
        {"overlap", edit([](json& h) { h["beta"]["data_offsets"] = {16, 32}; }), "overlap those of tensor \"alpha\"", "beta"},
        {"same-range", edit([](json& h) { h["gamma"]["data_offsets"] = {0, 4}; }), "overlap", "gamma"},
        {"metadata-array", edit([](json& h) { h["__metadata__"] = json::array(); }), "\"__metadata__\" must be a JSON object", ""},
        {"metadata-number", edit([](json& h) { h["__metadata__"]["format"] = 1; }), "\"__metadata__\" value \"format\" must be a string",
         ""},
        {"nonexistent", [](const fs::path&, const std::string&) {}, "cannot open the file: No such file or directory", ""},
        {"directory", [](const fs::path& p, const std::string&) { fs::create_directory(p); }, "is a directory", ""},
        {"missing-tensor", [](const fs::path& p, const std::string& v) { write_file(p, v); }, "did you mean \"alpha\"",
         "alpah", "alpah"},
        {"missing-tensor-far", [](const fs::path& p, const std::string& v) { write_file(p, v); }, "the file holds 3 tensors",
         "visual.proj", "visual.proj"},
    };

    std::set<std::string> names;
    for (const malformed_case& c : cases) {
        INFO("case " << c.name);
        REQUIRE(names.insert(c.name).second);
        const fs::path path = dir / ("bad-" + c.name + ".safetensors");
        c.create(path, valid);
        std::string message;
        if (c.get.empty()) {
            CHECK_THROWS_AS(clip::safetensors::open(path), clip::io_error);
            message = error_message([&] { clip::safetensors::open(path); });
        } else {
            const clip::safetensors f = clip::safetensors::open(path);
            CHECK_THROWS_AS(f.get(c.get), clip::io_error);
            CHECK_THROWS_AS(f.info(c.get), clip::io_error);
            message = error_message([&] { f.get(c.get); });
        }
        INFO("message: " << message);
        CHECK(contains(message, in_quotes(path.string())));
        CHECK(contains(message, c.expected));
        if (!c.tensor.empty()) CHECK(contains(message, "tensor " + in_quotes(c.tensor)));
    }
}

TEST_CASE("every truncation and every one-byte corruption of the header fails cleanly") {
    // Under ASan/UBSan this is a small fuzzer: each mutant either opens, and then every tensor
    // reads, or throws io_error; nothing else (a crash, another exception) is allowed.
    const temp_dir dir;
    const std::string valid = valid_file(dir);
    const fs::path path = dir / "mutant.safetensors";
    const auto opens_or_io_error = [&](const std::string& file) {
        write_file(path, file);
        try {
            const clip::safetensors f = clip::safetensors::open(path);
            for (const std::string& name : f.names()) (void)bytes_of(f.get(name));
            return true;
        } catch (const clip::io_error& e) {
            CHECK(contains(e.what(), path.string()));
            return false;
        }
    };
    for (std::size_t size = 0; size < valid.size(); ++size) {
        INFO("truncated to " << size << " bytes");
        CHECK_FALSE(opens_or_io_error(valid.substr(0, size)));
    }
    const std::size_t header_end = 8 + header_length(valid);
    int opened = 0;
    for (std::size_t i = 0; i < header_end; ++i) {
        for (const char replacement : {'\0', ' ', '"', '{', '}', ',', '9', '-', '\xff', 'A'}) {
            std::string mutant = valid;
            if (mutant[i] == replacement) continue;
            mutant[i] = replacement;
            INFO("byte " << i << " set to " << static_cast<int>(replacement));
            opened += opens_or_io_error(mutant) ? 1 : 0;
        }
    }
    MESSAGE(opened << " one-byte mutants of the header still formed a valid file");
}

TEST_CASE("save_safetensors rejects bad input before touching the destination") {
    const temp_dir dir;
    const fs::path path = dir / "out.safetensors";
    write_file(path, "previous content");
    const clip::tensor x = clip::tensor::zeros({2});
    const std::vector<std::pair<std::vector<std::pair<std::string, clip::tensor>>, std::string>> cases = {
        {{{"x", x}, {"y", x}, {"x", x}}, "tensor \"x\" appears twice"},
        {{{"__metadata__", x}}, "\"__metadata__\" is reserved"},
        {{{"x", x}, {"undefined", clip::tensor()}}, "tensor \"undefined\" is undefined"},
        {{{"bad\xff", x}}, "tensor name \"bad\xff\" is not valid UTF-8"},
    };
    for (const auto& [tensors, expected] : cases) {
        INFO("expected " << expected);
        CHECK_THROWS_AS(clip::save_safetensors(path, tensors), clip::io_error);
        const std::string message = error_message([&] { clip::save_safetensors(path, tensors); });
        CHECK(contains(message, "save_safetensors " + in_quotes(path.string())));
        CHECK(contains(message, expected));
    }
    CHECK(read_file(path) == "previous content");
    CHECK(dir.listing() == std::set<std::string>{"out.safetensors"});
}

TEST_CASE("save_safetensors replaces the destination atomically or not at all") {
    const temp_dir dir;
    const fs::path path = dir / "model.safetensors";
    const clip::tensor big = clip::rand_normal({64, 1024}, 3); // 256 KiB
    const std::vector<std::pair<std::string, clip::tensor>> tensors = {{"w", big}};

    SUBCASE("overwriting an existing file") {
        clip::save_safetensors(path, {{"old", clip::tensor::zeros({3})}});
        clip::save_safetensors(path, tensors);
        const clip::safetensors f = clip::safetensors::open(path);
        CHECK(f.names() == std::vector<std::string>{"w"});
        CHECK(bytes_of(f.get("w")) == bytes_of(big));
        CHECK(dir.listing() == std::set<std::string>{"model.safetensors"});
    }
    SUBCASE("into a directory that does not exist") {
        const fs::path missing = dir / "no-such-dir" / "model.safetensors";
        const std::string message = error_message([&] { clip::save_safetensors(missing, tensors); });
        CHECK(contains(message, missing.string()));
        CHECK(contains(message, "No such file or directory"));
        CHECK_THROWS_AS(clip::save_safetensors(missing, tensors), clip::io_error);
        CHECK(dir.listing().empty());
    }
    SUBCASE("over a directory") {
        fs::create_directory(path);
        write_file(path / "inside", "kept");
        CHECK_THROWS_AS(clip::save_safetensors(path, tensors), clip::io_error);
        CHECK(contains(error_message([&] { clip::save_safetensors(path, tensors); }), "cannot rename"));
        CHECK(read_file(path / "inside") == "kept");
        CHECK(dir.listing() == std::set<std::string>{"model.safetensors"});
    }
    SUBCASE("in a read-only directory") {
        write_file(path, "previous content");
        fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
        // root (and CAP_DAC_OVERRIDE) ignores the permission bits: probe before relying on them.
        const bool writable = ::access(dir.path().c_str(), W_OK) == 0;
        if (writable) {
            MESSAGE("skipped: running with permission to write into a read-only directory (root?)");
        } else {
            const std::string message = error_message([&] { clip::save_safetensors(path, tensors); });
            CHECK(contains(message, path.string()));
            CHECK(contains(message, "cannot create a temporary file"));
            CHECK(contains(message, "Permission denied"));
            CHECK(read_file(path) == "previous content");
            CHECK(dir.listing() == std::set<std::string>{"model.safetensors"});
        }
        fs::permissions(dir.path(), fs::perms::owner_all, fs::perm_options::replace);
    }
    SUBCASE("a write that fails half-way (file size limit)") {
        // RLIMIT_FSIZE makes write() fail with EFBIG once the temporary passes 64 KiB, even for
        // root: a disk-full failure in the middle of the data, on demand.
        write_file(path, "previous content");
        rlimit saved{};
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
        const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit small = saved;
        small.rlim_cur = 64 * 1024;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
        const std::string message = error_message([&] { clip::save_safetensors(path, tensors); });
        ::setrlimit(RLIMIT_FSIZE, &saved);
        std::signal(SIGXFSZ, previous_handler);
        CHECK(contains(message, "save_safetensors " + in_quotes(path.string())));
        CHECK(contains(message, "File too large"));
        CHECK(read_file(path) == "previous content");
        CHECK(dir.listing() == std::set<std::string>{"model.safetensors"});
    }
}

TEST_CASE("save_safetensors copies cuda tensors to the host") {
#if defined(CLIP_WITH_CUDA)
    if (clip::detail::cuda::device_count() == 0) {
        MESSAGE("skipped: clip is built with CUDA but no CUDA device is present");
        return;
    }
    const temp_dir dir;
    const fs::path path = dir / "cuda.safetensors";
    const clip::tensor host = clip::rand_normal({3, 5}, 1);
    clip::save_safetensors(path, {{"x", host.to(clip::device::cuda())}});
    CHECK(bytes_of(clip::safetensors::open(path).get("x")) == bytes_of(host));
#else
    MESSAGE("skipped: clip is built without CUDA");
#endif
}

} // namespace io_safetensors_test
