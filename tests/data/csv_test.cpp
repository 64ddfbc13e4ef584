// Tests for clip/data/csv.hpp: the csv module's quoting, OpenCLIP's defaults and options, paths
// relative to the CSV file, and io_errors with file:line for malformed files.
#include "../image/encode.hpp"
#include "../support.hpp"

#include <clip/data/csv.hpp>

namespace data_csv_test {

using clip::test::contains;
using clip::test::error_message;

namespace {

std::vector<std::vector<std::string>> fields(const clip::csv_table& t) {
    std::vector<std::vector<std::string>> out;
    for (const auto& r : t.rows) out.push_back(r.fields);
    return out;
}

} // namespace

TEST_CASE("parse_csv: quoting as Python's csv module reads it") {
    const clip::csv_table t = clip::parse_csv(
        "\xEF\xBB\xBF" "filepath,title\r\n"
        "a.jpg,plain caption\r\n"
        "\"b,c.jpg\",\"a \"\"quoted\"\" word\"\n"
        "\n"
        "c.jpg,\"two\nlines\"\n"
        "d.jpg,mid\"quote\n"
        "e.jpg,\n"
        "\"\",\"\"\r"
        "f.jpg,last",
        ',', "t.csv");
    CHECK(t.columns == std::vector<std::string>{"filepath", "title"});
    CHECK(fields(t) == std::vector<std::vector<std::string>>{{"a.jpg", "plain caption"},
                                                             {"b,c.jpg", "a \"quoted\" word"},
                                                             {"c.jpg", "two\nlines"},
                                                             {"d.jpg", "mid\"quote"},
                                                             {"e.jpg", ""},
                                                             {"", ""},
                                                             {"f.jpg", "last"}});
    std::vector<std::size_t> lines;
    for (const auto& r : t.rows) lines.push_back(r.line);
    CHECK(lines == std::vector<std::size_t>{2, 3, 5, 7, 8, 9, 10});
}

TEST_CASE("parse_csv: tab separator, OpenCLIP's default") {
    const clip::csv_table t = clip::parse_csv("filepath\ttitle\nx.png\ta, b and c\n", '\t', "t.tsv");
    CHECK(fields(t) == std::vector<std::vector<std::string>>{{"x.png", "a, b and c"}});
}

TEST_CASE("parse_csv: malformed files name the file and line") {
    const auto message = [](std::string_view text) { return error_message([&] { clip::parse_csv(text, ',', "m.csv"); }); };
    CHECK(contains(message("a,b\n1,2\n3\n"), "m.csv:3: 1 fields, but the header has 2"));
    CHECK(contains(message("a,b\n1,2,3\n"), "m.csv:2: 3 fields"));
    CHECK(contains(message("a,b\n1,\"open\nstill open\n"), "m.csv:2: a quoted field never closes"));
    CHECK(contains(message("a,b\n\"x\"y,2\n"), "m.csv:2: unexpected character 'y' after a closing quote"));
    CHECK(contains(message(""), "m.csv: empty file"));
    CHECK(contains(message("\n\n"), "empty file"));
    CHECK(contains(error_message([] { clip::parse_csv("a", '"', "q.csv"); }), "separator"));
}

TEST_CASE("csv_dataset: OpenCLIP's columns, paths relative to the CSV, images read on get") {
    clip::test::image_temp_dir tmp;
    clip::test::png_spec spec;
    spec.width = 3;
    spec.height = 2;
    spec.color_type = PNG_COLOR_TYPE_RGB;
    spec.samples = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};
    std::filesystem::create_directories(tmp / "images");
    tmp.write("images/one.png", clip::test::encode_png(spec));
    const std::filesystem::path absolute = tmp.write("two.png", clip::test::encode_png(spec));
    clip::test::write_file(tmp / "train.csv", "title\tfilepath\n\"one, in a folder\"\timages/one.png\nsecond\t" +
                                                  absolute.string() + "\nbroken\tmissing.png\n");
    const clip::csv_dataset data(tmp / "train.csv");
    REQUIRE(data.size() == 3);
    CHECK(data.image_path(0) == tmp / "images/one.png");
    CHECK(data.image_path(1) == absolute);
    CHECK(data.caption(0) == "one, in a folder");
    CHECK(data.line(2) == 4);
    const clip::example e = data.get(0);
    CHECK(e.caption == "one, in a folder");
    CHECK(clip::test::bytes_of(e.picture) == spec.samples);
    CHECK(data.get(1).picture.width() == 3);
    CHECK(contains(error_message([&] { data.get(2); }), "missing.png"));
    CHECK(contains(data.name(2), "train.csv:4"));
}

TEST_CASE("csv_dataset: --csv-separator, --csv-img-key, --csv-caption-key, and their errors") {
    clip::test::temp_dir tmp("clip-csv-test");
    clip::test::write_file(tmp / "c.csv", "id,image,text\n1,a.jpg,first\n2,,second\n");
    const clip::csv_options options{.separator = ",", .image_key = "image", .caption_key = "text"};
    CHECK(contains(error_message([&] { clip::csv_dataset(tmp / "c.csv", options); }), "c.csv:3: empty image"));
    clip::test::write_file(tmp / "c.csv", "id,image,text\n1,a.jpg,first\n");
    const clip::csv_dataset data(tmp / "c.csv", options);
    CHECK(data.size() == 1);
    CHECK(data.caption(0) == "first");
    // The defaults (tab, filepath, title) do not fit this file.
    const std::string missing = error_message([&] { clip::csv_dataset(tmp / "c.csv"); });
    CHECK(contains(missing, "c.csv:1: no column \"filepath\""));
    CHECK(contains(missing, "\"id,image,text\""));
    CHECK(contains(error_message([&] { clip::csv_dataset(tmp / "c.csv", {.separator = ",", .image_key = "image"}); }),
                   "no column \"title\" (the header has \"id\", \"image\", \"text\")"));
    CHECK(contains(error_message([&] { clip::csv_dataset(tmp / "c.csv", {.separator = "::"}); }), "one character"));
    CHECK(contains(error_message([&] { clip::csv_dataset(tmp / "none.csv"); }), "none.csv"));
}

} // namespace data_csv_test
