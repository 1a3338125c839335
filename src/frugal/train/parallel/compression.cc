// make_compressor (compression.h): the [dist] compression method of a job.
#include "frugal/train/parallel/compression.h"

#include "frugal/base/error.h"

namespace frugal::train {

std::unique_ptr<GradientCompressor> make_compressor(const DistSpec& spec) {
  if (spec.compression == Compression::none) return nullptr;
  throw InputError(std::string("[dist] compression = \"") + name_of(spec.compression) + "\" is not built in this frugal");
}

}  // namespace frugal::train
