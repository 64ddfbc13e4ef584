// clip/core/dtype.hpp: element types, the 16-bit float types and their conversions.
//
// f16 is IEEE 754 binary16 and bf16 is the upper half of a binary32; both convert from float with
// round-to-nearest-even (as PyTorch's `.half()` and `.bfloat16()` do), keep NaN a NaN and
// overflow to infinity. Arithmetic on them goes through float.
#pragma once

#include <bit>
#include <cstdint>
#include <ostream>
#include <string_view>
#include <type_traits>

#include "clip/core/error.hpp"

namespace clip {

enum class dtype : std::uint8_t { f32, f16, bf16, i32, i64, u8 };

/// IEEE 754 binary16, stored as its bits.
struct float16 {
    std::uint16_t bits = 0;

    constexpr float16() = default;
    explicit float16(float value) noexcept;
    explicit operator float() const noexcept;
    static constexpr float16 from_bits(std::uint16_t b) noexcept {
        float16 h;
        h.bits = b;
        return h;
    }
    friend constexpr bool operator==(float16, float16) = default;
};

/// bfloat16: the sign, exponent and top 7 mantissa bits of a binary32.
struct bfloat16 {
    std::uint16_t bits = 0;

    constexpr bfloat16() = default;
    explicit bfloat16(float value) noexcept;
    explicit operator float() const noexcept;
    static constexpr bfloat16 from_bits(std::uint16_t b) noexcept {
        bfloat16 h;
        h.bits = b;
        return h;
    }
    friend constexpr bool operator==(bfloat16, bfloat16) = default;
};

namespace detail {

inline std::uint16_t float_to_half_bits(float value) noexcept {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    std::uint32_t magnitude = x & 0x7fffffffu;
    if (magnitude >= 0x7f800000u) // inf stays inf; NaN keeps its payload's top bits and stays quiet
        return static_cast<std::uint16_t>(
            sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x200u | ((magnitude >> 13) & 0x3ffu) : 0u));
    if (magnitude >= 0x477ff000u) // >= 65520 rounds to infinity
        return static_cast<std::uint16_t>(sign | 0x7c00u);
    if (magnitude < 0x38800000u) {
        // Below 2^-14 the result is subnormal: adding 0.5 puts the float's last mantissa bit at
        // 2^-24, the half subnormal step, so the FPU's own rounding is round-to-nearest-even.
        const float shifted = std::bit_cast<float>(magnitude) + 0.5f;
        return static_cast<std::uint16_t>(sign | (std::bit_cast<std::uint32_t>(shifted) - 0x3f000000u));
    }
    const std::uint32_t odd = (magnitude >> 13) & 1u;
    magnitude += 0xc8000fffu + odd; // rebias the exponent by -112 and round half to even
    return static_cast<std::uint16_t>(sign | (magnitude >> 13));
}

inline float half_bits_to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1fu;
    const std::uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1fu)
        return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        const float value = static_cast<float>(mantissa) * 0x1p-24f; // exact
        return sign ? -value : value;
    }
    return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

inline std::uint16_t float_to_bfloat16_bits(float value) noexcept {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return static_cast<std::uint16_t>((x >> 16) | 0x40u); // quiet NaN
    const std::uint32_t odd = (x >> 16) & 1u;
    return static_cast<std::uint16_t>((x + 0x7fffu + odd) >> 16);
}

inline float bfloat16_bits_to_float(std::uint16_t b) noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

} // namespace detail

inline float16::float16(float value) noexcept : bits(detail::float_to_half_bits(value)) {}
inline float16::operator float() const noexcept { return detail::half_bits_to_float(bits); }
inline bfloat16::bfloat16(float value) noexcept : bits(detail::float_to_bfloat16_bits(value)) {}
inline bfloat16::operator float() const noexcept { return detail::bfloat16_bits_to_float(bits); }

/// Bytes per element.
constexpr std::size_t dtype_size(dtype t) noexcept {
    switch (t) {
    case dtype::f32: return 4;
    case dtype::f16: return 2;
    case dtype::bf16: return 2;
    case dtype::i32: return 4;
    case dtype::i64: return 8;
    case dtype::u8: return 1;
    }
    return 0;
}

constexpr std::string_view dtype_name(dtype t) noexcept {
    switch (t) {
    case dtype::f32: return "f32";
    case dtype::f16: return "f16";
    case dtype::bf16: return "bf16";
    case dtype::i32: return "i32";
    case dtype::i64: return "i64";
    case dtype::u8: return "u8";
    }
    return "?";
}

constexpr bool is_floating(dtype t) noexcept {
    return t == dtype::f32 || t == dtype::f16 || t == dtype::bf16;
}

inline std::ostream& operator<<(std::ostream& out, dtype t) { return out << dtype_name(t); }

/// The C++ element types that tensors hold.
template <class T>
concept element_type = std::is_same_v<T, float> || std::is_same_v<T, float16> ||
                       std::is_same_v<T, bfloat16> || std::is_same_v<T, std::int32_t> ||
                       std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint8_t>;

template <element_type T>
constexpr dtype dtype_of() noexcept {
    if constexpr (std::is_same_v<T, float>) return dtype::f32;
    else if constexpr (std::is_same_v<T, float16>) return dtype::f16;
    else if constexpr (std::is_same_v<T, bfloat16>) return dtype::bf16;
    else if constexpr (std::is_same_v<T, std::int32_t>) return dtype::i32;
    else if constexpr (std::is_same_v<T, std::int64_t>) return dtype::i64;
    else return dtype::u8;
}

namespace detail {

/// Calls `f.template operator()<T>()` with T the C++ type of `t`.
template <class F>
decltype(auto) visit_dtype(dtype t, F&& f) {
    switch (t) {
    case dtype::f32: return f.template operator()<float>();
    case dtype::f16: return f.template operator()<float16>();
    case dtype::bf16: return f.template operator()<bfloat16>();
    case dtype::i32: return f.template operator()<std::int32_t>();
    case dtype::i64: return f.template operator()<std::int64_t>();
    case dtype::u8: return f.template operator()<std::uint8_t>();
    }
    throw dtype_error("unknown dtype");
}

/// Converts between element types through float (or exactly, between integers).
template <element_type To, element_type From>
inline To convert(From value) noexcept {
    if constexpr (std::is_same_v<To, From>) return value;
    else if constexpr (std::is_same_v<From, float16> || std::is_same_v<From, bfloat16>)
        return convert<To>(static_cast<float>(value));
    else if constexpr (std::is_same_v<To, float16> || std::is_same_v<To, bfloat16>)
        return To(static_cast<float>(value));
    else return static_cast<To>(value);
}

} // namespace detail
} // namespace clip
