// Fuzz target: the CSV layouts of edan-index. The input is read as a CSV
// file; its first record is the header, every later record is parsed as a
// FER2013 row and as an AffectNet row (each may throw RecordError or, for a
// header without the required columns, FatalError; nothing else).
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "edan/dataset.hpp"
#include "edan/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  constexpr std::size_t kMax = 16384;  // room for one FER2013 row
  edan::CsvReader reader(in, kMax);
  std::string text;
  std::optional<edan::CsvColumns> cols;
  while (reader.next(text)) {
    if (text.size() > 2 * kMax + 2) std::abort();  // bounded (CsvReader::next)
    if (reader.too_long() && !text.empty()) std::abort();
    std::vector<std::string> fields;
    try {
      fields = edan::parse_csv_record(text);
    } catch (const edan::RecordError&) {
      continue;
    }
    if (!cols) {
      cols.emplace(fields);
      continue;
    }
    try {
      auto row = edan::parse_fer2013_row(fields, *cols);
      if (row.pixels.size() != 48 * 48) std::abort();
    } catch (const edan::RecordError&) {
    } catch (const edan::FatalError&) {
    }
    try {
      auto row = edan::parse_affectnet_row(fields, *cols);
      if (row.landmarks && row.landmarks->size() != 68) std::abort();
      edan::affectnet_label(row.expression);
    } catch (const edan::RecordError&) {
    } catch (const edan::FatalError&) {
    }
  }
  return 0;
}
