// Helper of the data tests: a tar writer into memory, enough to build the archives the reader must
// accept (ustar with a prefix, GNU long names, pax paths, base-256 sizes, skipped member types).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace clip::test {

struct tar_entry {
    std::string path;
    std::string data;
    char type = '0';
};

enum class tar_flavour { ustar, gnu, pax };

class tar_writer {
public:
    explicit tar_writer(tar_flavour flavour = tar_flavour::ustar) : flavour_(flavour) {}

    /// Appends a member, with the flavour's long-name mechanism when the path needs one.
    tar_writer& add(const tar_entry& e) {
        std::string name = e.path, prefix;
        if (name.size() > 100) {
            if (flavour_ == tar_flavour::gnu) {
                header("././@LongLink", e.path.size() + 1, 'L', "");
                data(e.path + std::string(1, '\0'));
                name = e.path.substr(0, 100);
            } else if (flavour_ == tar_flavour::pax) {
                const std::string body = " path=" + e.path + "\n";
                // The record's length counts its own digits.
                std::size_t length = body.size() + 1;
                while (std::to_string(length).size() + body.size() != length) ++length;
                const std::string record = std::to_string(length) + body;
                header("PaxHeaders/x", record.size(), 'x', "");
                data(record);
                name = e.path.substr(0, 100);
            } else {
                const std::size_t slash = name.rfind('/', 155);
                prefix = name.substr(0, slash);
                name = name.substr(slash + 1);
            }
        }
        header(name, e.data.size(), e.type, prefix);
        data(e.data);
        return *this;
    }

    /// A regular file whose size field is written in GNU base-256.
    tar_writer& add_base256(const std::string& path, const std::string& content) {
        header(path, content.size(), '0', "", true);
        data(content);
        return *this;
    }

    /// The archive, with the two zero blocks that end it unless `end_blocks` is false.
    std::string bytes(bool end_blocks = true) const { return end_blocks ? out_ + std::string(1024, '\0') : out_; }

private:
    void header(const std::string& name, std::size_t size, char type, const std::string& prefix, bool base256 = false) {
        char h[512] = {};
        std::memcpy(h, name.data(), std::min<std::size_t>(name.size(), 100));
        std::snprintf(h + 100, 8, "%07o", 0644);
        std::snprintf(h + 108, 8, "%07o", 1000);
        std::snprintf(h + 116, 8, "%07o", 1000);
        if (base256) {
            h[124] = static_cast<char>(0x80);
            for (int i = 0; i < 8; ++i) h[135 - i] = static_cast<char>((size >> (8 * i)) & 0xff);
        } else {
            std::snprintf(h + 124, 12, "%011zo", size);
        }
        std::snprintf(h + 136, 12, "%011o", 1700000000u);
        h[156] = type;
        if (flavour_ == tar_flavour::gnu) std::memcpy(h + 257, "ustar  ", 8);
        else std::memcpy(h + 257, "ustar\0" "00", 8);
        std::memcpy(h + 345, prefix.data(), std::min<std::size_t>(prefix.size(), 155));
        std::memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (const char c : h) sum += static_cast<unsigned char>(c);
        std::snprintf(h + 148, 8, "%06o", sum);
        h[155] = ' ';
        out_.append(h, 512);
    }
    void data(const std::string& d) {
        out_ += d;
        out_.append((512 - d.size() % 512) % 512, '\0');
    }

    tar_flavour flavour_;
    std::string out_;
};

inline std::vector<std::uint8_t> as_bytes(const std::string& s) { return {s.begin(), s.end()}; }

} // namespace clip::test
