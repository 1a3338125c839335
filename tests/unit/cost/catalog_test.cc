// Catalog: the shipped file loads and holds the required instances; each kind of bad entry is an
// InputError naming the file, line, entry and key; a user file adds entries and overrides keys.
#include "frugal/cost/catalog.h"

#include <gtest/gtest.h>

#include "cost_test_files.h"
#include "frugal/base/error.h"
#include "frugal/cost/billing.h"
#include "frugal/cost/energy.h"

namespace frugal::cost {
namespace {

using testing::TempDir;

const std::string shipped = std::string(FRUGAL_SOURCE_DIR) + "/catalog/instances.toml";

const char* good_entry = testing::kBoxEntry;

// Runs `body`, expecting an InputError whose message contains every fragment.
template <typename F>
void expect_input_error(F body, std::initializer_list<std::string> fragments) {
  try {
    body();
    ADD_FAILURE() << "expected InputError";
  } catch (const InputError& e) {
    std::string message = e.what();
    for (const std::string& f : fragments) EXPECT_NE(message.find(f), std::string::npos) << message << "\nmissing: " << f;
  }
}

// Replaces the first line starting with `key =` in good_entry (or removes it when `line` is "").
std::string edited(const std::string& key, const std::string& line) {
  std::string text = good_entry;
  size_t at = text.find("\n" + key + " =");
  EXPECT_NE(at, std::string::npos) << key;
  size_t end = text.find('\n', at + 1);
  text.replace(at + 1, end - at, line.empty() ? "" : line + "\n");
  return text;
}

TEST(Catalog, ShippedFileHasTheRequiredInstances) {
  Catalog catalog = load_catalog(shipped);
  auto has_accelerator = [&](const std::string& kind) {
    for (const auto& [name, inst] : catalog.instances())
      if (inst.accelerator.find(kind) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has_accelerator("RTX-4090"));
  EXPECT_TRUE(has_accelerator("A100-SXM4-40GB"));
  EXPECT_TRUE(has_accelerator("A100-SXM4-80GB"));
  EXPECT_TRUE(has_accelerator("H100"));
  EXPECT_TRUE(has_accelerator("TPU-v5e"));
  for (const char* name : {"local", "c7i.2xlarge", "m7i.2xlarge", "n2-standard-8", "c3-standard-8", "Standard_D8s_v5"})
    EXPECT_TRUE(catalog.contains(name)) << name;
  for (const auto& [name, inst] : catalog.instances()) {
    EXPECT_FALSE(inst.source.empty()) << name;
    EXPECT_FALSE(inst.date.empty()) << name;
    EXPECT_GT(inst.tdp_w, 0) << name;
    EXPECT_GE(inst.usd_per_hour, inst.spot_usd_per_hour) << name;
    EXPECT_TRUE(inst.user_keys.empty()) << name;
  }
  const Instance& p4d = catalog.at("p4d.24xlarge");
  EXPECT_EQ(p4d.accelerator_count, 8);
  EXPECT_DOUBLE_EQ(*p4d.peak("bf16"), 2496e12);
  EXPECT_FALSE(catalog.at("tpu-v5litepod-1").peak("fp32").has_value());
  const Instance& local = catalog.at("local");
  EXPECT_EQ(local.usd_per_hour, 0.0);
  EXPECT_EQ(local.tdp_w, 65.0);
}

TEST(Catalog, ReadsEveryKeyAndDefaultsIdlePower) {
  TempDir dir;
  Catalog catalog = load_catalog(dir.write("c.toml", good_entry));
  const Instance& box = catalog.at("box");
  EXPECT_EQ(box.provider, "acme");
  EXPECT_EQ(box.accelerator, "cpu");
  EXPECT_EQ(box.vcpus, 4);
  EXPECT_DOUBLE_EQ(box.spot_usd_per_hour, 0.2);
  EXPECT_DOUBLE_EQ(*box.peak("fp32"), 1.5e12);
  EXPECT_DOUBLE_EQ(box.idle_w, idle_fraction_default * 100);
  EXPECT_FALSE(box.peak("int8").has_value());
  EXPECT_EQ(box.file, dir.path("c.toml"));
}

// parse_catalog (the fuzz target's entry point) reads text in memory as load_catalog reads a file.
TEST(Catalog, ParseReadsTextInMemoryAsTheFile) {
  Catalog catalog = parse_catalog(good_entry, "mem.toml");
  EXPECT_EQ(catalog.at("box").vcpus, 4);
  EXPECT_EQ(catalog.at("box").file, "mem.toml");
  expect_input_error([&] { parse_catalog("[instance.\"box\"\n", "mem.toml"); }, {"mem.toml:1:", "invalid TOML"});
}

TEST(Catalog, UnknownInstanceSuggestsAName) {
  Catalog catalog = load_catalog(shipped);
  expect_input_error([&] { catalog.at("c7i.2xlarg"); }, {"unknown instance 'c7i.2xlarg'", "did you mean 'c7i.2xlarge'"});
}

TEST(Catalog, MissingPriceNamesFileEntryAndKey) {
  TempDir dir;
  std::string path = dir.write("c.toml", edited("usd_per_hour", ""));
  expect_input_error([&] { load_catalog(path); }, {path + ":1:", "[instance.\"box\"]", "missing key 'usd_per_hour'"});
  path = dir.write("d.toml", edited("spot_usd_per_hour", ""));
  expect_input_error([&] { load_catalog(path); }, {"missing key 'spot_usd_per_hour'"});
}

TEST(Catalog, NegativeNumberNamesTheKeyAndLine) {
  TempDir dir;
  std::string path = dir.write("c.toml", edited("usd_per_hour", "usd_per_hour = -0.5"));
  expect_input_error([&] { load_catalog(path); },
                     {path + ":6:", "[instance.\"box\"] usd_per_hour = -0.5", "expected a number >= 0"});
  path = dir.write("d.toml", edited("tdp_w", "tdp_w = 0"));
  expect_input_error([&] { load_catalog(path); }, {"tdp_w = 0", "expected a number > 0"});
  path = dir.write("e.toml", edited("peak_tflops", "peak_tflops = { fp32 = -1 }"));
  expect_input_error([&] { load_catalog(path); }, {"peak_tflops.fp32 = -1", "> 0"});
}

TEST(Catalog, UnknownKeyIsAnErrorWithASuggestion) {
  TempDir dir;
  std::string path = dir.write("c.toml", std::string(good_entry) + "usd_per_hr = 1.0\n");
  expect_input_error([&] { load_catalog(path); },
                     {path + ":13:", "[instance.\"box\"] unknown key 'usd_per_hr'", "did you mean 'usd_per_hour'"});
  path = dir.write("d.toml", edited("peak_tflops", "peak_tflops = { fp64 = 1 }"));
  expect_input_error([&] { load_catalog(path); }, {"unknown precision 'fp64'"});
  path = dir.write("e.toml", std::string("[machines.x]\nprovider = \"a\"\n"));
  expect_input_error([&] { load_catalog(path); }, {path + ":1:", "unknown top-level key 'machines'"});
}

TEST(Catalog, WrongTypeIsAnError) {
  TempDir dir;
  std::string path = dir.write("c.toml", edited("usd_per_hour", "usd_per_hour = \"cheap\""));
  expect_input_error([&] { load_catalog(path); }, {"usd_per_hour = \"cheap\"", "expected a number"});
  path = dir.write("d.toml", edited("vcpus", "vcpus = 2.5"));
  expect_input_error([&] { load_catalog(path); }, {"vcpus = 2.5", "expected an integer"});
  path = dir.write("e.toml", edited("provider", "provider = 3"));
  expect_input_error([&] { load_catalog(path); }, {"provider = 3", "expected a string"});
  path = dir.write("f.toml", edited("date", "date = \"June 2024\""));
  expect_input_error([&] { load_catalog(path); }, {"date = \"June 2024\"", "YYYY-MM"});
  path = dir.write("g.toml", "[instance]\nbox = 3\n");
  expect_input_error([&] { load_catalog(path); }, {"instance \"box\" must be a table"});
  path = dir.write("h.toml", "[instance.box\n");
  expect_input_error([&] { load_catalog(path); }, {path + ":1:", "invalid TOML"});
  expect_input_error([&] { load_catalog(dir.path("absent.toml")); }, {"absent.toml", "cannot open"});
}

TEST(Catalog, CrossKeyRules) {
  TempDir dir;
  std::string path = dir.write("c.toml", std::string(good_entry) + "idle_w = 150\n");
  expect_input_error([&] { load_catalog(path); }, {"idle_w = 150", "must not exceed tdp_w (100 W)"});
  path = dir.write("d.toml", std::string(good_entry) + "accelerator = \"A100\"\n");
  expect_input_error([&] { load_catalog(path); }, {"accelerator_count", ">= 1"});
  path = dir.write("e.toml", std::string(good_entry) + "accelerator_count = 2\n");
  expect_input_error([&] { load_catalog(path); }, {"accelerator_count = 2", "accelerator = \"cpu\""});
}

TEST(Catalog, MergeAddsAndOverridesKeys) {
  TempDir dir;
  Catalog catalog = load_catalog(shipped);
  double c7i_price = catalog.at("c7i.2xlarge").usd_per_hour;
  std::string user = dir.write("mine.toml", std::string(good_entry) + R"(
[instance.local]
usd_per_hour = 0.12
tdp_w = 125
carbon_g_per_kwh = 50
)");
  catalog.merge(user);
  ASSERT_TRUE(catalog.contains("box"));
  EXPECT_TRUE(catalog.at("box").from_user("usd_per_hour"));
  const Instance& local = catalog.at("local");
  EXPECT_DOUBLE_EQ(local.usd_per_hour, 0.12);
  EXPECT_DOUBLE_EQ(local.tdp_w, 125);
  EXPECT_DOUBLE_EQ(local.idle_w, 15);  // stated in the shipped entry, so kept
  EXPECT_EQ(local.provider, "local");  // keys the user file does not set are kept
  EXPECT_TRUE(local.from_user("usd_per_hour"));
  EXPECT_FALSE(local.from_user("spot_usd_per_hour"));
  EXPECT_EQ(local.file, user);
  EXPECT_DOUBLE_EQ(catalog.at("c7i.2xlarge").usd_per_hour, c7i_price);

  // Sources follow: the user-set price and intensity say "user", the rest "catalog".
  EXPECT_EQ(dollars(local, 3600, Pricing::on_demand, Billing::per_second).source, "user");
  EXPECT_EQ(dollars(local, 3600, Pricing::spot, Billing::per_second).source, "catalog");
  EXPECT_EQ(carbon_kg(1.0, local).source, "user");
  EXPECT_DOUBLE_EQ(carbon_kg(1.0, local).value, 0.05);
  EXPECT_EQ(carbon_kg(1.0, catalog.at("c7i.2xlarge")).source, "catalog");
}

TEST(Catalog, MergeValidatesAndRecomputesDefaultIdle) {
  TempDir dir;
  Catalog catalog = load_catalog(dir.write("base.toml", good_entry));
  catalog.merge(dir.write("bigger.toml", "[instance.box]\ntdp_w = 200\n"));
  EXPECT_DOUBLE_EQ(catalog.at("box").idle_w, idle_fraction_default * 200);  // default follows tdp_w
  std::string bad = dir.write("bad.toml", "[instance.box]\nspot_usd_per_hour = -1\n");
  expect_input_error([&] { catalog.merge(bad); }, {bad + ":2:", "[instance.\"box\"] spot_usd_per_hour = -1"});
  std::string partial = dir.write("partial.toml", "[instance.newbox]\nusd_per_hour = 1\n");
  expect_input_error([&] { catalog.merge(partial); }, {partial + ":1:", "[instance.\"newbox\"] missing key 'provider'"});
  std::string low_tdp = dir.write("low.toml", "[instance.box]\nidle_w = 20\ntdp_w = 10\n");
  expect_input_error([&] { catalog.merge(low_tdp); }, {"idle_w = 20", "must not exceed tdp_w (10 W)"});
}

}  // namespace
}  // namespace frugal::cost
