#pragma once
// Figures of an evaluation, drawn with OpenCV: the confusion-matrix heatmap
// and the cumulative error distribution (CED) curve of landmark errors.
// Images are 8-bit BGR; text is ASCII (OpenCV's Hershey fonts).
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "edan/eval.hpp"
#include "edan/metrics.hpp"

namespace edan {

// A heatmap of cm: rows = truth, columns = prediction (plus an "other"
// column for predictions outside the classes when other_column is true, or
// when the matrix has such predictions). Each cell is shaded by its row
// fraction (white 0 -> dark blue 1) and shows its count and row percentage
// (an empty cell shows only a faint 0);
// the diagonal is outlined; rows with no support are grey with "-". Class
// names label both axes, each row's support is written at its right end,
// and `title` heads the figure. Throws std::invalid_argument when cm has no
// classes.
cv::Mat draw_confusion_matrix(const ConfusionMatrix& cm, const std::string& title,
                              bool other_column = false);

// One curve of a CED plot: a name for the legend and its normalised errors.
struct ErrorCurve {
  std::string name;
  std::vector<double> errors;
};

// Cumulative error distribution curves: x = normalised error from 0 to
// max_error (ticks every max_error/8), y = fraction of faces with an error
// <= x (ticks every 0.1), with grid, axis labels, `title`, and a legend (below the axes)
// giving each curve's n, AUC@max_error and failure rate (in percent). Curves
// with no errors are listed in the legend as "no data". The last curve is
// drawn thicker (the overall one, when there are groups). Throws
// std::invalid_argument unless max_error > 0.
cv::Mat draw_error_curves(const std::vector<ErrorCurve>& curves, double max_error,
                          const std::string& title, const std::string& x_label);

// Writes the figures of a report into dir (created when missing):
//   confusion.png            the overall confusion matrix
//   confusion-<group>.png    one per group (when grouped)
//   ced.png                  the inter-ocular CED, one curve per group plus
//                            overall (only when the report has landmarks)
// Group names are made file-name safe (characters other than letters,
// digits, '.', '-', '_' become '_'). Returns the paths written, in that
// order. Throws FatalError on a write failure.
std::vector<std::string> write_report_plots(const Report& report, const std::string& dir);

}  // namespace edan
