// A number frugal reports together with where it came from, so no figure is a silent guess.
// Sources: "measured" (a counter read on this machine), "counted" (added up by frugal as the work
// ran: the training FLOPs, autograd/flops.h), "estimated" (a model, method stated elsewhere),
// "catalog" (the shipped price/spec list) or "user" (a value the user set).
#pragma once

#include <string>

namespace frugal::cost {

inline constexpr const char* source_measured = "measured";
inline constexpr const char* source_counted = "counted";
inline constexpr const char* source_estimated = "estimated";
inline constexpr const char* source_catalog = "catalog";
inline constexpr const char* source_user = "user";

struct Figure {
  double value = 0.0;
  std::string source;
};

}  // namespace frugal::cost
