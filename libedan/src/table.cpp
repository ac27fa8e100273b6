#include "edan/table.hpp"

#include <algorithm>

#include "edan/error.hpp"

namespace edan {
namespace {

namespace json = boost::json;

// A number as the records write it (short), or a string as it is.
std::string value_text(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_null()) return "";
  return to_text(v);
}

const json::object* object_at(const Record& r, std::string_view key) {
  auto it = r.find(key);
  return it != r.end() && it->value().is_object() ? &it->value().as_object() : nullptr;
}

std::string field_text(const Record& r, std::string_view key) {
  auto it = r.find(key);
  return it == r.end() ? "" : value_text(it->value());
}

}  // namespace

char parse_table_format(std::string_view name) {
  if (name == "csv") return ',';
  if (name == "tsv") return '\t';
  throw UsageError("--format must be csv or tsv, not '" + std::string(name) + "'");
}

std::string TableWriter::cell(std::string_view text, char separator) {
  if (separator == '\t') {
    std::string out;
    for (char c : text) {
      if (c == '\t')
        out += "\\t";
      else if (c == '\n')
        out += "\\n";
      else if (c == '\r')
        out += "\\r";
      else if (c == '\\')
        out += "\\\\";
      else
        out += c;
    }
    return out;
  }
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

TableWriter::TableWriter(std::FILE* out, TableOptions options)
    : out_(out), opt_(std::move(options)) {}

void TableWriter::add(const Record& r) {
  if (!classes_known_) {
    const json::object* pred = object_at(r, "pred");
    const json::object* probs = pred ? object_at(*pred, "probs") : nullptr;
    if (!probs) {
      held_.push_back(r);
      return;
    }
    for (const auto& kv : *probs) classes_.emplace_back(kv.key());
    classes_known_ = true;
    for (const auto& h : held_) write_row(h);
    held_.clear();
  }
  write_row(r);
}

void TableWriter::finish() {
  classes_known_ = true;
  for (const auto& h : held_) write_row(h);
  held_.clear();
  if (!header_written_) write_header();
  write_text(out_, "", /*flush=*/true);
}

void TableWriter::write_header() {
  header_written_ = true;
  if (!opt_.header) return;
  std::vector<std::string> names = {"image", "face",  "box_x", "box_y", "box_w",
                                    "box_h", "score", "label", "pred"};
  for (const auto& c : classes_) names.push_back("p_" + c);
  for (const auto& f : opt_.fields) names.push_back(f);
  if (opt_.landmarks)
    for (int i = 0; i < 68; ++i) {
      names.push_back("x" + std::to_string(i));
      names.push_back("y" + std::to_string(i));
    }
  names.push_back("error");
  write_line(names);
}

void TableWriter::write_line(const std::vector<std::string>& cells) {
  std::string line;
  for (std::size_t i = 0; i < cells.size(); ++i)
    line += (i ? std::string(1, opt_.separator) : "") + cell(cells[i], opt_.separator);
  write_text(out_, line + "\n");
}

void TableWriter::write_row(const Record& r) {
  if (!header_written_) write_header();
  std::vector<std::string> cells;
  cells.push_back(field_text(r, "image"));
  cells.push_back(field_text(r, "face"));
  const auto box = r.find("box");
  for (std::size_t i = 0; i < 4; ++i) {
    if (box != r.end() && box->value().is_array() && box->value().as_array().size() == 4)
      cells.push_back(value_text(box->value().as_array()[i]));
    else
      cells.emplace_back();
  }
  cells.push_back(field_text(r, "score"));
  cells.push_back(field_text(r, "label"));
  std::string error = field_text(r, "error");
  const json::object* pred = object_at(r, "pred");
  cells.push_back(pred ? field_text(*pred, "label") : "");
  const json::object* probs = pred ? object_at(*pred, "probs") : nullptr;
  for (const auto& c : classes_) cells.push_back(probs ? field_text(*probs, c) : "");
  if (probs)
    for (const auto& kv : *probs)
      if (std::find(classes_.begin(), classes_.end(), kv.key()) == classes_.end()) {
        error += std::string(error.empty() ? "" : "; ") + "class '" + std::string(kv.key()) +
                 "' is not a column (the first prediction's classes are)";
        break;
      }
  for (const auto& f : opt_.fields) cells.push_back(field_text(r, f));
  if (opt_.landmarks) {
    const json::value* lm = nullptr;
    if (pred) {
      auto it = pred->find("landmarks");
      if (it != pred->end()) lm = &it->value();
    }
    if (!lm) {
      auto it = r.find("landmarks");
      if (it != r.end()) lm = &it->value();
    }
    const json::array* points = lm && lm->is_array() ? &lm->as_array() : nullptr;
    for (std::size_t i = 0; i < 68; ++i)
      for (std::size_t k = 0; k < 2; ++k) {
        const json::array* p = points && i < points->size() && (*points)[i].is_array()
                                   ? &(*points)[i].as_array()
                                   : nullptr;
        cells.push_back(p && k < p->size() ? value_text((*p)[k]) : "");
      }
  }
  if (!error.empty()) ++errors_;
  cells.push_back(error);
  write_line(cells);
}

}  // namespace edan
