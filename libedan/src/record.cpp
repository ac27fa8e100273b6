#include "edan/record.hpp"

#include <algorithm>
#include <boost/json/basic_parser_impl.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "edan/error.hpp"

namespace edan {
namespace json = boost::json;

namespace {
// Boost.JSON 1.81's own parser reads some doubles 1 ULP off (e.g. the
// shortest form -9.223372073709551e+30 of a double comes back as another
// double), so a number could change each time a record passes through a
// program. This handler builds the same values as json::parser but reads
// every double from its text with std::from_chars (correctly rounded).
struct ExactHandler {
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();
  json::value_stack st;
  std::string number;  // the text of the number being read

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) { return true; }
  bool on_object_end(std::size_t n, json::error_code&) {
    st.push_object(n);
    return true;
  }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    st.push_array(n);
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    st.push_key(s);
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    st.push_string(s);
    return true;
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    number.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    number.clear();
    st.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    number.clear();
    st.push_uint64(u);
    return true;
  }
  bool on_double(double d, json::string_view s, json::error_code&) {
    number.append(s.data(), s.size());
    double exact;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), exact);
    // Out of range (e.g. 1e400): keep the parser's value.
    if (ec == std::errc() && end == number.data() + number.size()) d = exact;
    number.clear();
    st.push_double(d);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    st.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    st.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }
};

// json::parse with correctly rounded doubles (ExactHandler).
json::value parse_exact(std::string_view text, json::error_code& ec,
                        const json::parse_options& opts) {
  json::basic_parser<ExactHandler> p(opts);
  p.handler().st.reset();
  std::size_t n = p.write_some(false, text.data(), text.size(), ec);
  if (!ec && n < text.size()) ec = json::error::extra_data;
  if (ec) return nullptr;
  return p.handler().st.release();
}
}  // namespace

namespace {
// Python's json.dumps writes NaN, Infinity and -Infinity, which are not
// JSON. Each such token outside a string is replaced by a marker string, so
// that the rest of the record parses; nullopt when there is none.
// The marker, as decoded and as written in JSON.
const std::string_view kNonFinite =
    "\x01"
    "edan-non-finite\x01";
const std::string_view kNonFiniteJson = R"("\u0001edan-non-finite\u0001")";
std::optional<std::string> mark_non_finite(std::string_view text) {
  std::string out;
  bool in_string = false, found = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size())
        out += text[++i];
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    std::size_t n = 0;
    for (std::string_view token : {"NaN", "Infinity", "-Infinity"})
      if (text.substr(i, token.size()) == token) n = std::max(n, token.size());
    if (n > 0) {
      out += kNonFiniteJson;
      i += n - 1;
      found = true;
      continue;
    }
    out += c;
  }
  if (!found) return std::nullopt;
  return out;
}

// Replaces the markers by null; returns their fields' names (a.b[2]).
void null_non_finite(json::value& v, const std::string& at, std::vector<std::string>& names) {
  if (v.is_string() && v.get_string() == kNonFinite) {
    v = nullptr;
    names.push_back(at);
  } else if (v.is_object()) {
    for (auto& kv : v.get_object())
      null_non_finite(kv.value(),
                      at.empty() ? std::string(kv.key()) : at + "." + std::string(kv.key()), names);
  } else if (v.is_array()) {
    auto& a = v.get_array();
    for (std::size_t i = 0; i < a.size(); ++i)
      null_non_finite(a[i], at + "[" + std::to_string(i) + "]", names);
  }
}
}  // namespace

Record parse_line(std::string_view line, std::size_t line_no, std::string_view source) {
  std::size_t first = line.find_first_not_of(" \t\r");
  std::string_view body = first == std::string_view::npos ? std::string_view{} : line.substr(first);
  while (!body.empty() && (body.back() == '\r' || body.back() == ' ' || body.back() == '\t'))
    body.remove_suffix(1);

  Record r;
  auto fail = [&](const std::string& why) {
    r.clear();
    r["error"] = std::string(source) + ":" + std::to_string(line_no) + ": " + why;
    r["line"] = static_cast<std::int64_t>(line_no);
    return r;
  };
  if (body.empty() || (body.front() != '{' && body.front() != '[')) {
    // A bare path. Keep the line as it is (paths may end in spaces, rarely).
    std::string path(line);
    if (!path.empty() && path.back() == '\r') path.pop_back();
    r["image"] = path;
    return r;
  }
  json::error_code ec;
  // File names are bytes, not always UTF-8 (edan-index lists whatever is on
  // disk): invalid UTF-8 inside strings is kept byte for byte, as it is
  // written back, so that such a path survives a pipeline.
  json::parse_options opts;
  opts.allow_invalid_utf8 = true;
  json::value v = parse_exact(body, ec, opts);
  if (ec) {
    // NaN or Infinity, as Python writes them: the record keeps its other
    // fields (its image path among them), the bad ones are null and named.
    const auto marked = mark_non_finite(body);
    json::error_code ec2;
    json::value w = marked ? parse_exact(*marked, ec2, opts) : json::value();
    if (!marked || ec2 || !w.is_object()) return fail("invalid JSON: " + ec.message());
    std::vector<std::string> names;
    null_non_finite(w, "", names);
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "'" : ", '") + n + "'";
    r = std::move(w.as_object());
    r["error"] = std::string(source) + ":" + std::to_string(line_no) + ": " + list +
                 (names.size() == 1 ? " is" : " are") +
                 " NaN or Infinity, which JSON cannot hold (from Python, write "
                 "json.dumps(..., allow_nan=False) or None)";
    return r;
  }
  if (!v.is_object()) return fail("a record must be a JSON object");
  return std::move(v.as_object());
}

namespace {
// Boost.JSON writes doubles as e.g. 6.3E1; people read 63 or 31.25 more
// easily, so numbers are written in the shortest round-trip decimal form.
void write_value(std::string& out, const json::value& v);

void write_object(std::string& out, const json::object& o) {
  out += '{';
  bool first = true;
  for (const auto& kv : o) {
    if (!first) out += ',';
    first = false;
    out += json::serialize(json::string_view(kv.key()));
    out += ':';
    write_value(out, kv.value());
  }
  out += '}';
}

void write_value(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_: {
      double d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";
        return;
      }
      char buf[64];
      auto res = std::to_chars(buf, buf + sizeof buf, d);
      std::string_view text(buf, static_cast<std::size_t>(res.ptr - buf));
      out += text;
      // Keep it a JSON number that reads back as a double.
      if (text.find_first_of(".eEn") == std::string_view::npos) out += ".0";
      return;
    }
    case json::kind::object:
      write_object(out, v.get_object());
      return;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += ',';
        first = false;
        write_value(out, e);
      }
      out += ']';
      return;
    }
    default:
      out += json::serialize(v);
  }
}
}  // namespace

std::string to_text(const json::value& v) {
  std::string out;
  write_value(out, v);
  return out;
}

std::string to_line(const Record& r) {
  std::string out;
  out.reserve(256);
  write_object(out, r);
  return out;
}

RecordReader::RecordReader(std::FILE* in, std::string source, std::size_t max_line_bytes)
    : in_(in), source_(std::move(source)), max_line_(max_line_bytes) {}

bool RecordReader::next(Record& out) {
  for (;;) {
    buf_.clear();
    bool too_long = false, any = false;
    int c;
    // getc_unlocked: one reader per stream, and a 100 MB line is read in a
    // fraction of getc's time.
    while ((c = getc_unlocked(in_)) != EOF) {
      any = true;
      if (c == '\n') break;
      if (buf_.size() < max_line_) {
        // Grow by doubling but never past the limit, so that one line holds
        // at most max_line_ bytes (twice that while the buffer moves).
        if (buf_.size() == buf_.capacity())
          buf_.reserve(std::min(max_line_, std::max<std::size_t>(256, 2 * buf_.capacity())));
        buf_.push_back(static_cast<char>(c));
      } else {
        too_long = true;
      }
    }
    if (c == EOF && std::ferror(in_))
      throw FatalError(source_ + ": read error: " + std::strerror(errno));
    if (!any) return false;
    ++line_no_;
    if (too_long) {
      buf_.clear();
      buf_.shrink_to_fit();
      out = Record{};
      out["error"] = source_ + ":" + std::to_string(line_no_) + ": line longer than " +
                     std::to_string(max_line_) + " bytes";
      out["line"] = static_cast<std::int64_t>(line_no_);
      return true;
    }
    if (buf_.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank
    out = parse_line(buf_, line_no_, source_);
    if (buf_.capacity() > (std::size_t{1} << 20)) buf_.shrink_to_fit();
    return true;
  }
}

namespace {
[[noreturn]] void write_failed(std::string_view name) {
  if (errno == EPIPE) throw BrokenPipe{};
  std::string why = std::string("write error: ") + std::strerror(errno);
  throw FatalError(name.empty() ? why : std::string(name) + ": " + why);
}
}  // namespace

void write_text(std::FILE* out, std::string_view text, bool flush, std::string_view name) {
  errno = 0;
  if (std::fwrite(text.data(), 1, text.size(), out) != text.size()) write_failed(name);
  if (flush && std::fflush(out) != 0) write_failed(name);
}

void RecordWriter::write(const Record& r) {
  std::string s = to_line(r);
  s.push_back('\n');
  write_text(out_, s, false, name_);
}

void RecordWriter::flush() {
  errno = 0;
  if (std::fflush(out_) != 0) write_failed(name_);
}

bool has_error(const Record& r) { return r.contains("error"); }

void set_error(Record& r, std::string_view message) { r["error"] = message; }

bool guard_records(const std::vector<Record*>& records, const std::function<void()>& step) {
  try {
    step();
    return true;
  } catch (const FatalError&) {
    throw;
  } catch (const BrokenPipe&) {
    throw;
  } catch (const std::exception& e) {
    const char* message = *e.what() ? e.what() : "failed, and the error gave no message";
    for (auto* r : records) set_error(*r, message);
    return false;
  }
}

std::optional<std::string> get_string(const Record& r, std::string_view key) {
  auto it = r.find(key);
  if (it == r.end() || it->value().is_null()) return std::nullopt;
  if (!it->value().is_string())
    throw RecordError("field \"" + std::string(key) + "\" must be a string");
  return std::string(it->value().as_string());
}

namespace {
std::optional<double> number_of(const json::value& v) {
  if (v.is_double()) return v.as_double();
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  if (v.is_uint64()) return static_cast<double>(v.as_uint64());
  return std::nullopt;
}
}  // namespace

std::optional<double> get_number(const Record& r, std::string_view key) {
  auto it = r.find(key);
  if (it == r.end() || it->value().is_null()) return std::nullopt;
  auto d = number_of(it->value());
  if (!d) throw RecordError("field \"" + std::string(key) + "\" must be a number");
  return d;
}

std::optional<Shape> get_shape(const Record& r, std::string_view key) {
  auto it = r.find(key);
  if (it == r.end() || it->value().is_null()) return std::nullopt;
  const std::string name(key);
  auto bad = [&](const std::string& why) { return RecordError("field \"" + name + "\": " + why); };
  if (!it->value().is_array()) throw bad("must be an array of 68 [x, y] pairs");
  const auto& arr = it->value().as_array();
  if (arr.size() != kNumLandmarks)
    throw bad("has " + std::to_string(arr.size()) + " points, expected 68");
  Shape s;
  s.reserve(kNumLandmarks);
  for (std::size_t i = 0; i < arr.size(); ++i) {
    const auto& p = arr[i];
    if (!p.is_array() || p.as_array().size() != 2)
      throw bad("point " + std::to_string(i) + " is not an [x, y] pair");
    auto x = number_of(p.as_array()[0]);
    auto y = number_of(p.as_array()[1]);
    if (!x || !y) throw bad("point " + std::to_string(i) + " is not numeric");
    if (!std::isfinite(*x) || !std::isfinite(*y))
      throw bad("point " + std::to_string(i) + " is not finite");
    s.push_back({*x, *y});
  }
  return s;
}

json::value json_number(double v, double step) {
  // Dividing by the exact power of ten (rather than multiplying by the
  // step) gives the double nearest the decimal.
  const double inv = std::round(1.0 / step);
  const double r = std::round(v * inv) / inv;
  if (r == std::trunc(r) && std::fabs(r) < 1e15) return static_cast<std::int64_t>(r);
  return r;
}

std::string fixed_decimals(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::optional<FaceBox> get_box(const Record& r, std::string_view key) {
  auto it = r.find(key);
  if (it == r.end()) return std::nullopt;
  const std::string name(key);
  const json::array* a = it->value().if_array();
  if (!a || a->size() != 4) throw RecordError(name + ": expected [x, y, w, h]");
  double v[4];
  for (std::size_t i = 0; i < 4; ++i) {
    auto x = number_of((*a)[i]);
    if (!x) throw RecordError(name + ": expected 4 numbers");
    if (!std::isfinite(*x)) throw RecordError(name + ": not finite");
    v[i] = *x;
  }
  if (!(v[2] > 0 && v[3] > 0)) throw RecordError(name + ": width and height must be positive");
  return FaceBox{v[0], v[1], v[2], v[3]};
}

json::array shape_to_json(const Shape& s) {
  json::array a;
  a.reserve(s.size());
  for (const auto& p : s) {
    // Two decimals: sub-pixel precision without bloating the records.
    a.push_back(json::array{json_number(p.x, 0.01), json_number(p.y, 0.01)});
  }
  return a;
}

std::optional<CropGeometry> get_crop_geometry(const Record& r) {
  auto it = r.find("crop_transform");
  auto size = get_number(r, "crop_size");
  if (it == r.end() || !size) return std::nullopt;
  const json::array* a = it->value().if_array();
  if (!a || a->size() != 4) throw RecordError("crop_transform: expected [a, b, tx, ty]");
  double v[4];
  for (std::size_t i = 0; i < 4; ++i) {
    const json::value& x = (*a)[i];
    if (!x.is_number()) throw RecordError("crop_transform: expected 4 numbers");
    v[i] = x.to_number<double>();
    if (!std::isfinite(v[i])) throw RecordError("crop_transform: not finite");
  }
  if (*size < 1 || *size != std::floor(*size))
    throw RecordError("crop_size: expected a positive integer");
  CropGeometry g;
  g.to_crop = {v[0], v[1], v[2], v[3]};
  g.size = static_cast<int>(*size);
  if (g.to_crop.scale() == 0) throw RecordError("crop_transform: singular");
  return g;
}

void set_crop_geometry(Record& r, const CropGeometry& g) {
  r["crop_transform"] = json::array{g.to_crop.a, g.to_crop.b, g.to_crop.tx, g.to_crop.ty};
  r["crop_size"] = g.size;
}

}  // namespace edan
