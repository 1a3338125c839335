// The export helpers: CSV quoting (RFC 4180), MLflow run status numbers and stable run ids, and
// the flattening of a row's numbers into metric keys.
#include "frugal/track/export.h"

#include <gtest/gtest.h>

namespace frugal::track {
namespace {

TEST(ExportHelpers, CsvMlflowFlat) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
  EXPECT_EQ(mlflow_status("completed"), 3);
  EXPECT_EQ(mlflow_status("running"), 1);
  EXPECT_EQ(mlflow_status("failed"), 4);
  EXPECT_EQ(mlflow_status("interrupted"), 5);
  const std::string id = mlflow_run_id("mlp-20240501-123456-0a1b");
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(id, mlflow_run_id("mlp-20240501-123456-0a1b"));
  EXPECT_NE(id, mlflow_run_id("mlp-20240501-123456-0a1c"));
  std::map<std::string, double> flat =
      flat_numbers(R"({"step":3,"loss":0.5,"note":"x","cost":{"usd":{"value":0.1,"source":"catalog"}},"forecast":{"usd":2}})");
  EXPECT_EQ(flat.size(), 4u);
  EXPECT_EQ(flat["cost.usd"], 0.1);
  EXPECT_EQ(flat["forecast.usd"], 2);
  EXPECT_EQ(flat["loss"], 0.5);
}

}  // namespace
}  // namespace frugal::track
