#pragma once
// Records as a spreadsheet: one row per record (one face), as CSV (RFC 4180)
// or TSV, for edan-table.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "edan/record.hpp"

namespace edan {

struct TableOptions {
  char separator = ',';             // ',' CSV (RFC 4180 quoting) or '\t' TSV (\t \n \\ escaped)
  bool header = true;               // first row: the column names
  bool landmarks = false;           // 136 columns x0,y0 ... x67,y67 of the predicted landmarks
  std::vector<std::string> fields;  // extra top-level fields, as columns (e.g. dataset)
};

// Parses "csv" or "tsv" into a separator. Throws UsageError otherwise.
char parse_table_format(std::string_view name);

// Columns, in order: image, face, box_x, box_y, box_w, box_h, score, label
// (the truth, when the record has one), pred (the predicted label), one
// p_<class> per class of the predictions, then the extra fields, the
// landmarks (pred.landmarks, else landmarks) with TableOptions::landmarks,
// and error. A missing value is an empty cell.
//
// The class columns are those of the first record with pred.probs, in its
// order (a model's classes); rows before it are held back until it is known
// (or the input ends). A later record with a class outside them gets an
// error cell that names it, so that no probability is dropped silently.
class TableWriter {
 public:
  TableWriter(std::FILE* out, TableOptions options);
  void add(const Record& r);
  // Writes what is held back. Call once at the end.
  void finish();
  // Rows written with a non-empty error cell.
  std::size_t errors() const { return errors_; }

  // One cell, quoted or escaped for the separator.
  static std::string cell(std::string_view text, char separator);

 private:
  void write_header();
  void write_row(const Record& r);
  void write_line(const std::vector<std::string>& cells);  // cells joined, escaped
  std::FILE* out_;
  TableOptions opt_;
  std::vector<std::string> classes_;
  bool classes_known_ = false, header_written_ = false;
  std::vector<Record> held_;
  std::size_t errors_ = 0;
};

}  // namespace edan
