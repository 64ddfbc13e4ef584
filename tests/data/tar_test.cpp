// Tests for clip/data/tar.hpp: member lists of archives written by the test (ustar, GNU and pax
// long names, base-256 sizes, skipped types), reading members from a file, and errors naming the
// archive and offset for truncated, corrupt and fuzzed archives.
#include "../support.hpp"
#include "tar_writer.hpp"

#include <clip/data/tar.hpp>

#include <random>

namespace data_tar_test {

using clip::test::as_bytes;
using clip::test::contains;
using clip::test::error_message;
using clip::test::tar_entry;
using clip::test::tar_flavour;
using clip::test::tar_writer;

namespace {

std::string member_text(const std::string& archive, const clip::tar_member& m) {
    return archive.substr(static_cast<std::size_t>(m.data_offset), static_cast<std::size_t>(m.size));
}

} // namespace

TEST_CASE("regular files are listed in order with their data; other types are skipped") {
    tar_writer w;
    w.add({"dir/", "", '5'})
        .add({"dir/a.jpg", "JPEGDATA"})
        .add({"dir/a.txt", std::string(600, 'x')})
        .add({"link", "", '2'})
        .add({"empty.txt", ""})
        .add({"old", "v7", '\0'})
        .add({"contig", "seven", '7'});
    const std::string archive = w.bytes();
    const std::vector<clip::tar_member> members = clip::list_tar(as_bytes(archive), "t.tar");
    REQUIRE(members.size() == 5);
    CHECK(members[0].path == "dir/a.jpg");
    CHECK(member_text(archive, members[0]) == "JPEGDATA");
    CHECK(members[0].header_offset == 512);
    CHECK(members[0].data_offset == 1024);
    CHECK(members[1].path == "dir/a.txt");
    CHECK(member_text(archive, members[1]) == std::string(600, 'x'));
    CHECK(members[2].path == "empty.txt");
    CHECK(members[2].size == 0);
    CHECK(members[3].path == "old");
    CHECK(members[4].path == "contig");
    CHECK(member_text(archive, members[4]) == "seven");
}

TEST_CASE("long names: ustar prefix, GNU 'L' and pax 'x' path") {
    const std::string long_path = std::string(120, 'd') + "/" + std::string(80, 'n') + ".sample.jpg";
    for (const tar_flavour flavour : {tar_flavour::ustar, tar_flavour::gnu, tar_flavour::pax}) {
        INFO("flavour " << static_cast<int>(flavour));
        const std::string archive = tar_writer(flavour).add({long_path, "img"}).add({"short.txt", "caption"}).bytes();
        const std::vector<clip::tar_member> members = clip::list_tar(as_bytes(archive));
        REQUIRE(members.size() == 2);
        CHECK(members[0].path == long_path);
        CHECK(member_text(archive, members[0]) == "img");
        CHECK(members[0].header_offset == 0); // the extension header starts the member
        CHECK(members[1].path == "short.txt"); // the long name applied to one member only
        CHECK(member_text(archive, members[1]) == "caption");
    }
}

TEST_CASE("GNU base-256 sizes, and archives without the end-of-archive blocks") {
    const std::string archive = tar_writer().add_base256("big.bin", "0123456789").add({"b.txt", "b"}).bytes(false);
    const std::vector<clip::tar_member> members = clip::list_tar(as_bytes(archive));
    REQUIRE(members.size() == 2);
    CHECK(members[0].size == 10);
    CHECK(member_text(archive, members[0]) == "0123456789");
    CHECK(members[1].path == "b.txt");
    CHECK(clip::list_tar(std::span<const std::uint8_t>()).empty());
}

TEST_CASE("a tar file on disk: list_tar and read_tar_member") {
    clip::test::temp_dir tmp("clip-tar-test");
    const std::string archive = tar_writer().add({"x.png", std::string(1500, 'p')}).add({"x.txt", "hello"}).bytes();
    clip::test::write_file(tmp / "s.tar", archive);
    const std::vector<clip::tar_member> members = clip::list_tar(tmp / "s.tar");
    REQUIRE(members.size() == 2);
    const std::vector<std::uint8_t> text = clip::read_tar_member(tmp / "s.tar", members[1]);
    CHECK(std::string(text.begin(), text.end()) == "hello");
    CHECK(clip::read_tar_member(tmp / "s.tar", members[0]).size() == 1500);
    CHECK(contains(error_message([&] { clip::list_tar(tmp / "missing.tar"); }), "missing.tar"));
    CHECK(contains(error_message([&] { clip::list_tar(tmp.path()); }), "not a regular file"));
    clip::tar_member beyond = members[1];
    beyond.data_offset = 1 << 20;
    CHECK(contains(error_message([&] { clip::read_tar_member(tmp / "s.tar", beyond); }), "past the end"));
}

TEST_CASE("truncated and corrupt archives throw io_error naming the archive and the offset") {
    const std::string archive = tar_writer().add({"a.jpg", std::string(700, 'a')}).add({"a.txt", "cap"}).bytes();
    // Cut inside the first member's data: the header at 0 says 700 bytes.
    const std::string in_data = archive.substr(0, 900);
    const std::string m1 = error_message([&] { clip::list_tar(as_bytes(in_data), "cut.tar"); });
    CHECK(contains(m1, "tar \"cut.tar\": offset 0"));
    CHECK(contains(m1, "truncated"));
    // Cut inside the second header.
    const std::string in_header = archive.substr(0, 1536 + 100);
    const std::string m2 = error_message([&] { clip::list_tar(as_bytes(in_header), "cut.tar"); });
    CHECK(contains(m2, "offset 1536"));
    CHECK(contains(m2, "ends inside a header"));
    // Cut inside the padding after the data.
    CHECK(contains(error_message([&] { clip::list_tar(as_bytes(archive.substr(0, 1300))); }), "padding"));
    // A flipped byte in a header.
    std::string corrupt = archive;
    corrupt[1536 + 3] ^= 0x20;
    const std::string m3 = error_message([&] { clip::list_tar(as_bytes(corrupt), "bad.tar"); });
    CHECK(contains(m3, "offset 1536"));
    CHECK(contains(m3, "checksum"));
    // Not a tar at all.
    CHECK(contains(error_message([&] { clip::list_tar(as_bytes(std::string(2048, 'z'))); }), "checksum"));
    // Every cut is either a clean end (on a header boundary, or after the first zero block) or
    // an io_error.
    const std::size_t first_zero_block = archive.size() - 1024;
    for (std::size_t length = 0; length < archive.size(); ++length) {
        INFO("length " << length);
        try {
            const std::vector<clip::tar_member> members = clip::list_tar(as_bytes(archive.substr(0, length)));
            CHECK((length % 512 == 0 || length >= first_zero_block + 512));
            CHECK(members.size() <= 2);
        } catch (const clip::io_error& e) {
            CHECK(contains(e.what(), "offset"));
        }
    }
}

TEST_CASE("malformed pax records and absurd long names are errors") {
    std::string archive = tar_writer(tar_flavour::pax).add({std::string(150, 'p'), "x"}).bytes();
    // The record starts at 512 with its length; make the length disagree with the text.
    archive[512] = '9';
    CHECK(contains(error_message([&] { clip::list_tar(as_bytes(archive)); }), "pax record"));
}

TEST_CASE("fuzz: corrupted archives never crash, only throw io_error") {
    const std::string base = tar_writer(tar_flavour::gnu)
                                 .add({std::string(130, 'g') + ".jpg", std::string(300, 'i')})
                                 .add({"k.txt", "caption"})
                                 .add({"d/", "", '5'})
                                 .bytes();
    const std::string pax = tar_writer(tar_flavour::pax).add({std::string(130, 'q') + ".png", "ppp"}).bytes();
    std::mt19937 rng(12345);
    int parsed = 0, rejected = 0;
    for (int round = 0; round < 3000; ++round) {
        std::string bytes = round % 2 ? base : pax;
        const int flips = 1 + static_cast<int>(rng() % 8);
        for (int f = 0; f < flips; ++f) {
            const std::size_t at = rng() % bytes.size();
            // Mostly within headers, where the parser looks.
            bytes[at % 2048] = static_cast<char>(rng() % 4 == 0 ? 0xff : rng() % 256);
        }
        if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
        try {
            for (const clip::tar_member& m : clip::list_tar(as_bytes(bytes), "fuzz.tar")) {
                CHECK(m.data_offset + m.size <= bytes.size());
            }
            ++parsed;
        } catch (const clip::io_error& e) {
            CHECK(contains(e.what(), "fuzz.tar"));
            ++rejected;
        }
    }
    MESSAGE(parsed << " parsed, " << rejected << " rejected");
    CHECK(rejected > 0);
}

} // namespace data_tar_test
