#include "edan/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace edan {

// --- label spaces ------------------------------------------------------------

LabelSpace LabelSpace::of_set(ClassSet set) { return {class_names(set), set}; }

LabelSpace LabelSpace::of_labels(const std::vector<std::string>& canonical) {
  static const std::vector<std::string> order{"neutral",  "happy",   "sad",   "surprise",
                                              "fear",     "disgust", "anger", "contempt",
                                              "negative", "positive"};
  LabelSpace s;
  for (const auto& name : order)
    if (std::find(canonical.begin(), canonical.end(), name) != canonical.end())
      s.labels.push_back(name);
  return s;
}

int LabelSpace::map(std::string_view canonical) const {
  if (set) {
    auto mapped = map_label(canonical, *set);
    return mapped ? class_index(*set, *mapped) : kOutside;
  }
  auto it = std::find(labels.begin(), labels.end(), canonical);
  return it == labels.end() ? kOutside : static_cast<int>(it - labels.begin());
}

std::optional<int> resolve_prediction(const Prediction& pred, const LabelSpace& space) {
  if (!pred.probs.empty()) {
    std::vector<double> sum(space.labels.size(), 0.0);
    bool any = false;
    for (const auto& [name, p] : pred.probs) {
      int k = space.map(name);
      if (k == kOutside) continue;
      sum[static_cast<std::size_t>(k)] += p;
      any = true;
    }
    if (any) return static_cast<int>(std::max_element(sum.begin(), sum.end()) - sum.begin());
  }
  if (pred.label) return space.map(*pred.label);
  return std::nullopt;
}

// --- confusion matrix ------------------------------------------------------------

ConfusionMatrix::ConfusionMatrix(std::vector<std::string> labels)
    : labels_(std::move(labels)), cells_(labels_.size() * (labels_.size() + 1), 0) {}

namespace {
std::size_t cell_index(int k, int truth, int pred) {
  if (truth < 0 || truth >= k || pred < kOutside || pred >= k)
    throw std::out_of_range("confusion matrix: class index out of range");
  std::size_t col = pred == kOutside ? static_cast<std::size_t>(k) : static_cast<std::size_t>(pred);
  return static_cast<std::size_t>(truth) * static_cast<std::size_t>(k + 1) + col;
}
}  // namespace

void ConfusionMatrix::add(int truth, int pred) {
  ++cells_[cell_index(size(), truth, pred)];
  ++total_;
}

std::size_t ConfusionMatrix::count(int truth, int pred) const {
  return cells_[cell_index(size(), truth, pred)];
}

std::size_t ConfusionMatrix::support(int truth) const {
  std::size_t s = 0;
  for (int p = kOutside; p < size(); ++p) s += count(truth, p);
  return s;
}

std::size_t ConfusionMatrix::predicted(int pred) const {
  if (pred < 0 || pred >= size()) throw std::out_of_range("confusion matrix: column out of range");
  std::size_t s = 0;
  for (int t = 0; t < size(); ++t) s += count(t, pred);
  return s;
}

std::size_t ConfusionMatrix::outside_total() const {
  std::size_t s = 0;
  for (int t = 0; t < size(); ++t) s += count(t, kOutside);
  return s;
}

std::size_t ConfusionMatrix::correct() const {
  std::size_t s = 0;
  for (int k = 0; k < size(); ++k) s += count(k, k);
  return s;
}

double ConfusionMatrix::row_fraction(int truth, int pred) const {
  std::size_t s = support(truth);
  return s ? static_cast<double>(count(truth, pred)) / static_cast<double>(s) : 0.0;
}

ClassificationMetrics classification_metrics(const ConfusionMatrix& cm) {
  ClassificationMetrics m;
  m.n = cm.total();
  m.correct = cm.correct();
  double recall_sum = 0, f1_sum = 0;
  std::size_t present = 0;
  for (int k = 0; k < cm.size(); ++k) {
    ClassScores c;
    c.label = cm.labels()[static_cast<std::size_t>(k)];
    c.support = cm.support(k);
    c.predicted = cm.predicted(k);
    c.true_positives = cm.count(k, k);
    c.precision_defined = c.predicted > 0;
    c.recall_defined = c.support > 0;
    if (c.precision_defined) c.precision = double(c.true_positives) / double(c.predicted);
    if (c.recall_defined) c.recall = double(c.true_positives) / double(c.support);
    if (c.precision + c.recall > 0) c.f1 = 2 * c.precision * c.recall / (c.precision + c.recall);
    if (c.recall_defined) {
      recall_sum += c.recall;
      f1_sum += c.f1;
      ++present;
    }
    m.classes.push_back(c);
  }
  if (m.n > 0) {
    m.accuracy = double(m.correct) / double(m.n);
    // n > 0 means some row has support, so present > 0.
    m.balanced_accuracy = recall_sum / double(present);
    m.macro_f1 = f1_sum / double(present);
  }
  return m;
}

// --- bootstrap ---------------------------------------------------------------

double quantile(std::vector<double> values, double q) {
  if (values.empty()) throw std::invalid_argument("quantile of an empty list");
  if (!(q >= 0 && q <= 1)) throw std::invalid_argument("quantile: q must be in [0, 1]");
  std::sort(values.begin(), values.end());
  double pos = q * double(values.size() - 1);
  auto lo = static_cast<std::size_t>(std::floor(pos));
  std::size_t hi = std::min(lo + 1, values.size() - 1);
  double frac = pos - double(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

std::optional<Interval> bootstrap_mean_ci(const std::vector<double>& values, int resamples,
                                          std::uint64_t seed, double level) {
  if (!(level > 0 && level < 1)) throw std::invalid_argument("bootstrap: level must be in (0, 1)");
  if (values.empty() || resamples < 1) return std::nullopt;
  std::mt19937_64 rng(seed);
  const auto n = static_cast<unsigned __int128>(values.size());
  std::vector<double> means;
  means.reserve(static_cast<std::size_t>(resamples));
  for (int b = 0; b < resamples; ++b) {
    double sum = 0;  // exact for the small integers of accuracies and differences
    for (std::size_t i = 0; i < values.size(); ++i) {
      // Multiply-shift maps a 64-bit draw onto [0, n) without the
      // implementation-defined std::uniform_int_distribution, so the
      // interval is the same with every standard library.
      auto j = static_cast<std::size_t>((static_cast<unsigned __int128>(rng()) * n) >> 64);
      sum += values[j];
    }
    means.push_back(sum / double(values.size()));
  }
  return Interval{quantile(means, (1 - level) / 2), quantile(means, (1 + level) / 2)};
}

std::optional<Interval> bootstrap_accuracy_ci(const std::vector<bool>& correct, int resamples,
                                              std::uint64_t seed, double level) {
  return bootstrap_mean_ci(std::vector<double>(correct.begin(), correct.end()), resamples, seed,
                           level);
}

// --- landmark errors ------------------------------------------------------------

double cumulative_fraction(const std::vector<double>& errors, double e) {
  if (errors.empty()) return 0;
  auto below = std::count_if(errors.begin(), errors.end(), [&](double x) { return x <= e; });
  return double(below) / double(errors.size());
}

std::optional<double> ced_auc(const std::vector<double>& errors, double threshold) {
  if (!(threshold > 0)) throw std::invalid_argument("ced_auc: threshold must be > 0");
  if (errors.empty()) return std::nullopt;
  // The CED is a step function rising by 1/n at each error, so its integral
  // over [0, T] is the sum of the lengths (T - e) for the errors below T.
  double area = 0;
  for (double e : errors) area += std::max(0.0, threshold - std::max(0.0, e));
  return area / (double(errors.size()) * threshold);
}

std::optional<double> failure_rate(const std::vector<double>& errors, double threshold) {
  if (errors.empty()) return std::nullopt;
  auto over = std::count_if(errors.begin(), errors.end(), [&](double x) { return x > threshold; });
  return double(over) / double(errors.size());
}

ErrorStats error_stats(const std::vector<double>& errors, double threshold) {
  ErrorStats s;
  s.n = errors.size();
  if (errors.empty()) return s;
  double sum = 0;
  for (double e : errors) sum += e;
  s.mean = sum / double(errors.size());
  s.auc = ced_auc(errors, threshold);
  s.failure_rate = failure_rate(errors, threshold);
  return s;
}

}  // namespace edan
