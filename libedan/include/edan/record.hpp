#pragma once
// JSON Lines records: one JSON object per line, one face per record.
// Programs add their own keys and pass every other key through unchanged and
// in order (Boost.JSON objects keep insertion order).
#include <boost/json.hpp>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edan/shape.hpp"

namespace edan {

using Record = boost::json::object;

// Parses one input line (without its newline) into a record. Never throws:
//  - a JSON object becomes that record;
//  - a line that does not start with '{' is taken as a bare image path:
//    {"image": line} (so `ls *.jpg | edan-predict` works);
//  - anything else (malformed JSON, a JSON value that is not an object)
//    becomes {"error": "<source>:<line_no>: ...", "line": line_no};
//  - an object that holds NaN, Infinity or -Infinity (as Python's
//    json.dumps writes them) keeps its fields, those null, and gains an
//    "error" naming them.
// Strings may hold invalid UTF-8 (file names are bytes): it is kept as is,
// and to_line writes it back unchanged.
Record parse_line(std::string_view line, std::size_t line_no, std::string_view source = "-");

// Serialises a record compactly, without a trailing newline.
std::string to_line(const Record& r);
// One JSON value as to_line writes it (numbers short: 0.053747, not 5.3747E-2).
std::string to_text(const boost::json::value& v);

// The one writer of measured numbers into records: v rounded to `step` (a
// power of ten: 0.01 for pixels, 1e-4 for scores, 1e-6 for probabilities),
// as the double nearest that decimal, so that it prints short (0.135531,
// not 0.13553099999999998), and as an integer when it is one (32, not 32.0).
boost::json::value json_number(double v, double step);
// The one writer of numbers into text reports (markdown, TSV, progress
// lines): v with exactly `digits` decimals ("0.830").
std::string fixed_decimals(double v, int digits);

// Reads records line by line from a FILE*, with bounded memory: a line longer
// than max_line_bytes is discarded (up to its newline) and yields an error
// record naming its line number; reading goes on with the next line. The
// line buffer never exceeds max_line_bytes (2x while it grows). Blank lines
// are skipped.
class RecordReader {
 public:
  static constexpr std::size_t kDefaultMaxLine = std::size_t{64} << 20;  // 64 MiB
  RecordReader(std::FILE* in, std::string source, std::size_t max_line_bytes = kDefaultMaxLine);
  // Returns false at end of input. Throws FatalError on a read error.
  bool next(Record& out);
  std::size_t line_no() const { return line_no_; }
  const std::string& source() const { return source_; }

 private:
  std::FILE* in_;
  std::string source_;
  std::size_t max_line_;
  std::size_t line_no_ = 0;
  std::string buf_;
};

// Writes records, one per line. Throws BrokenPipe when the reader went away
// (EPIPE) and FatalError on other write errors (e.g. a full disk).
struct BrokenPipe : std::exception {
  const char* what() const noexcept override { return "broken pipe"; }
};
// Writes text to out, checked: throws BrokenPipe on EPIPE and FatalError on
// other write errors (e.g. a full disk). Flushes when flush is true.
// `name`, when given, prefixes the message of a write error.
void write_text(std::FILE* out, std::string_view text, bool flush = false,
                std::string_view name = {});

// `name` (e.g. the output file) prefixes the message of a write error.
class RecordWriter {
 public:
  explicit RecordWriter(std::FILE* out, std::string name = {})
      : out_(out), name_(std::move(name)) {}
  void write(const Record& r);
  void flush();

 private:
  std::FILE* out_;
  std::string name_;
};

// --- field access ----------------------------------------------------------
bool has_error(const Record& r);
// Sets "error" (replacing an earlier one).
void set_error(Record& r, std::string_view message);
// The one rule for a failure inside per-record work, used by every record
// loop: runs step; FatalError and BrokenPipe are rethrown (they end the
// run); any other exception becomes the "error" of each record of
// `records`, with its message (never empty), and false is returned. True when step
// returned normally.
bool guard_records(const std::vector<Record*>& records, const std::function<void()>& step);

// A string field, or nullopt when absent. Throws RecordError when present but
// not a string.
std::optional<std::string> get_string(const Record& r, std::string_view key);
// A number field (int or double), or nullopt when absent. Throws RecordError
// when present but not a number.
std::optional<double> get_number(const Record& r, std::string_view key);
// 68 [x, y] pairs, or nullopt when absent. Throws RecordError naming the key
// when present but malformed: not an array of 68 numeric pairs, NaN or inf.
std::optional<Shape> get_shape(const Record& r, std::string_view key);
boost::json::array shape_to_json(const Shape& s);
// "box" as [x, y, w, h], or nullopt when absent. Throws RecordError naming
// the key when present but anything else (null included): not 4 finite
// numbers, or a width or height that is not positive.
std::optional<FaceBox> get_box(const Record& r, std::string_view key = "box");

// crop_transform / crop_size of a record, if both are present. Throws
// RecordError when present but malformed.
std::optional<CropGeometry> get_crop_geometry(const Record& r);
// Writes "crop_transform": [a, b, tx, ty] and "crop_size": S.
void set_crop_geometry(Record& r, const CropGeometry& g);

}  // namespace edan
