#include "edan/dataset.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <system_error>

#include "edan/error.hpp"
#include "edan/fs.hpp"
#include "edan/labels.hpp"

namespace edan {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

bool all_alpha(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalpha(c) != 0; });
}

// A quoted excerpt of untrusted text for an error message (bounded length).
// Control characters become '?'; other bytes (UTF-8 names) are kept, and a
// long name is cut after kMax bytes at a character boundary.
std::string quote(std::string_view s) {
  constexpr std::size_t kMax = 40;
  std::size_t n = std::min(s.size(), kMax);
  while (n < s.size() && n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  std::string out = "'";
  for (char c : s.substr(0, n)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7F) ? '?' : c;
  }
  if (n < s.size()) out += "...";
  return out + "'";
}

// A finite double spanning all of s (surrounding spaces allowed).
std::optional<double> to_double(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v))
    return std::nullopt;
  return v;
}

// An integer spanning all of s (surrounding spaces allowed).
std::optional<long> to_long(std::string_view s) {
  s = trim(s);
  long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// Path components, skipping empty ones and ".".
std::vector<std::string> components(std::string_view path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(start, slash - start);
    if (!part.empty() && part != ".") out.emplace_back(part);
    start = slash + 1;
  }
  return out;
}

std::string absolute_path(const std::string& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) return p;
  return abs.lexically_normal().generic_string();
}

std::string base_name(std::string_view path) {
  std::string_view s = path;
  auto slash = s.rfind('/');
  return std::string(slash == std::string_view::npos ? s : s.substr(slash + 1));
}

std::string stem(std::string_view file_name) {
  std::string base = base_name(file_name);
  auto dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

// The dataset name: --dataset when given, else `fallback`.
std::string dataset_name(const IndexOptions& opt, std::string fallback) {
  return opt.dataset.empty() ? std::move(fallback) : opt.dataset;
}

// The dataset a directory belongs to: its nearest folder (itself or above)
// whose name is neither a class nor a split, so that "fer2013/train/angry"
// still names fer2013.
std::string dir_name(const std::string& dir) {
  auto parts = components(absolute_path(dir));
  for (auto it = parts.rbegin(); it != parts.rend(); ++it)
    if (!canonical_label(*it) && !canonical_split(*it)) return *it;
  return "dataset";
}

Record error_record(Record r, const std::string& message) {
  set_error(r, message);
  return r;
}

// --- layouts walking directories ----------------------------------------------

void index_folders(const IndexOptions& opt, Layout layout, const std::string& root,
                   const std::function<void(const Record&)>& emit) {
  const std::string fallback = layout == Layout::kCkplus  ? std::string("ckplus")
                               : layout == Layout::kJaffe ? std::string("jaffe")
                                                          : dir_name(root);
  const std::string dataset = dataset_name(opt, fallback);
  for (const auto& rel : list_files(root, is_image_file)) {
    const std::string image = join_path(root, rel);
    Record r;
    r["image"] = image;
    try {
      if (layout == Layout::kJaffe) {
        JaffeName n = parse_jaffe_name(base_name(rel));
        r["label"] = n.label;
        r["dataset"] = dataset;
        r["subject"] = n.subject;
      } else {
        // Parent folders are read from the absolute path so that a DIR of
        // "." or "angry" still names the class.
        FolderLabel f = parse_folder_label(absolute_path(image));
        r["label"] = f.label;
        r["dataset"] = dataset;
        if (layout == Layout::kCkplus) r["subject"] = parse_ckplus_name(base_name(rel)).subject;
        if (f.split) r["split"] = *f.split;
      }
    } catch (const RecordError& e) {
      r["dataset"] = dataset;
      emit(error_record(std::move(r), image + ": " + e.what()));
      continue;
    }
    emit(r);
  }
}

// A .pts file of 68 points is under 2 KiB; anything past this is not one
// (and a FIFO or /dev/zero named x.pts must not fill memory).
constexpr std::size_t kMaxPtsBytes = std::size_t{1} << 20;

// The text of a small file, or nullopt when it cannot be opened or read.
// Throws RecordError naming it when it is a directory or larger than
// kMaxPtsBytes.
std::optional<std::string> read_text(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw RecordError(path + ": is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text;
  char chunk[4096];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxPtsBytes)
      throw RecordError(path + ": larger than " + std::to_string(kMaxPtsBytes) + " bytes");
  }
  if (in.bad()) return std::nullopt;
  return text;
}

void index_300w(const IndexOptions& opt, const std::string& root,
                const std::function<void(const Record&)>& emit) {
  for (const auto& rel : list_files(root, is_image_file)) {
    const std::string image = join_path(root, rel);
    // The dataset and split come from the nearest folder with a known name;
    // these names are specific enough to look at the whole absolute path.
    std::string dataset = "300w";
    std::optional<std::string> split;
    for (const auto& part : components(absolute_path(image))) {
      std::string p = lower(part);
      if (p == "afw" || p == "helen" || p == "lfpw" || p == "ibug") dataset = p;
      if (p == "trainset") split = "train";
      if (p == "testset") split = "test";
    }
    Record r;
    r["image"] = image;
    r["dataset"] = dataset_name(opt, dataset);
    if (split) r["split"] = *split;
    const std::string pts = image.substr(0, image.rfind('.')) + ".pts";
    std::optional<std::string> text;
    try {
      text = read_text(pts);
    } catch (const RecordError& e) {
      emit(error_record(std::move(r), image + ": no landmarks: " + e.what()));
      continue;
    }
    if (!text) {
      emit(error_record(std::move(r), image + ": no landmarks: cannot read " + pts));
      continue;
    }
    try {
      r["landmarks"] = shape_to_json(pts_to_pixel_centres(parse_pts(*text), opt.pts_base));
    } catch (const RecordError& e) {
      emit(error_record(std::move(r), pts + ": " + e.what()));
      continue;
    }
    emit(r);
  }
}

// --- CSV layouts -------------------------------------------------------------------

// The CSV files a root names: the file itself, or the given names inside a
// directory (those that exist; at least one must).
std::vector<std::string> csv_files(const std::string& root,
                                   const std::vector<std::string>& names_in_dir) {
  std::error_code ec;
  if (!fs::exists(root, ec)) throw FatalError(root + ": no such file or directory");
  if (!fs::is_directory(root, ec)) return {root};
  std::vector<std::string> found;
  for (const auto& n : names_in_dir) {
    std::string p = join_path(root, n);
    if (fs::exists(p, ec)) found.push_back(p);
  }
  if (found.empty()) {
    std::string list;
    for (const auto& n : names_in_dir) list += (list.empty() ? "" : " or ") + n;
    throw FatalError(root + ": no " + list + " in this directory");
  }
  return found;
}

// Opens a CSV and reads its header (none when `header` is false: `cols` stays
// empty). Throws FatalError naming the file.
struct CsvFile {
  std::string path;
  std::ifstream in;
  CsvReader reader{in};
  std::unique_ptr<CsvColumns> cols;

  explicit CsvFile(std::string p, bool header = true)
      : path(std::move(p)), in(path, std::ios::binary) {
    std::error_code ec;
    if (!in || fs::is_directory(path, ec)) throw FatalError(path + ": cannot read");
    if (!header) return;
    std::string text;
    if (!reader.next(text)) throw FatalError(path + ": empty file, expected a CSV header");
    try {
      cols = std::make_unique<CsvColumns>(parse_csv_record(text));
    } catch (const RecordError& e) {
      throw FatalError(path + ":1: bad CSV header: " + e.what());
    }
  }
  // The next row: fields, or a RecordError message prefixed by file:line.
  bool next(std::vector<std::string>& fields, std::string& error) {
    std::string text;
    error.clear();
    if (!reader.next(text)) {
      if (in.bad()) throw FatalError(path + ": read error");
      return false;
    }
    if (reader.too_long()) {
      error =
          where() + "CSV line longer than " + std::to_string(reader.max_record_bytes()) + " bytes";
      return true;
    }
    try {
      fields = parse_csv_record(text);
    } catch (const RecordError& e) {
      error = where() + e.what();
    }
    return true;
  }
  std::string where() const { return path + ":" + std::to_string(reader.line_no()) + ": "; }
};

void index_fer2013_csv(const IndexOptions& opt, const std::string& root,
                       const std::function<void(const Record&)>& emit) {
  const std::string dataset = dataset_name(opt, "fer2013");
  for (const auto& path : csv_files(root, {"fer2013.csv"})) {
    CsvFile csv(path);
    csv.cols->require("emotion");
    csv.cols->require("pixels");
    const std::string prefix = stem(path) + "-";
    std::vector<std::string> fields;
    std::string error;
    for (std::size_t row = 0; csv.next(fields, error); ++row) {
      Record r;
      r["dataset"] = dataset;
      r["line"] = csv.reader.line_no();
      if (!error.empty()) {
        emit(error_record(std::move(r), error));
        continue;
      }
      Fer2013Row f;
      try {
        f = parse_fer2013_row(fields, *csv.cols);
      } catch (const RecordError& e) {
        emit(error_record(std::move(r), csv.where() + e.what()));
        continue;
      }
      char name[32];
      std::snprintf(name, sizeof name, "%05zu.png", row);
      std::string rel = (f.split ? *f.split + "/" : std::string()) + f.label + "/" + prefix + name;
      std::string image = join_path(opt.out, rel);
      cv::Mat mat(kFer2013Size, kFer2013Size, CV_8U, f.pixels.data());
      std::vector<unsigned char> png;
      if (!cv::imencode(".png", mat, png)) throw FatalError(image + ": cannot encode PNG");
      write_file_atomic(image,
                        std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
      Record out;
      out["image"] = image;
      out["label"] = f.label;
      out["dataset"] = dataset;
      if (f.split) out["split"] = *f.split;
      emit(out);
    }
  }
}

void index_affectnet_csv(const IndexOptions& opt, const std::string& root,
                         const std::function<void(const Record&)>& emit) {
  const std::string dataset = dataset_name(opt, "affectnet");
  for (const auto& path : csv_files(root, {"training.csv", "validation.csv"})) {
    CsvFile csv(path);
    for (auto name : {"subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                      "facial_landmarks", "expression"})
      csv.cols->require(name);
    const std::string images =
        opt.images.empty() ? fs::path(path).parent_path().generic_string() : opt.images;
    const auto split = canonical_split(stem(path));
    const std::size_t path_col = csv.cols->require("subDirectory_filePath");
    std::vector<std::string> fields;
    std::string error;
    while (csv.next(fields, error)) {
      Record r;
      // The image is named even when the rest of the row is bad.
      if (error.empty() && path_col < fields.size() && !trim(fields[path_col]).empty())
        r["image"] = join_path(images.empty() ? "." : images, trim(fields[path_col]));
      r["dataset"] = dataset;
      if (split) r["split"] = *split;
      try {
        if (!error.empty()) throw RecordError(error);
        AffectnetRow a = parse_affectnet_row(fields, *csv.cols);
        r["label"] = affectnet_label(a.expression);
        boost::json::array box;
        for (double v : a.box) {
          // Integral pixel boxes stay integers in the record.
          if (v == std::floor(v) && std::abs(v) < 1e15)
            box.push_back(static_cast<std::int64_t>(v));
          else
            box.push_back(v);
        }
        r["box"] = std::move(box);
        if (a.landmarks) r["landmarks"] = shape_to_json(*a.landmarks);
        if (a.valence) r["valence"] = *a.valence;
        if (a.arousal) r["arousal"] = *a.arousal;
      } catch (const RecordError& e) {
        r.erase("label");
        r["line"] = csv.reader.line_no();
        emit(error_record(std::move(r), error.empty() ? csv.where() + e.what() : error));
        continue;
      }
      emit(r);
    }
  }
}

// --- FER+ --------------------------------------------------------------------------

// FER2013Train -> train, FER2013Valid -> val, FER2013Test -> test.
std::optional<std::string> ferplus_split(const std::string& folder) {
  std::string name = base_name(folder);
  if (lower(name).rfind("fer2013", 0) == 0) name = name.substr(7);
  return canonical_split(name);
}

// ROOT is a label.csv, a folder holding one, or the FER+ root holding
// FER2013Train, FER2013Valid and FER2013Test (indexed in that order).
void index_ferplus(const IndexOptions& opt, const std::string& root,
                   const std::function<void(const Record&)>& emit) {
  const std::string dataset = dataset_name(opt, "ferplus");
  const auto& names = ferplus_category_names();
  for (const auto& csv_path :
       csv_files(root, {"label.csv", "FER2013Train/label.csv", "FER2013Valid/label.csv",
                        "FER2013Test/label.csv"})) {
    const std::string folder = fs::path(csv_path).parent_path().string();
    const auto split = ferplus_split(fs::path(absolute_path(csv_path)).parent_path().string());
    CsvFile csv(csv_path, /*header=*/false);
    std::vector<std::string> fields;
    std::string error;
    while (csv.next(fields, error)) {
      FerplusRow row;
      if (error.empty()) {
        try {
          row = parse_ferplus_row(fields);
        } catch (const RecordError& e) {
          error = csv.where() + e.what();
        }
      }
      Record r;
      std::error_code ec;
      if (error.empty()) {
        const std::string image = join_path(folder, row.name);
        r["image"] = image;
        if (!fs::is_regular_file(image, ec)) error = csv.where() + image + ": no such image";
      }
      r["dataset"] = dataset;
      if (split) r["split"] = *split;
      if (!error.empty()) {
        emit(error_record(std::move(r), error));
        continue;
      }
      if (auto label = ferplus_majority(row.votes)) r["label"] = *label;
      boost::json::object votes;
      for (std::size_t i = 0; i < kFerplusCategories; ++i) votes[names[i]] = row.votes[i];
      r["votes"] = votes;
      if (auto target = ferplus_target(row.votes)) {
        boost::json::object t;
        for (const auto& [label, p] : *target) t[label] = json_number(p, 1e-6);
        r["target"] = t;
      }
      emit(r);
    }
  }
}

// Every image under root, found by content (has_image_signature): no label.
void index_unlabelled(const IndexOptions& opt, const std::string& root,
                      const std::function<void(const Record&)>& emit) {
  for (const auto& rel : list_files(root, [](std::string_view) { return true; })) {
    const std::string image = join_path(root, rel);
    if (!has_image_signature(image)) continue;
    Record r;
    r["image"] = image;
    if (!opt.dataset.empty()) r["dataset"] = opt.dataset;
    emit(r);
  }
}

}  // namespace

// --- layouts and options ----------------------------------------------------

Layout parse_layout(std::string_view name) {
  if (name == "folders") return Layout::kFolders;
  if (name == "jaffe") return Layout::kJaffe;
  if (name == "ckplus") return Layout::kCkplus;
  if (name == "fer2013-csv") return Layout::kFer2013Csv;
  if (name == "affectnet-csv") return Layout::kAffectnetCsv;
  if (name == "300w") return Layout::k300w;
  if (name == "ferplus") return Layout::kFerplus;
  if (name == "unlabelled") return Layout::kUnlabelled;
  throw UsageError("unknown layout '" + std::string(name) +
                   "' (expected folders, jaffe, ckplus, fer2013-csv, affectnet-csv, 300w, "
                   "ferplus or unlabelled)");
}

void index_dataset(const IndexOptions& opt, const std::function<void(const Record&)>& emit) {
  const Layout layout = parse_layout(opt.layout);
  if (layout == Layout::kFer2013Csv && opt.out.empty())
    throw UsageError("--layout fer2013-csv needs --out-dir DIR for the PNGs it writes");
  if (opt.roots.empty()) throw UsageError("missing DIR");
  for (const auto& root : opt.roots) {
    switch (layout) {
      case Layout::kFolders:
      case Layout::kJaffe:
      case Layout::kCkplus:
        index_folders(opt, layout, root, emit);
        break;
      case Layout::k300w:
        index_300w(opt, root, emit);
        break;
      case Layout::kFer2013Csv:
        index_fer2013_csv(opt, root, emit);
        break;
      case Layout::kAffectnetCsv:
        index_affectnet_csv(opt, root, emit);
        break;
      case Layout::kFerplus:
        index_ferplus(opt, root, emit);
        break;
      case Layout::kUnlabelled:
        index_unlabelled(opt, root, emit);
        break;
    }
  }
}

// --- files -------------------------------------------------------------------

bool is_image_file(std::string_view path) {
  std::string name = base_name(path);
  auto dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return false;
  static const char* const kExts[] = {"jpg",  "jpeg", "png", "bmp", "tif",
                                      "tiff", "pgm",  "ppm", "webp"};
  std::string ext = lower(std::string_view(name).substr(dot + 1));
  return std::any_of(std::begin(kExts), std::end(kExts), [&](const char* e) { return ext == e; });
}

// --- folders and file names --------------------------------------------------

std::optional<std::string> canonical_split(std::string_view name) {
  std::string n = lower(name);
  if (n == "train" || n == "training") return "train";
  if (n == "test" || n == "testing" || n == "privatetest") return "test";
  if (n == "val" || n == "valid" || n == "validation" || n == "publictest") return "val";
  return std::nullopt;
}

FolderLabel parse_folder_label(std::string_view path) {
  auto parts = components(path);
  if (parts.size() < 2) throw RecordError("no class folder above the image");
  const std::string& folder = parts[parts.size() - 2];
  auto label = canonical_label(folder);
  if (!label) throw RecordError("unknown class folder " + quote(folder));
  FolderLabel out{*label, std::nullopt};
  if (parts.size() >= 3) out.split = canonical_split(parts[parts.size() - 3]);
  return out;
}

JaffeName parse_jaffe_name(std::string_view file_name) {
  // subject . code+n . id . ext
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= file_name.size(); ++i) {
    if (i == file_name.size() || file_name[i] == '.') {
      parts.push_back(file_name.substr(start, i - start));
      start = i + 1;
    }
  }
  const std::string why = "not a JAFFE name (SUBJECT.CODEn.ID.EXT, e.g. KA.HA1.29.tiff): ";
  if (parts.size() != 4) throw RecordError(why + quote(file_name));
  if (!all_alpha(parts[0])) throw RecordError(why + "subject " + quote(parts[0]));
  std::string_view expr = parts[1];
  std::size_t letters = 0;
  while (letters < expr.size() && std::isalpha(static_cast<unsigned char>(expr[letters])))
    ++letters;
  std::string_view code = expr.substr(0, letters);
  if (letters != 2 || !all_digits(expr.substr(letters)))
    throw RecordError(why + "expression " + quote(expr));
  if (!all_digits(parts[2])) throw RecordError(why + "image number " + quote(parts[2]));
  static const char* const kCodes[] = {"ne", "ha", "sa", "su", "an", "di", "fe"};
  std::string c = lower(code);
  if (std::none_of(std::begin(kCodes), std::end(kCodes), [&](const char* k) { return c == k; }))
    throw RecordError("unknown JAFFE expression code " + quote(code));
  return {std::string(parts[0]), *canonical_label(c)};
}

CkplusName parse_ckplus_name(std::string_view file_name) {
  std::string_view s = file_name;
  auto dot = s.rfind('.');
  if (dot != std::string_view::npos) s = s.substr(0, dot);
  auto u1 = s.find('_');
  auto u2 = u1 == std::string_view::npos ? u1 : s.find('_', u1 + 1);
  const std::string why =
      "not a CK+ name (S<subject>_<sequence>_<frame>, e.g. "
      "S005_001_00000010.png): ";
  if (u2 == std::string_view::npos || s.find('_', u2 + 1) != std::string_view::npos)
    throw RecordError(why + quote(file_name));
  std::string_view subject = s.substr(0, u1), seq = s.substr(u1 + 1, u2 - u1 - 1),
                   frame = s.substr(u2 + 1);
  if (subject.size() < 2 || (subject[0] != 'S' && subject[0] != 's') ||
      !all_digits(subject.substr(1)))
    throw RecordError(why + "subject " + quote(subject));
  if (!all_digits(seq)) throw RecordError(why + "sequence " + quote(seq));
  auto f = to_long(frame);
  if (!all_digits(frame) || !f) throw RecordError(why + "frame " + quote(frame));
  std::string subj(subject);
  subj[0] = 'S';
  return {subj, std::string(seq), *f};
}

// --- 300-W .pts ----------------------------------------------------------------

Shape read_pts_file(const std::string& path) {
  auto text = read_text(path);
  if (!text) throw RecordError(path + ": cannot read");
  try {
    return pts_to_pixel_centres(parse_pts(*text), 1);
  } catch (const RecordError& e) {
    throw RecordError(path + ": " + e.what());
  }
}

Shape parse_pts(std::string_view text, std::size_t expected_points) {
  // Lines with their 1-based numbers, blank ones dropped.
  std::vector<std::pair<std::size_t, std::string_view>> lines;
  std::size_t start = 0, no = 0;
  while (start < text.size()) {
    std::size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    ++no;
    std::string_view line = trim(text.substr(start, nl - start));
    if (!line.empty()) lines.emplace_back(no, line);
    start = nl + 1;
  }
  auto fail = [](std::size_t line_no, const std::string& msg) -> RecordError {
    return RecordError("line " + std::to_string(line_no) + ": " + msg);
  };
  // Header: "key: value" lines up to "{".
  std::optional<long> n_points;
  std::size_t i = 0;
  for (; i < lines.size() && lines[i].second != "{"; ++i) {
    auto [line_no, line] = lines[i];
    auto colon = line.find(':');
    if (colon == std::string_view::npos)
      throw fail(line_no, "expected 'version: 1', 'n_points: N' or '{', got " + quote(line));
    std::string key = lower(trim(line.substr(0, colon)));
    std::string_view value = trim(line.substr(colon + 1));
    if (key == "n_points") {
      n_points = to_long(value);
      if (!n_points || *n_points < 0) throw fail(line_no, "bad n_points " + quote(value));
    } else if (key == "version") {
      if (!to_double(value)) throw fail(line_no, "bad version " + quote(value));
    } else {
      throw fail(line_no, "unknown header field " + quote(key));
    }
  }
  if (lines.empty()) throw RecordError("empty .pts file");
  if (!n_points) throw RecordError("no n_points header");
  if (i == lines.size()) throw RecordError("no '{' before the points");
  if (static_cast<std::size_t>(*n_points) != expected_points)
    throw RecordError("n_points is " + std::to_string(*n_points) + ", expected " +
                      std::to_string(expected_points));
  Shape shape;
  for (++i; i < lines.size() && lines[i].second != "}"; ++i) {
    auto [line_no, line] = lines[i];
    auto space = line.find_first_of(" \t");
    auto x = space == std::string_view::npos ? std::nullopt : to_double(line.substr(0, space));
    auto y = space == std::string_view::npos ? std::nullopt : to_double(line.substr(space));
    if (!x || !y) throw fail(line_no, "expected two finite numbers 'x y', got " + quote(line));
    shape.push_back({*x, *y});
  }
  if (i == lines.size()) throw RecordError("no closing '}' after the points");
  if (shape.size() != expected_points)
    throw RecordError("found " + std::to_string(shape.size()) + " points, n_points says " +
                      std::to_string(expected_points));
  if (i + 1 < lines.size())
    throw fail(lines[i + 1].first, "unexpected text after '}': " + quote(lines[i + 1].second));
  return shape;
}

Shape pts_to_pixel_centres(Shape s, double base) {
  for (auto& p : s) {
    p.x -= base;
    p.y -= base;
  }
  return s;
}

// --- CSV -------------------------------------------------------------------------

std::vector<std::string> parse_csv_record(std::string_view text) {
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  std::vector<std::string> fields;
  std::string field;
  std::size_t i = 0;
  auto col = [&] { return std::to_string(fields.size() + 1); };
  for (;;) {
    field.clear();
    if (i < text.size() && text[i] == '"') {
      std::size_t open = i++;
      for (;;) {
        if (i >= text.size())
          throw RecordError("field " + col() + ": quote opened at character " +
                            std::to_string(open + 1) + " is never closed");
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field += text[i++];
      }
      if (i < text.size() && text[i] != ',')
        throw RecordError("field " + col() + ": text after the closing quote at character " +
                          std::to_string(i + 1));
    } else {
      std::size_t end = text.find(',', i);
      if (end == std::string_view::npos) end = text.size();
      std::string_view raw = text.substr(i, end - i);
      if (raw.find('"') != std::string_view::npos)
        throw RecordError("field " + col() + ": quote inside an unquoted field " + quote(raw));
      field.assign(raw);
      i = end;
    }
    fields.push_back(field);
    if (i >= text.size()) break;
    ++i;  // the comma
    if (i == text.size()) {
      fields.emplace_back();  // "a,b," ends with an empty field
      break;
    }
  }
  return fields;
}

namespace {
// One physical line into `line` (without its '\n'), keeping at most `max`
// bytes: `cut` tells that the rest was dropped. False at the end of input
// when nothing was read. Unlike std::getline, memory stays bounded whatever
// the file holds.
bool read_line(std::istream& in, std::string& line, std::size_t max, bool& cut) {
  line.clear();
  cut = false;
  std::streambuf* sb = in.rdbuf();
  bool any = false;
  for (;;) {
    int c = sb ? sb->sbumpc() : std::char_traits<char>::eof();
    if (c == std::char_traits<char>::eof()) {
      if (!any) in.setstate(std::ios::eofbit | std::ios::failbit);
      return any;
    }
    any = true;
    if (c == '\n') return true;
    if (line.size() < max)
      line.push_back(static_cast<char>(c));
    else
      cut = true;
  }
}
}  // namespace

bool CsvReader::next(std::string& text) {
  text.clear();
  too_long_ = false;
  std::string line;
  bool open = false;  // inside a quoted field
  bool cut = false;
  while (read_line(in_, line, max_record_ + 1, cut)) {
    ++line_;
    if (!open) {
      if (!cut && trim(line).empty()) continue;
      record_line_ = line_;
    } else {
      text += '\n';
    }
    if (cut && !open) {
      // A record's first line longer than a whole record may be: the record
      // is dropped, reading goes on after that line.
      text.clear();
      too_long_ = true;
      return true;
    }
    text += line;
    // Inside a quote, a cut line makes the record too long: it ends here
    // (below) and the parser reports the unclosed quote.
    // Quotes come in pairs in a complete record ("" inside a field too).
    if (std::count(line.begin(), line.end(), '"') % 2 != 0) open = !open;
    if (!open || text.size() > max_record_) return true;
  }
  // End of input inside a quoted field: hand back what there is, the parser
  // reports the unclosed quote.
  return open;
}

CsvColumns::CsvColumns(const std::vector<std::string>& header) {
  for (const auto& h : header) names_.push_back(lower(trim(h)));
}

std::optional<std::size_t> CsvColumns::find(std::string_view name) const {
  auto it = std::find(names_.begin(), names_.end(), lower(name));
  if (it == names_.end()) return std::nullopt;
  return static_cast<std::size_t>(it - names_.begin());
}

std::size_t CsvColumns::require(std::string_view name) const {
  auto i = find(name);
  if (!i) throw FatalError("missing column " + std::string(name) + " in the CSV header");
  return *i;
}

// --- FER2013 CSV ----------------------------------------------------------------

namespace {
const std::string& field_at(const std::vector<std::string>& fields, std::size_t index,
                            std::string_view name) {
  if (index >= fields.size())
    throw RecordError("row has " + std::to_string(fields.size()) + " fields, no " +
                      std::string(name));
  return fields[index];
}
}  // namespace

Fer2013Row parse_fer2013_row(const std::vector<std::string>& fields, const CsvColumns& cols) {
  static const char* const kEmotions[] = {"anger", "disgust",  "fear",   "happy",
                                          "sad",   "surprise", "neutral"};
  Fer2013Row row;
  const std::string& emotion = field_at(fields, cols.require("emotion"), "emotion");
  auto code = to_long(emotion);
  if (!code || *code < 0 || *code > 6)
    throw RecordError("emotion " + quote(emotion) + " is not a code 0..6");
  row.label = kEmotions[*code];
  if (auto usage_col = cols.find("Usage")) {
    const std::string& usage = field_at(fields, *usage_col, "Usage");
    row.split = canonical_split(trim(usage));
    if (!row.split) throw RecordError("unknown Usage " + quote(usage));
  }
  const std::string& pixels = field_at(fields, cols.require("pixels"), "pixels");
  constexpr std::size_t kCount = kFer2013Size * kFer2013Size;
  row.pixels.reserve(kCount);
  const char* p = pixels.data();
  const char* end = p + pixels.size();
  for (;;) {
    while (p < end && (*p == ' ' || *p == '\t')) ++p;
    if (p == end) break;
    int v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc() || (next < end && *next != ' ' && *next != '\t'))
      throw RecordError("pixel " + std::to_string(row.pixels.size() + 1) + " is not a number: " +
                        quote(std::string_view(p, static_cast<std::size_t>(end - p))));
    if (v < 0 || v > 255)
      throw RecordError("pixel " + std::to_string(row.pixels.size() + 1) + " is " +
                        std::to_string(v) + ", outside 0..255");
    if (row.pixels.size() == kCount)
      throw RecordError("more than " + std::to_string(kCount) + " pixels");
    row.pixels.push_back(static_cast<std::uint8_t>(v));
    p = next;
  }
  if (row.pixels.size() != kCount)
    throw RecordError(std::to_string(row.pixels.size()) + " pixels, expected " +
                      std::to_string(kCount) + " (48x48)");
  return row;
}

// --- AffectNet CSV ---------------------------------------------------------------------

AffectnetRow parse_affectnet_row(const std::vector<std::string>& fields, const CsvColumns& cols) {
  AffectnetRow row;
  row.path = std::string(
      trim(field_at(fields, cols.require("subDirectory_filePath"), "subDirectory_filePath")));
  if (row.path.empty()) throw RecordError("empty subDirectory_filePath");
  const char* const kBox[] = {"face_x", "face_y", "face_width", "face_height"};
  for (int k = 0; k < 4; ++k) {
    const std::string& s = field_at(fields, cols.require(kBox[k]), kBox[k]);
    auto v = to_double(s);
    if (!v || *v < 0)
      throw RecordError(std::string(kBox[k]) + " " + quote(s) + " is not a number >= 0");
    row.box[k] = *v;
  }
  if (row.box[2] <= 0 || row.box[3] <= 0) throw RecordError("face box has no area");
  const std::string& marks = field_at(fields, cols.require("facial_landmarks"), "facial_landmarks");
  if (!trim(marks).empty()) {
    std::vector<double> values;
    std::size_t start = 0;
    std::string_view m = trim(marks);
    if (m.size() > 1 && m.back() == ';') m.remove_suffix(1);
    while (start <= m.size()) {
      std::size_t semi = m.find(';', start);
      if (semi == std::string_view::npos) semi = m.size();
      std::string_view item = m.substr(start, semi - start);
      auto v = to_double(item);
      if (!v)
        throw RecordError("facial_landmarks value " + std::to_string(values.size() + 1) + " " +
                          quote(item) + " is not a finite number");
      values.push_back(*v);
      start = semi + 1;
    }
    if (values.size() != 2 * kNumLandmarks)
      throw RecordError("facial_landmarks has " + std::to_string(values.size()) +
                        " numbers, expected 136");
    Shape s;
    for (std::size_t k = 0; k < kNumLandmarks; ++k) s.push_back({values[2 * k], values[2 * k + 1]});
    row.landmarks = std::move(s);
  }
  const std::string& expr = field_at(fields, cols.require("expression"), "expression");
  auto code = to_long(expr);
  if (!code || *code < 0 || *code > 10)
    throw RecordError("expression " + quote(expr) + " is not a code 0..10");
  row.expression = static_cast<int>(*code);
  using Optional = std::pair<const char*, std::optional<double>*>;
  for (auto [name, target] :
       {Optional{"valence", &row.valence}, Optional{"arousal", &row.arousal}}) {
    auto col = cols.find(name);
    if (!col || *col >= fields.size() || trim(fields[*col]).empty()) continue;
    auto v = to_double(fields[*col]);
    if (!v) throw RecordError(std::string(name) + " " + quote(fields[*col]) + " is not a number");
    *target = *v;
  }
  return row;
}

std::string affectnet_label(int expression) {
  static const char* const kLabels[] = {"neutral", "happy",   "sad",   "surprise",
                                        "fear",    "disgust", "anger", "contempt"};
  if (expression >= 0 && expression <= 7) return kLabels[expression];
  if (expression == 8) throw RecordError("expression 8 (None) has no emotion label");
  if (expression == 9) throw RecordError("expression 9 (Uncertain) has no emotion label");
  if (expression == 10) throw RecordError("expression 10 (No-Face): no face in this image");
  throw RecordError("unknown AffectNet expression code " + std::to_string(expression));
}

// --- FER+ --------------------------------------------------------------------------

const std::array<std::string, kFerplusCategories>& ferplus_category_names() {
  static const std::array<std::string, kFerplusCategories> names = {
      "neutral", "happy", "surprise", "sad",     "anger",
      "disgust", "fear",  "contempt", "unknown", "not_face"};
  return names;
}

FerplusRow parse_ferplus_row(const std::vector<std::string>& fields) {
  FerplusRow row;
  if (fields.empty() || trim(fields[0]).empty()) throw RecordError("missing image name");
  row.name = std::string(trim(fields[0]));
  // name, box, 10 counts; label.csv ends each line with a ',' (an empty 13th field).
  std::size_t n = fields.size();
  if (n == 2 + kFerplusCategories + 1 && trim(fields.back()).empty()) --n;
  if (n != 2 + kFerplusCategories)
    throw RecordError("expected a name, a box and " + std::to_string(kFerplusCategories) +
                      " vote counts, got " + std::to_string(fields.size()) + " fields");
  int total = 0;
  for (std::size_t i = 0; i < kFerplusCategories; ++i) {
    auto v = to_long(trim(fields[2 + i]));
    if (!v || *v < 0 || *v > 10)
      throw RecordError("vote count " + quote(fields[2 + i]) + " (" + ferplus_category_names()[i] +
                        ") is not an integer 0..10");
    row.votes[i] = static_cast<int>(*v);
    total += row.votes[i];
  }
  if (total == 0) throw RecordError("no votes");
  return row;
}

std::optional<std::string> ferplus_majority(const std::array<int, kFerplusCategories>& votes) {
  std::size_t best = 0;
  bool tie = false;
  for (std::size_t i = 1; i < kFerplusEmotions; ++i) {
    if (votes[i] > votes[best]) {
      best = i;
      tie = false;
    } else if (votes[i] == votes[best]) {
      tie = true;
    }
  }
  if (tie) return std::nullopt;
  for (std::size_t i = kFerplusEmotions; i < kFerplusCategories; ++i)
    if (votes[i] > votes[best]) return std::nullopt;
  return ferplus_category_names()[best];
}

std::optional<std::vector<std::pair<std::string, double>>> ferplus_target(
    const std::array<int, kFerplusCategories>& votes) {
  std::array<int, kFerplusCategories> kept{};
  for (std::size_t i = 0; i < kFerplusCategories; ++i) kept[i] = votes[i] > 1 ? votes[i] : 0;
  int top_emotion = 0, sum = 0;
  for (std::size_t i = 0; i < kFerplusEmotions; ++i) {
    top_emotion = std::max(top_emotion, kept[i]);
    sum += kept[i];
  }
  if (sum == 0) return std::nullopt;
  for (std::size_t i = kFerplusEmotions; i < kFerplusCategories; ++i)
    if (kept[i] > top_emotion) return std::nullopt;
  std::vector<std::pair<std::string, double>> target;
  for (std::size_t i = 0; i < kFerplusEmotions; ++i)
    if (kept[i] > 0) target.emplace_back(ferplus_category_names()[i], double(kept[i]) / sum);
  return target;
}

}  // namespace edan
