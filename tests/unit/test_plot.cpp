#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <stdexcept>

#include "edan/image.hpp"
#include "edan/plot.hpp"

namespace {

edan::ConfusionMatrix matrix(std::vector<std::string> labels,
                             std::vector<std::pair<int, int>> pairs) {
  edan::ConfusionMatrix cm(std::move(labels));
  for (auto [t, p] : pairs) cm.add(t, p);
  return cm;
}

// Pixels of exactly this BGR colour.
int count_colour(const cv::Mat& img, cv::Vec3b c) {
  int n = 0;
  for (int y = 0; y < img.rows; ++y)
    for (int x = 0; x < img.cols; ++x) n += img.at<cv::Vec3b>(y, x) == c;
  return n;
}
// Pixels in the dark end of the heatmap's blues.
int count_dark_blue(const cv::Mat& img) {
  int n = 0;
  for (int y = 0; y < img.rows; ++y)
    for (int x = 0; x < img.cols; ++x) {
      auto p = img.at<cv::Vec3b>(y, x);
      n += p[0] > p[1] + 40 && p[2] < 30;
    }
  return n;
}

std::string temp_dir(const char* name) {
  auto d = std::filesystem::path(testing::TempDir()) / name;
  std::filesystem::remove_all(d);
  return d.string();
}

}  // namespace

TEST(Plot_Confusion, fullRowsAreDarkHalfRowsAreNot) {
  auto right = edan::draw_confusion_matrix(matrix({"a", "b"}, {{0, 0}, {1, 1}}), "t");
  auto half =
      edan::draw_confusion_matrix(matrix({"a", "b"}, {{0, 0}, {0, 1}, {1, 0}, {1, 1}}), "t");
  ASSERT_EQ(right.type(), CV_8UC3);
  EXPECT_EQ(right.size(), half.size());
  // Two cells of 104x64 at 100%, minus their text; the colour bar has a
  // little dark blue in both images.
  EXPECT_GT(count_dark_blue(right), count_dark_blue(half) + 8000);
}

TEST(Plot_Confusion, rowWithoutSupportIsGrey) {
  const cv::Vec3b grey(225, 225, 225);
  auto empty_row = edan::draw_confusion_matrix(matrix({"a", "b"}, {{0, 0}}), "t");
  auto full = edan::draw_confusion_matrix(matrix({"a", "b"}, {{0, 0}, {1, 1}}), "t");
  EXPECT_GT(count_colour(empty_row, grey), 2 * 100 * 60);
  // Only anti-aliased text edges can hit that grey by chance.
  EXPECT_LT(count_colour(full, grey), 200);
}

TEST(Plot_Confusion, otherColumnWidensTheFigure) {
  auto plain = edan::draw_confusion_matrix(matrix({"a", "b"}, {{0, 0}, {1, 1}}), "t");
  auto other = edan::draw_confusion_matrix(matrix({"a", "b"}, {{0, edan::kOutside}, {1, 1}}), "t");
  auto forced = edan::draw_confusion_matrix(matrix({"a", "b"}, {{0, 0}, {1, 1}}), "t", true);
  EXPECT_EQ(other.cols, plain.cols + 104);
  EXPECT_EQ(forced.cols, other.cols);
}

TEST(Plot_Confusion, longTitleWidensTheFigure) {
  auto cm = matrix({"a"}, {{0, 0}});
  auto short_title = edan::draw_confusion_matrix(cm, "t");
  auto long_title = edan::draw_confusion_matrix(cm, std::string(120, 'W'), false);
  EXPECT_GT(long_title.cols, short_title.cols);
  EXPECT_THROW(edan::draw_confusion_matrix(edan::ConfusionMatrix(std::vector<std::string>{}), "t"),
               std::invalid_argument);
}

TEST(Plot_Curves, drawsEachCurveInItsColour) {
  const cv::Vec3b first(180, 119, 31);  // the palette's first colour
  auto none = edan::draw_error_curves({{"empty", {}}}, 0.08, "t", "x");
  auto one =
      edan::draw_error_curves({{"g", {0.01, 0.02, 0.03, 0.05}}, {"all", {0.01}}}, 0.08, "t", "x");
  // Both have the legend swatch; only `one` has a curve (>= 740 px long).
  EXPECT_GT(count_colour(one, first), count_colour(none, first) + 1000);
  EXPECT_EQ(one.cols, 860);
  EXPECT_GT(one.rows, none.rows);  // one more legend line
  EXPECT_THROW(edan::draw_error_curves({}, 0.0, "t", "x"), std::invalid_argument);
}

TEST(Plot_Png, roundTrip) {
  auto dir = temp_dir("edan_plot_png");
  auto img = edan::draw_confusion_matrix(matrix({"a", "b"}, {{0, 1}, {1, 1}}), "t");
  edan::write_png(dir + "/cm.png", img);
  cv::Mat back = cv::imread(dir + "/cm.png", cv::IMREAD_COLOR);
  ASSERT_FALSE(back.empty());
  EXPECT_EQ(cv::norm(back, img, cv::NORM_INF), 0.0);
}

TEST(Plot_Report, writesOneConfusionPerGroupAndTheCurve) {
  edan::EvalOptions opt;
  opt.classes = "7";
  opt.group_by = "dataset";
  edan::Evaluator ev(opt);
  boost::json::array truth, guess;
  for (int i = 0; i < 68; ++i) {
    truth.push_back(boost::json::array{i, 0});
    guess.push_back(boost::json::array{i + 0.18, 0});
  }
  for (const char* ds : {"ck plus", "fer"}) {
    boost::json::object r;
    r["dataset"] = ds;
    r["label"] = "happy";
    r["landmarks"] = truth;
    r["pred"] = boost::json::object{{"label", "happy"}, {"landmarks", guess}};
    ev.add(r);
  }
  auto dir = temp_dir("edan_plot_report");
  auto files = edan::write_report_plots(ev.finish(), dir);
  std::vector<std::string> want{dir + "/confusion.png", dir + "/confusion-ck_plus.png",
                                dir + "/confusion-fer.png", dir + "/ced.png"};
  EXPECT_EQ(files, want);
  for (const auto& f : want) EXPECT_FALSE(cv::imread(f).empty()) << f;
}
