// Tests for clip/data/webdataset.hpp: WebDataset's key/extension rule, grouping members into
// samples across several shards, decoding a sample, and errors naming shard and offset or key.
#include "../image/encode.hpp"
#include "../support.hpp"
#include "tar_writer.hpp"

#include <clip/data/webdataset.hpp>

namespace data_webdataset_test {

using clip::test::contains;
using clip::test::error_message;
using clip::test::tar_entry;
using clip::test::tar_writer;

namespace {

/// A width × height RGB PNG whose pixels are a function of `seed`, and its pixels.
std::pair<std::string, std::vector<std::uint8_t>> encoded_png(int width, int height, int seed) {
    clip::test::png_spec spec;
    spec.width = width;
    spec.height = height;
    spec.color_type = PNG_COLOR_TYPE_RGB;
    for (int i = 0; i < width * height * 3; ++i) spec.samples.push_back(static_cast<std::uint8_t>(i * 7 + seed * 31));
    const std::vector<std::uint8_t> bytes = clip::test::encode_png(spec);
    return {std::string(bytes.begin(), bytes.end()), spec.samples};
}

} // namespace

TEST_CASE("split_sample_key: key up to the first dot of the file name") {
    const auto split = [](std::string_view path) {
        const std::optional<clip::sample_key> s = clip::split_sample_key(path);
        return s ? std::string(s->key) + "|" + std::string(s->extension) : std::string("none");
    };
    CHECK(split("000123.jpg") == "000123|jpg");
    CHECK(split("a/b.c.jpg") == "a/b|c.jpg");
    CHECK(split("dir.v2/sample.txt") == "dir.v2/sample|txt");
    CHECK(split("noext") == "none");
    CHECK(split("dir/.hidden.jpg") == "none");
    CHECK(split("dir.x/noext") == "none");
}

TEST_CASE("samples group consecutive members by key, over several shards") {
    clip::test::temp_dir tmp("clip-webdataset-test");
    const auto [png0, pixels0] = encoded_png(5, 4, 0);
    const auto [png1, pixels1] = encoded_png(3, 6, 1);
    const auto [png2, pixels2] = encoded_png(2, 2, 2);
    tar_writer first;
    first.add({"s/000.png", png0})
        .add({"s/000.txt", "a red circle"})
        .add({"s/000.json", "{}"})
        .add({"s/001.txt", "caption without image"}) // dropped
        .add({"s/002.JPEG", "not used: png wins"})     // upper case extension
        .add({"s/002.PNG", png1})
        .add({"s/002.txt", "second"})
        .add({"s/003.png", png2}); // no caption: dropped
    tar_writer second;
    second.add({"__meta.txt", "x"}) // key "__meta", no image: dropped
        .add({"b.png", png2})
        .add({"b.txt", "third"});
    clip::test::write_file(tmp / "0.tar", first.bytes());
    clip::test::write_file(tmp / "1.tar", second.bytes());

    const clip::webdataset data({tmp / "0.tar", tmp / "1.tar"});
    REQUIRE(data.size() == 3);
    CHECK(data.skipped() == 3);
    CHECK(data.sample_at(0).key == "s/000");
    CHECK(data.sample_at(1).key == "s/002");
    CHECK(data.sample_at(1).image_extension == "png");
    CHECK(data.sample_at(2).shard == 1);
    CHECK(data.name(1) == (tmp / "0.tar").string() + ":s/002.png");

    const clip::example e0 = data.get(0);
    CHECK(e0.caption == "a red circle");
    CHECK(e0.picture.width() == 5);
    CHECK(e0.picture.height() == 4);
    CHECK(clip::test::bytes_of(e0.picture) == pixels0);
    const clip::example e1 = data.get(1);
    CHECK(e1.caption == "second");
    CHECK(clip::test::bytes_of(e1.picture) == pixels1);
    CHECK(data.get(2).caption == "third");
    CHECK(contains(error_message([&] { data.get(3); }), "sample 3 of 3"));
}

TEST_CASE("jpg is preferred to png, and a non-consecutive key is a new sample") {
    clip::test::temp_dir tmp("clip-webdataset-test");
    const auto [png, pixels] = encoded_png(4, 4, 3);
    std::vector<std::uint8_t> rgb(4 * 4 * 3, 128);
    const std::vector<std::uint8_t> jpeg = clip::test::encode_jpeg(rgb, 4, 4, 3, 95);
    tar_writer w;
    w.add({"k.png", png}).add({"k.jpg", std::string(jpeg.begin(), jpeg.end())}).add({"k.txt", "first"});
    w.add({"j.png", png}).add({"j.txt", "middle"});
    w.add({"k.png", png}).add({"k.txt", "again"});
    clip::test::write_file(tmp / "s.tar", w.bytes());
    const clip::webdataset data({tmp / "s.tar"});
    REQUIRE(data.size() == 3);
    CHECK(data.sample_at(0).image_extension == "jpg");
    CHECK(data.get(0).picture.mode() == clip::image_mode::rgb);
    CHECK(data.get(2).caption == "again");
}

TEST_CASE("errors name the shard and the offset, or the sample") {
    clip::test::temp_dir tmp("clip-webdataset-test");
    const auto [png, pixels] = encoded_png(2, 2, 4);
    // Two members with the same extension in one sample.
    clip::test::write_file(tmp / "dup.tar", tar_writer().add({"a.txt", "x"}).add({"a.txt", "y"}).bytes());
    const std::string dup = error_message([&] { clip::webdataset({tmp / "dup.tar"}); });
    CHECK(contains(dup, "dup.tar"));
    CHECK(contains(dup, "offset 1024"));
    CHECK(contains(dup, "two \".txt\""));
    // A truncated shard.
    const std::string whole = tar_writer().add({"a.png", png}).add({"a.txt", "x"}).bytes();
    clip::test::write_file(tmp / "cut.tar", whole.substr(0, 600));
    const std::string cut = error_message([&] { clip::webdataset({tmp / "cut.tar"}); });
    CHECK(contains(cut, "cut.tar"));
    CHECK(contains(cut, "truncated"));
    // A missing shard.
    CHECK(contains(error_message([&] { clip::webdataset({tmp / "none.tar"}); }), "none.tar"));
    // An image that does not decode: the error comes from get(i) and names shard and key.
    clip::test::write_file(tmp / "bad.tar", tar_writer().add({"x/y.jpg", "not a jpeg"}).add({"x/y.txt", "c"}).bytes());
    const clip::webdataset bad({tmp / "bad.tar"});
    REQUIRE(bad.size() == 1);
    CHECK(contains(error_message([&] { bad.get(0); }), "bad.tar:x/y.jpg"));
    // A caption that is not UTF-8: an io_error from get(i) that names the member.
    clip::test::write_file(tmp / "text.tar", tar_writer().add({"t.png", png}).add({"t.txt", "caf\xe9"}).bytes());
    const clip::webdataset latin1({tmp / "text.tar"});
    const std::string not_utf8 = error_message([&] { latin1.get(0); });
    CHECK(contains(not_utf8, "text.tar:t.txt"));
    CHECK(contains(not_utf8, "invalid UTF-8"));
    CHECK_THROWS_AS(latin1.get(0), clip::io_error);
}

} // namespace data_webdataset_test
