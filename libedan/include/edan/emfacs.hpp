#pragma once
// EMFACS: which facial action units (AUs) express each emotion, which of the
// 68 iBUG landmarks those AUs move, and how well the most activated
// landmarks of a Grad-CAM map agree with them (EmotionalDAN, Tables 4-5).
// Landmark indices are 0-based in the iBUG 300-W order throughout.
#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "edan/record.hpp"

namespace edan {

inline constexpr std::size_t kLandmarkCount = 68;

// Which emotion -> landmark table to use.
//   kPaper:  the landmark sets EmotionalDAN's Table 5 was computed with
//            (authors' public code); contempt, absent there, from kEmfacs.
//   kEmfacs: each emotion's set is the union of its AUs' sets
//            (action_units()), the same AU always giving the same points.
enum class AuTable { kPaper, kEmfacs };

// Parses "paper" or "emfacs". Throws UsageError otherwise.
AuTable parse_au_table(std::string_view name);
const char* au_table_name(AuTable table);

// One facial action unit and the landmarks it moves.
struct ActionUnit {
  int number;                  // FACS number, e.g. 12
  std::string name;            // e.g. "lip corner puller"
  std::vector<int> landmarks;  // ascending, 0-based
};

// The AUs that the EMFACS emotion formulas use (1 2 4 5 6 7 9 12 14 15 16
// 20 23 26), ascending by number.
const std::vector<ActionUnit>& action_units();

// One row of the table.
struct EmfacsEntry {
  std::string emotion;         // canonical label (labels.hpp)
  std::string action_units;    // EMFACS formula, e.g. "1+2+5B+26"
  std::vector<int> landmarks;  // ascending, unique, 0-based, < 68
  bool in_paper;               // false: the paper's Table 4 has no row for it
};

// The rows, in the 8-class label order without neutral: happy sad surprise
// fear disgust anger contempt. Neutral has no AUs and no row.
const std::vector<EmfacsEntry>& emfacs_table(AuTable table);

// The row of a canonical emotion label, or nullptr (neutral, unknown names).
const EmfacsEntry* emfacs_entry(AuTable table, std::string_view emotion);

// Report formats: one JSON object on one line, or markdown tables.
enum class ReportFormat { kJson, kMarkdown };
// Parses "json" or "markdown". Throws UsageError otherwise.
ReportFormat parse_report_format(std::string_view name);

// The table as JSON (an object with "table" and "emotions") or markdown.
boost::json::object emfacs_table_json(AuTable table);
std::string emfacs_table_markdown(AuTable table);
// Writes the table to out. Throws BrokenPipe / FatalError on write errors.
void write_emfacs_table(std::FILE* out, AuTable table, ReportFormat format);

// --- overlap ----------------------------------------------------------------

// The k largest values' indices, highest first; ties go to the lower index.
// k larger than the vector is clamped. Requires finite values.
std::vector<int> top_k_landmarks(const std::vector<double>& activation, std::size_t k);

// |top ∩ set| / |set|, with top = the |set| most activated landmarks: the
// fraction of an emotion's AU landmarks among its k = |set| most activated
// ones (paper Table 5). activation: 68 values; set: unique indices < 68.
// Throws std::invalid_argument when set is empty or activation is not 68 long.
double au_overlap(const std::vector<double>& activation, const std::vector<int>& set);

// The expected au_overlap of k = set_size landmarks drawn at random without
// replacement from n: E|top ∩ set| = k·set_size/n (hypergeometric mean), so
// the expected fraction is set_size / n.
double chance_overlap(std::size_t set_size, std::size_t n = kLandmarkCount);

// Element-wise mean of equally long vectors. Throws std::invalid_argument
// when rows is empty or the lengths differ.
std::vector<double> mean_activation(const std::vector<std::vector<double>>& rows);

// Summary of a sample: quartiles by linear interpolation between order
// statistics (R's type 7, numpy's default). Throws std::invalid_argument on
// an empty sample.
struct Distribution {
  std::size_t n = 0;
  double mean = 0, min = 0, q1 = 0, median = 0, q3 = 0, max = 0;
};
Distribution describe(std::vector<double> values);

// --- over records -------------------------------------------------------------

struct AuOverlapOptions {
  std::string table = "paper";     // parse_au_table
  std::string group_by = "class";  // "class" (gradcam.class) or "label"
  bool per_image = false;          // also the distribution of per-image overlaps
};

// Collects gradcam records (edan-gradcam) and reports, per layer and
// emotion, the overlap of the mean activation's top-k landmarks with the
// emotion's AU landmarks, the chance baseline beside it, and the average
// over the emotions of the paper's table.
class AuOverlap {
 public:
  // Throws UsageError on an unknown table or group_by.
  explicit AuOverlap(const AuOverlapOptions& opt);

  // Takes one record. Returns "" when it was used or counted as unscored
  // (an emotion without AUs, e.g. neutral); otherwise the reason it was
  // skipped ("record has an error", "no gradcam", "gradcam.landmark_activation:
  // ..."), which is also counted in the skip report.
  std::string add(const Record& r);

  // Records skipped for a reason other than having no AU set.
  std::size_t skipped() const;

  // The report: options, counts, skip report, per layer the rows and the
  // average (see edan-auoverlap(1)).
  boost::json::object report_json() const;
  std::string report_markdown() const;
  // Writes the report to out. Throws BrokenPipe / FatalError on write errors.
  void write(std::FILE* out, ReportFormat format) const;

 private:
  struct Group {
    std::vector<double> sum = std::vector<double>(kLandmarkCount, 0.0);
    std::size_t n = 0;
    std::vector<double> per_image;
  };
  struct Layer {
    std::string name;
    std::vector<std::pair<std::string, Group>> emotions;  // in table order
  };
  std::string add_checked(const Record& r);
  Group& group(const std::string& layer, const std::string& emotion);
  std::string skip(const std::string& kind, const std::string& reason);

  AuTable table_;
  std::string group_by_;
  bool per_image_;
  std::size_t records_ = 0, scored_ = 0;
  std::vector<Layer> layers_;                                  // in order of appearance
  std::vector<std::pair<std::string, std::size_t>> skipped_;   // kind -> count
  std::vector<std::pair<std::string, std::size_t>> unscored_;  // emotion -> count
};

}  // namespace edan
