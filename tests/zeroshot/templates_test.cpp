// Tests for clip/zeroshot/templates.hpp: Python's str.format for templates, the built-in sets,
// template and label files.
#include "../support.hpp"

#include <set>

namespace zeroshot_templates_test {

using clip::test::contains;
using clip::test::error_message;

TEST_CASE("format_template follows str.format for {} {0} {{ }}") {
    CHECK(clip::format_template("a photo of a {}.", "cat") == "a photo of a cat.");
    CHECK(clip::format_template("{0} and {}", "x") == "x and x");
    CHECK(clip::format_template("{{literal}} {}", "dog") == "{literal} dog");
    CHECK(clip::format_template("{}", "") == "");
    CHECK(clip::format_template("{}", "a {} b") == "a {} b"); // the label is not re-formatted
    CHECK(contains(error_message([] { (void)clip::format_template("a photo", "cat"); }), "has no {} for the label"));
    CHECK(contains(error_message([] { (void)clip::format_template("a {name}", "cat"); }), "unsupported field {name}"));
    CHECK(contains(error_message([] { (void)clip::format_template("a {1}", "cat"); }), "unsupported field {1}"));
    CHECK(contains(error_message([] { (void)clip::format_template("a { photo", "cat"); }), "never closed"));
    CHECK(contains(error_message([] { (void)clip::format_template("a } {}", "cat"); }), "single '}'"));
}

TEST_CASE("the built-in template sets") {
    const auto& imagenet = clip::imagenet_templates();
    CHECK(imagenet.size() == 80);
    CHECK(std::set<std::string>(imagenet.begin(), imagenet.end()).size() == 80);
    CHECK(imagenet.front() == "a bad photo of a {}.");
    CHECK(imagenet.back() == "a tattoo of the {}.");
    for (const std::string& t : imagenet) CHECK(clip::format_template(t, "X").find('X') != std::string::npos);
    CHECK(clip::default_templates() == std::vector<std::string>{"a photo of a {}."});
}

TEST_CASE("template and label files") {
    clip::test::temp_dir tmp;
    clip::test::write_file(tmp.path() / "t.txt", "a photo of a {}.\r\n\n  \nart of the {}\n");
    CHECK(clip::load_templates(tmp.path() / "t.txt") == std::vector<std::string>{"a photo of a {}.", "art of the {}"});
    clip::test::write_file(tmp.path() / "bad.txt", "a photo of a {}.\nno slot here\n");
    const std::string bad = error_message([&] { (void)clip::load_templates(tmp.path() / "bad.txt"); });
    CHECK(contains(bad, "bad.txt line 2"));
    clip::test::write_file(tmp.path() / "empty.txt", "\n\n");
    CHECK(contains(error_message([&] { (void)clip::load_templates(tmp.path() / "empty.txt"); }), "no templates"));
    CHECK_THROWS_AS((void)clip::load_templates(tmp.path() / "missing.txt"), clip::io_error);
    CHECK(contains(error_message([&] { (void)clip::read_labels(tmp.path() / "missing.txt"); }), "missing.txt"));
    CHECK_THROWS_AS((void)clip::read_labels(tmp.path()), clip::io_error);

    clip::test::write_file(tmp.path() / "labels.txt", " cat \r\ndog\n\nsports car\n");
    CHECK(clip::read_labels(tmp.path() / "labels.txt") == std::vector<std::string>{"cat", "dog", "sports car"});
    clip::test::write_file(tmp.path() / "twice.txt", "cat\ndog\ncat\n");
    CHECK(contains(error_message([&] { (void)clip::read_labels(tmp.path() / "twice.txt"); }), "\"cat\" appears twice"));
    clip::test::write_file(tmp.path() / "blank.txt", "\n \n");
    CHECK(contains(error_message([&] { (void)clip::read_labels(tmp.path() / "blank.txt"); }), "no labels"));
}

TEST_CASE("split_labels") {
    CHECK(clip::split_labels("cat,dog, car ") == std::vector<std::string>{"cat", "dog", "car"});
    CHECK(clip::split_labels("one") == std::vector<std::string>{"one"});
    CHECK(contains(error_message([] { (void)clip::split_labels("cat,,dog"); }), "label 2 is empty"));
    CHECK(contains(error_message([] { (void)clip::split_labels(""); }), "label 1 is empty"));
    CHECK(contains(error_message([] { (void)clip::split_labels("cat,dog,cat"); }), "appears twice"));
}

} // namespace zeroshot_templates_test
