// Element types and the scalar conversions between them.
// bf16 rounds to nearest even and keeps NaN a (quiet) NaN; f16 is IEEE binary16 with denormals.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace frugal {

enum class DType : uint8_t { f32, f64, bf16, f16, i8, u8, i32, i64 };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);
bool dtype_is_float(DType dtype);
// Parses "f32", "bf16", ...; throws InputError naming the allowed values.
DType parse_dtype(std::string_view name);

struct bf16_t { uint16_t bits; };
struct f16_t { uint16_t bits; };

inline uint32_t float_bits(float x) { uint32_t u; std::memcpy(&u, &x, 4); return u; }
inline float bits_float(uint32_t u) { float x; std::memcpy(&x, &u, 4); return x; }

inline bf16_t float_to_bf16(float x) {
  uint32_t u = float_bits(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return {uint16_t((u >> 16) | 0x0040u)};  // NaN stays NaN
  u += 0x7FFFu + ((u >> 16) & 1u);                                             // nearest even
  return {uint16_t(u >> 16)};
}
inline float bf16_to_float(bf16_t x) { return bits_float(uint32_t(x.bits) << 16); }

f16_t float_to_f16(float x);
float f16_to_float(f16_t x);

// Maps a C++ type to its DType.
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<bf16_t> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<f16_t> { static constexpr DType value = DType::f16; };
template <> struct dtype_of<int8_t> { static constexpr DType value = DType::i8; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };

}  // namespace frugal
