// Projection: hours, dollars, energy and carbon from FLOPs, peak, efficiency and the catalog entry,
// all labelled estimated with the method spelled out; bad arguments are InputErrors.
#include "frugal/cost/projection.h"

#include <gtest/gtest.h>

#include "frugal/base/error.h"
#include "frugal/cost/catalog.h"

namespace frugal::cost {
namespace {

Instance gpu_box() {
  Instance inst;
  inst.name = "gpu-box";
  inst.usd_per_hour = 4.0;
  inst.spot_usd_per_hour = 1.0;
  inst.peak_flops = {{"fp32", 20e12}, {"bf16", 300e12}};
  inst.tdp_w = 500;
  inst.carbon_g_per_kwh = 400;
  return inst;
}

TEST(Projection, Arithmetic) {
  Instance inst = gpu_box();
  // 5.4e17 FLOP at 300 TFLOP/s x 0.5 = 3600 s = 1 h.
  Projection p = project(inst, 5.4e17, "bf16", 0.5);
  EXPECT_DOUBLE_EQ(p.hours.value, 1.0);
  EXPECT_DOUBLE_EQ(p.usd.value, 4.0);
  EXPECT_DOUBLE_EQ(p.kwh.value, 0.5);
  EXPECT_DOUBLE_EQ(p.co2_kg.value, 0.2);
  for (const Figure* f : {&p.hours, &p.usd, &p.kwh, &p.co2_kg}) EXPECT_EQ(f->source, "estimated");
  EXPECT_EQ(p.instance, "gpu-box");
  EXPECT_EQ(p.precision, "bf16");
  EXPECT_NE(p.method.find("300 TFLOP/s bf16 peak x 0.5 efficiency"), std::string::npos) << p.method;
  EXPECT_NE(p.method.find("4 USD/h on-demand"), std::string::npos) << p.method;

  Projection fp32 = project(inst, 5.4e17, "fp32", 0.5, Pricing::spot);
  EXPECT_DOUBLE_EQ(fp32.hours.value, 15.0);  // 15x slower peak
  EXPECT_DOUBLE_EQ(fp32.usd.value, 15.0);    // at the 1 USD/h spot price
  EXPECT_DOUBLE_EQ(fp32.kwh.value, 7.5);
  EXPECT_DOUBLE_EQ(project(inst, 0, "fp32", 1.0).usd.value, 0.0);
}

TEST(Projection, ShippedCatalogOrdersInstancesSensibly) {
  Catalog catalog = load_catalog(std::string(FRUGAL_SOURCE_DIR) + "/catalog/instances.toml");
  double flops = 1e18;
  Projection h100 = project(catalog.at("p5.48xlarge"), flops, "bf16", 0.4);
  Projection a100 = project(catalog.at("p4d.24xlarge"), flops, "bf16", 0.4);
  Projection cpu = project(catalog.at("c7i.2xlarge"), flops, "bf16", 0.4);
  EXPECT_LT(h100.hours.value, a100.hours.value);
  EXPECT_LT(a100.hours.value, cpu.hours.value);
  EXPECT_NEAR(a100.hours.value / h100.hours.value, 7912.0 / 2496.0, 1e-9);
}

TEST(Projection, RejectsBadArguments) {
  Instance inst = gpu_box();
  try {
    project(inst, 1e15, "int8", 0.5);
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'gpu-box' states no peak for precision 'int8' (it has: bf16, fp32)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(project(inst, 1e15, "bf16", 0.0), InputError);
  EXPECT_THROW(project(inst, 1e15, "bf16", 1.5), InputError);
  EXPECT_THROW(project(inst, -1.0, "bf16", 0.5), InputError);
}

}  // namespace
}  // namespace frugal::cost
