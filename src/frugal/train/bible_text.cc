// Bible texts for the character models: run the Debian tool once, clean its output to plain verses,
// cache the result. diatheke prints each verse's OSIS markup, cleaned here by a small scanner (no XML
// library: the markup is one verse per line, with milestone tags rather than nested elements).
#include "frugal/train/bible_text.h"

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "frugal/base/error.h"

namespace frugal::train {

namespace fs = std::filesystem;

namespace {

struct BibleSource {
  const char* source;   // the job's [data] source
  const char* file;     // under the cache directory
  const char* command;  // prints the whole text
  const char* program;  // and the Debian packages that provide them
  const char* program_package;
  const char* module;  // SWORD module (diatheke only)
  const char* module_package;
};

// The WEB module (NRSVA versification) holds the deuterocanon between Malachi and Matthew: the two
// ranges keep the books the KJV and the Reina-Valera have.
const BibleSource kSources[] = {
    {"bible-kjv", "kjv.txt", "bible -f Gen1:1-Rev22:21", "bible", "bible-kjv", nullptr, nullptr},
    {"bible-web", "web.txt", "diatheke -b engWEB2015eb -k 'Gen1:1-Mal4:6;Mat1:1-Rev22:21'", "diatheke", "diatheke",
     "engWEB2015eb", "sword-text-web"},
    {"bible-rv1909", "rv1909.txt", "diatheke -b spaRV1909eb -k 'Gen1:1-Mal4:6;Mat1:1-Rev22:21'", "diatheke",
     "diatheke", "spaRV1909eb", "sword-text-sparv"},
};

// What a command printed on stdout, and its exit status (127: the shell did not find the program).
std::pair<std::string, int> run_command(const std::string& command) {
  FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r");
  if (!pipe) return {"", 127};
  std::string printed;
  char buffer[1 << 16];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) printed.append(buffer, n);
  int status = pclose(pipe);
  return {printed, WIFEXITED(status) ? WEXITSTATUS(status) : 128};
}

// `bible` prints "Ge1:1 In the beginning ..."; drop the reference, keep the verse.
std::string kjv_plain_verses(const std::string& printed) {
  std::string text, line;
  std::istringstream lines(printed);
  while (std::getline(lines, line)) {
    size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    text.append(line, space + 1, std::string::npos);
    text += '\n';
  }
  return text;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// The offset just past the reference "Book C:V: " of a diatheke line, or npos when it has none. The
// book is the text since the previous tag: letters (any UTF-8 ones too), digits, spaces, parentheses
// ("Esther (Greek)", "Revelation of John"); what precedes it is a repeated heading.
size_t reference_end(std::string_view line) {
  for (size_t colon = line.find(':'); colon != std::string_view::npos; colon = line.find(':', colon + 1)) {
    size_t chapter = colon;
    while (chapter > 0 && is_digit(line[chapter - 1])) --chapter;
    if (chapter == colon || chapter < 2 || line[chapter - 1] != ' ') continue;
    size_t verse_end = colon + 1;
    while (verse_end < line.size() && is_digit(line[verse_end])) ++verse_end;
    if (verse_end == colon + 1 || verse_end >= line.size() || line[verse_end] != ':') continue;
    size_t tag_end = line.rfind('>', chapter);
    size_t book_start = tag_end == std::string_view::npos ? 0 : tag_end + 1;
    std::string_view book = trim(line.substr(book_start, chapter - 1 - book_start));
    bool plausible = !book.empty();
    for (char c : book)
      plausible = plausible && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == ' ' ||
                                c == '(' || c == ')' || uint8_t(c) >= 0x80);
    if (!plausible) continue;
    size_t end = verse_end + 1;
    if (end < line.size() && line[end] == ' ') ++end;
    return end;
  }
  return std::string_view::npos;
}

void append_utf8(std::string& out, uint32_t code) {
  if (code < 0x80) {
    out += char(code);
  } else if (code < 0x800) {
    out += char(0xC0 | (code >> 6));
    out += char(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += char(0xE0 | (code >> 12));
    out += char(0x80 | ((code >> 6) & 0x3F));
    out += char(0x80 | (code & 0x3F));
  } else {
    out += char(0xF0 | (code >> 18));
    out += char(0x80 | ((code >> 12) & 0x3F));
    out += char(0x80 | ((code >> 6) & 0x3F));
    out += char(0x80 | (code & 0x3F));
  }
}

// Text between tags with its entities decoded (&amp; &lt; &gt; &quot; &apos; &#N; &#xH;); an
// unknown entity stays as written.
void append_text(std::string_view text, std::string& out) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out += text[i];
      continue;
    }
    size_t semicolon = text.find(';', i);
    std::string_view entity = semicolon == std::string_view::npos ? "" : text.substr(i + 1, semicolon - i - 1);
    static const std::pair<const char*, char> named[] = {
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    bool decoded = false;
    for (const auto& [name, c] : named)
      if (entity == name) {
        out += c;
        decoded = true;
      }
    if (!decoded && entity.size() >= 2 && entity[0] == '#') {
      bool hex = entity[1] == 'x' || entity[1] == 'X';
      std::string digits(entity.substr(hex ? 2 : 1));
      char* end = nullptr;
      unsigned long code = digits.empty() ? 0 : std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
      if (!digits.empty() && end && *end == '\0' && code > 0 && code <= 0x10FFFF) {
        append_utf8(out, uint32_t(code));
        decoded = true;
      }
    }
    if (decoded) i = semicolon;
    else out += '&';
  }
}

bool has_attribute(std::string_view tag, std::string_view attribute) {
  for (size_t at = tag.find(attribute); at != std::string_view::npos; at = tag.find(attribute, at + 1))
    if (at > 0 && is_space(tag[at - 1]) && at + attribute.size() < tag.size() && tag[at + attribute.size()] == '=')
      return true;
  return false;
}

// The verse text of one verse's markup (see diatheke_plain_verses), whitespace not yet collapsed.
std::string verse_text(std::string_view markup) {
  std::string out;
  std::string skipping;  // the element whose content is dropped (note, title), "" when none
  int depth = 0;
  bool after_word = false;  // since the last </w>: no other tag, only punctuation
  size_t at = 0;
  while (at < markup.size()) {
    size_t open = markup.find('<', at);
    size_t close = open == std::string_view::npos ? open : markup.find('>', open);
    if (close == std::string_view::npos) open = close = markup.size();
    std::string_view text = markup.substr(at, open - at);
    if (skipping.empty()) {
      append_text(text, out);
      for (char c : text)
        if (!(c == ',' || c == '.' || c == ';' || c == ':' || c == '!' || c == '?')) after_word = false;
    }
    if (open >= markup.size()) break;
    std::string_view tag = markup.substr(open + 1, close - open - 1);  // without < and >
    at = close + 1;
    const bool closing = !tag.empty() && tag.front() == '/';
    const bool empty_element = !tag.empty() && tag.back() == '/';
    size_t name_start = closing ? 1 : 0, name_end = name_start;
    while (name_end < tag.size() && !is_space(tag[name_end]) && tag[name_end] != '/') ++name_end;
    const std::string_view name = tag.substr(name_start, name_end - name_start);
    if (!skipping.empty()) {
      if (name == skipping && !empty_element) depth += closing ? -1 : 1;
      if (depth == 0) skipping.clear();
      continue;
    }
    if ((name == "note" || name == "title") && !closing && !empty_element) {
      skipping = std::string(name);
      depth = 1;
      continue;
    }
    // The end of a chapter or book ends the verse: text after it (introductions, the glossary) is
    // attached to the verse entry but belongs to no verse.
    if (has_attribute(tag, "eID") && (name == "chapter" || (name == "div" && tag.find("type=\"book\"") != std::string_view::npos)))
      break;
    if (name == "w" && !closing && after_word && !out.empty() && !is_space(out.back())) out += ' ';
    after_word = name == "w" && closing;
    // Line, line group, paragraph and division tags separate words; w, q, transChange, ... do not.
    if (name == "l" || name == "lg" || name == "lb" || name == "p" || name == "div" || name == "chapter" ||
        name == "item" || name == "list" || name == "milestone" || name == "br")
      out += ' ';
  }
  return out;
}

// Runs of whitespace to one space, none at the ends.
std::string collapse_spaces(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : trim(text)) {
    if (is_space(c)) {
      if (out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

bool is_module_trailer(std::string_view line) {
  line = trim(line);
  if (line.size() < 3 || line.front() != '(' || line.back() != ')') return false;
  for (char c : line.substr(1, line.size() - 2))
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_')) return false;
  return true;
}

void write_cache(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(text.data(), std::streamsize(text.size()));
    if (!out) throw InputError(tmp.string() + ": cannot write the text cache");
  }
  fs::rename(tmp, path);
}

}  // namespace

std::string diatheke_plain_verses(std::string_view printed) {
  std::vector<std::string> verses;  // markup of each verse, continuation lines joined
  size_t start = 0;
  while (start < printed.size()) {
    size_t newline = printed.find('\n', start);
    if (newline == std::string_view::npos) newline = printed.size();
    std::string_view line = printed.substr(start, newline - start);
    start = newline + 1;
    if (size_t end = reference_end(line); end != std::string_view::npos) {
      verses.emplace_back(line.substr(end));
    } else if (!is_module_trailer(line) && !verses.empty()) {
      verses.back() += '\n';
      verses.back() += line;
    }
  }
  std::string text;
  for (const std::string& markup : verses) {
    std::string verse = collapse_spaces(verse_text(markup));
    if (verse.empty()) continue;  // a verse this translation merges into its neighbour
    text += verse;
    text += '\n';
  }
  return text;
}

std::string bible_text_path(const std::string& source_name, const std::string& cache_dir) {
  const BibleSource* source = nullptr;
  for (const BibleSource& s : kSources)
    if (source_name == s.source) source = &s;
  if (!source) throw InputError("[data] source = \"" + source_name + "\": not a Bible text (bible-kjv, bible-web, bible-rv1909)");
  fs::path path = fs::path(cache_dir) / source->file;
  if (fs::exists(path) && fs::file_size(path) > 0) return path.string();
  fs::create_directories(cache_dir);
  const std::string what = "[data] source = \"" + source_name + "\": ";
  auto [printed, status] = run_command(source->command);
  if (status == 127)
    throw InputError(what + "cannot run `" + source->program + "`; install Debian's " + source->program_package +
                     (source->module ? std::string(" and ") + source->module_package : std::string()));
  if (source->module && printed.empty())
    throw InputError(what + "diatheke printed no text for the SWORD module " + source->module + "; install Debian's " +
                     source->module_package + " (`diatheke -b system -k modulelist` lists the installed modules)");
  if (status != 0 || printed.size() < 1000000)
    throw InputError(what + "`" + source->command + "` failed (exit status " + std::to_string(status) + ", " +
                     std::to_string(printed.size()) + " bytes printed); install Debian's " + source->program_package +
                     (source->module ? std::string(" and ") + source->module_package : std::string()));
  write_cache(path, source->module ? diatheke_plain_verses(printed) : kjv_plain_verses(printed));
  return path.string();
}

std::string kjv_text_path(const std::string& cache_dir) { return bible_text_path("bible-kjv", cache_dir); }

}  // namespace frugal::train
