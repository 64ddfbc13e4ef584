// clip/core/device.hpp: where a tensor's memory lives.
//
// Every tensor carries a device; operations check that their operands agree and dispatch on it.
// The CPU is always available; CUDA devices exist when clip is built with CUDA (CLIP_WITH_CUDA)
// and a GPU is present.
#pragma once

#include <ostream>

namespace clip {

enum class device_kind : unsigned char { cpu, cuda };

struct device {
    device_kind kind = device_kind::cpu;
    int index = 0;

    static constexpr device cpu() noexcept { return {device_kind::cpu, 0}; }
    static constexpr device cuda(int index = 0) noexcept { return {device_kind::cuda, index}; }
    constexpr bool is_cpu() const noexcept { return kind == device_kind::cpu; }
    constexpr bool is_cuda() const noexcept { return kind == device_kind::cuda; }

    friend constexpr bool operator==(device, device) = default;
    friend std::ostream& operator<<(std::ostream& out, device d) {
        return d.is_cpu() ? out << "cpu" : out << "cuda:" << d.index;
    }
};

} // namespace clip
