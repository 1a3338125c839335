// CSV reader: header detection, label column choice, integer labels and class names (only when asked), quoting, and the
// line/column named by each error.
#include "frugal/data/readers.h"
#include "test_util.h"
#include "unit/data/temp_files.h"

namespace frugal::data {
namespace {

using frugal::testing::TempDir;
using frugal::testing::write_text;

TEST(Csv, HeaderDetectedAndLastColumnIsLabel) {
  TempDir dir;
  write_text(dir.file("a.csv"), "height,weight,class\n1.5,2,0\n-3,4e1,2\r\n\n5, +6 ,1\n");
  CsvTable t = read_csv(dir.file("a.csv"));
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"height", "weight"}));
  ASSERT_EQ(t.features.shape(), (Shape{3, 2}));
  EXPECT_EQ(t.features.to_vector<float>(), (std::vector<float>{1.5f, 2, -3, 40, 5, 6}));
  EXPECT_EQ(t.labels.dtype(), DType::i64);
  EXPECT_EQ(t.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 2, 1}));
  EXPECT_TRUE(t.label_names.empty());
}

TEST(Csv, NoHeaderDetected) {
  TempDir dir;
  write_text(dir.file("a.csv"), "1,2,3\n4,5,6\n");
  CsvTable t = read_csv(dir.file("a.csv"));
  EXPECT_EQ(t.features.shape(), (Shape{2, 2}));
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"column_0", "column_1"}));
  EXPECT_EQ(t.labels.to_vector<int64_t>(), (std::vector<int64_t>{3, 6}));
  // Forced header: the first row becomes names.
  CsvOptions yes;
  yes.header = CsvOptions::Header::yes;
  CsvTable h = read_csv(dir.file("a.csv"), yes);
  EXPECT_EQ(h.features.shape(), (Shape{1, 2}));
  EXPECT_EQ(h.feature_names, (std::vector<std::string>{"1", "2"}));
}

TEST(Csv, ClassNamesOnlyWhenAskedNumberedInSortedOrder) {
  TempDir dir;
  // No header, string labels: row 1 is data because its features are numbers and row 2's label is
  // not a number either. The first row is virginica: sorted order, not first-seen order, numbers them.
  write_text(dir.file("iris.csv"), "6.3,3.3,virginica\n5.1,3.5,setosa\n7.0,3.2,versicolor\n4.9,3.0,setosa\n");
  CsvOptions names;
  names.label_names = true;
  CsvTable t = read_csv(dir.file("iris.csv"), names);
  EXPECT_EQ(t.features.shape(), (Shape{4, 2}));
  EXPECT_EQ(t.label_names, (std::vector<std::string>{"setosa", "versicolor", "virginica"}));
  EXPECT_EQ(t.labels.to_vector<int64_t>(), (std::vector<int64_t>{2, 0, 1, 0}));
  EXPECT_EQ(t.lines, (std::vector<int64_t>{1, 2, 3, 4}));
  // Without label_names the same file is an error at its first row, not a silent switch to names.
  EXPECT_INPUT_ERROR(read_csv(dir.file("iris.csv")), dir.file("iris.csv"), "line 1, column 9", "'virginica'",
                     "labels = \"names\"");
  // A first row whose only non-number is in the label column is mostly numbers: data with a bad
  // label (it could be a corrupted row), not a header, unless header = "yes" says so.
  write_text(dir.file("b.csv"), "1,2,label\n3,4,1\n");
  EXPECT_INPUT_ERROR(read_csv(dir.file("b.csv")), "line 1, column 5", "label 'label'", "header = \"yes\"");
  CsvOptions yes;
  yes.header = CsvOptions::Header::yes;
  CsvTable b = read_csv(dir.file("b.csv"), yes);
  EXPECT_EQ(b.features.shape(), (Shape{1, 2}));
  EXPECT_EQ(b.feature_names, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(b.lines, (std::vector<int64_t>{2}));
}

TEST(Csv, CorruptedFirstRowIsABadValueNotAHeader) {
  TempDir dir;
  const std::string path = dir.file("c.csv");
  write_text(path, "1.0,2.x,0\n3,4,1\n5,6,0\n");
  EXPECT_INPUT_ERROR(read_csv(path), path, "line 1, column 5", "field 2", "found '2.x'", "header = \"yes\"");
  // A header: most fields text where the rows below hold numbers (one numeric name is fine).
  write_text(path, "age,2019,y\n3,4,1\n5,6,0\n");
  CsvTable t = read_csv(path);
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"age", "2019"}));
  EXPECT_EQ(t.lines, (std::vector<int64_t>{2, 3}));
  // A text column all the way down is no evidence of a header: the first row is data, refused there.
  write_text(path, "a,1,0\nb,2,1\nc,3,0\n");
  EXPECT_INPUT_ERROR(read_csv(path), "line 1, column 1", "found 'a'");
  // Names in the label column below a header of text.
  CsvOptions names;
  names.label_names = true;
  write_text(path, "x,y,kind\n1,2,cat\n3,4,dog\n");
  EXPECT_EQ(read_csv(path, names).feature_names, (std::vector<std::string>{"x", "y"}));
}

TEST(Csv, SkipLinesAndComments) {
  TempDir dir;
  const std::string path = dir.file("s.csv");
  write_text(path, "3\nx,y,label\n1,2,0\n3,4,1\n5,6,0\n");  // a row count first
  EXPECT_INPUT_ERROR(read_csv(path), "line 1", "found 1 column");
  CsvOptions skip;
  skip.skip_lines = 1;
  CsvTable t = read_csv(path, skip);
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(t.lines, (std::vector<int64_t>{3, 4, 5}));  // still the file's lines
  skip.skip_lines = 5;
  EXPECT_INPUT_ERROR(read_csv(path, skip), "empty after skip_lines = 5");
  write_text(path, "# made by hand\nx,y,label\n1,2,0\n  # a note\n3,4,1\n");
  CsvOptions comment;
  comment.comment = "#";
  CsvTable c = read_csv(path, comment);
  EXPECT_EQ(c.features.to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(c.lines, (std::vector<int64_t>{3, 5}));
}

TEST(Csv, CrOnlyLineEndingsAreNamed) {
  TempDir dir;
  const std::string path = dir.file("mac.csv");
  write_text(path, "x,y,label\r1,2,0\r3,4,1\r");
  EXPECT_INPUT_ERROR(read_csv(path), path, "line endings are CR only", "tr");
  write_text(path, "x,y,label\n1,2\r,0\n");  // a stray CR inside a line
  EXPECT_INPUT_ERROR(read_csv(path), "line 2, column 4", "carriage return");
  write_text(path, "x,y,label\r\n1,2,0\r\n3,4,1\r\n");  // CRLF keeps working
  EXPECT_EQ(read_csv(path).labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));
}

TEST(Csv, EchoedFieldsStayOneLine) {
  TempDir dir;
  const std::string path = dir.file("e.csv");
  write_text(path, "x,y,label\n1," + std::string(300, 'z') + ",0\n");
  try {
    read_csv(path);
    FAIL() << "no error";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(std::string(80, 'z') + "..."), std::string::npos) << message;
    EXPECT_EQ(message.find(std::string(81, 'z')), std::string::npos) << message;
  }
  write_text(path, "x,y,label\n1,\"a\x01z\",0\n");
  EXPECT_INPUT_ERROR(read_csv(path), "found 'a\\x01z'");
}

TEST(Csv, OneStrayLabelIsAnErrorNamingItsLine) {
  TempDir dir;
  const std::string path = dir.file("c.csv");
  for (const char* stray : {"-1", "2.5", "seven"}) {
    write_text(path, "x,y\n1,0\n\n2,1\n3," + std::string(stray) + "\n4,0\n");
    EXPECT_INPUT_ERROR(read_csv(path), path, "line 5, column 3", "label '" + std::string(stray) + "'",
                       "not a class index");
  }
  // As names they are classes like any other.
  CsvOptions names;
  names.label_names = true;
  write_text(path, "1,-1\n2,1\n3,-1\n");
  CsvTable c = read_csv(path, names);
  EXPECT_EQ(c.label_names, (std::vector<std::string>{"-1", "1"}));
  EXPECT_EQ(c.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0}));
}

TEST(Csv, LabelColumnByNameOrIndexAndQuotes) {
  TempDir dir;
  write_text(dir.file("a.csv"), "species;\"len; cm\";width\n\"cat\";1;2\ndog;3;\"4\"\n");
  CsvOptions options;
  options.label_column = "species";
  options.delimiter = ';';
  options.label_names = true;
  CsvTable t = read_csv(dir.file("a.csv"), options);
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"len; cm", "width"}));
  EXPECT_EQ(t.features.to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(t.label_names, (std::vector<std::string>{"cat", "dog"}));
  CsvOptions by_index;
  by_index.label_names = true;
  by_index.label_index = 0;
  by_index.delimiter = ';';
  CsvTable u = read_csv(dir.file("a.csv"), by_index);
  EXPECT_EQ(u.feature_names, t.feature_names);
  EXPECT_EQ(u.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));
  options.label_column = "kind";
  EXPECT_INPUT_ERROR(read_csv(dir.file("a.csv"), options), "no column named 'kind'", "species, len; cm, width");
  by_index.label_index = 3;
  EXPECT_INPUT_ERROR(read_csv(dir.file("a.csv"), by_index), "label_index 3 is out of range");
}

TEST(Csv, ErrorsNameLineAndColumn) {
  TempDir dir;
  const std::string path = dir.file("bad.csv");
  write_text(path, "a,b,y\n1,2,0\n3,4\n");
  EXPECT_INPUT_ERROR(read_csv(path), path, "line 3", "found 2 fields; expected 3");
  write_text(path, "a,b,y\n1,2,0\n3,4,1,5\n");
  EXPECT_INPUT_ERROR(read_csv(path), "line 3", "found 4 fields");
  write_text(path, "a,b,y\n1,2,0\n3, x4 ,1\n");
  EXPECT_INPUT_ERROR(read_csv(path), path, "line 3, column 3", "field 2, 'b'", "expected a finite number, found 'x4'");
  write_text(path, "a,b,y\n1,nan,0\n");
  EXPECT_INPUT_ERROR(read_csv(path), "line 2, column 3", "found 'nan'");
  write_text(path, "a,b,y\n1,2,0\n3,1e300,1\n");  // finite in double, inf in f32
  EXPECT_INPUT_ERROR(read_csv(path), path, "line 3, column 3", "field 2, 'b'", "'1e300' overflows f32");
  write_text(path, "a,b,y\n1,-3.5e38,0\n");
  EXPECT_INPUT_ERROR(read_csv(path), "line 2, column 3", "overflows f32");
  write_text(path, "a,b,y\n1,3.4e38,0\n1,1e-300,0\n");  // the largest finite f32 is fine; underflow is 0
  EXPECT_EQ(read_csv(path).features.to_vector<float>(), (std::vector<float>{1, 3.4e38f, 1, 0}));
  write_text(path, "a,b,y\n1,,0\n");
  EXPECT_INPUT_ERROR(read_csv(path), "line 2, column 3", "found ''");
  write_text(path, "a,b,y\n1,\"2,0\n");
  EXPECT_INPUT_ERROR(read_csv(path), "line 2, column 3", "unterminated quoted field");
  write_text(path, "");
  EXPECT_INPUT_ERROR(read_csv(path), path, "empty");
  write_text(path, "\n  \n");
  EXPECT_INPUT_ERROR(read_csv(path), "empty");
  write_text(path, "a,b,y\n");
  EXPECT_INPUT_ERROR(read_csv(path), "no data rows");
  write_text(path, "1\n2\n");
  EXPECT_INPUT_ERROR(read_csv(path), "line 1", "found 1 column");
  write_text(path, "1,cat\n2,\n");
  CsvOptions names;
  names.label_names = true;
  EXPECT_INPUT_ERROR(read_csv(path, names), "line 2, column 3", "empty label");
  CsvOptions options;
  options.label_column = "y";
  options.header = CsvOptions::Header::no;
  EXPECT_INPUT_ERROR(read_csv(path, options), "needs a header row");
}

}  // namespace
}  // namespace frugal::data
