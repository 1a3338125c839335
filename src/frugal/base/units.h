// Dollars, energy, carbon and durations as a person reads them: a unit chosen for the size and two
// or three significant digits ("$0.0060", "0.10 Wh", "0.05 g CO2e", "3 min 12 s"). For printed
// tables, progress lines and reports only: JSON keeps full precision in base units (USD, kWh, kg,
// seconds). Limits: English units and '.' as the decimal point; no thousands separators.
#pragma once

#include <string>

namespace frugal {

// v with `digits` significant digits in plain decimal notation (no exponent), trailing zeros kept
// so a column reads evenly: (0.006, 2) -> "0.0060", (12.345, 3) -> "12.3", (1234.5, 3) -> "1235"
// (an integer part is never rounded away). 0 -> "0"; inf and nan as "inf", "nan".
std::string significant_text(double v, int digits);

// Dollars: "$0" for 0, "$0.0060" (two significant digits below one dollar), "$12.40" (cents from
// one dollar on), "$1235" (whole dollars from 1000 on); a negative amount as "-$0.25".
std::string usd_text(double usd);

// Energy given in kWh, shown in kWh or MWh from 1 of them on, else in Wh down to 0.01 Wh, else in
// mWh; two significant digits: "0.10 Wh", "850 Wh", "0.079 mWh", "1.2 kWh", "0 Wh".
std::string energy_text(double kwh);

// Carbon given in kg CO2e, shown in mg, g, kg or t the same way: "0.050 g CO2e", "0.12 kg CO2e".
std::string carbon_text(double kg);

// A duration in seconds: "0.71 us" (below 10 us), "0.50 ms" (below 10 ms), "0.42 s", "12.3 s", "3 min 12 s", "2 h 05 min",
// "3 d 04 h".
std::string duration_text(double seconds);

}  // namespace frugal
