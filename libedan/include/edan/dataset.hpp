#pragma once
// Dataset layouts -> records (edan-index). Every parser a layout needs (file
// names, CSV rows, .pts files) is a separate function here so that it can be
// unit-tested and fuzzed on its own; index_dataset() only walks the files and
// strings the parsers together.
//
// A parser that meets bad input throws RecordError with a message saying
// what is wrong (the caller prefixes the file or line); index_dataset() turns
// that into a record with "error", so nothing is silently skipped.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edan/fs.hpp"
#include "edan/record.hpp"
#include "edan/shape.hpp"

namespace edan {

// --- layouts and options ----------------------------------------------------

enum class Layout {
  kFolders,
  kJaffe,
  kCkplus,
  kFer2013Csv,
  kAffectnetCsv,
  k300w,
  kFerplus,
  kUnlabelled
};

// Parses a layout name: folders, jaffe, ckplus, fer2013-csv, affectnet-csv,
// 300w, ferplus, unlabelled (every image under DIR, found by content, with no
// label; other files are not records). Throws UsageError naming the accepted names otherwise.
Layout parse_layout(std::string_view name);

struct IndexOptions {
  std::string layout = "folders";
  std::vector<std::string> roots;  // DIRs (or CSV files for the *-csv layouts)
  std::string dataset;             // overrides the dataset name when not empty
  std::string out;                 // fer2013-csv: where the PNGs are written
  std::string images;              // affectnet-csv: root of subDirectory_filePath
  double pts_base = 1;             // 300w: subtracted from every .pts coordinate
};

// Emits one record per image (or CSV row) of every root, roots in the given
// order, files of a root sorted by their path relative to it (byte order).
// Records that cannot be built are emitted with "error" naming the file or
// line. Throws UsageError for an unknown layout or a missing --out-dir
// (fer2013-csv), FatalError for a root that does not exist or cannot be
// read, a CSV without its required columns, or an output file that cannot
// be written.
void index_dataset(const IndexOptions& opt, const std::function<void(const Record&)>& emit);

// --- files -------------------------------------------------------------------

// True when the extension of `path` is one of jpg jpeg png bmp tif tiff pgm
// ppm webp (case-insensitive).
bool is_image_file(std::string_view path);

// --- folders and file names --------------------------------------------------

// Canonical split name of a folder or CSV value (case-insensitive):
//   train, training                       -> train
//   test, testing, privatetest            -> test
//   val, valid, validation, publictest    -> val
// nullopt for anything else.
std::optional<std::string> canonical_split(std::string_view name);

struct FolderLabel {
  std::string label;                 // canonical
  std::optional<std::string> split;  // from the grandparent folder, if a split name
};
// Label and split of an image from its path (at least the parent folder, e.g.
// "fer2013/train/angry/1.jpg" -> anger, train). The label is the parent
// folder's name normalised by canonical_label(). Throws RecordError naming
// the folder when the class is unknown or the path has no parent folder.
FolderLabel parse_folder_label(std::string_view path);

struct JaffeName {
  std::string subject;  // "KA"
  std::string label;    // canonical, "happy"
};
// Parses a JAFFE file name "<subject>.<code><n>.<id>.<ext>", e.g.
// "KA.HA1.29.tiff" -> {KA, happy}. Codes: NE HA SA SU AN DI FE (any case).
// The subject is letters only, n and id are digits. Throws RecordError saying
// what does not match.
JaffeName parse_jaffe_name(std::string_view file_name);

struct CkplusName {
  std::string subject;   // "S005"
  std::string sequence;  // "001"
  long frame = 0;        // 10
};
// Parses a CK+ file name "S<digits>_<digits>_<digits>.<ext>", e.g.
// "S005_001_00000010.png" -> {S005, 001, 10}. Throws RecordError otherwise.
CkplusName parse_ckplus_name(std::string_view file_name);

// --- 300-W .pts ----------------------------------------------------------------

// Parses the text of a 300-W .pts file:
//   version: 1
//   n_points: 68
//   {
//   x y          (n_points lines)
//   }
// Returns the points exactly as written (no origin shift; see
// pts_to_pixel_centres). Blank lines, CR line ends and trailing spaces are
// accepted. Throws RecordError naming the line when the header is missing or
// wrong, n_points differs from `expected_points` or from the number of point
// lines, a coordinate is not a number or is NaN/inf, or a brace is missing.
Shape parse_pts(std::string_view text, std::size_t expected_points = kNumLandmarks);

// Shifts every point by -base: the official 300-W files count pixels from 1
// (Matlab), OpenCV from 0 at the centre of the first pixel, so base 1 maps
// them onto OpenCV's convention.
Shape pts_to_pixel_centres(Shape s, double base);

// A 300-W .pts file's points in OpenCV's pixel-centre convention (base 1).
// Throws RecordError naming the file when it cannot be read or parsed.
Shape read_pts_file(const std::string& path);

// --- CSV -------------------------------------------------------------------------

// Splits one CSV record (RFC 4180: ',' separated, fields optionally in double
// quotes, "" inside quotes is a quote, quoted fields may hold ',' and
// newlines). A trailing CR is dropped. Throws RecordError when a quote is
// not closed, text follows a closing quote, or a quote appears inside an
// unquoted field.
std::vector<std::string> parse_csv_record(std::string_view text);

// Reads CSV records from a stream, joining physical lines while a quoted
// field is open.
class CsvReader {
 public:
  static constexpr std::size_t kDefaultMaxRecord = std::size_t{16} << 20;  // 16 MiB
  explicit CsvReader(std::istream& in, std::size_t max_record_bytes = kDefaultMaxRecord)
      : in_(in), max_record_(max_record_bytes) {}
  // The next record's text (without its final newline) in `text`; false at
  // the end of input. Blank lines are skipped. A quote left open at the end
  // of input, or one that would make the record longer than
  // max_record_bytes, ends the record there: parse_csv_record() then
  // reports the unclosed quote, and reading goes on with the next line.
  // A single physical line longer than max_record_bytes is not kept: next()
  // returns true with an empty `text` and too_long() set, and reading goes
  // on after that line. Memory stays bounded by about 2 x max_record_bytes.
  bool next(std::string& text);
  // The physical line (1-based) on which the last record started.
  std::size_t line_no() const { return record_line_; }
  // Whether the last record was dropped for its length (see next()).
  bool too_long() const { return too_long_; }
  std::size_t max_record_bytes() const { return max_record_; }

 private:
  std::istream& in_;
  std::size_t max_record_;
  std::size_t line_ = 0, record_line_ = 0;
  bool too_long_ = false;
};

// Column positions by header name (exact names, case-insensitive).
class CsvColumns {
 public:
  explicit CsvColumns(const std::vector<std::string>& header);
  // Index of `name`, or nullopt.
  std::optional<std::size_t> find(std::string_view name) const;
  // Index of `name`. Throws FatalError "missing column NAME".
  std::size_t require(std::string_view name) const;

 private:
  std::vector<std::string> names_;
};

// --- FER2013 CSV (emotion,pixels,Usage) -------------------------------------------

inline constexpr int kFer2013Size = 48;

struct Fer2013Row {
  std::string label;                 // canonical
  std::optional<std::string> split;  // from Usage, via canonical_split
  std::vector<std::uint8_t> pixels;  // 48*48, row-major
};
// One row of fer2013.csv. emotion: 0 anger, 1 disgust, 2 fear, 3 happy,
// 4 sad, 5 surprise, 6 neutral. pixels: 2304 integers 0..255 separated by
// spaces. Usage (column optional): Training -> train, PublicTest -> val,
// PrivateTest -> test. Throws RecordError for a missing field, an unknown
// emotion code or Usage, a wrong pixel count or a pixel out of range;
// FatalError when `cols` has no emotion or pixels column.
Fer2013Row parse_fer2013_row(const std::vector<std::string>& fields, const CsvColumns& cols);

// --- AffectNet CSV ---------------------------------------------------------------------

struct AffectnetRow {
  std::string path;                // subDirectory_filePath
  std::array<double, 4> box{};     // face_x, face_y, face_width, face_height
  std::optional<Shape> landmarks;  // 68 points; nullopt when the field is empty
  int expression = -1;             // 0..10
  std::optional<double> valence, arousal;
};
// One row of AffectNet's training.csv / validation.csv (columns
// subDirectory_filePath, face_x, face_y, face_width, face_height,
// facial_landmarks, expression, and optionally valence, arousal). Landmarks
// are 136 numbers separated by ';' (x1;y1;x2;y2;...; one trailing ';' is
// allowed). Throws RecordError for a missing or empty path, a non-numeric or
// negative box, a box without area, landmarks that are not 136 finite
// numbers, or an expression that is not an integer 0..10; FatalError when
// `cols` lacks one of the required columns.
AffectnetRow parse_affectnet_row(const std::vector<std::string>& fields, const CsvColumns& cols);

// Canonical label of an AffectNet expression code: 0 neutral, 1 happy, 2 sad,
// 3 surprise, 4 fear, 5 disgust, 6 anger, 7 contempt. Throws RecordError for
// 8 (None), 9 (Uncertain), 10 (No-Face) and anything else, naming the code.
std::string affectnet_label(int expression);

// --- FER+ (label.csv) ------------------------------------------------------------------

// The 10 FER+ vote categories in label.csv's column order, as edan names
// them: neutral happy surprise sad anger disgust fear contempt (canonical
// labels), then "unknown" and "not_face".
inline constexpr std::size_t kFerplusCategories = 10;
inline constexpr std::size_t kFerplusEmotions = 8;  // the first 8 are emotions
const std::array<std::string, kFerplusCategories>& ferplus_category_names();

struct FerplusRow {
  std::string name;  // image file name, e.g. "fer0000000.png"
  std::array<int, kFerplusCategories> votes{};
};
// One row of a FER+ label.csv: name, face box "(0, 0, 48, 48)" (ignored),
// then 10 vote counts (integers 0..10, not all 0). Throws RecordError for a
// missing name, fewer or more than 10 counts after the box, a count that is
// not such an integer, or no vote at all.
FerplusRow parse_ferplus_row(const std::vector<std::string>& fields);

// The majority label (the FER+ paper's "majority voting" evaluation): the
// emotion with more votes than every other emotion. nullopt on a tie
// between emotions for the most votes, and when unknown or not_face has
// more votes than that emotion (a tie with them keeps the emotion). These
// are the counts of ../shared/data/README.md (FER+ train: neutral 9,431,
// happy 7,418, ...).
std::optional<std::string> ferplus_majority(const std::array<int, kFerplusCategories>& votes);

// The soft target (the FER+ paper's "probability" training mode, processed
// as its reference code does): single votes are dropped as outliers; when
// unknown or not_face then holds more votes than every emotion, there is
// no target (nullopt); otherwise the 8 emotions' remaining votes,
// divided by their sum, as (canonical label, probability) pairs in
// category order, zeros left out. nullopt when no emotion keeps a vote.
std::optional<std::vector<std::pair<std::string, double>>> ferplus_target(
    const std::array<int, kFerplusCategories>& votes);

}  // namespace edan
