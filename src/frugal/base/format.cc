// number_text: an ostringstream with default flags, the form the messages have always used.
#include "frugal/base/format.h"

#include <sstream>

namespace frugal {

std::string number_text(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

}  // namespace frugal
