// Numbers as text for messages: one formatting, so the same value reads the same in every error.
// Limits: 6 significant digits (what an ostream writes by default); not for values that must read
// back exactly (those need 17 significant digits).
#pragma once

#include <string>

namespace frugal {

// v as `std::ostream << v` writes it with default flags: up to 6 significant digits, trailing zeros
// dropped, an exponent when the number is very large or small ("0.1", "2", "1e+06", "3.4e+38",
// "inf", "nan").
std::string number_text(double v);

}  // namespace frugal
