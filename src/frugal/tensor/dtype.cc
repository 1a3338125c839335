#include "frugal/tensor/dtype.h"

#include <string>

#include "frugal/base/error.h"

namespace frugal {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::f16: return 2;
    case DType::i8: return 1;
    case DType::u8: return 1;
    case DType::i32: return 4;
    case DType::i64: return 8;
  }
  return 0;
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i8: return "i8";
    case DType::u8: return "u8";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
  }
  return "?";
}

bool dtype_is_float(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f64 || dtype == DType::bf16 || dtype == DType::f16;
}

DType parse_dtype(std::string_view name) {
  for (DType d : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i8, DType::u8, DType::i32,
                  DType::i64})
    if (dtype_name(d) == name) return d;
  throw InputError("unknown dtype '" + std::string(name) +
                   "', expected one of f32, f64, bf16, f16, i8, u8, i32, i64");
}

f16_t float_to_f16(float x) {
  uint32_t u = float_bits(x);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return {uint16_t(sign | 0x7E00u)};  // NaN
  if (abs >= 0x477FF000u) return {uint16_t(sign | 0x7C00u)};  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                                    // below 2^-14: denormal or zero
    // Scale into the denormal range with a float add that rounds to nearest even for us.
    float scaled = bits_float(abs) + 0.5f;  // 0.5 = 2^-1; denormal step 2^-24 lands in low bits
    return {uint16_t(sign | (float_bits(scaled) - 0x3F000000u))};
  }
  uint32_t mant_odd = (abs >> 13) & 1u;
  abs += 0xC8000FFFu + mant_odd;  // rebias exponent (-112 << 23) and round to nearest even
  return {uint16_t(sign | (abs >> 13))};
}

float f16_to_float(f16_t x) {
  uint32_t sign = uint32_t(x.bits & 0x8000u) << 16;
  uint32_t exp = (x.bits >> 10) & 0x1Fu;
  uint32_t mant = x.bits & 0x3FFu;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    float v = float(mant) * (1.0f / 16777216.0f);  // mant * 2^-24
    return sign ? -v : v;
  }
  return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
}

}  // namespace frugal
