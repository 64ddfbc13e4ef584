// Tests for clip/core/mapped_memory.hpp: pages of registered read-only file mappings are dropped
// from the resident set and read back intact; any other memory is left alone.
#include "../support.hpp"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <fcntl.h>

namespace core_mapped_memory_test {

namespace {

/// Resident bytes of this process (/proc/self/statm, file-backed pages included).
std::size_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::size_t total = 0, resident = 0;
    statm >> total >> resident;
    return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

} // namespace

TEST_CASE("a read-only file mapping's pages are dropped and read back intact") {
    constexpr std::size_t bytes = 32u << 20;
    const std::filesystem::path path = std::filesystem::temp_directory_path() / "clip-mapped-memory-test.bin";
    {
        std::vector<unsigned char> content(bytes);
        for (std::size_t i = 0; i < bytes; ++i) content[i] = static_cast<unsigned char>(i * 7 + i / 4096);
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(content.data()), bytes);
    }
    const int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    void* address = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    REQUIRE(address != MAP_FAILED);
    const auto* data = static_cast<const unsigned char*>(address);
    const auto checksum = [&] {
        std::size_t sum = 0;
        for (std::size_t i = 0; i < bytes; i += 1024) sum += data[i];
        return sum;
    };
    const std::size_t expected = checksum(); // every page touched
    const std::size_t touched = resident_bytes();

    clip::detail::release_file_pages(address, bytes); // not registered: nothing happens
    CHECK(resident_bytes() + (bytes / 4) > touched);

    clip::detail::file_mappings::instance().add(address, bytes);
    clip::detail::release_file_pages(data + 100, bytes - 200); // only whole pages inside the range
    const std::size_t released = resident_bytes();
    CHECK(released + (bytes * 3 / 4) < touched);
    CHECK(checksum() == expected); // read again from the file
    CHECK(data[99] == static_cast<unsigned char>(99 * 7));

    clip::detail::file_mappings::instance().remove(address);
    ::munmap(address, bytes);
    std::filesystem::remove(path);
}

TEST_CASE("memory outside any file mapping is never released") {
    const clip::tensor t = clip::tensor::full({1 << 20}, 3.0f);
    clip::detail::release_file_pages(t.data_ptr(), static_cast<std::size_t>(t.numel()) * 4);
    const std::vector<float> v = t.to_vector<float>();
    CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x == 3.0f; }));
}

} // namespace core_mapped_memory_test
