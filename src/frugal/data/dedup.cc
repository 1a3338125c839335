// Text deduplication (see dedup.h): exact by a 64-bit hash confirmed by comparison; near by MinHash
// signatures over hashed character shingles, LSH bands bucketing candidate pairs, and the exact
// Jaccard similarity deciding. Hashes are FNV-1a and a fixed mixing function: same text, same result.
#include "frugal/data/dedup.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <set>
#include <unordered_map>
#include <vector>

namespace frugal::data {

namespace {

uint64_t fnv1a(const char* data, size_t size) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < size; ++i) h = (h ^ uint8_t(data[i])) * 1099511628211ull;
  return h;
}

uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::vector<uint64_t> shingle_hashes(const std::string& s, int64_t shingle) {
  std::vector<uint64_t> out;
  if (int64_t(s.size()) <= shingle) {
    out.push_back(fnv1a(s.data(), s.size()));
  } else {
    for (size_t i = 0; i + size_t(shingle) <= s.size(); ++i) out.push_back(fnv1a(s.data() + i, size_t(shingle)));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

double jaccard_sorted(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  size_t i = 0, j = 0, common = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] == b[j]) ++common, ++i, ++j;
    else if (a[i] < b[j]) ++i;
    else ++j;
  }
  const size_t all = a.size() + b.size() - common;
  return all ? double(common) / double(all) : 1.0;
}

// Units as [begin, end) of the content and the end of the separator that follows it.
struct Unit {
  size_t begin, end, next;
};

std::vector<Unit> split_units(const std::string& text, bool paragraphs) {
  std::vector<Unit> units;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = pos, next = pos;
    if (!paragraphs) {
      end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      next = std::min(text.size(), end + 1);
    } else {
      end = text.find("\n\n", pos);
      if (end == std::string::npos) end = text.size();
      next = end;
      while (next < text.size() && text[next] == '\n') ++next;
    }
    units.push_back({pos, end, next});
    pos = next;
  }
  return units;
}

bool blank(const std::string& text, const Unit& u) {
  for (size_t i = u.begin; i < u.end; ++i)
    if (!std::isspace(static_cast<unsigned char>(text[i]))) return false;
  return true;
}

}  // namespace

std::pair<int64_t, int64_t> lsh_layout(double threshold, int64_t permutations) {
  std::pair<int64_t, int64_t> best{permutations, 1};
  double best_gap = std::numeric_limits<double>::infinity();
  for (int64_t bands = 1; bands <= permutations; ++bands) {
    if (permutations % bands) continue;
    const int64_t rows = permutations / bands;
    const double gap = std::abs(std::pow(1.0 / double(bands), 1.0 / double(rows)) - threshold);
    if (gap < best_gap) best_gap = gap, best = {bands, rows};
  }
  return best;
}

double shingle_jaccard(const std::string& a, const std::string& b, int64_t shingle) {
  return jaccard_sorted(shingle_hashes(a, shingle), shingle_hashes(b, shingle));
}

std::string deduplicate_text(const std::string& text, const DedupOptions& options, DedupReport& report) {
  report = {};
  report.mode = options.near ? "near" : "exact";
  report.unit = options.paragraphs ? "paragraph" : "line";
  report.bytes = int64_t(text.size());
  report.threshold = options.near ? options.threshold : 1.0;
  const std::vector<Unit> units = split_units(text, options.paragraphs);
  report.units = int64_t(units.size());
  std::vector<bool> removed(units.size(), false);
  auto content = [&](size_t i) { return text.substr(units[i].begin, units[i].end - units[i].begin); };

  // Exact copies first (both modes): a hash bucket, confirmed by comparing the bytes.
  std::unordered_map<uint64_t, std::vector<size_t>> seen;
  for (size_t i = 0; i < units.size(); ++i) {
    if (blank(text, units[i])) continue;
    const std::string c = content(i);
    std::vector<size_t>& bucket = seen[fnv1a(c.data(), c.size())];
    for (size_t j : bucket)
      if (content(j) == c) { removed[i] = true; break; }
    if (!removed[i]) bucket.push_back(i);
  }
  if (options.near) {
    const auto [bands, rows] = lsh_layout(options.threshold, options.permutations);
    report.bands = bands, report.rows = rows;
    std::vector<std::vector<uint64_t>> shingles(units.size());
    std::vector<std::unordered_map<uint64_t, std::vector<size_t>>> buckets(static_cast<size_t>(bands));
    for (size_t i = 0; i < units.size(); ++i) {
      if (removed[i] || blank(text, units[i])) continue;
      shingles[i] = shingle_hashes(content(i), options.shingle);
      std::vector<uint64_t> signature(size_t(bands * rows), std::numeric_limits<uint64_t>::max());
      for (uint64_t h : shingles[i])
        for (size_t p = 0; p < signature.size(); ++p) signature[p] = std::min(signature[p], mix(h ^ mix(p + 1)));
      std::set<size_t> candidates;
      std::vector<uint64_t> keys(static_cast<size_t>(bands));
      for (int64_t b = 0; b < bands; ++b) {
        uint64_t key = mix(uint64_t(b));
        for (int64_t r = 0; r < rows; ++r) key = mix(key ^ signature[size_t(b * rows + r)]);
        keys[size_t(b)] = key;
        auto it = buckets[size_t(b)].find(key);
        if (it != buckets[size_t(b)].end()) candidates.insert(it->second.begin(), it->second.end());
      }
      for (size_t j : candidates)
        if (jaccard_sorted(shingles[i], shingles[j]) >= options.threshold) { removed[i] = true; break; }
      if (removed[i]) { shingles[i].clear(); continue; }
      for (int64_t b = 0; b < bands; ++b) buckets[size_t(b)][keys[size_t(b)]].push_back(i);
    }
  }
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < units.size(); ++i) {
    if (removed[i]) {
      ++report.removed;
      report.bytes_removed += int64_t(units[i].next - units[i].begin);
    } else {
      out.append(text, units[i].begin, units[i].next - units[i].begin);
    }
  }
  return out;
}

}  // namespace frugal::data
