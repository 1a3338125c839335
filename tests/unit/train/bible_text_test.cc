// The Bible sources of [data] source: diatheke's markup cleaned to plain verses (on lines shaped like
// what diatheke 1.9 of Debian 12 prints for the WEB and Reina-Valera modules), the errors naming the
// Debian package when diatheke or a module is missing, UTF-8 text split by bytes, and the real WEB and
// Reina-Valera 1909 texts, which need Debian's diatheke, sword-text-web and sword-text-sparv (skipped,
// saying so, when they are missing; scripts/setup.sh installs them).
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frugal/train/bible_text.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"
#include "test_util.h"

namespace frugal::train {
namespace {

namespace fs = std::filesystem;

fs::path scratch_dir() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::path(::testing::TempDir()) / ("frugal-bible-" + std::string(info->name()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(DiathekeVerses, MarkupBecomesOneVersePerLine) {
  const std::string printed =
      "Genesis 1:1: <w savlm=\"strong:H7225\">In</w> <w savlm=\"strong:H0430\">God</w><w "
      "savlm=\"strong:H1254\">created</w> the earth.\n"
      // A canonical title diatheke repeats before later verses, a poetry line break, an entity.
      "<title canonical=\"true\" type=\"psalm\">A Psalm by David.</title> <lg sID=\"g1\"/> <l level=\"1\" "
      "sID=\"g2\"/>Psalms 3:1: Yahweh, how my adversaries &amp; foes<l eID=\"g2\" level=\"1\"/><l level=\"2\" "
      "sID=\"g3\"/>have increased!<l eID=\"g3\" level=\"2\"/>\n"
      "<title canonical=\"true\" type=\"psalm\">A Psalm by David.</title> Psalms 3:2:  <q who=\"x\">Many</q>, "
      "<w>said</w>,<w>and</w> a <note type=\"x\">a footnote <hi>inside</hi></note>note.\n"
      // Verses this translation leaves empty, and the end of a chapter followed by material of no verse.
      "Acts 8:37: \n"
      "Revelation of John 22:21: <w>Amen</w>.  <chapter eID=\"Rev.22\"/><div eID=\"g9\" type=\"x-p\"/> "
      "<div sID=\"g10\" type=\"glossary\"/> The following words...\n"
      "(engWEB2015eb)\n";
  std::vector<std::string> verses = lines_of(diatheke_plain_verses(printed));
  ASSERT_EQ(verses.size(), 4u) << diatheke_plain_verses(printed);
  EXPECT_EQ(verses[0], "In God created the earth.");
  EXPECT_EQ(verses[1], "Yahweh, how my adversaries & foes have increased!");
  EXPECT_EQ(verses[2], "Many, said, and a note.");
  EXPECT_EQ(verses[3], "Amen.");
}

TEST(DiathekeVerses, SpanishAccentsAndContinuationLines) {
  const std::string printed =
      "Genesis 1:1: <w savlm=\"strong:H7225\">EN el principio</w> <w savlm=\"strong:H1254\">crió</w> Dios "
      "<transChange type=\"added\">los</transChange> cielos &#241; &#xE9;\n"
      " Psalms 133:1:  <w>Mirad</w> cuán\nbueno\n"
      "I John 1:1: Lo que era\n"
      "(spaRV1909eb)\n";
  EXPECT_EQ(diatheke_plain_verses(printed),
            "EN el principio crió Dios los cielos ñ é\nMirad cuán bueno\nLo que era\n");
}

// A text job on `source` (a Bible, or "file" with train = `train`), loaded from dir/job.toml.
JobSpec text_job(const fs::path& dir, const std::string& source, const std::string& train = "") {
  std::ofstream(dir / "job.toml") << "[data]\nkind = \"text\"\nsource = \"" << source << "\"\n"
                                  << (train.empty() ? "" : "train = \"" + train + "\"\n")
                                  << "val_fraction = 0.05\n[model]\nkind = \"gpt\"\nlayers = 1\nheads = 1\n"
                                     "width = 8\ncontext = 8\n[train]\nsteps = 1\n";
  return load_job((dir / "job.toml").string());
}

// The splits of prepare_data on a text: train then val, the val split its tail, byte by byte (a
// UTF-8 character may straddle the cut: the vocabulary is of bytes), the vocabulary the bytes of the
// training split.
void expect_byte_splits(const PreparedData& data, const std::string& text) {
  const std::string train = data.vocab.decode(data.train_tokens), val = data.vocab.decode(data.val_tokens);
  EXPECT_EQ(train + val, text);
  EXPECT_EQ(val.size(), size_t(double(text.size()) * 0.05));
  std::string bytes;
  for (int c = 0; c < 256; ++c)
    if (train.find(char(c)) != std::string::npos) bytes += char(c);
  EXPECT_EQ(data.vocab.chars(), bytes);
}

TEST(BibleText, SourcesOfTheJobFile) {
  fs::path dir = scratch_dir();
  EXPECT_EQ(text_job(dir, "bible-web").data.source, "bible-web");
  EXPECT_EQ(text_job(dir, "bible-rv1909").data.source, "bible-rv1909");
  EXPECT_INPUT_ERROR(text_job(dir, "bible-luther"), "[data] source", "bible-luther", "bible-kjv", "bible-web",
                     "bible-rv1909");
  fs::remove_all(dir);
}

// Spanish in UTF-8 through the text path: byte tokens, splits as for ASCII, the accents round-trip.
TEST(BibleText, Utf8TextSplitsByBytes) {
  fs::path dir = scratch_dir();
  std::string text;
  for (int i = 0; i < 40; ++i) text += "¿Dónde está el niño? Allí, señor; ¡Amén!\n";
  std::ofstream(dir / "es.txt", std::ios::binary) << text;
  PreparedData data = prepare_data(text_job(dir, "file", (dir / "es.txt").string()), (dir / "cache").string());
  expect_byte_splits(data, text);
  EXPECT_NE(data.vocab.chars().find('\xC3'), std::string::npos);  // the lead byte of á é ñ ó í
  EXPECT_EQ(data.vocab.decode(data.vocab.encode("señor")), "señor");
  fs::remove_all(dir);
}

// Runs bible_text_path with PATH set to `path` (restored afterwards).
std::string with_path(const std::string& path, const std::string& source, const fs::path& cache) {
  const char* old = std::getenv("PATH");
  std::string saved = old ? old : "";
  setenv("PATH", path.c_str(), 1);
  try {
    std::string result = bible_text_path(source, cache.string());
    setenv("PATH", saved.c_str(), 1);
    return result;
  } catch (...) {
    setenv("PATH", saved.c_str(), 1);
    throw;
  }
}

TEST(BibleText, MissingProgramOrModuleNamesThePackage) {
  fs::path dir = scratch_dir();
  fs::create_directories(dir / "empty");
  EXPECT_INPUT_ERROR(with_path((dir / "empty").string(), "bible-web", dir / "cache"), "bible-web",
                     "cannot run `diatheke`", "install Debian's diatheke and sword-text-web");
  EXPECT_INPUT_ERROR(with_path((dir / "empty").string(), "bible-kjv", dir / "cache"), "cannot run `bible`",
                     "install Debian's bible-kjv");
  // A diatheke that has no such module prints nothing and exits 0.
  fs::create_directories(dir / "bin");
  std::ofstream(dir / "bin" / "diatheke") << "#!/bin/sh\nexit 0\n";
  fs::permissions(dir / "bin" / "diatheke", fs::perms::owner_all);
  EXPECT_INPUT_ERROR(with_path((dir / "bin").string(), "bible-rv1909", dir / "cache"), "bible-rv1909",
                     "no text for the SWORD module spaRV1909eb", "install Debian's sword-text-sparv");
  EXPECT_FALSE(fs::exists(dir / "cache" / "rv1909.txt"));
  EXPECT_INPUT_ERROR(bible_text_path("bible-luther", (dir / "cache").string()), "not a Bible text");
  fs::remove_all(dir);
}

bool installed(const std::string& module) {
  return std::system(("diatheke -b system -k modulelist 2>/dev/null | grep -q '^" + module + " '").c_str()) == 0;
}

// The real text: 66 books, one plain verse per line, no markup, no reference.
void check_real_text(const std::string& source, const std::string& module, const std::string& package,
                     const std::string& first_verse, const std::string& last_verse, size_t min_verses) {
  if (!installed(module))
    GTEST_SKIP() << "diatheke or the SWORD module " << module << " is missing: install Debian's diatheke and "
                 << package << " (scripts/setup.sh does)";
  fs::path dir = scratch_dir();
  std::string path = bible_text_path(source, (dir / "cache").string());
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  std::vector<std::string> verses = lines_of(text);
  EXPECT_GE(verses.size(), min_verses);
  EXPECT_LE(verses.size(), 31102u);  // the KJV's verse count: the 66 books, no deuterocanon
  ASSERT_FALSE(verses.empty());
  EXPECT_EQ(verses.front(), first_verse);
  EXPECT_EQ(verses.back(), last_verse);
  for (size_t i = 0; i < verses.size(); ++i) {
    const std::string& v = verses[i];
    ASSERT_FALSE(v.empty()) << "line " << i;
    EXPECT_EQ(v.find_first_of("<>"), std::string::npos) << "markup in line " << i << ": " << v;
    EXPECT_NE(v.front(), ' ') << "line " << i;
    EXPECT_NE(v.back(), ' ') << "line " << i;
    EXPECT_EQ(v.find("  "), std::string::npos) << "line " << i;
    // No "Book C:V:" reference left at the start.
    size_t colon = v.find(':');
    if (colon != std::string::npos && colon < 25 && colon > 0 && std::isdigit(uint8_t(v[colon - 1])))
      ADD_FAILURE() << "a reference in line " << i << ": " << v;
  }
  EXPECT_EQ(text.find("(" + module + ")"), std::string::npos);
  EXPECT_EQ(text.find("Psalm by David"), std::string::npos);  // WEB: no repeated psalm titles
  EXPECT_EQ(text.find("Tobit"), std::string::npos);
  // Cached: a second call does not run diatheke again.
  EXPECT_EQ(bible_text_path(source, (dir / "cache").string()), path);
  fs::remove_all(dir);
}

TEST(BibleText, WorldEnglishBible) {
  check_real_text("bible-web", "engWEB2015eb", "sword-text-web",
                  "In the beginning, God created the heavens and the earth.",
                  "The grace of the Lord Jesus Christ be with all the saints. Amen.", 31000);
}

TEST(BibleText, ReinaValera1909) {
  check_real_text("bible-rv1909", "spaRV1909eb", "sword-text-sparv",
                  "EN el principio crió Dios los cielos y la tierra.",
                  "La gracia de nuestro Señor Jesucristo sea con todos vosotros. Amén.", 31000);
}

// The examples' job (val_fraction = 0.05) on the Spanish text: split as the KJV's, every byte of
// the validation tail in the training vocabulary, accented letters in it.
TEST(BibleText, ReinaValeraPreparedLikeTheKjv) {
  if (!installed("spaRV1909eb"))
    GTEST_SKIP() << "diatheke or the SWORD module spaRV1909eb is missing: install Debian's diatheke and "
                    "sword-text-sparv (scripts/setup.sh does)";
  fs::path dir = scratch_dir();
  PreparedData data = prepare_data(text_job(dir, "bible-rv1909"), (dir / "cache").string());
  std::ifstream in(dir / "cache" / "rv1909.txt", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  expect_byte_splits(data, text);
  EXPECT_NE(data.vocab.chars().find('\xC3'), std::string::npos);
  EXPECT_NE(data.vocab.decode(data.train_tokens).find("crió"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace frugal::train
