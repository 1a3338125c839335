// Numbers and echoed input as text for messages: one formatting, so the same value reads the same in
// every error, and every error stays one line.
// Limits: 6 significant digits (what an ostream writes by default); not for values that must read
// back exactly (those need 17 significant digits).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace frugal {

// v as `std::ostream << v` writes it with default flags: up to 6 significant digits, trailing zeros
// dropped, an exponent when the number is very large or small ("0.1", "2", "1e+06", "3.4e+38",
// "inf", "nan").
std::string number_text(double v);

// Input echoed in a message (a field, a header, a key's value): control characters escaped ("\r",
// "\n", "\t", "\x01"), and cut to `max_chars` characters of the input with "..." when longer, so a
// message is one line of readable length whatever the file holds.
std::string echo_text(std::string_view text, size_t max_chars = 80);

// A whole message made one line: control characters escaped as echo_text does, nothing cut. The CLI
// applies it to every error it prints, after the readers have cut their echoes.
std::string one_line(std::string_view text);

// A UTC time (seconds since the Unix epoch) through strftime's `format`, e.g. "%Y-%m-%dT%H:%M:%SZ"
// for ISO-8601 ("2026-12-07T16:04:47Z"); at most 63 characters.
std::string utc_time(double unix_seconds, const char* format);

}  // namespace frugal
