// clip/io/safetensors.hpp: reading and writing safetensors files, the checkpoint format of
// Hugging Face and of the PyTorch reference fixtures (../shared/reference/*.safetensors).
//
// The format (github.com/huggingface/safetensors, which this reader and writer match):
//
//   [8 bytes]  N, a little-endian u64: the length of the header
//   [N bytes]  a UTF-8 JSON object mapping each tensor name to
//              {"dtype": "F32", "shape": [768, 3, 32, 32], "data_offsets": [begin, end]},
//              plus an optional "__metadata__": {string: string} entry that is not a tensor;
//              writers pad it with spaces so that the data section starts 8-byte aligned
//   [the rest] the data section: each tensor's elements in C order, little-endian, in bytes
//              [begin, end) counted from the start of the section. A scalar has shape [] and
//              one element.
//
// Reading. `safetensors::open` maps the file read-only and validates the whole header before any
// tensor can be read, so a malformed or truncated file fails at `open`, never later inside a
// model: the file holds at least the 8-byte prefix; N stays within the file and under 100 MB (the
// reference's limit); the header is valid JSON (UTF-8, no key twice) and an object; every entry
// is an object with a string "dtype", an array "shape" of non-negative integers (at most
// clip::shape::max_dims of them, whose product, in bytes, fits in 63 bits) and "data_offsets",
// two non-negative integers with begin <= end, end - begin = elements x element size, and end
// within the data section; no two non-empty tensors overlap. Unknown extra fields in an entry are
// ignored, as the reference does; gaps between tensors and bytes after the last one are allowed
// (the reference rejects them, but they cannot make a read unsafe). Every failure is a
// clip::io_error naming the file, the tensor where there is one, and the problem.
//
// dtypes: F32, F16, BF16, I32, I64 and U8, i.e. every clip::dtype; F16 and BF16 tensors are
// returned as such (`.to(clip::dtype::f32)` converts). The other safetensors dtypes (BOOL, I8,
// F64, the FP8 types, ...) are rejected at `open` with "unsupported dtype": clip has no tensor to
// put them in, and failing early beats a checkpoint that opens and then cannot be used.
//
// Zero copy. `get` returns a view of the mapped bytes (`tensor::from_blob`) that shares ownership
// of the mapping: it stays valid after the `safetensors` object is gone, and the file is unmapped
// when the last such tensor dies. The mapping is read-only: a tensor from `get` must not be
// written to (clone() it first; a write would fault). One exception to zero copy: safetensors
// packs tensors back to back, so an F32 tensor that follows an odd number of F16/U8 elements, or
// an I64 scalar that follows an odd number of F32s (BatchNorm's num_batches_tracked), starts at
// an address that is not a multiple of its element size. C++ forbids reading an element through
// such a pointer (UBSan reports it) and the vectorised kernels assume natural alignment, so those
// tensors are copied once into aligned memory.
//
// Writing. `save_safetensors` writes the tensors in the given order with the header padded to an
// 8-byte boundary, and does so atomically: into a temporary file in the destination's directory,
// flushed to disk, then renamed over the destination. A failure at any point removes the
// temporary and leaves an existing destination untouched. (A symbolic link at the destination is
// replaced by the file, not followed.)
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clip/core/device.hpp"
#include "clip/core/dtype.hpp"
#include "clip/core/error.hpp"
#include "clip/core/mapped_memory.hpp"
#include "clip/core/shape.hpp"
#include "clip/core/tensor.hpp"
#include "clip/io/json.hpp"

namespace clip {
namespace detail {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian and clip views it in place; a big-endian host would need "
              "byte swaps, which clip does not implement");

/// The safetensors spelling of each clip dtype.
inline constexpr std::array<std::pair<std::string_view, dtype>, 6> safetensors_dtypes{{
    {"F32", dtype::f32},
    {"F16", dtype::f16},
    {"BF16", dtype::bf16},
    {"I32", dtype::i32},
    {"I64", dtype::i64},
    {"U8", dtype::u8},
}};

/// dtypes the format defines and clip has no tensor type for: rejected as "unsupported", so the
/// message says the file is fine and clip is the limit, not "unknown".
inline constexpr std::array<std::string_view, 14> safetensors_unsupported_dtypes{
    "BOOL", "I8", "I16", "U16", "U32", "U64", "F64", "C64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
};

/// The reference implementation's bound on the header: a larger length means a corrupt prefix.
inline constexpr std::uint64_t safetensors_max_header_bytes = 100'000'000;

inline std::string_view safetensors_dtype_name(dtype t) {
    for (const auto& [name, type] : safetensors_dtypes)
        if (type == t) return name;
    throw dtype_error(message("save_safetensors: dtype ", t, " has no safetensors name"));
}

inline std::string errno_text(int error_number) { return std::generic_category().message(error_number); }

/// Closes a POSIX file descriptor on every path out of a scope.
class file_descriptor {
public:
    explicit file_descriptor(int fd) noexcept : fd_(fd) {}
    file_descriptor(const file_descriptor&) = delete;
    file_descriptor& operator=(const file_descriptor&) = delete;
    ~file_descriptor() { close(); }

    int get() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }
    /// Closes the current descriptor, if any, and takes `fd`.
    void reset(int fd) noexcept {
        close();
        fd_ = fd;
    }
    /// Closes now; returns ::close's errno (0 on success), which matters after writing: some
    /// file systems report a failed write only here.
    int close() noexcept {
        if (fd_ < 0) return 0;
        const int rc = ::close(fd_);
        fd_ = -1;
        return rc == 0 ? 0 : errno;
    }

private:
    int fd_ = -1;
};

/// A read-only private mapping of a whole file, unmapped when the last owner lets go.
class mapped_file {
public:
    mapped_file(void* address, std::size_t size) : address_(address), size_(size) {
        file_mappings::instance().add(address, size); // its pages may be dropped after packing
    }
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;
    ~mapped_file() {
        file_mappings::instance().remove(address_);
        ::munmap(address_, size_);
    }

    const std::byte* data() const noexcept { return static_cast<const std::byte*>(address_); }
    std::size_t size() const noexcept { return size_; }

private:
    void* address_;
    std::size_t size_;
};

/// Levenshtein distance, for suggesting the names closest to one that is missing.
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

/// Writes a file through a temporary in the same directory that replaces the destination only
/// in `commit()`: a crash or an error leaves either the old file or the complete new one, never
/// a partial one. The destructor removes the temporary unless it was committed.
class atomic_file {
public:
    /// `op` names the caller in messages (`save_safetensors`).
    atomic_file(std::filesystem::path destination, std::string_view op)
        : destination_(std::move(destination)), op_(op) {
        const std::filesystem::path directory = destination_.parent_path();
        const std::string shown_directory = directory.empty() ? std::string(".") : directory.string();
        // Same directory, so the rename stays within one file system and is atomic; a leading
        // dot keeps the temporary out of plain `ls`. pid + counter + clock make the name
        // unique across processes, threads and retries; O_EXCL makes sure of it.
        static std::atomic<std::uint64_t> counter{0};
        for (int attempt = 0; attempt < 100 && !fd_.valid(); ++attempt) {
            const auto stamp = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
            temporary_ = directory / message(".", destination_.filename().string(), ".tmp-", ::getpid(), "-",
                                             counter.fetch_add(1), "-", stamp % 1'000'000);
            // 0666 and the umask: the same permissions a plain create would give the file.
            fd_.reset(::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
            if (const int error = errno; !fd_.valid() && error != EEXIST)
                fail(message("cannot create a temporary file in \"", shown_directory, "\""), error);
        }
        if (!fd_.valid()) fail(message("cannot create a temporary file in \"", shown_directory, "\""), EEXIST);
    }
    atomic_file(const atomic_file&) = delete;
    atomic_file& operator=(const atomic_file&) = delete;
    ~atomic_file() {
        if (committed_) return;
        fd_.close();
        ::unlink(temporary_.c_str());
    }

    void write(const void* data, std::size_t bytes) {
        const auto* p = static_cast<const std::byte*>(data);
        while (bytes > 0) {
            // Linux moves at most ~2 GiB per call; large tensors take several.
            const ssize_t n = ::write(fd_.get(), p, std::min<std::size_t>(bytes, std::size_t{1} << 30));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                const int error = n < 0 ? errno : EIO;
                fail(message("writing \"", temporary_.string(), "\" failed"), error);
            }
            p += n;
            bytes -= static_cast<std::size_t>(n);
        }
    }

    /// Flushes the data to disk, then renames the temporary over the destination.
    void commit() {
        if (::fsync(fd_.get()) != 0) {
            const int error = errno;
            fail(message("flushing \"", temporary_.string(), "\" to disk failed"), error);
        }
        if (const int error = fd_.close(); error != 0)
            fail(message("closing \"", temporary_.string(), "\" failed"), error);
        if (::rename(temporary_.c_str(), destination_.c_str()) != 0) {
            const int error = errno;
            fail(message("cannot rename \"", temporary_.string(), "\" over it"), error);
        }
        committed_ = true;
        // Make the rename itself durable. The file is already complete and in place, so a
        // directory that cannot be synced is not worth an exception.
        const std::filesystem::path directory =
            destination_.parent_path().empty() ? std::filesystem::path(".") : destination_.parent_path();
        const file_descriptor dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (dir.valid()) (void)::fsync(dir.get());
    }

private:
    /// Throws io_error: "<op> "<destination>": <what>: <the errno's text>".
    [[noreturn]] void fail(const std::string& what, int error_number) const {
        throw io_error(message(op_, " \"", destination_.string(), "\": ", what, ": ", errno_text(error_number)));
    }

    std::filesystem::path destination_;
    std::filesystem::path temporary_;
    std::string op_;
    file_descriptor fd_{-1};
    bool committed_ = false;
};

} // namespace detail

/// A safetensors file mapped into memory, its header validated; `get` returns zero-copy views.
class safetensors {
public:
    /// Where a tensor is and what it holds.
    struct tensor_info {
        clip::dtype dtype;
        clip::shape shape;
        std::uint64_t begin; // byte range [begin, end) within the data section
        std::uint64_t end;
    };

    /// Maps `path` read-only and validates its header; throws io_error naming the file and the
    /// problem.
    static safetensors open(const std::filesystem::path& path) {
        // O_NONBLOCK: opening a FIFO by mistake must fail below, not wait for a writer. It
        // changes nothing for a regular file.
        detail::file_descriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
        if (!fd.valid()) fail(path, "cannot open the file: ", detail::errno_text(errno));
        struct stat status {};
        if (::fstat(fd.get(), &status) != 0) fail(path, "cannot stat the file: ", detail::errno_text(errno));
        if (S_ISDIR(status.st_mode)) fail(path, "is a directory, not a safetensors file");
        if (!S_ISREG(status.st_mode)) fail(path, "is not a regular file");
        const auto size = static_cast<std::uint64_t>(status.st_size);
        // Checked before mapping: mmap refuses a length of 0.
        if (size < 8)
            fail(path, "the file is ", size, " bytes, shorter than the 8-byte header length that starts a safetensors file");
        void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
        if (address == MAP_FAILED) fail(path, "cannot map the file into memory: ", detail::errno_text(errno));
        // The mapping keeps the file's pages; the descriptor is no longer needed.
        auto mapping = std::make_shared<const detail::mapped_file>(address, static_cast<std::size_t>(size));
        return safetensors(path, std::move(mapping));
    }

    const std::filesystem::path& path() const noexcept { return path_; }
    /// Number of tensors ("__metadata__" is not one).
    std::size_t size() const noexcept { return tensors_.size(); }
    /// The tensor names, sorted.
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        out.reserve(tensors_.size());
        for (const auto& entry : tensors_) out.push_back(entry.first);
        return out;
    }
    bool contains(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }
    /// The "__metadata__" entry (empty when the file has none).
    const std::map<std::string, std::string, std::less<>>& metadata() const noexcept { return metadata_; }

    /// dtype, shape and byte range of `name`; io_error when the file has no such tensor.
    const tensor_info& info(std::string_view name) const {
        const auto it = tensors_.find(name);
        if (it == tensors_.end()) throw_missing(name);
        return it->second;
    }

    /// The tensor `name`: a read-only view of the mapped file that keeps the mapping alive, or an
    /// aligned copy when its bytes are not aligned to its element size (see the header comment).
    tensor get(std::string_view name) const {
        const tensor_info& t = info(name);
        const std::byte* bytes = data_ + t.begin;
        if (reinterpret_cast<std::uintptr_t>(bytes) % dtype_size(t.dtype) != 0) {
            tensor copy = tensor::empty(t.shape, t.dtype);
            std::memcpy(copy.data_ptr(), bytes, static_cast<std::size_t>(t.end - t.begin));
            return copy;
        }
        // from_blob takes a mutable pointer because tensors are writable in general; this one
        // views read-only pages (documented above).
        return tensor::from_blob(const_cast<std::byte*>(bytes), t.shape, t.dtype,
                                 std::const_pointer_cast<detail::mapped_file>(mapping_));
    }

private:
    safetensors(std::filesystem::path path, std::shared_ptr<const detail::mapped_file> mapping)
        : path_(std::move(path)), mapping_(std::move(mapping)) {
        parse_header();
    }

    template <class... Args>
    [[noreturn]] static void fail(const std::filesystem::path& file, Args&&... args) {
        throw io_error(detail::message("safetensors \"", file.string(), "\": ", std::forward<Args>(args)...));
    }
    template <class... Args>
    [[noreturn]] void fail_tensor(std::string_view name, Args&&... args) const {
        fail(path_, "tensor \"", name, "\": ", std::forward<Args>(args)...);
    }

    void parse_header() {
        const std::byte* file = mapping_->data();
        const std::uint64_t file_size = mapping_->size();
        std::uint64_t header_size = 0;
        for (int i = 7; i >= 0; --i) header_size = header_size << 8 | static_cast<std::uint64_t>(file[i]);
        if (header_size > file_size - 8)
            fail(path_, "header length ", header_size, " runs past the end of the file (", file_size - 8,
                 " bytes follow the 8-byte prefix; truncated or not a safetensors file?)");
        if (header_size > detail::safetensors_max_header_bytes)
            fail(path_, "header length ", header_size, " exceeds the limit of ",
                 detail::safetensors_max_header_bytes, " bytes (corrupt file?)");
        data_ = file + 8 + header_size;
        data_size_ = file_size - 8 - header_size;

        const std::string context = detail::message("safetensors \"", path_.string(), "\": header");
        const detail::json header = detail::parse_json(
            std::string_view(reinterpret_cast<const char*>(file + 8), static_cast<std::size_t>(header_size)), context);
        if (!header.is_object()) fail(path_, "the header must be a JSON object, it is ", article(header));

        for (const auto& [name, entry] : header.items()) {
            if (name == "__metadata__") read_metadata(entry);
            else tensors_.emplace(name, read_entry(name, entry));
        }
        check_overlaps();
    }

    void read_metadata(const detail::json& entry) {
        if (!entry.is_object()) fail(path_, "\"__metadata__\" must be a JSON object, it is ", article(entry));
        for (const auto& [key, value] : entry.items()) {
            if (!value.is_string())
                fail(path_, "\"__metadata__\" value \"", key, "\" must be a string, it is ", article(value));
            metadata_.emplace(key, value.get<std::string>());
        }
    }

    tensor_info read_entry(const std::string& name, const detail::json& entry) const {
        if (!entry.is_object()) fail_tensor(name, "the entry must be a JSON object, it is ", article(entry));
        const detail::json& dtype_field = field(name, entry, "dtype");
        const detail::json& shape_field = field(name, entry, "shape");
        const detail::json& offsets_field = field(name, entry, "data_offsets");

        if (!dtype_field.is_string()) fail_tensor(name, "\"dtype\" must be a string, it is ", article(dtype_field));
        tensor_info out{};
        out.dtype = parse_dtype(name, dtype_field.get_ref<const std::string&>());
        const std::uint64_t element_size = dtype_size(out.dtype);

        if (!shape_field.is_array()) fail_tensor(name, "\"shape\" must be an array, it is ", article(shape_field));
        if (shape_field.size() > static_cast<std::size_t>(shape::max_dims))
            fail_tensor(name, "shape ", shape_field.dump(), " has ", shape_field.size(), " dimensions, clip supports at most ",
                        shape::max_dims);
        // Bound the product of max(extent, 1), times the element size, by 2^63: clip computes
        // element counts, strides and byte offsets in int64, and an extent of 0 does not make
        // the strides of the other axes any smaller.
        std::uint64_t bound = element_size;
        const std::uint64_t limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        for (const detail::json& extent : shape_field) {
            if (!extent.is_number_integer())
                fail_tensor(name, "shape ", shape_field.dump(), " has the extent ", extent.dump(),
                            ", which is not an integer");
            if (!extent.is_number_unsigned())
                fail_tensor(name, "shape ", shape_field.dump(), " has the negative extent ", extent.dump());
            const std::uint64_t e = extent.get<std::uint64_t>();
            if (e > limit || (e > 1 && bound > limit / e))
                fail_tensor(name, "shape ", shape_field.dump(), " is too large: its size overflows 63 bits");
            bound *= std::max<std::uint64_t>(e, 1);
            out.shape.push_back(static_cast<std::int64_t>(e));
        }
        const auto nbytes = static_cast<std::uint64_t>(out.shape.numel()) * element_size;

        if (!offsets_field.is_array() || offsets_field.size() != 2)
            fail_tensor(name, "\"data_offsets\" must be an array [begin, end], it is ", offsets_field.dump());
        for (const detail::json& offset : offsets_field)
            if (!offset.is_number_unsigned())
                fail_tensor(name, "\"data_offsets\" ", offsets_field.dump(), " must hold non-negative integers");
        out.begin = offsets_field[0].get<std::uint64_t>();
        out.end = offsets_field[1].get<std::uint64_t>();
        if (out.end < out.begin)
            fail_tensor(name, "\"data_offsets\" ", offsets_field.dump(), " end before they begin");
        if (out.end - out.begin != nbytes)
            fail_tensor(name, "\"data_offsets\" ", offsets_field.dump(), " span ", out.end - out.begin,
                        " bytes, but shape ", shape_field.dump(), " of ", dtype_field.get_ref<const std::string&>(), " needs ",
                        nbytes);
        if (out.end > data_size_)
            fail_tensor(name, "\"data_offsets\" ", offsets_field.dump(), " run past the end of the data section (",
                        data_size_, " bytes; truncated file?)");
        return out;
    }

    const detail::json& field(const std::string& name, const detail::json& entry, const char* key) const {
        const auto it = entry.find(key);
        if (it == entry.end()) fail_tensor(name, "the entry has no \"", key, "\" field");
        return *it;
    }

    dtype parse_dtype(const std::string& name, const std::string& spelled) const {
        for (const auto& [spelling, type] : detail::safetensors_dtypes)
            if (spelling == spelled) return type;
        const bool known = std::find(detail::safetensors_unsupported_dtypes.begin(),
                                     detail::safetensors_unsupported_dtypes.end(),
                                     spelled) != detail::safetensors_unsupported_dtypes.end();
        fail_tensor(name, known ? "unsupported" : "unknown", " dtype \"", spelled,
                    "\" (clip reads F32, F16, BF16, I32, I64, U8)");
    }

    /// Two tensors must not share a byte. Sorted by begin, each non-empty range must start at or
    /// after the end of the one before; an empty tensor owns no bytes and may sit anywhere.
    void check_overlaps() const {
        std::vector<const std::pair<const std::string, tensor_info>*> ranges;
        for (const auto& entry : tensors_)
            if (entry.second.end > entry.second.begin) ranges.push_back(&entry);
        std::sort(ranges.begin(), ranges.end(), [](const auto* a, const auto* b) {
            return std::pair(a->second.begin, a->second.end) < std::pair(b->second.begin, b->second.end);
        });
        for (std::size_t i = 1; i < ranges.size(); ++i) {
            const auto& [previous_name, previous] = *ranges[i - 1];
            const auto& [name, current] = *ranges[i];
            if (current.begin < previous.end)
                fail_tensor(name, "bytes [", current.begin, ", ", current.end, ") overlap those of tensor \"",
                            previous_name, "\" [", previous.begin, ", ", previous.end, ")");
        }
    }

    [[noreturn]] void throw_missing(std::string_view name) const {
        // Suggest the few names closest to the one asked for: usually a typo or a prefix
        // ("visual." or "model.") that one naming scheme has and the other lacks.
        std::vector<std::pair<std::size_t, const std::string*>> close;
        const std::size_t tolerance = std::max<std::size_t>(3, name.size() / 3);
        for (const auto& entry : tensors_) {
            const std::size_t distance = detail::edit_distance(name, entry.first);
            if (distance <= tolerance) close.emplace_back(distance, &entry.first);
        }
        std::sort(close.begin(), close.end(),
                  [](const auto& a, const auto& b) { return a.first != b.first ? a.first < b.first : *a.second < *b.second; });
        std::ostringstream hint;
        for (std::size_t i = 0; i < std::min<std::size_t>(close.size(), 3); ++i)
            hint << (i == 0 ? " (did you mean " : " or ") << '"' << *close[i].second << '"';
        if (!close.empty()) hint << "?)";
        fail(path_, "no tensor \"", name, "\"", hint.str(), "; the file holds ", tensors_.size(), " tensors");
    }

    static std::string article(const detail::json& value) {
        const std::string type = value.type_name();
        if (type == "null") return type;
        return (type == "array" || type == "object" ? "an " : "a ") + type;
    }

    std::filesystem::path path_;
    std::shared_ptr<const detail::mapped_file> mapping_;
    const std::byte* data_ = nullptr; // the data section, within the mapping
    std::uint64_t data_size_ = 0;
    std::map<std::string, tensor_info, std::less<>> tensors_;
    std::map<std::string, std::string, std::less<>> metadata_;
};

/// Writes `tensors` (in this order) and `metadata` to a safetensors file at `path`, atomically
/// (see the header comment). Tensors may have any layout and device: each is written as a
/// contiguous CPU copy when it is not one already. io_error on duplicate names, the reserved name
/// "__metadata__", an undefined tensor, or any failure to write, naming the file and the tensor.
inline void save_safetensors(const std::filesystem::path& path,
                             const std::vector<std::pair<std::string, tensor>>& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
    const auto fail = [&](const auto&... args) {
        throw io_error(detail::message("save_safetensors \"", path.string(), "\": ", args...));
    };
    // JSON needs UTF-8; nlohmann would reject other bytes only at dump(), without saying which
    // string held them.
    const auto check_utf8 = [&](const std::string& text, std::string_view what) {
        try {
            (void)detail::json(text).dump();
        } catch (const detail::json::exception&) {
            fail(what, " \"", text, "\" is not valid UTF-8");
        }
    };

    detail::ordered_json header = detail::ordered_json::object();
    if (!metadata.empty()) {
        detail::ordered_json& entry = header["__metadata__"] = detail::ordered_json::object();
        for (const auto& [key, value] : metadata) {
            check_utf8(key, "metadata key");
            check_utf8(value, "metadata value");
            entry[key] = value;
        }
    }
    std::uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
        check_utf8(name, "tensor name");
        if (name == "__metadata__") fail("\"__metadata__\" is reserved and cannot name a tensor");
        if (!t.defined()) fail("tensor \"", name, "\" is undefined (default-constructed)");
        if (header.contains(name)) fail("tensor \"", name, "\" appears twice");
        const auto nbytes = static_cast<std::uint64_t>(t.nbytes());
        header[name] = {
            {"dtype", detail::safetensors_dtype_name(t.dtype())},
            {"shape", std::vector<std::int64_t>(t.shape().begin(), t.shape().end())},
            {"data_offsets", {offset, offset + nbytes}},
        };
        offset += nbytes;
    }
    std::string text = header.dump();
    // Spaces up to the next multiple of 8, so that the data section is 8-byte aligned in the
    // file and in a mapping of it.
    text.append((8 - (8 + text.size()) % 8) % 8, ' ');
    std::array<unsigned char, 8> prefix{};
    for (std::size_t i = 0; i < 8; ++i) prefix[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(text.size()) >> (8 * i));

    detail::atomic_file file(path, "save_safetensors");
    file.write(prefix.data(), prefix.size());
    file.write(text.data(), text.size());
    for (const auto& [name, t] : tensors) {
        // One tensor at a time: only one host copy (of a strided or device tensor) exists at once.
        tensor host;
        try {
            host = t.to(device::cpu()).contiguous();
        } catch (const error& e) {
            fail("tensor \"", name, "\" cannot be copied to the host: ", e.what());
        }
        file.write(host.data_ptr(), host.nbytes());
    }
    file.commit();
}

} // namespace clip
