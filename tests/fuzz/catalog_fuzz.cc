// libFuzzer target for the price catalog parser, through parse_catalog. Every accepted entry keeps
// the cross-key rules the reader enforces.
#include "fuzz_util.h"
#include "frugal/cost/catalog.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace frugal;
  cost::Catalog catalog;
  if (!fuzz::accepted([&] { catalog = cost::parse_catalog(fuzz::as_text(data, size), "fuzz.toml"); })) return 0;
  for (const auto& [name, inst] : catalog.instances()) {
    FUZZ_CHECK(inst.name == name);
    FUZZ_CHECK(inst.idle_w <= inst.tdp_w);
    FUZZ_CHECK((inst.accelerator == "cpu") == (inst.accelerator_count == 0));
  }
  return 0;
}
