// Fuzz target: the record parser. Any bytes, split into lines by
// RecordReader (with a small line limit so the too-long path is reached),
// each line through parse_line. Every record must serialise to one line
// that reads back as a record serialising to the same line (non-finite
// numbers are written as null, so compare lines, not values); a good line
// never reads back as an error.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "edan/record.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;  // fmemopen refuses an empty buffer
  std::string bytes(reinterpret_cast<const char*>(data), size);
  std::FILE* in = fmemopen(bytes.data(), bytes.size(), "rb");
  if (!in) return 0;
  edan::RecordReader reader(in, "fuzz", /*max_line_bytes=*/512);
  edan::Record r;
  std::size_t records = 0;
  while (reader.next(r)) {
    ++records;
    std::string line = edan::to_line(r);
    // One record is one line: a newline inside would split it downstream.
    if (line.find('\n') != std::string::npos) std::abort();
    edan::Record back = edan::parse_line(line, 1, "again");
    if (edan::has_error(back) && !edan::has_error(r)) std::abort();
    if (edan::to_line(back) != line) std::abort();
  }
  std::fclose(in);
  if (records > reader.line_no()) std::abort();
  return 0;
}
