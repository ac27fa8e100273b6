#pragma once
// Classification and landmark metrics, as the paper (EmotionalDAN) and DAN
// report them. Pure arithmetic over labels and error lists: no records, no
// OpenCV, no torch. edan/eval.hpp turns records into the inputs used here.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edan/labels.hpp"

namespace edan {

// --- label spaces ------------------------------------------------------------

// The classes an evaluation scores, in report order, and how a canonical
// label maps into them.
//  - with a class set (--classes 3|6|7|8): labels = class_names(set); a
//    label maps by edan::map_label (3-class: the design's grouping, surprise
//    dropped; 6/7/8: identity for members, nothing otherwise);
//  - without one: labels = the given list (e.g. the labels the predictions
//    use); a label maps to itself when it is in the list.
struct LabelSpace {
  std::vector<std::string> labels;
  std::optional<ClassSet> set;

  static LabelSpace of_set(ClassSet set);
  // Canonical labels in the canonical order (neutral happy sad surprise fear
  // disgust anger contempt negative positive); unknown names are dropped.
  static LabelSpace of_labels(const std::vector<std::string>& canonical);
  // The index of the class a canonical label maps to, or -1 when it has no
  // place in this space.
  int map(std::string_view canonical) const;
  int size() const { return static_cast<int>(labels.size()); }
};

// A model's prediction for one face: a label, class probabilities, or both.
// Names must already be canonical (edan::canonical_label).
struct Prediction {
  std::optional<std::string> label;
  std::vector<std::pair<std::string, double>> probs;
};

// Index of a prediction outside the evaluated classes (always wrong).
inline constexpr int kOutside = -1;

// The class index a prediction gives within `space`:
//  - when probs are present and at least one of their labels maps into the
//    space: the argmax of the probabilities summed per class (3-class: the
//    sum of each group; surprise, or anything outside the space, is left
//    out); ties go to the class that comes first in space.labels;
//  - otherwise the mapped predicted label, or kOutside when it has no place
//    in the space (e.g. a predicted surprise in 3-class: counted as wrong).
// nullopt when the prediction has neither a label nor usable probs.
std::optional<int> resolve_prediction(const Prediction& pred, const LabelSpace& space);

// --- confusion matrix and classification metrics -------------------------------

// Counts of (truth, prediction) pairs over K classes. Rows are the truth,
// columns the prediction; predictions outside the classes (kOutside) are
// kept in an extra "other" column so that every record is accounted for.
class ConfusionMatrix {
 public:
  ConfusionMatrix() = default;
  explicit ConfusionMatrix(std::vector<std::string> labels);

  // truth in [0, K); pred in [0, K) or kOutside. Throws std::out_of_range
  // otherwise.
  void add(int truth, int pred);

  const std::vector<std::string>& labels() const { return labels_; }
  int size() const { return static_cast<int>(labels_.size()); }
  // pred may be kOutside.
  std::size_t count(int truth, int pred) const;
  std::size_t support(int truth) const;   // row total, including "other"
  std::size_t predicted(int pred) const;  // column total (pred in [0, K))
  std::size_t outside_total() const;      // the whole "other" column
  std::size_t total() const { return total_; }
  std::size_t correct() const;
  // count / support of the row; 0 for every cell of a row with no support.
  double row_fraction(int truth, int pred) const;

 private:
  std::vector<std::string> labels_;
  std::vector<std::size_t> cells_;  // K rows x (K+1) columns, last = other
  std::size_t total_ = 0;
};

// Per-class scores. Undefined ratios are reported as 0 and flagged:
//  - precision = tp / predicted; a class never predicted has precision 0
//    (precision_defined = false), like scikit-learn's zero_division=0;
//  - recall = tp / support; a class with no support (absent from the truth)
//    has recall 0 (recall_defined = false);
//  - f1 = 2pr / (p + r), 0 when p + r = 0.
struct ClassScores {
  std::string label;
  std::size_t support = 0, predicted = 0, true_positives = 0;
  double precision = 0, recall = 0, f1 = 0;
  bool precision_defined = false, recall_defined = false;
};

// Scores of a whole confusion matrix. accuracy = correct / n. Balanced
// accuracy (mean recall) and macro-F1 average over the classes with support
// > 0 only, so that a class a test set lacks (neutral in CK+) does not count
// as a zero; its wrong predictions still lower the other classes' recall.
// All three are nullopt when n = 0.
struct ClassificationMetrics {
  std::size_t n = 0, correct = 0;
  std::optional<double> accuracy, balanced_accuracy, macro_f1;
  std::vector<ClassScores> classes;  // in the matrix's label order
};
ClassificationMetrics classification_metrics(const ConfusionMatrix& cm);

// --- bootstrap ---------------------------------------------------------------

struct Interval {
  double low = 0, high = 0;
};

// Percentile-bootstrap confidence interval of the accuracy: `resamples`
// resamples of the records with replacement (std::mt19937_64 seeded with
// `seed`; the same seed gives the same interval on every platform), the
// accuracy of each, and the (1-level)/2 and (1+level)/2 quantiles of those
// (linear interpolation between order statistics). nullopt when `correct`
// is empty or resamples < 1. Throws std::invalid_argument unless 0 < level < 1.
std::optional<Interval> bootstrap_accuracy_ci(const std::vector<bool>& correct, int resamples,
                                              std::uint64_t seed, double level = 0.95);

// The same percentile bootstrap for the mean of per-record values (the
// accuracy is the mean of 0/1 values; a paired difference between two runs
// on the same records the mean of their per-record differences -1/0/1).
// Same draws as bootstrap_accuracy_ci for the same seed and size.
std::optional<Interval> bootstrap_mean_ci(const std::vector<double>& values, int resamples,
                                          std::uint64_t seed, double level = 0.95);

// The q-quantile (0 <= q <= 1) of values by linear interpolation between
// order statistics (numpy's default). Throws std::invalid_argument when
// values is empty or q is outside [0, 1].
double quantile(std::vector<double> values, double q);

// --- landmark errors ------------------------------------------------------------

// DAN's threshold for the cumulative error curve.
inline constexpr double kErrorThreshold = 0.08;

// Fraction of errors <= e (the cumulative error distribution at e).
// 0 when errors is empty.
double cumulative_fraction(const std::vector<double>& errors, double e);

// Area under the cumulative error curve from 0 to threshold, divided by
// threshold (so in [0, 1]; 1 = every error is 0), computed exactly:
// sum over errors of max(0, threshold - e) / (n * threshold).
// nullopt when errors is empty. Throws std::invalid_argument unless
// threshold > 0.
std::optional<double> ced_auc(const std::vector<double>& errors,
                              double threshold = kErrorThreshold);

// Fraction of errors strictly greater than threshold (DAN's failure rate).
// nullopt when errors is empty.
std::optional<double> failure_rate(const std::vector<double>& errors,
                                   double threshold = kErrorThreshold);

// Mean, AUC and failure rate of one list of normalised errors.
struct ErrorStats {
  std::size_t n = 0;
  std::optional<double> mean, auc, failure_rate;
};
ErrorStats error_stats(const std::vector<double>& errors, double threshold = kErrorThreshold);

}  // namespace edan
