// Tests for clip/core/dtype.hpp: 16-bit float conversions round to nearest even.
#include "../support.hpp"

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include <bit>
#include <limits>
#include <random>

namespace core_dtype_test {

using clip::bfloat16;
using clip::float16;

namespace {

/// bf16 by the definition: the nearer of the two neighbouring bf16 values, ties to even.
std::uint16_t bfloat16_oracle(float f) {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    if (std::isnan(f)) return static_cast<std::uint16_t>((x >> 16) | 0x40);
    const std::uint32_t down = x & 0xffff0000u, up = down + 0x10000u;
    const double d = std::abs(static_cast<double>(f) - std::bit_cast<float>(down));
    const double u = std::abs(static_cast<double>(std::bit_cast<float>(up)) - f);
    if (std::isinf(std::bit_cast<float>(up)) && !std::isinf(f)) {
        // rounding up overflows: compare against the value 2^128 the infinity stands for
        const double up_value = std::ldexp(1.0, 128) * (f < 0 ? -1 : 1);
        return static_cast<std::uint16_t>((std::abs(up_value - f) < d || (std::abs(up_value - f) == d && ((down >> 16) & 1))) ? up >> 16 : down >> 16);
    }
    if (d < u) return static_cast<std::uint16_t>(down >> 16);
    if (u < d) return static_cast<std::uint16_t>(up >> 16);
    return static_cast<std::uint16_t>(((down >> 16) & 1) ? up >> 16 : down >> 16);
}

} // namespace

TEST_CASE("dtype sizes and names") {
    CHECK(clip::dtype_size(clip::dtype::f32) == 4);
    CHECK(clip::dtype_size(clip::dtype::f16) == 2);
    CHECK(clip::dtype_size(clip::dtype::bf16) == 2);
    CHECK(clip::dtype_size(clip::dtype::i32) == 4);
    CHECK(clip::dtype_size(clip::dtype::i64) == 8);
    CHECK(clip::dtype_size(clip::dtype::u8) == 1);
    CHECK(clip::dtype_name(clip::dtype::bf16) == "bf16");
    CHECK(clip::dtype_of<float16>() == clip::dtype::f16);
}

TEST_CASE("f16 round trip is exact for every half value") {
    for (std::uint32_t bits = 0; bits < 0x10000u; ++bits) {
        const float16 h = float16::from_bits(static_cast<std::uint16_t>(bits));
        const float f = static_cast<float>(h);
        if (std::isnan(f)) {
            CHECK(std::isnan(static_cast<float>(float16(f))));
            continue;
        }
        REQUIRE(float16(f).bits == bits);
    }
}

TEST_CASE("f16 rounds to nearest even, overflows to infinity") {
    CHECK(float16(1.0f).bits == 0x3c00);
    CHECK(float16(-2.0f).bits == 0xc000);
    CHECK(float16(65504.0f).bits == 0x7bff);
    CHECK(float16(65519.0f).bits == 0x7bff);  // below the midpoint to 65536
    CHECK(float16(65520.0f).bits == 0x7c00);  // the midpoint rounds to even: infinity
    CHECK(float16(1e-8f).bits == 0x0000);     // below half the smallest subnormal
    CHECK(float16(std::numeric_limits<float>::infinity()).bits == 0x7c00);
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties to the even mantissa (1.0)
    CHECK(float16(1.0f + 0x1p-11f).bits == 0x3c00);
    // 1 + 3·2^-11 lies halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even)
    CHECK(float16(1.0f + 3 * 0x1p-11f).bits == 0x3c02);
    CHECK(float16(0x1p-24f).bits == 0x0001);  // smallest subnormal
    CHECK(float16(0x1p-25f).bits == 0x0000);  // halfway to zero: ties to even
    CHECK(float16(3 * 0x1p-25f).bits == 0x0002);
}

#if defined(__F16C__)
TEST_CASE("f16 conversion agrees with the F16C instruction on random and edge floats") {
    std::mt19937 rng(7);
    std::uniform_int_distribution<std::uint32_t> any;
    for (int i = 0; i < 2000000; ++i) {
        std::uint32_t x = any(rng);
        if (i % 2) x = (x & 0x87ffffffu) | 0x30000000u; // bias towards the half range
        const float f = std::bit_cast<float>(x);
        if (std::isnan(f)) continue;
        const auto expected = static_cast<std::uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
        REQUIRE_MESSAGE(float16(f).bits == expected, "value " << f << " bits " << x);
    }
}
#endif

TEST_CASE("bf16 rounds to nearest even") {
    std::mt19937 rng(11);
    std::uniform_int_distribution<std::uint32_t> any;
    for (int i = 0; i < 1000000; ++i) {
        const float f = std::bit_cast<float>(any(rng));
        if (std::isnan(f)) {
            CHECK(std::isnan(static_cast<float>(bfloat16(f))));
            continue;
        }
        REQUIRE_MESSAGE(bfloat16(f).bits == bfloat16_oracle(f), "value " << f);
    }
    CHECK(bfloat16(1.0f).bits == 0x3f80);
    CHECK(bfloat16(std::bit_cast<float>(0x3f808000u)).bits == 0x3f80); // tie, even stays
    CHECK(bfloat16(std::bit_cast<float>(0x3f818000u)).bits == 0x3f82); // tie, odd rounds up
    CHECK(static_cast<float>(bfloat16::from_bits(0x4049)) == 3.140625f);
}

TEST_CASE("conversion between element types") {
    CHECK(clip::detail::convert<float>(std::int64_t{-3}) == -3.0f);
    CHECK(clip::detail::convert<std::int32_t>(2.75f) == 2);
    CHECK(static_cast<float>(clip::detail::convert<bfloat16>(float16(0.5f))) == 0.5f);
    CHECK(clip::detail::convert<std::uint8_t>(std::int32_t{200}) == 200);
}

} // namespace core_dtype_test
