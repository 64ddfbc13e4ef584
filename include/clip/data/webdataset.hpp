// clip/data/webdataset.hpp: WebDataset tar shards as OpenCLIP trains on them: each sample is the
// group of consecutive members sharing a key, with an image (jpg, png or jpeg) and a caption
// (txt).
//
//   clip::webdataset data({"shards/000000.tar", "shards/000001.tar"});
//   clip::example e = data.get(0);   // decoded image, caption text
//
// WebDataset's rule (webdataset.tariterators `base_plus_ext`, `group_by_keys`): a member path
// splits at the first dot of its file name into the key (directories included) and the
// extension (lower-cased); consecutive members with the same key form one sample. Members whose
// file name has no dot or starts with one are ignored. The image is the first of the extensions
// "jpg", "png", "jpeg" present (OpenCLIP's `rename(image="jpg;png;jpeg;webp")`; clip decodes no
// WebP); the caption is "txt", read as UTF-8. Samples without an image or a caption are dropped
// and counted in `skipped()`, as OpenCLIP's `filter_no_caption_or_no_image`.
//
// Unlike OpenCLIP's streaming pipeline (shard shuffling plus a shuffle buffer), the shards are
// indexed once, at construction (headers only), and samples are then read by position: the
// loader shuffles all samples of all shards exactly, and a resumed run reads the same samples.
// Errors: anything list_tar rejects (clip/data/tar.hpp: the shard and byte offset are named), and
// one sample holding two members with the same extension, throw clip::io_error at construction;
// an image that does not decode throws from get(i), naming shard and key.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clip/core/error.hpp"
#include "clip/data/dataset.hpp"
#include "clip/data/tar.hpp"
#include "clip/image/decode.hpp"
#include "clip/text/unicode.hpp"

namespace clip {

/// WebDataset's split of a member path into sample key and extension: "a/b.c.jpg" → ("a/b",
/// "c.jpg"); nullopt when the file name has no dot or starts with one. The extension is
/// returned as written (the dataset lower-cases it).
struct sample_key {
    std::string_view key, extension;
};
inline std::optional<sample_key> split_sample_key(std::string_view path) {
    const std::size_t slash = path.rfind('/');
    const std::size_t name_begin = slash == std::string_view::npos ? 0 : slash + 1;
    const std::size_t dot = path.find('.', name_begin);
    if (dot == std::string_view::npos || dot == name_begin) return std::nullopt;
    return sample_key{path.substr(0, dot), path.substr(dot + 1)};
}

class webdataset final : public dataset {
public:
    /// One sample: where its image and caption are.
    struct sample {
        std::size_t shard = 0;
        std::string key;
        std::string image_extension;
        std::uint64_t image_offset = 0, image_size = 0;
        std::uint64_t caption_offset = 0, caption_size = 0;
    };

    /// Indexes the shards, in the order given.
    explicit webdataset(std::vector<std::filesystem::path> shards) : shards_(std::move(shards)) {
        for (std::size_t s = 0; s < shards_.size(); ++s) index_shard(s);
    }

    std::size_t size() const override { return samples_.size(); }

    example get(std::size_t i) const override {
        const sample& s = at(i);
        const std::filesystem::path& shard = shards_[s.shard];
        const detail::tar::file source(shard, "webdataset");
        const auto check_extent = [&](std::uint64_t offset, std::uint64_t size) {
            detail::check<io_error>(offset <= source.size() && size <= source.size() - offset, "webdataset: shard \"",
                                    shard.string(), "\" changed since it was indexed (sample \"", s.key, "\")");
        };
        check_extent(s.image_offset, s.image_size);
        check_extent(s.caption_offset, s.caption_size);
        std::vector<std::uint8_t> bytes(static_cast<std::size_t>(s.image_size));
        source.read(s.image_offset, bytes.data(), s.image_size);
        std::string caption(static_cast<std::size_t>(s.caption_size), '\0');
        source.read(s.caption_offset, caption.data(), s.caption_size);
        // Checked here, where the sample can be named: the tokenizer would reject it without.
        try {
            (void)text::decode_utf8(caption, detail::message("webdataset: \"", shard.string(), ":", s.key, ".txt\""));
        } catch (const io_error&) {
            throw;
        } catch (const error& e) {
            throw io_error(e.what());
        }
        return {decode_image(bytes, name(i)), std::move(caption)};
    }

    /// "shard.tar:key.jpg".
    std::string name(std::size_t i) const override {
        const sample& s = at(i);
        return shards_[s.shard].string() + ":" + s.key + "." + s.image_extension;
    }

    const sample& sample_at(std::size_t i) const { return at(i); }
    const std::vector<std::filesystem::path>& shards() const noexcept { return shards_; }
    /// Samples dropped for lacking an image or a caption.
    std::size_t skipped() const noexcept { return skipped_; }

private:
    static constexpr std::array<std::string_view, 3> image_extensions = {"jpg", "png", "jpeg"};

    const sample& at(std::size_t i) const {
        detail::check<index_error>(i < samples_.size(), "webdataset: sample ", i, " of ", samples_.size());
        return samples_[i];
    }

    void index_shard(std::size_t shard) {
        const std::vector<tar_member> members = list_tar(shards_[shard]);
        struct part {
            std::string extension;
            const tar_member* member;
        };
        std::string key;
        std::vector<part> parts;
        const auto finish = [&] {
            if (parts.empty()) return;
            const part* caption = nullptr;
            const part* picture = nullptr;
            for (const part& p : parts)
                if (p.extension == "txt") caption = &p;
            for (const std::string_view extension : image_extensions) {
                for (const part& p : parts)
                    if (p.extension == extension) picture = &p;
                if (picture) break;
            }
            if (caption && picture)
                samples_.push_back({shard, key, picture->extension, picture->member->data_offset, picture->member->size,
                                    caption->member->data_offset, caption->member->size});
            else ++skipped_;
            parts.clear();
        };
        for (const tar_member& m : members) {
            const std::optional<sample_key> split = split_sample_key(m.path);
            if (!split) continue;
            if (split->key != key) {
                finish();
                key = split->key;
            }
            std::string extension(split->extension);
            for (char& c : extension)
                if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
            for (const part& p : parts)
                detail::check<io_error>(p.extension != extension, "tar \"", shards_[shard].string(), "\": offset ",
                                        m.header_offset, ": sample \"", key, "\" has two \".", extension, "\" members");
            parts.push_back({std::move(extension), &m});
        }
        finish();
    }

    std::vector<std::filesystem::path> shards_;
    std::vector<sample> samples_;
    std::size_t skipped_ = 0;
};

} // namespace clip
