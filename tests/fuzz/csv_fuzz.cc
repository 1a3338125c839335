// libFuzzer target for the CSV reader, through parse_csv with the default options and with class
// names, a header and the label first. An accepted table is consistent: N rows of F finite features,
// N labels in range, one line number per row, one name per feature.
#include <cmath>

#include "fuzz_util.h"
#include "frugal/data/readers.h"

namespace {

void check_table(const frugal::data::CsvTable& table, bool label_names) {
  using namespace frugal;
  FUZZ_CHECK(table.features.rank() == 2 && table.labels.rank() == 1);
  const int64_t n = table.features.size(0), features = table.features.size(1);
  FUZZ_CHECK(n >= 1 && features >= 1 && table.labels.size(0) == n);
  FUZZ_CHECK(int64_t(table.lines.size()) == n && int64_t(table.feature_names.size()) == features);
  const float* x = table.features.data<float>();
  for (int64_t i = 0; i < n * features; ++i) FUZZ_CHECK(std::isfinite(x[i]));
  const int64_t* y = table.labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    FUZZ_CHECK(y[i] >= 0);
    if (label_names) FUZZ_CHECK(y[i] < int64_t(table.label_names.size()));
  }
  for (int64_t i = 1; i < n; ++i) FUZZ_CHECK(table.lines[size_t(i)] > table.lines[size_t(i - 1)]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace frugal;
  const std::string_view text = fuzz::as_text(data, size);
  data::CsvTable table;
  if (fuzz::accepted([&] { table = data::parse_csv(text, "fuzz.csv"); })) check_table(table, false);
  data::CsvOptions names;
  names.label_names = true;
  names.label_index = 0;
  names.header = data::CsvOptions::Header::yes;
  if (fuzz::accepted([&] { table = data::parse_csv(text, "fuzz.csv", names); })) check_table(table, true);
  return 0;
}
