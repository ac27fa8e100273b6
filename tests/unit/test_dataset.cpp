#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "edan/dataset.hpp"
#include "edan/error.hpp"

namespace fs = std::filesystem;
using edan::CsvColumns;
using edan::RecordError;
using Fields = std::vector<std::string>;

namespace {

// The message of the RecordError fn throws ("" when it throws none).
template <typename F>
std::string record_error(F fn) {
  try {
    fn();
  } catch (const RecordError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A .pts text with n point lines (x = i + 1.5, y = 2i + 1), claiming n_points.
std::string pts_text(int n_points, int n_lines, const std::string& eol = "\n") {
  std::ostringstream s;
  s << "version: 1" << eol << "n_points:  " << n_points << eol << "{" << eol;
  for (int i = 0; i < n_lines; ++i) s << (i + 1.5) << " " << (2 * i + 1) << eol;
  s << "}" << eol;
  return s.str();
}

std::string pixels_text(int count, int value_of_index_mod = 256) {
  std::string s;
  for (int i = 0; i < count; ++i) s += (i ? " " : "") + std::to_string(i % value_of_index_mod);
  return s;
}

std::string landmarks_text(int count) {
  std::string s;
  for (int i = 0; i < count; ++i) s += (i ? ";" : "") + std::to_string(i) + ".25";
  return s;
}

// A fresh empty directory for one test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path =
        fs::path(::testing::TempDir()) / ("edan-dataset-" + name + "-" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& rel, const std::string& text = "") const {
    fs::path p = path / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
};

std::vector<edan::Record> run_index(const edan::IndexOptions& opt) {
  std::vector<edan::Record> out;
  edan::index_dataset(opt, [&](const edan::Record& r) { out.push_back(r); });
  return out;
}

std::string str(const edan::Record& r, const char* key) {
  auto v = r.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string("<none>");
}

}  // namespace

// --- layouts, files -----------------------------------------------------------

TEST(Dataset_ParseLayout, namesEveryLayoutAndRejectsOthers) {
  EXPECT_EQ(edan::parse_layout("folders"), edan::Layout::kFolders);
  EXPECT_EQ(edan::parse_layout("jaffe"), edan::Layout::kJaffe);
  EXPECT_EQ(edan::parse_layout("ckplus"), edan::Layout::kCkplus);
  EXPECT_EQ(edan::parse_layout("fer2013-csv"), edan::Layout::kFer2013Csv);
  EXPECT_EQ(edan::parse_layout("affectnet-csv"), edan::Layout::kAffectnetCsv);
  EXPECT_EQ(edan::parse_layout("300w"), edan::Layout::k300w);
  EXPECT_EQ(edan::parse_layout("ferplus"), edan::Layout::kFerplus);
  EXPECT_THROW(edan::parse_layout("Folders"), edan::UsageError);
  EXPECT_THROW(edan::parse_layout(""), edan::UsageError);
}

TEST(Dataset_IsImageFile, knownExtensionsAnyCase) {
  for (const char* p :
       {"a.jpg", "a.JPEG", "d/a.png", "a.bmp", "a.tif", "x.y.TIFF", "a.pgm", "a.ppm", "a.webp"})
    EXPECT_TRUE(edan::is_image_file(p)) << p;
  for (const char* p : {"a.pts", "a.txt", "jpg", ".jpg", "dir.jpg/README", "a.jpg.bak", ""})
    EXPECT_FALSE(edan::is_image_file(p)) << p;
}

TEST(Dataset_JoinPath, usableFromTheCurrentDirectory) {
  EXPECT_EQ(edan::join_path("data", "a/b.png"), "data/a/b.png");
  EXPECT_EQ(edan::join_path("data/", "b.png"), "data/b.png");
  EXPECT_EQ(edan::join_path(".", "b.png"), "b.png");
  EXPECT_EQ(edan::join_path("", "b.png"), "b.png");
  EXPECT_EQ(edan::join_path("/abs", "b.png"), "/abs/b.png");
}

TEST(Dataset_ListFiles, sortedRelativeAndFiltered) {
  TempDir d("list");
  d.file("b/2.png");
  d.file("b/10.png");
  d.file("a.jpg");
  d.file("b/notes.txt");
  auto files = edan::list_files(d.path.string(), edan::is_image_file);
  EXPECT_EQ(files, (std::vector<std::string>{"a.jpg", "b/10.png", "b/2.png"}));
}

TEST(Dataset_ListFiles, missingDirectoryIsFatalAndNamed) {
  try {
    edan::list_files("/nonexistent/edan-dir", edan::is_image_file);
    FAIL() << "no exception";
  } catch (const edan::FatalError& e) {
    EXPECT_TRUE(contains(e.what(), "/nonexistent/edan-dir")) << e.what();
  }
}

// --- folders and file names --------------------------------------------------------

TEST(Dataset_CanonicalSplit, aliasesAnyCase) {
  EXPECT_EQ(edan::canonical_split("train"), "train");
  EXPECT_EQ(edan::canonical_split("Training"), "train");
  EXPECT_EQ(edan::canonical_split("TEST"), "test");
  EXPECT_EQ(edan::canonical_split("PrivateTest"), "test");
  EXPECT_EQ(edan::canonical_split("PublicTest"), "val");
  EXPECT_EQ(edan::canonical_split("validation"), "val");
  EXPECT_EQ(edan::canonical_split("val"), "val");
  EXPECT_FALSE(edan::canonical_split("trainset"));
  EXPECT_FALSE(edan::canonical_split(""));
}

TEST(Dataset_ParseFolderLabel, classFromParentSplitFromGrandparent) {
  auto f = edan::parse_folder_label("data/fer2013/train/angry/Training_1.jpg");
  EXPECT_EQ(f.label, "anger");
  EXPECT_EQ(f.split, "train");
  f = edan::parse_folder_label("ckplus48/sadness/S005_001_00000010.png");
  EXPECT_EQ(f.label, "sad");
  EXPECT_FALSE(f.split);
  f = edan::parse_folder_label("x/PublicTest/Happy/1.png");
  EXPECT_EQ(f.label, "happy");
  EXPECT_EQ(f.split, "val");
  f = edan::parse_folder_label("./sad/1.png");
  EXPECT_EQ(f.label, "sad");
}

TEST(Dataset_ParseFolderLabel, unknownClassNamesTheFolder) {
  EXPECT_TRUE(
      contains(record_error([] { edan::parse_folder_label("d/train/smirk/1.jpg"); }), "'smirk'"));
  EXPECT_NE(record_error([] { edan::parse_folder_label("1.jpg"); }), "");
  EXPECT_NE(record_error([] { edan::parse_folder_label(""); }), "");
}

TEST(Dataset_ParseJaffeName, subjectAndLabel) {
  auto j = edan::parse_jaffe_name("KA.HA1.29.tiff");
  EXPECT_EQ(j.subject, "KA");
  EXPECT_EQ(j.label, "happy");
  EXPECT_EQ(edan::parse_jaffe_name("NA.ne2.203.tif").label, "neutral");
  EXPECT_EQ(edan::parse_jaffe_name("KM.SU3.14.tiff").label, "surprise");
  EXPECT_EQ(edan::parse_jaffe_name("YM.FE1.65.tiff").label, "fear");
  EXPECT_EQ(edan::parse_jaffe_name("TM.DI2.194.tiff").label, "disgust");
  EXPECT_EQ(edan::parse_jaffe_name("UY.AN1.146.tiff").label, "anger");
  EXPECT_EQ(edan::parse_jaffe_name("MK.SA1.119.tiff").label, "sad");
}

TEST(Dataset_ParseJaffeName, malformedNamesThrow) {
  for (const char* bad :
       {"", "KA.HA1.tiff", "KA.HA1.29.30.tiff", "K1.HA1.29.tiff", "KA.H1.29.tiff",
        "KA.HAP1.29.tiff", "KA.HAx.29.tiff", "KA.HA1.2x.tiff", ".HA1.29.tiff", "KA..29.tiff"})
    EXPECT_NE(record_error([&] { edan::parse_jaffe_name(bad); }), "") << bad;
  EXPECT_TRUE(contains(record_error([] { edan::parse_jaffe_name("KA.CO1.29.tiff"); }), "'CO'"));
}

TEST(Dataset_ParseCkplusName, subjectSequenceFrame) {
  auto c = edan::parse_ckplus_name("S005_001_00000010.png");
  EXPECT_EQ(c.subject, "S005");
  EXPECT_EQ(c.sequence, "001");
  EXPECT_EQ(c.frame, 10);
  EXPECT_EQ(edan::parse_ckplus_name("s138_008_00000009").subject, "S138");
}

TEST(Dataset_ParseCkplusName, malformedNamesThrow) {
  for (const char* bad : {"", "S005_001.png", "S005_001_0001_2.png", "X005_001_00000010.png",
                          "S_001_00000010.png", "S005_0a1_00000010.png", "S005_001_.png",
                          "S005_001_-1.png", "S005_001_99999999999999999999999.png"})
    EXPECT_NE(record_error([&] { edan::parse_ckplus_name(bad); }), "") << bad;
}

// --- 300-W .pts ------------------------------------------------------------------

TEST(Dataset_ParsePts, pointsAsWritten) {
  auto s = edan::parse_pts(pts_text(68, 68));
  ASSERT_EQ(s.size(), 68u);
  EXPECT_DOUBLE_EQ(s[0].x, 1.5);
  EXPECT_DOUBLE_EQ(s[0].y, 1);
  EXPECT_DOUBLE_EQ(s[67].x, 68.5);
  EXPECT_DOUBLE_EQ(s[67].y, 135);
  auto crlf = edan::parse_pts(pts_text(68, 68, "\r\n") + "\n\n");
  EXPECT_DOUBLE_EQ(crlf[67].y, 135);
  auto small = edan::parse_pts("version: 1\nn_points: 2\n{\n1 2\n\t3.5\t-4e1  \n}", 2);
  ASSERT_EQ(small.size(), 2u);
  EXPECT_DOUBLE_EQ(small[1].x, 3.5);
  EXPECT_DOUBLE_EQ(small[1].y, -40);
}

TEST(Dataset_PtsToPixelCentres, subtractsTheBase) {
  edan::Shape s{{1, 1}, {256, 10.5}};
  auto c = edan::pts_to_pixel_centres(s, 1);
  EXPECT_DOUBLE_EQ(c[0].x, 0);
  EXPECT_DOUBLE_EQ(c[0].y, 0);
  EXPECT_DOUBLE_EQ(c[1].x, 255);
  EXPECT_DOUBLE_EQ(c[1].y, 9.5);
  EXPECT_DOUBLE_EQ(edan::pts_to_pixel_centres(s, 0)[1].x, 256);
}

TEST(Dataset_ReadPtsFile, pixelCentresAndTheFileNamedOnError) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("edan_pts_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string good = (dir / "a.pts").string(), bad = (dir / "b.pts").string();
  {
    std::ofstream f(good);
    f << "version: 1\nn_points: 2\n{\n1 1\n10.5 20\n}\n";
    std::ofstream g(bad);
    g << "version: 1\nn_points: 2\n{\n1 1\n}\n";
  }
  EXPECT_THROW(edan::read_pts_file(good), edan::RecordError);  // 2 points, not 68
  std::string text = "version: 1\nn_points: 68\n{\n";
  for (int i = 0; i < 68; ++i) text += std::to_string(i + 1) + " 2.5\n";
  {
    std::ofstream f(good);
    f << text << "}\n";
  }
  auto s = edan::read_pts_file(good);
  ASSERT_EQ(s.size(), 68u);
  EXPECT_DOUBLE_EQ(s[0].x, 0);
  EXPECT_DOUBLE_EQ(s[67].x, 67);
  EXPECT_DOUBLE_EQ(s[3].y, 1.5);
  try {
    edan::read_pts_file(bad);
    ADD_FAILURE() << "no error";
  } catch (const edan::RecordError& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
  EXPECT_THROW(edan::read_pts_file((dir / "missing.pts").string()), edan::RecordError);
  std::filesystem::remove_all(dir);
}

TEST(Dataset_ParsePts, malformedFilesSayWhatIsWrong) {
  auto err = [](const std::string& text) { return record_error([&] { edan::parse_pts(text); }); };
  EXPECT_TRUE(contains(err(pts_text(68, 67)), "found 67 points")) << err(pts_text(68, 67));
  EXPECT_TRUE(contains(err(pts_text(68, 69)), "found 69 points"));
  EXPECT_TRUE(contains(err(pts_text(5, 5)), "n_points is 5"));
  EXPECT_TRUE(contains(err(""), "empty"));
  EXPECT_TRUE(contains(err("just garbage\n"), "line 1"));
  EXPECT_TRUE(contains(err("version: 1\n{\n1 2\n}\n"), "n_points"));
  EXPECT_TRUE(contains(err("version: 1\nn_points: x\n{\n}\n"), "bad n_points"));
  EXPECT_TRUE(contains(err("version: 1\nn_points: 68\n"), "'{'"));
  std::string no_close = pts_text(68, 68);
  no_close.resize(no_close.rfind('}'));
  EXPECT_TRUE(contains(err(no_close), "'}'"));
  std::string nan = pts_text(68, 68);
  nan.replace(nan.find("2.5 3"), 5, "nan 3");
  EXPECT_TRUE(contains(err(nan), "line 5")) << err(nan);
  std::string inf = pts_text(68, 68);
  inf.replace(inf.find("2.5 3"), 5, "2.5 inf");
  EXPECT_NE(err(inf), "");
  std::string three = pts_text(68, 68);
  three.replace(three.find("2.5 3"), 5, "2.5 3 7");
  EXPECT_NE(err(three), "");
  std::string one = pts_text(68, 68);
  one.replace(one.find("2.5 3"), 5, "2.5");
  EXPECT_NE(err(one), "");
  EXPECT_TRUE(contains(err(pts_text(68, 68) + "extra\n"), "after '}'"));
  static const char kBinary[] = "version: 1\nn_points: 68\n{\n\x01\xff\x00 2\n}";
  std::string binary(kBinary, sizeof kBinary - 1);
  EXPECT_NE(err(binary), "");
}

// --- CSV -----------------------------------------------------------------------------

TEST(Dataset_ParseCsvRecord, plainQuotedAndEmptyFields) {
  EXPECT_EQ(edan::parse_csv_record("a,b,c"), (Fields{"a", "b", "c"}));
  EXPECT_EQ(edan::parse_csv_record("a,,c,"), (Fields{"a", "", "c", ""}));
  EXPECT_EQ(edan::parse_csv_record(""), (Fields{""}));
  EXPECT_EQ(edan::parse_csv_record("x\r"), (Fields{"x"}));
  EXPECT_EQ(edan::parse_csv_record(R"("a,b","say ""hi""",c)"), (Fields{"a,b", R"(say "hi")", "c"}));
  EXPECT_EQ(edan::parse_csv_record("\"line1\nline2\",\"\""), (Fields{"line1\nline2", ""}));
}

TEST(Dataset_ParseCsvRecord, malformedQuotingThrows) {
  EXPECT_TRUE(contains(record_error([] { edan::parse_csv_record("a,\"b,c"); }), "never closed"));
  EXPECT_TRUE(contains(record_error([] { edan::parse_csv_record("\"a\"b,c"); }),
                       "after the closing quote"));
  EXPECT_TRUE(contains(record_error([] { edan::parse_csv_record("a,b\"c\""); }), "field 2"));
  EXPECT_NE(record_error([] { edan::parse_csv_record("\""); }), "");
}

TEST(Dataset_CsvReader, joinsQuotedNewlinesAndCountsLines) {
  std::istringstream in("h1,h2\n\n\"a\nb\",1\nc,2\r\n\"open\n");
  edan::CsvReader reader(in);
  std::string text;
  ASSERT_TRUE(reader.next(text));
  EXPECT_EQ(text, "h1,h2");
  EXPECT_EQ(reader.line_no(), 1u);
  ASSERT_TRUE(reader.next(text));
  EXPECT_EQ(text, "\"a\nb\",1");
  EXPECT_EQ(reader.line_no(), 3u);
  ASSERT_TRUE(reader.next(text));
  EXPECT_EQ(edan::parse_csv_record(text), (Fields{"c", "2"}));
  EXPECT_EQ(reader.line_no(), 5u);
  ASSERT_TRUE(reader.next(text));  // unclosed at end of input: handed to the parser
  EXPECT_EQ(reader.line_no(), 6u);
  EXPECT_NE(record_error([&] { edan::parse_csv_record(text); }), "");
  EXPECT_FALSE(reader.next(text));
}

TEST(Dataset_CsvReader, boundsAnUnclosedQuote) {
  std::istringstream in("\"a\nbbbbbbbbbb\ncc\nd,e\n");
  edan::CsvReader reader(in, /*max_record_bytes=*/8);
  std::string text;
  ASSERT_TRUE(reader.next(text));
  // The record ends at the limit; its last physical line is kept only up to
  // max_record_bytes + 1 bytes (memory stays bounded).
  EXPECT_EQ(text, "\"a\nbbbbbbbbb");
  EXPECT_NE(record_error([&] { edan::parse_csv_record(text); }), "");
  ASSERT_TRUE(reader.next(text));
  EXPECT_EQ(text, "cc");
  EXPECT_EQ(reader.line_no(), 3u);
  ASSERT_TRUE(reader.next(text));
  EXPECT_EQ(text, "d,e");
  EXPECT_FALSE(reader.next(text));
}

TEST(Dataset_CsvColumns, findsNamesAnyCase) {
  CsvColumns cols(Fields{"emotion", " pixels ", "Usage"});
  EXPECT_EQ(cols.find("usage"), 2u);
  EXPECT_EQ(cols.find("PIXELS"), 1u);
  EXPECT_FALSE(cols.find("valence"));
  EXPECT_EQ(cols.require("emotion"), 0u);
  EXPECT_THROW(cols.require("arousal"), edan::FatalError);
}

// --- FER2013 rows ------------------------------------------------------------------------

TEST(Dataset_ParseFer2013Row, labelSplitAndPixels) {
  CsvColumns cols(Fields{"emotion", "pixels", "Usage"});
  auto row = edan::parse_fer2013_row({"0", pixels_text(2304), "Training"}, cols);
  EXPECT_EQ(row.label, "anger");
  EXPECT_EQ(row.split, "train");
  ASSERT_EQ(row.pixels.size(), 2304u);
  EXPECT_EQ(row.pixels[0], 0);
  EXPECT_EQ(row.pixels[255], 255);
  EXPECT_EQ(row.pixels[256], 0);
  EXPECT_EQ(row.pixels[2303], 2303 % 256);
  EXPECT_EQ(edan::parse_fer2013_row({"4", pixels_text(2304), "PublicTest"}, cols).split, "val");
  auto last = edan::parse_fer2013_row({"6", " " + pixels_text(2304) + " ", "PrivateTest"}, cols);
  EXPECT_EQ(last.label, "neutral");
  EXPECT_EQ(last.split, "test");
  CsvColumns no_usage(Fields{"pixels", "emotion"});
  auto r = edan::parse_fer2013_row({pixels_text(2304), "5"}, no_usage);
  EXPECT_EQ(r.label, "surprise");
  EXPECT_FALSE(r.split);
}

TEST(Dataset_ParseFer2013Row, malformedRowsThrow) {
  CsvColumns cols(Fields{"emotion", "pixels", "Usage"});
  auto err = [&](Fields f) { return record_error([&] { edan::parse_fer2013_row(f, cols); }); };
  const std::string px = pixels_text(2304);
  EXPECT_TRUE(contains(err({"7", px, "Training"}), "'7'"));
  EXPECT_NE(err({"-1", px, "Training"}), "");
  EXPECT_NE(err({"", px, "Training"}), "");
  EXPECT_NE(err({"1.0", px, "Training"}), "");
  EXPECT_TRUE(contains(err({"0", px, "Holdout"}), "Usage"));
  EXPECT_TRUE(contains(err({"0", pixels_text(2303), "Training"}), "2303 pixels"));
  EXPECT_TRUE(contains(err({"0", pixels_text(2305), "Training"}), "more than 2304"));
  EXPECT_TRUE(contains(err({"0", "", "Training"}), "0 pixels"));
  EXPECT_TRUE(contains(err({"0", "256 " + pixels_text(2303), "Training"}), "outside 0..255"));
  EXPECT_NE(err({"0", "-1 " + pixels_text(2303), "Training"}), "");
  EXPECT_NE(err({"0", "1x " + pixels_text(2303), "Training"}), "");
  EXPECT_NE(err({"0", "1,2 " + pixels_text(2303), "Training"}), "");
  EXPECT_TRUE(contains(err({"0", px}), "Usage"));
  EXPECT_NE(err({}), "");
}

// --- AffectNet rows ---------------------------------------------------------------------------

namespace {
const Fields kAffectnetHeader{
    "subDirectory_filePath", "face_x",     "face_y",  "face_width", "face_height",
    "facial_landmarks",      "expression", "valence", "arousal"};
}

TEST(Dataset_ParseAffectnetRow, boxLandmarksExpression) {
  CsvColumns cols(kAffectnetHeader);
  auto a = edan::parse_affectnet_row(
      {"689/a.jpg", "10", "20", "100", "110.5", landmarks_text(136), "1", "0.5", "-0.25"}, cols);
  EXPECT_EQ(a.path, "689/a.jpg");
  EXPECT_DOUBLE_EQ(a.box[0], 10);
  EXPECT_DOUBLE_EQ(a.box[3], 110.5);
  ASSERT_TRUE(a.landmarks);
  ASSERT_EQ(a.landmarks->size(), 68u);
  EXPECT_DOUBLE_EQ((*a.landmarks)[0].x, 0.25);
  EXPECT_DOUBLE_EQ((*a.landmarks)[0].y, 1.25);
  EXPECT_DOUBLE_EQ((*a.landmarks)[67].x, 134.25);
  EXPECT_DOUBLE_EQ((*a.landmarks)[67].y, 135.25);
  EXPECT_EQ(a.expression, 1);
  EXPECT_EQ(a.valence, 0.5);
  EXPECT_EQ(a.arousal, -0.25);
  auto trailing = edan::parse_affectnet_row(
      {"c.jpg", "0", "0", "5", "5", landmarks_text(136) + ";", "2"}, cols);
  ASSERT_TRUE(trailing.landmarks);
  EXPECT_DOUBLE_EQ((*trailing.landmarks)[67].y, 135.25);
  EXPECT_FALSE(trailing.valence);
  auto no_marks = edan::parse_affectnet_row({"b.jpg", "0", "0", "5", "5", "", "10", "", ""}, cols);
  EXPECT_FALSE(no_marks.landmarks);
  EXPECT_EQ(no_marks.expression, 10);
  EXPECT_FALSE(no_marks.valence);
}

TEST(Dataset_ParseAffectnetRow, malformedRowsThrow) {
  CsvColumns cols(kAffectnetHeader);
  const std::string lm = landmarks_text(136);
  auto err = [&](Fields f) { return record_error([&] { edan::parse_affectnet_row(f, cols); }); };
  EXPECT_TRUE(contains(err({"", "1", "1", "5", "5", lm, "1"}), "subDirectory_filePath"));
  EXPECT_TRUE(contains(err({"a", "x", "1", "5", "5", lm, "1"}), "face_x"));
  EXPECT_TRUE(contains(err({"a", "-1", "1", "5", "5", lm, "1"}), "face_x"));
  EXPECT_TRUE(contains(err({"a", "1", "1", "0", "5", lm, "1"}), "no area"));
  EXPECT_TRUE(contains(err({"a", "1", "1", "5", "5", landmarks_text(135), "1"}), "135 numbers"));
  EXPECT_TRUE(contains(err({"a", "1", "1", "5", "5", lm + ";1", "1"}), "137 numbers"));
  EXPECT_TRUE(
      contains(err({"a", "1", "1", "5", "5", "nan;" + landmarks_text(135), "1"}), "value 1"));
  EXPECT_TRUE(contains(err({"a", "1", "1", "5", "5", "1;;2", "1"}), "value 2"));
  EXPECT_TRUE(contains(err({"a", "1", "1", "5", "5", lm, "11"}), "'11'"));
  EXPECT_NE(err({"a", "1", "1", "5", "5", lm, "1.5"}), "");
  EXPECT_NE(err({"a", "1", "1", "5", "5", lm, ""}), "");
  EXPECT_TRUE(contains(err({"a", "1", "1", "5", "5", lm, "1", "high"}), "valence"));
  EXPECT_TRUE(contains(err({"a", "1", "1", "5", "5"}), "facial_landmarks"));
}

TEST(Dataset_AffectnetLabel, codesAndNonEmotions) {
  const char* expected[] = {"neutral", "happy",   "sad",   "surprise",
                            "fear",    "disgust", "anger", "contempt"};
  for (int code = 0; code < 8; ++code) EXPECT_EQ(edan::affectnet_label(code), expected[code]);
  EXPECT_TRUE(contains(record_error([] { edan::affectnet_label(8); }), "None"));
  EXPECT_TRUE(contains(record_error([] { edan::affectnet_label(9); }), "Uncertain"));
  EXPECT_TRUE(contains(record_error([] { edan::affectnet_label(10); }), "No-Face"));
  EXPECT_NE(record_error([] { edan::affectnet_label(11); }), "");
  EXPECT_NE(record_error([] { edan::affectnet_label(-1); }), "");
}

// --- index_dataset ---------------------------------------------------------------------------

TEST(Dataset_IndexDataset, foldersSortedWithErrorRecords) {
  TempDir d("folders");
  d.file("ds/train/happy/b.jpg");
  d.file("ds/train/happy/a.PNG");
  d.file("ds/test/smirk/c.jpg");
  d.file("ds/train/happy/notes.txt");
  edan::IndexOptions opt;
  opt.roots = {(d.path / "ds").string()};
  auto recs = run_index(opt);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_TRUE(contains(str(recs[0], "error"), "'smirk'"));
  EXPECT_EQ(str(recs[1], "image"), (d.path / "ds/train/happy/a.PNG").string());
  EXPECT_EQ(str(recs[1], "label"), "happy");
  EXPECT_EQ(str(recs[1], "split"), "train");
  EXPECT_EQ(str(recs[1], "dataset"), "ds");
  EXPECT_EQ(str(recs[2], "image"), (d.path / "ds/train/happy/b.jpg").string());
  opt.dataset = "mine";
  EXPECT_EQ(str(run_index(opt)[1], "dataset"), "mine");
}

TEST(Dataset_IndexDataset, badRootAndOptions) {
  edan::IndexOptions opt;
  opt.roots = {"/nonexistent/edan"};
  EXPECT_THROW(run_index(opt), edan::FatalError);
  opt.layout = "fer2013-csv";
  EXPECT_THROW(run_index(opt), edan::UsageError);  // no --out-dir
  opt.out = "/tmp";
  EXPECT_THROW(run_index(opt), edan::FatalError);
  opt.layout = "nope";
  EXPECT_THROW(run_index(opt), edan::UsageError);
}

TEST(Dataset_IndexDataset, fer2013CsvWritesExactPixels) {
  TempDir d("fer");
  std::string csv = d.file("fer2013.csv", "emotion,pixels,Usage\n3," + pixels_text(2304, 200) +
                                              ",PrivateTest\n9,1 2,Training\n");
  edan::IndexOptions opt;
  opt.layout = "fer2013-csv";
  opt.out = (d.path / "png").string();
  opt.roots = {csv};
  auto recs = run_index(opt);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(str(recs[0], "image"), opt.out + "/test/happy/fer2013-00000.png");
  EXPECT_EQ(str(recs[0], "label"), "happy");
  EXPECT_EQ(str(recs[0], "split"), "test");
  cv::Mat img = cv::imread(str(recs[0], "image"), cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(img.empty());
  ASSERT_EQ(img.type(), CV_8U);
  ASSERT_EQ(img.rows, 48);
  ASSERT_EQ(img.cols, 48);
  EXPECT_EQ(img.at<std::uint8_t>(0, 0), 0);
  EXPECT_EQ(img.at<std::uint8_t>(1, 0), 48);
  EXPECT_EQ(img.at<std::uint8_t>(47, 47), 2303 % 200);
  EXPECT_TRUE(contains(str(recs[1], "error"), "fer2013.csv:3:")) << str(recs[1], "error");
}

TEST(Dataset_IndexDataset, affectnetRowsAndNonEmotionCodes) {
  TempDir d("affectnet");
  std::string header =
      "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,"
      "valence,arousal\n";
  d.file("training.csv", header + "1/a.jpg,1,2,30,40," + landmarks_text(136) +
                             ",6,0.1,0.2\n1/b.jpg,1,2,30,40,,9,-2,-2\n");
  edan::IndexOptions opt;
  opt.layout = "affectnet-csv";
  opt.roots = {d.path.string()};
  opt.images = "imgs";
  auto recs = run_index(opt);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(str(recs[0], "image"), "imgs/1/a.jpg");
  EXPECT_EQ(str(recs[0], "label"), "anger");
  EXPECT_EQ(str(recs[0], "split"), "train");
  EXPECT_EQ(edan::to_line(edan::Record{{"box", recs[0].at("box")}}), R"({"box":[1,2,30,40]})");
  EXPECT_EQ(recs[0].at("landmarks").as_array().size(), 68u);
  EXPECT_EQ(str(recs[1], "image"), "imgs/1/b.jpg");
  EXPECT_TRUE(contains(str(recs[1], "error"), "training.csv:3: expression 9 (Uncertain)"))
      << str(recs[1], "error");
}

TEST(Dataset_IndexDataset, threeHundredWLandmarksAndErrors) {
  TempDir d("300w");
  d.file("helen/testset/a.jpg");
  d.file("helen/testset/a.pts", pts_text(68, 68));
  d.file("helen/testset/b.jpg");
  d.file("helen/testset/c.jpg");
  d.file("helen/testset/c.pts", pts_text(68, 60));
  edan::IndexOptions opt;
  opt.layout = "300w";
  opt.roots = {(d.path / "helen/testset").string()};
  auto recs = run_index(opt);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(str(recs[0], "dataset"), "helen");
  EXPECT_EQ(str(recs[0], "split"), "test");
  auto shape = edan::get_shape(recs[0], "landmarks");
  ASSERT_TRUE(shape);
  EXPECT_DOUBLE_EQ((*shape)[0].x, 0.5);  // 1.5 in the file, 1-based
  EXPECT_DOUBLE_EQ((*shape)[0].y, 0);
  EXPECT_TRUE(contains(str(recs[1], "error"), "b.pts")) << str(recs[1], "error");
  EXPECT_TRUE(contains(str(recs[2], "error"), "found 60 points")) << str(recs[2], "error");
}

TEST(Dataset_CsvReader, dropsAnOverlongLineWithBoundedMemory) {
  // The first line is 20 bytes, over the 8-byte limit: dropped (too_long),
  // never held whole; the next line is read as usual.
  std::istringstream in(std::string(20, 'x') + "\n\"a\",b\n");
  edan::CsvReader reader(in, /*max_record_bytes=*/8);
  std::string text;
  ASSERT_TRUE(reader.next(text));
  EXPECT_TRUE(reader.too_long());
  EXPECT_EQ(text, "");
  EXPECT_EQ(reader.line_no(), 1u);
  ASSERT_TRUE(reader.next(text));
  EXPECT_FALSE(reader.too_long());
  EXPECT_EQ(text, "\"a\",b");
  EXPECT_EQ(reader.line_no(), 2u);
  EXPECT_FALSE(reader.next(text));
}

// --- FER+ -----------------------------------------------------------------------

namespace {
std::array<int, edan::kFerplusCategories> votes(std::initializer_list<int> v) {
  std::array<int, edan::kFerplusCategories> a{};
  std::copy(v.begin(), v.end(), a.begin());
  return a;
}
}  // namespace

TEST(Dataset_ParseFerplusRow, nameBoxAndTenCounts) {
  // The first line of FER2013Train/label.csv, with its trailing comma.
  auto row = edan::parse_ferplus_row(
      edan::parse_csv_record("fer0000000.png,\"(0, 0, 48, 48)\",4,0,0,1,3,2,0,0,0,0,"));
  EXPECT_EQ(row.name, "fer0000000.png");
  EXPECT_EQ(row.votes, votes({4, 0, 0, 1, 3, 2, 0, 0, 0, 0}));
  // Without the trailing comma too.
  EXPECT_EQ(edan::parse_ferplus_row(edan::parse_csv_record("a.png,box,0,0,0,0,0,0,0,0,0,10")).votes,
            votes({0, 0, 0, 0, 0, 0, 0, 0, 0, 10}));
  using R = std::vector<std::string>;
  EXPECT_THROW(edan::parse_ferplus_row(R{"a.png", "box", "1", "2"}), edan::RecordError);
  EXPECT_THROW(edan::parse_ferplus_row(edan::parse_csv_record("a.png,box,1,0,0,0,0,0,0,0,0,x")),
               edan::RecordError);
  EXPECT_THROW(edan::parse_ferplus_row(edan::parse_csv_record("a.png,box,11,0,0,0,0,0,0,0,0,0")),
               edan::RecordError);
  EXPECT_THROW(edan::parse_ferplus_row(edan::parse_csv_record("a.png,box,0,0,0,0,0,0,0,0,0,0")),
               edan::RecordError);
  EXPECT_THROW(edan::parse_ferplus_row(edan::parse_csv_record(",box,1,0,0,0,0,0,0,0,0,0")),
               edan::RecordError);
}

TEST(Dataset_FerplusMajority, strictPluralityOfAnEmotion) {
  EXPECT_EQ(edan::ferplus_majority(votes({4, 0, 0, 1, 3, 2, 0, 0, 0, 0})), "neutral");
  EXPECT_EQ(edan::ferplus_majority(votes({0, 0, 0, 0, 0, 0, 0, 3, 2, 0})), "contempt");
  EXPECT_EQ(edan::ferplus_majority(votes({0, 1, 6, 0, 0, 0, 3, 0, 0, 0})), "surprise");
  EXPECT_FALSE(edan::ferplus_majority(votes({4, 4, 0, 0, 0, 0, 0, 0, 2, 0})));  // a tie
  EXPECT_FALSE(edan::ferplus_majority(votes({2, 0, 0, 0, 0, 0, 0, 0, 6, 2})));  // unknown
  EXPECT_FALSE(edan::ferplus_majority(votes({1, 0, 0, 0, 0, 0, 0, 0, 0, 9})));  // not a face
  // A tie with unknown keeps the emotion.
  EXPECT_EQ(edan::ferplus_majority(votes({4, 0, 0, 0, 2, 0, 0, 0, 4, 0})), "neutral");
}

TEST(Dataset_FerplusTarget, votesWithoutSingletonsNormalised) {
  // 4 neutral, 1 sad (dropped as an outlier), 3 anger, 2 disgust: 4/9, 3/9, 2/9.
  auto t = edan::ferplus_target(votes({4, 0, 0, 1, 3, 2, 0, 0, 0, 0}));
  ASSERT_TRUE(t);
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[0].first, "neutral");
  EXPECT_DOUBLE_EQ((*t)[0].second, 4.0 / 9);
  EXPECT_EQ((*t)[1].first, "anger");
  EXPECT_DOUBLE_EQ((*t)[1].second, 3.0 / 9);
  EXPECT_EQ((*t)[2].first, "disgust");
  EXPECT_DOUBLE_EQ((*t)[2].second, 2.0 / 9);
  // A tie between emotions still has a target (and no majority label).
  auto tie = edan::ferplus_target(votes({4, 4, 0, 0, 0, 0, 0, 0, 2, 0}));
  ASSERT_TRUE(tie);
  EXPECT_DOUBLE_EQ((*tie)[0].second, 0.5);
  // unknown / not-a-face stronger than every emotion: none; as strong: kept.
  EXPECT_FALSE(edan::ferplus_target(votes({3, 0, 0, 0, 0, 0, 0, 0, 3, 4})));
  EXPECT_TRUE(edan::ferplus_target(votes({4, 0, 0, 0, 0, 0, 0, 0, 4, 2})));
  EXPECT_FALSE(edan::ferplus_target(votes({0, 0, 0, 0, 0, 0, 0, 0, 0, 10})));
  // Nothing but single votes: none.
  EXPECT_FALSE(edan::ferplus_target(votes({1, 1, 1, 1, 1, 1, 1, 1, 1, 1})));
}
