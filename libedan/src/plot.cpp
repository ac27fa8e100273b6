#include "edan/plot.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

#include "edan/error.hpp"
#include "edan/fs.hpp"
#include "edan/image.hpp"

namespace edan {

namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
const cv::Scalar kBlack(0, 0, 0), kWhite(255, 255, 255), kGrey(150, 150, 150),
    kLightGrey(225, 225, 225), kGridGrey(232, 232, 232);

cv::Size text_size(const std::string& s, double scale, int thick) {
  int base = 0;
  return cv::getTextSize(s, kFont, scale, thick, &base);
}

// Draws s with its anchor: ax = 0 left, 0.5 centre, 1 right; the text's
// vertical middle sits on y.
void put(cv::Mat& img, const std::string& s, cv::Point at, double scale, int thick,
         const cv::Scalar& colour, double ax = 0) {
  auto sz = text_size(s, scale, thick);
  cv::Point org(at.x - static_cast<int>(std::lround(ax * sz.width)), at.y + sz.height / 2);
  cv::putText(img, s, org, kFont, scale, colour, thick, cv::LINE_AA);
}

// Text turned 90 degrees counter-clockwise, centred on `centre`.
void put_vertical(cv::Mat& img, const std::string& s, cv::Point centre, double scale, int thick,
                  const cv::Scalar& colour) {
  auto sz = text_size(s, scale, thick);
  cv::Mat patch(sz.height + 10, sz.width + 4, img.type(), kWhite);
  cv::putText(patch, s, {2, sz.height + 3}, kFont, scale, colour, thick, cv::LINE_AA);
  cv::Mat turned;
  cv::rotate(patch, turned, cv::ROTATE_90_COUNTERCLOCKWISE);
  cv::Rect r(centre.x - turned.cols / 2, centre.y - turned.rows / 2, turned.cols, turned.rows);
  r &= cv::Rect(0, 0, img.cols, img.rows);
  turned(cv::Rect(0, 0, r.width, r.height)).copyTo(img(r));
}

// White -> mid blue -> dark blue (like matplotlib's "Blues"), f in [0, 1].
cv::Scalar blues(double f) {
  f = std::clamp(f, 0.0, 1.0);
  const cv::Vec3d lo(250, 245, 240), mid(214, 174, 107), hi(107, 48, 8);  // BGR
  cv::Vec3d c = f < 0.5 ? lo + (mid - lo) * (f / 0.5) : mid + (hi - mid) * ((f - 0.5) / 0.5);
  return cv::Scalar(c[0], c[1], c[2]);
}

std::string percent(double f, int digits = 1) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f%%", digits, 100 * f);
  return buf;
}

}  // namespace

cv::Mat draw_confusion_matrix(const ConfusionMatrix& cm, const std::string& title,
                              bool other_column) {
  const int k = cm.size();
  if (k == 0) throw std::invalid_argument("draw_confusion_matrix: no classes");
  other_column = other_column || cm.outside_total() > 0;
  const int cols = k + (other_column ? 1 : 0);
  const int cw = 104, ch = 64;
  const double label_scale = 0.55;

  std::vector<std::string> col_names(cm.labels());
  if (other_column) col_names.push_back("other");
  int row_label_w = 0;
  for (const auto& l : cm.labels())
    row_label_w = std::max(row_label_w, text_size(l, label_scale, 1).width);

  const int axis_w = 40;  // the rotated "truth" title
  const int top = 110;
  const int right = 100;  // support column
  const int bottom = 80;  // colour bar
  const int grid_w = cols * cw, grid_h = k * ch;
  const int body_w = axis_w + row_label_w + 16 + grid_w + right;
  auto title_sz = text_size(title, 0.7, 2);
  const int width = std::max(body_w, title_sz.width + 60);
  const int height = top + grid_h + bottom;
  // A title wider than the matrix widens the figure; the matrix stays centred.
  const int shift = (width - body_w) / 2;
  const int left = shift + axis_w + row_label_w + 16;
  cv::Mat img(height, width, CV_8UC3, kWhite);

  put(img, title, {width / 2, 28}, 0.7, 2, kBlack, 0.5);
  put(img, "predicted", {left + grid_w / 2, 62}, 0.6, 1, kBlack, 0.5);
  put_vertical(img, "truth", {shift + axis_w / 2 + 4, top + grid_h / 2}, 0.6, 1, kBlack);
  for (int p = 0; p < cols; ++p)
    put(img, col_names[std::size_t(p)], {left + p * cw + cw / 2, top - 18}, label_scale, 1, kBlack,
        0.5);
  put(img, "support", {left + grid_w + right / 2, top - 18}, label_scale, 1, kGrey, 0.5);

  for (int t = 0; t < k; ++t) {
    const int y = top + t * ch;
    put(img, cm.labels()[std::size_t(t)], {left - 10, y + ch / 2}, label_scale, 1, kBlack, 1);
    const std::size_t support = cm.support(t);
    put(img, "n=" + std::to_string(support), {left + grid_w + right / 2, y + ch / 2}, 0.5, 1, kGrey,
        0.5);
    for (int c = 0; c < cols; ++c) {
      const int p = c < k ? c : kOutside;
      cv::Rect cell(left + c * cw, y, cw, ch);
      if (support == 0) {
        cv::rectangle(img, cell, kLightGrey, cv::FILLED);
        put(img, "-", {cell.x + cw / 2, y + ch / 2}, 0.6, 1, kGrey, 0.5);
        continue;
      }
      const double f = cm.row_fraction(t, p);
      cv::rectangle(img, cell, blues(f), cv::FILLED);
      if (cm.count(t, p) == 0) {  // faint, so that the cells that matter stand out
        put(img, "0", {cell.x + cw / 2, y + ch / 2}, 0.55, 1, kGrey, 0.5);
        continue;
      }
      const cv::Scalar ink = f > 0.55 ? kWhite : kBlack;
      put(img, std::to_string(cm.count(t, p)), {cell.x + cw / 2, y + ch / 2 - 11}, 0.6, 2, ink,
          0.5);
      put(img, percent(f), {cell.x + cw / 2, y + ch / 2 + 13}, 0.45, 1, ink, 0.5);
    }
  }
  // Cell borders, then the diagonal outlined on top.
  for (int t = 0; t <= k; ++t)
    cv::line(img, {left, top + t * ch}, {left + grid_w, top + t * ch}, kGrey, 1);
  for (int c = 0; c <= cols; ++c)
    cv::line(img, {left + c * cw, top}, {left + c * cw, top + grid_h}, kGrey, 1);
  for (int t = 0; t < k; ++t)
    cv::rectangle(img, cv::Rect(left + t * cw + 1, top + t * ch + 1, cw - 2, ch - 2),
                  cv::Scalar(0, 140, 255), 2);

  // Colour bar: what the shades mean.
  const int bar_y = top + grid_h + 30, bar_w = std::min(grid_w, 400), bar_x = left;
  for (int i = 0; i < bar_w; ++i)
    cv::line(img, {bar_x + i, bar_y}, {bar_x + i, bar_y + 14}, blues(double(i) / (bar_w - 1)), 1);
  cv::rectangle(img, cv::Rect(bar_x, bar_y, bar_w, 15), kGrey, 1);
  put(img, "0%", {bar_x, bar_y + 30}, 0.45, 1, kBlack, 0);
  put(img, "row %", {bar_x + bar_w / 2, bar_y + 30}, 0.45, 1, kBlack, 0.5);
  put(img, "100%", {bar_x + bar_w, bar_y + 30}, 0.45, 1, kBlack, 1);
  return img;
}

cv::Mat draw_error_curves(const std::vector<ErrorCurve>& curves, double max_error,
                          const std::string& title, const std::string& x_label) {
  if (!(max_error > 0)) throw std::invalid_argument("draw_error_curves: max_error must be > 0");
  const int width = 860, left = 90, right = 30, top = 60;
  const int bottom = 80 + 24 * static_cast<int>(curves.size()) + 10;
  const int height = top + 480 + bottom;
  const int pw = width - left - right, ph = height - top - bottom;
  cv::Mat img(height, width, CV_8UC3, kWhite);
  auto px = [&](double e) { return left + static_cast<int>(std::lround(e / max_error * pw)); };
  auto py = [&](double f) { return top + ph - static_cast<int>(std::lround(f * ph)); };

  put(img, title, {width / 2, 26}, 0.7, 2, kBlack, 0.5);
  // Grid and ticks.
  for (int i = 0; i <= 10; ++i) {
    double f = i / 10.0;
    cv::line(img, {left, py(f)}, {left + pw, py(f)}, kGridGrey, 1);
    cv::line(img, {left - 6, py(f)}, {left, py(f)}, kBlack, 1);
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.1f", f);
    put(img, buf, {left - 10, py(f)}, 0.45, 1, kBlack, 1);
  }
  for (int i = 0; i <= 8; ++i) {
    double e = max_error * i / 8.0;
    cv::line(img, {px(e), top}, {px(e), top + ph}, kGridGrey, 1);
    cv::line(img, {px(e), top + ph}, {px(e), top + ph + 6}, kBlack, 1);
    char buf[16];
    std::snprintf(buf, sizeof buf, max_error < 0.1 ? "%.3f" : "%.2f", e);
    put(img, buf, {px(e), top + ph + 18}, 0.45, 1, kBlack, 0.5);
  }
  cv::rectangle(img, cv::Rect(left, top, pw, ph), kBlack, 1);
  put(img, x_label, {left + pw / 2, top + ph + 44}, 0.6, 1, kBlack, 0.5);
  put_vertical(img, "fraction of faces with error <= x", {24, top + ph / 2}, 0.6, 1, kBlack);

  static const std::vector<cv::Scalar> palette{{180, 119, 31},  {14, 127, 255},  {44, 160, 44},
                                               {40, 39, 214},   {189, 103, 148}, {75, 86, 140},
                                               {194, 119, 227}, {34, 189, 188}};
  std::vector<std::string> legend;
  std::vector<cv::Scalar> colours;
  for (std::size_t c = 0; c < curves.size(); ++c) {
    const bool last = c + 1 == curves.size() && curves.size() > 1;
    const cv::Scalar colour = last ? kBlack : palette[c % palette.size()];
    auto errors = curves[c].errors;
    std::sort(errors.begin(), errors.end());
    std::string entry = curves[c].name + ": ";
    if (errors.empty()) {
      entry += "no data";
    } else {
      // The CED is a step function; sampling it at every pixel column draws
      // it exactly at this resolution.
      std::vector<cv::Point> pts;
      for (int x = 0; x <= pw; ++x) {
        double e = max_error * x / pw;
        auto below = std::upper_bound(errors.begin(), errors.end(), e) - errors.begin();
        pts.emplace_back(left + x, py(double(below) / double(errors.size())));
      }
      cv::polylines(img, pts, false, colour, last ? 3 : 2, cv::LINE_AA);
      entry += "n=" + std::to_string(errors.size()) + ", AUC " +
               percent(*ced_auc(errors, max_error)) + ", failure " +
               percent(*failure_rate(errors, max_error));
    }
    legend.push_back(entry);
    colours.push_back(colour);
  }
  // Legend below the axes, where it cannot hide a curve.
  for (std::size_t i = 0; i < legend.size(); ++i) {
    int y = top + ph + 76 + 24 * static_cast<int>(i);
    cv::line(img, {left + 8, y}, {left + 40, y}, colours[i], 3, cv::LINE_AA);
    put(img, legend[i], {left + 50, y}, 0.5, 1, kBlack, 0);
  }
  return img;
}

namespace {

std::string safe_name(const std::string& s) {
  std::string out;
  for (char c : s)
    out +=
        (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
  return out.empty() ? "_" : out;
}

std::string confusion_title(const Report& rep, const GroupSummary& g) {
  std::string t = g.name == "overall" && rep.groups.empty() ? std::string("Confusion matrix")
                                                            : "Confusion matrix: " + g.name;
  t += ", " + std::to_string(rep.labels.size()) + " classes (n=" + std::to_string(g.metrics.n);
  if (g.metrics.accuracy) t += ", accuracy " + percent(*g.metrics.accuracy);
  return t + ")";
}

}  // namespace

std::vector<std::string> write_report_plots(const Report& rep, const std::string& dir) {
  make_dirs(dir);
  std::vector<std::string> written;
  const bool other = rep.overall.confusion.outside_total() > 0;
  auto confusion = [&](const GroupSummary& g, const std::string& file) {
    if (g.confusion.size() == 0) return;
    std::string path = dir + "/" + file;
    write_png(path, draw_confusion_matrix(g.confusion, confusion_title(rep, g), other));
    written.push_back(path);
  };
  confusion(rep.overall, "confusion.png");
  for (const auto& g : rep.groups) confusion(g, "confusion-" + safe_name(g.name) + ".png");
  if (rep.overall.landmarks) {
    std::vector<ErrorCurve> curves;
    for (const auto& g : rep.groups) curves.push_back({g.name, g.landmarks->inter_ocular});
    curves.push_back({rep.groups.empty() ? "all" : "overall", rep.overall.landmarks->inter_ocular});
    std::string path = dir + "/ced.png";
    write_png(path, draw_error_curves(curves, rep.options.threshold,
                                      "Cumulative error distribution (landmarks)",
                                      "NME (normalised by inter-ocular distance)"));
    written.push_back(path);
  }
  return written;
}

}  // namespace edan
