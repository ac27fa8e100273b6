#pragma once
// Evaluation of prediction records (edan-eval): records with a ground-truth
// "label" and/or "landmarks" and a "pred" ({"label", "probs", "landmarks"})
// become one summary per group (and overall), written as JSON, markdown or
// TSV. Every record is accounted for: it enters the metrics or is counted in
// the skip report under a reason.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edan/metrics.hpp"
#include "edan/record.hpp"
#include "edan/report.hpp"

namespace edan {

struct EvalOptions {
  // "3", "6", "7", "8", or "" for the model's classes: the labels the
  // predictions use (probs keys and predicted labels), plus the truth labels
  // when no record has probs (so that a class never predicted still counts).
  std::string classes;
  // A record field whose value names the group (e.g. "dataset"); "" = none.
  std::string group_by;
  // With group_by: the group every other group is compared with, record by
  // record (paired): the accuracy difference and the landmarks' NME
  // difference on the records both groups scored (matched by "crop", else
  // "image" and "face"), with paired bootstrap CIs when bootstrap > 0.
  // "" = no comparison.
  std::string baseline;
  // Bootstrap resamples for the accuracy's 95% CI (0 = none) and its seed.
  int bootstrap = 0;
  std::uint64_t seed = 1;
  // Threshold of the cumulative error curve (AUC, failure rate).
  double threshold = kErrorThreshold;
};

// Why a record did not enter the metrics of one family (classification or
// landmarks). Reasons marked "problem" make edan-eval exit 1; the others are
// exclusions by protocol.
//   error                  the record carries "error"              (problem)
//   no_truth               neither "label" nor "landmarks"          (problem)
//   no_label               no "label", but landmarks (classification only)
//   no_landmarks           no "landmarks", but a label (landmarks only)
//   unknown_label          "label" is not a known emotion name       (problem)
//   bad_truth              "label"/"landmarks" malformed            (problem)
//   no_prediction          no "pred", or none of what is scored     (problem)
//   bad_prediction         "pred" malformed, unknown predicted label (problem)
//   truth_surprise         truth is surprise under --classes 3
//   truth_outside_classes  truth has no place in the evaluated classes
struct SkipReport {
  std::vector<std::pair<std::string, std::size_t>> reasons;  // in the order listed above
  // Counts k more records under reason; an empty reason counts nothing.
  void add(std::string_view reason, std::size_t k = 1);
  std::size_t total() const;     // all skipped records
  std::size_t problems() const;  // those skipped for a "problem" reason
};
// True for the reasons marked "problem" above.
bool is_problem_reason(std::string_view reason);

// Landmark results of one group, under both normalisations.
struct LandmarkSummary {
  std::vector<double> inter_ocular, inter_pupil;  // per-record NME, input order
  ErrorStats inter_ocular_stats, inter_pupil_stats;
  SkipReport skipped;
};

// A group against the baseline group on the records both scored.
struct Comparison {
  std::string baseline;
  std::size_t n = 0;  // records scored in both groups
  double accuracy = 0, baseline_accuracy = 0;
  double difference = 0;               // accuracy - baseline_accuracy
  std::optional<Interval> difference_ci;  // paired bootstrap, when bootstrap > 0
  // Landmarks, inter-ocular NME, on the faces both groups scored (lm_n;
  // 0 when there are none): the mean of each and of the per-face
  // difference (negative: this group's landmarks are better).
  std::size_t lm_n = 0;
  double nme = 0, baseline_nme = 0, nme_difference = 0;
  std::optional<Interval> nme_difference_ci;  // paired bootstrap, when bootstrap > 0
};

// The summary of one group (or of all records).
struct GroupSummary {
  std::string name;                 // group value, or "overall"
  std::size_t records = 0;          // records read into this group
  std::size_t problem_records = 0;  // records skipped for a problem reason
  ConfusionMatrix confusion;        // label order = the report's labels
  ClassificationMetrics metrics;
  std::optional<Interval> accuracy_ci;
  SkipReport skipped;                        // classification: records == n + skipped.total()
  std::optional<LandmarkSummary> landmarks;  // when any record has "landmarks"
  std::optional<Comparison> vs_baseline;     // groups other than the baseline
};

struct Report {
  EvalOptions options;
  std::vector<std::string> labels;   // class order of every confusion matrix
  std::vector<GroupSummary> groups;  // empty unless group_by is set
  GroupSummary overall;
  // Notes on undefined ratios (e.g. a class never predicted).
  std::vector<std::string> notes;
  // Records skipped for a problem reason (see SkipReport) by the
  // classification or the landmark metrics, each counted once.
  std::size_t problems() const;
  // 0 when every record was usable or excluded by protocol, 1 when some
  // were skipped for a problem reason.
  int exit_status() const;
};

// Accumulates records, then computes the report.
class Evaluator {
 public:
  // Throws UsageError on a bad option (unknown class set, negative
  // bootstrap, threshold <= 0, a baseline without group_by).
  explicit Evaluator(EvalOptions opt);
  ~Evaluator();
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  // Reads one record. Never throws on bad data: a record that cannot be
  // scored is counted in the skip report under its reason.
  void add(const Record& r);
  // The report over everything added so far. Throws UsageError when the
  // baseline names no group.
  Report finish() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The report as one JSON object. Without grouping: the overall summary
// (see man edan-eval for the keys). With grouping: {"group_by", "labels",
// "groups": [{"group": name, ...summary}], "overall": {...}}.
boost::json::object report_to_json(const Report& report);
// Readable tables (GitHub markdown). Without grouping: metrics, per-class
// scores, confusion matrix, landmarks, skips. With grouping: one compact
// cross-group table (like the paper's Tables 2 and 3, in percent), the
// per-class recall per group, then the skips.
std::string report_to_markdown(const Report& report);
// One header row, then one row per group and "overall" (fractions, "NA"
// where undefined).
std::string report_to_tsv(const Report& report);
// The report in that format; JSON is one compact line, newline-terminated.
std::string format_report(const Report& report, ReportFormat format);

}  // namespace edan
