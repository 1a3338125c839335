// CSV reader: numeric feature columns plus one label column, into f32 (N, F) features and i64 (N)
// labels. Errors give the line (1-based) and column (1-based character position) of the bad field;
// a value beyond f32's range (1e300) is refused, not stored as inf.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <string_view>
#include <map>

#include "frugal/base/format.h"
#include "frugal/data/file_bytes.h"
#include "frugal/data/readers.h"

namespace frugal::data {

namespace {

struct Field {
  std::string text;
  int64_t column;  // 1-based character position of the field's start
};

struct Row {
  int64_t line;  // 1-based
  std::vector<Field> fields;
};

bool is_space(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// A finite decimal number, surrounding blanks allowed ("1", "-2.5e3", "+4").
bool parse_number(std::string_view text, double& value) {
  text = trim(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size() && std::isfinite(value);
}

std::vector<Field> split_fields(std::string_view line, char delimiter, const std::string& path, int64_t line_number) {
  std::vector<Field> fields;
  size_t i = 0;
  while (true) {
    Field field{"", int64_t(i) + 1};
    size_t start = i;
    while (i < line.size() && is_space(line[i]) && line[i] != delimiter) ++i;
    if (i < line.size() && line[i] == '"') {
      field.column = int64_t(i) + 1;
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') { field.text += '"'; i += 2; continue; }
          closed = true;
          ++i;
          break;
        }
        field.text += line[i++];
      }
      if (!closed)
        throw InputError(path + ": line " + std::to_string(line_number) + ", column " + std::to_string(field.column) +
                         ": unterminated quoted field (fields cannot span lines)");
      while (i < line.size() && is_space(line[i]) && line[i] != delimiter) ++i;
      if (i < line.size() && line[i] != delimiter)
        throw InputError(path + ": line " + std::to_string(line_number) + ", column " + std::to_string(i + 1) +
                         ": expected '" + std::string(1, delimiter) + "' or end of line after a quoted field");
    } else {
      i = start;
      size_t end = line.find(delimiter, i);
      if (end == std::string_view::npos) end = line.size();
      field.text = std::string(trim(line.substr(i, end - i)));
      i = end;
    }
    fields.push_back(std::move(field));
    if (i >= line.size()) break;
    ++i;  // the delimiter
  }
  return fields;
}


// A carriage return not followed by a line feed: CR-only line endings (classic Mac OS) would make
// the whole file one line, and a stray CR would end up inside a field.
void check_line_endings(std::string_view text, const std::string& path) {
  size_t at = 0;
  while ((at = text.find('\r', at)) != std::string_view::npos && at + 1 < text.size() && text[at + 1] == '\n') at += 2;
  if (at == std::string_view::npos || at + 1 >= text.size()) return;  // none, or a final CR
  const int64_t line = 1 + int64_t(std::count(text.begin(), text.begin() + std::ptrdiff_t(at), '\n'));
  const size_t line_start = text.rfind('\n', at) == std::string_view::npos ? 0 : text.rfind('\n', at) + 1;
  if (text.find('\n') == std::string_view::npos)
    throw InputError(path + ": line endings are CR only (classic Mac OS; first CR at byte " + std::to_string(at) +
                     "); expected LF or CRLF: convert with: tr '\\r' '\\n' < " + path + " > converted.csv");
  throw InputError(path + ": line " + std::to_string(line) + ", column " + std::to_string(at - line_start + 1) +
                   ": a carriage return (CR) not followed by a line feed; expected LF or CRLF line endings "
                   "(a file with mixed endings can be converted with: tr '\\r' '\\n')");
}

// header = "detect": among the columns where most of the next rows (up to kHeaderSample of them)
// hold numbers, the first row is a header when most are text in it. A data row with one corrupted
// field is then read as data, and its bad field reported at line 1; a column that is text all the
// way down (a label column of names) says nothing either way.
constexpr size_t kHeaderSample = 8;

bool looks_like_header(const std::vector<Row>& rows) {
  const Row& first = rows[0];
  int64_t considered = 0, evidence = 0;
  for (int64_t k = 0; k < int64_t(first.fields.size()); ++k) {
    double value;
    int64_t below = 0, numbers_below = 0;  // a stray value below (its own error later) does not hide a header
    for (size_t r = 1; r < rows.size() && r <= kHeaderSample; ++r)
      if (int64_t(rows[r].fields.size()) > k) {
        ++below;
        numbers_below += parse_number(rows[r].fields[size_t(k)].text, value);
      }
    if (below > 0 && 2 * numbers_below <= below) continue;  // a text column
    ++considered;
    evidence += !parse_number(first.fields[size_t(k)].text, value);
  }
  return 2 * evidence > considered;
}

// The non-blank rows after options.skip_lines, without comment lines, each split into fields.
std::vector<Row> read_rows(std::string_view text, const std::string& path, const CsvOptions& options) {
  check_line_endings(text, path);
  std::vector<Row> rows;
  int64_t line_number = 0;
  size_t position = 0;
  while (position < text.size()) {
    size_t end = text.find('\n', position);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(position, end - position);
    position = end + 1;
    ++line_number;
    if (line_number <= options.skip_lines) continue;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) continue;
    if (!options.comment.empty() && trim(line).substr(0, options.comment.size()) == options.comment) continue;
    rows.push_back({line_number, split_fields(line, options.delimiter, path, line_number)});
  }
  return rows;
}

// The CSV content of `file` (loaded from `path`, which names it in messages).
CsvTable csv_from(const FileBytes& file, const std::string& path, const CsvOptions& options) {
  check_gzip_complete(file, path);
  std::string_view text(reinterpret_cast<const char*>(file.bytes.data()), file.bytes.size());
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 BOM

  std::vector<Row> rows = read_rows(text, path, options);
  if (rows.empty())
    throw InputError(path + ": empty" + (options.skip_lines > 0 ? " after skip_lines = " + std::to_string(options.skip_lines) : "") +
                     ": expected a header or data rows");

  const int64_t columns = int64_t(rows[0].fields.size());
  if (columns < 2)
    throw InputError(path + ": line " + std::to_string(rows[0].line) + ": found 1 column; expected at least one feature "
                     "column and a label column separated by '" + std::string(1, options.delimiter) +
                     "' (if the file starts with a count or a title, set [data] skip_lines)");
  auto where = [&](const Row& row, int64_t field) {
    return path + ": line " + std::to_string(row.line) + ", column " +
           std::to_string(row.fields[size_t(field)].column);
  };

  // Header and label column.
  bool header = options.header == CsvOptions::Header::yes;
  if (!options.label_column.empty()) {
    if (options.header == CsvOptions::Header::no)
      throw InputError(path + ": label_column '" + echo_text(options.label_column) + "' needs a header row, but header = no");
    header = true;
  }
  int64_t label = -1;
  if (!options.label_column.empty()) {
    std::string names;
    for (int64_t k = 0; k < columns; ++k) {
      if (rows[0].fields[size_t(k)].text == options.label_column && label < 0) label = k;
      names += (k ? ", " : "") + rows[0].fields[size_t(k)].text;
    }
    if (label < 0)
      throw InputError(path + ": line " + std::to_string(rows[0].line) + ": no column named '" +
                       echo_text(options.label_column) + "' in the header (columns: " + echo_text(names) + ")");
  } else {
    label = options.label_index < 0 ? columns - 1 : options.label_index;
    if (label >= columns)
      throw InputError(path + ": label_index " + std::to_string(options.label_index) + " is out of range: line " +
                       std::to_string(rows[0].line) + " has " + std::to_string(columns) + " columns");
  }
  if (options.header == CsvOptions::Header::detect && !header) header = looks_like_header(rows);
  CsvTable table;
  for (int64_t k = 0; k < columns; ++k)
    if (k != label)
      table.feature_names.push_back(header ? rows[0].fields[size_t(k)].text : "column_" + std::to_string(k));
  const size_t first = header ? 1 : 0;
  const int64_t n = int64_t(rows.size() - first), features = columns - 1;
  if (n == 0) throw InputError(path + ": has a header (line " + std::to_string(rows[0].line) + ") but no data rows");

  // A first row read as data under header = "detect" may have been meant as a header.
  const std::string header_hint =
      options.header == CsvOptions::Header::detect ? " (if this line is a header, set [data] header = \"yes\")" : "";
  table.features = Tensor::empty({n, features}, DType::f32);  // (N, F)
  float* out = table.features.data<float>();
  std::vector<const Field*> label_fields;
  label_fields.reserve(size_t(n));
  for (size_t r = first; r < rows.size(); ++r) {
    const Row& row = rows[r];
    if (int64_t(row.fields.size()) != columns)
      throw InputError(path + ": line " + std::to_string(row.line) + ": found " + std::to_string(row.fields.size()) +
                       " fields; expected " + std::to_string(columns) + " (as on line " + std::to_string(rows[0].line) +
                       ")");
    for (int64_t k = 0; k < columns; ++k) {
      if (k == label) continue;
      double value;
      const std::string field = "field " + std::to_string(k + 1) + ", '" +
                                echo_text(table.feature_names[size_t(k < label ? k : k - 1)], 40) + "'";
      if (!parse_number(row.fields[size_t(k)].text, value))
        throw InputError(where(row, k) + " (" + field + "): expected a finite number, found '" +
                         echo_text(row.fields[size_t(k)].text) + "'" + (r == 0 ? header_hint : ""));
      if (!std::isfinite(float(value)))
        throw InputError(where(row, k) + " (" + field + "): '" + echo_text(row.fields[size_t(k)].text) +
                         "' overflows f32 (largest finite 3.4e38); expected a finite number");
      *out++ = float(value);
    }
    label_fields.push_back(&row.fields[size_t(label)]);
  }

  // Labels: class indices (integers >= 0) or, when asked, class names numbered in sorted order.
  table.labels = Tensor::empty({n}, DType::i64);  // (N)
  int64_t* labels = table.labels.data<int64_t>();
  for (size_t r = first; r < rows.size(); ++r) table.lines.push_back(rows[r].line);
  if (!options.label_names) {
    for (int64_t i = 0; i < n; ++i) {
      const std::string& text = label_fields[size_t(i)]->text;
      double value;
      if (!parse_number(text, value) || value < 0 || value != std::floor(value) || value >= 9.0e15)
        throw InputError(where(rows[first + size_t(i)], label) + ": label '" + echo_text(text) +
                         "' is not a class index (an integer 0, 1, 2, ...); for class names set [data] labels = "
                         "\"names\"" + (first + size_t(i) == 0 ? header_hint : ""));
      labels[i] = int64_t(value);
    }
    return table;
  }
  std::map<std::string, int64_t> classes;  // sorted, so the numbering does not depend on row order
  for (int64_t i = 0; i < n; ++i) {
    const std::string& name = label_fields[size_t(i)]->text;
    if (name.empty())
      throw InputError(where(rows[first + size_t(i)], label) + ": empty label; expected a class name");
    classes.emplace(name, 0);
  }
  for (auto& [name, index] : classes) {
    index = int64_t(table.label_names.size());
    table.label_names.push_back(name);
  }
  for (int64_t i = 0; i < n; ++i) labels[i] = classes.at(label_fields[size_t(i)]->text);
  return table;
}

}  // namespace

CsvTable read_csv(const std::string& path, const CsvOptions& options) { return csv_from(load_file(path), path, options); }

CsvTable parse_csv(std::string_view bytes, const std::string& name, const CsvOptions& options) {
  return csv_from(decode_bytes(std::vector<uint8_t>(bytes.begin(), bytes.end())), name, options);
}

}  // namespace frugal::data
