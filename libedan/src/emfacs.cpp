#include "edan/emfacs.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <set>
#include <stdexcept>

#include "edan/error.hpp"
#include "edan/labels.hpp"

namespace json = boost::json;

namespace edan {

namespace {

std::vector<int> span(int first, int last) {
  std::vector<int> v;
  for (int i = first; i <= last; ++i) v.push_back(i);
  return v;
}

std::vector<int> join(std::initializer_list<std::vector<int>> parts) {
  std::set<int> s;
  for (const auto& p : parts) s.insert(p.begin(), p.end());
  return {s.begin(), s.end()};
}

const std::vector<int> kMouthCorners{48, 54, 60, 64};

const ActionUnit& au(int number) {
  for (const auto& a : action_units())
    if (a.number == number) return a;
  throw std::logic_error("no action unit " + std::to_string(number));
}

// The union of the landmarks of the AUs in an EMFACS formula ("1+2+5B+26",
// "R12A+R14A": side and intensity letters do not change the points).
std::vector<int> formula_landmarks(const std::string& formula) {
  std::set<int> s;
  std::size_t i = 0;
  while (i < formula.size()) {
    while (i < formula.size() && !std::isdigit(static_cast<unsigned char>(formula[i]))) ++i;
    int n = 0;
    bool any = false;
    while (i < formula.size() && std::isdigit(static_cast<unsigned char>(formula[i]))) {
      n = n * 10 + (formula[i++] - '0');
      any = true;
    }
    if (any) {
      const auto& lm = au(n).landmarks;
      s.insert(lm.begin(), lm.end());
    }
    while (i < formula.size() && formula[i] != '+') ++i;
  }
  return {s.begin(), s.end()};
}

// EMFACS formulas (Friesen & Ekman 1983), the paper's Table 4 order.
struct Formula {
  const char* emotion;
  const char* aus;
};
const Formula kFormulas[] = {{"happy", "6+12"},         {"sad", "1+4+15"},
                             {"surprise", "1+2+5B+26"}, {"fear", "1+2+4+5+7+20+26"},
                             {"disgust", "9+15+16"},    {"anger", "4+5+7+23"},
                             {"contempt", "R12A+R14A"}};

std::vector<EmfacsEntry> make_emfacs() {
  std::vector<EmfacsEntry> t;
  for (const auto& f : kFormulas)
    t.push_back({f.emotion, f.aus, formula_landmarks(f.aus), std::string(f.emotion) != "contempt"});
  return t;
}

// The sets the paper's Table 5 was computed with: emotion_to_landmark_nb in
// Action-units-from-activations.ipynb of github.com/IvonaTau/emotionaldan.
// Its indices are 0-based (they index the landmark array; brows are 17-26).
std::vector<EmfacsEntry> make_paper() {
  std::vector<EmfacsEntry> t{
      {"happy", "6+12", join({{1, 2, 14, 15}, span(48, 59)}), true},
      {"sad", "1+4+15", join({span(17, 26), span(48, 59)}), true},
      {"surprise", "1+2+5B+26", join({span(17, 26), span(55, 67)}), true},
      {"fear", "1+2+4+5+7+20+26", join({span(17, 26), span(48, 67)}), true},
      {"disgust", "9+15+16", join({span(27, 35), span(55, 59)}), true},
      {"anger", "4+5+7+23", join({span(17, 26), span(36, 47), span(48, 59)}), true},
  };
  EmfacsEntry contempt = make_emfacs().back();
  t.push_back(contempt);
  return t;
}

// "17-26, 48-59" for a sorted list.
std::string ranges(const std::vector<int>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += std::to_string(v[i]);
    if (j > i) out += (j == i + 1 ? ", " : "-") + std::to_string(v[j]);
    i = j + 1;
  }
  return out;
}

json::array to_json(const std::vector<int>& v) {
  json::array a;
  for (int i : v) a.emplace_back(i);
  return a;
}

std::string fixed(double x, int digits = 3) { return fixed_decimals(x, digits); }

// Reads gradcam.landmark_activation: 68 finite numbers.
std::vector<double> activation_of(const json::object& g) {
  auto it = g.find("landmark_activation");
  if (it == g.end()) throw RecordError("gradcam.landmark_activation missing");
  if (!it->value().is_array()) throw RecordError("gradcam.landmark_activation: not an array");
  const auto& a = it->value().get_array();
  if (a.size() != kLandmarkCount)
    throw RecordError("gradcam.landmark_activation: " + std::to_string(a.size()) +
                      " values, expected 68");
  std::vector<double> v;
  for (const auto& x : a) {
    if (!x.is_number()) throw RecordError("gradcam.landmark_activation: not a number");
    double d = x.to_number<double>();
    if (!std::isfinite(d)) throw RecordError("gradcam.landmark_activation: not finite");
    v.push_back(d);
  }
  return v;
}

std::string string_in(const json::object& o, const char* key, const char* where) {
  auto it = o.find(key);
  if (it == o.end()) throw RecordError(std::string(where) + " missing");
  if (!it->value().is_string()) throw RecordError(std::string(where) + ": not a string");
  return std::string(it->value().get_string());
}

}  // namespace

void write_emfacs_table(std::FILE* out, AuTable table, ReportFormat format) {
  write_text(out,
             format == ReportFormat::kJson ? to_line(emfacs_table_json(table)) + "\n"
                                           : emfacs_table_markdown(table),
             /*flush=*/true);
}

void AuOverlap::write(std::FILE* out, ReportFormat format) const {
  write_text(out, format == ReportFormat::kJson ? to_line(report_json()) + "\n" : report_markdown(),
             /*flush=*/true);
}

AuTable parse_au_table(std::string_view name) {
  if (name == "paper") return AuTable::kPaper;
  if (name == "emfacs") return AuTable::kEmfacs;
  throw UsageError("unknown AU table '" + std::string(name) + "' (paper or emfacs)");
}

const char* au_table_name(AuTable table) { return table == AuTable::kPaper ? "paper" : "emfacs"; }

const std::vector<ActionUnit>& action_units() {
  // Upper face: brows 17-26, eyes 36-47 (upper lids 37 38 43 44, lower lids
  // 40 41 46 47). iBUG has no cheek points: the contour at cheek height
  // (1 2 14 15) stands in for them, as in the paper. Mouth corners: outer 48
  // 54, inner 60 64.
  static const std::vector<ActionUnit> kAus{
      {1, "inner brow raiser", {20, 21, 22, 23}},
      {2, "outer brow raiser", {17, 18, 19, 24, 25, 26}},
      {4, "brow lowerer", {20, 21, 22, 23}},
      {5, "upper lid raiser", {37, 38, 43, 44}},
      {6, "cheek raiser", {1, 2, 14, 15, 40, 41, 46, 47}},
      {7, "lid tightener", span(36, 47)},
      {9, "nose wrinkler", span(27, 35)},
      {12, "lip corner puller", kMouthCorners},
      {14, "dimpler", kMouthCorners},
      {15, "lip corner depressor", kMouthCorners},
      {16, "lower lip depressor", {55, 56, 57, 58, 59, 65, 66, 67}},
      {20, "lip stretcher", kMouthCorners},
      {23, "lip tightener", span(48, 67)},
      {26, "jaw drop", {7, 8, 9, 56, 57, 58, 65, 66, 67}},
  };
  return kAus;
}

const std::vector<EmfacsEntry>& emfacs_table(AuTable table) {
  static const std::vector<EmfacsEntry> kPaper = make_paper();
  static const std::vector<EmfacsEntry> kEmfacs = make_emfacs();
  return table == AuTable::kPaper ? kPaper : kEmfacs;
}

const EmfacsEntry* emfacs_entry(AuTable table, std::string_view emotion) {
  for (const auto& e : emfacs_table(table))
    if (e.emotion == emotion) return &e;
  return nullptr;
}

json::object emfacs_table_json(AuTable table) {
  json::array rows;
  for (const auto& e : emfacs_table(table)) {
    json::object o;
    o["emotion"] = e.emotion;
    o["action_units"] = e.action_units;
    o["k"] = e.landmarks.size();
    o["landmarks"] = to_json(e.landmarks);
    o["in_paper"] = e.in_paper;
    o["chance"] = chance_overlap(e.landmarks.size());
    rows.push_back(std::move(o));
  }
  json::object out;
  out["table"] = au_table_name(table);
  out["emotions"] = std::move(rows);
  return out;
}

std::string emfacs_table_markdown(AuTable table) {
  std::string s =
      "| Emotion | Action units | k | Landmarks (0-based iBUG 68) | Chance |\n"
      "|---|---|---:|---|---:|\n";
  for (const auto& e : emfacs_table(table)) {
    s += "| " + e.emotion + (e.in_paper ? "" : " *") + " | " + e.action_units + " | " +
         std::to_string(e.landmarks.size()) + " | " + ranges(e.landmarks) + " | " +
         fixed(chance_overlap(e.landmarks.size())) + " |\n";
  }
  s += std::string("\nTable: ") + au_table_name(table) +
       (table == AuTable::kPaper ? " (EmotionalDAN Table 4 sets)" : " (union of per-AU sets)") +
       "; * not in the paper's table. Chance = k/68.\n";
  return s;
}

std::vector<int> top_k_landmarks(const std::vector<double>& activation, std::size_t k) {
  std::vector<int> idx(activation.size());
  std::iota(idx.begin(), idx.end(), 0);
  k = std::min(k, idx.size());
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int a, int b) { return activation[a] > activation[b]; });
  idx.resize(k);
  return idx;
}

double au_overlap(const std::vector<double>& activation, const std::vector<int>& set) {
  if (set.empty()) throw std::invalid_argument("au_overlap: empty landmark set");
  if (activation.size() != kLandmarkCount)
    throw std::invalid_argument("au_overlap: activation must have 68 values");
  std::set<int> want(set.begin(), set.end());
  std::size_t hits = 0;
  for (int i : top_k_landmarks(activation, set.size())) hits += want.count(i);
  return static_cast<double>(hits) / static_cast<double>(set.size());
}

double chance_overlap(std::size_t set_size, std::size_t n) {
  return static_cast<double>(set_size) / static_cast<double>(n);
}

std::vector<double> mean_activation(const std::vector<std::vector<double>>& rows) {
  if (rows.empty()) throw std::invalid_argument("mean_activation: no rows");
  std::vector<double> sum(rows.front().size(), 0.0);
  for (const auto& r : rows) {
    if (r.size() != sum.size()) throw std::invalid_argument("mean_activation: lengths differ");
    for (std::size_t i = 0; i < r.size(); ++i) sum[i] += r[i];
  }
  for (auto& x : sum) x /= static_cast<double>(rows.size());
  return sum;
}

Distribution describe(std::vector<double> values) {
  if (values.empty()) throw std::invalid_argument("describe: empty sample");
  std::sort(values.begin(), values.end());
  auto quantile = [&](double p) {
    double h = p * static_cast<double>(values.size() - 1);
    auto lo = static_cast<std::size_t>(std::floor(h));
    std::size_t hi = std::min(lo + 1, values.size() - 1);
    return values[lo] + (h - static_cast<double>(lo)) * (values[hi] - values[lo]);
  };
  Distribution d;
  d.n = values.size();
  d.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(d.n);
  d.min = values.front();
  d.max = values.back();
  d.q1 = quantile(0.25);
  d.median = quantile(0.5);
  d.q3 = quantile(0.75);
  return d;
}

// --- AuOverlap ------------------------------------------------------------------

AuOverlap::AuOverlap(const AuOverlapOptions& opt)
    : table_(parse_au_table(opt.table)), group_by_(opt.group_by), per_image_(opt.per_image) {
  if (group_by_ != "class" && group_by_ != "label")
    throw UsageError("unknown --group-by '" + group_by_ + "' (class or label)");
}

std::string AuOverlap::skip(const std::string& kind, const std::string& reason) {
  auto it = std::find_if(skipped_.begin(), skipped_.end(),
                         [&](const auto& kv) { return kv.first == kind; });
  if (it == skipped_.end())
    skipped_.emplace_back(kind, 1);
  else
    ++it->second;
  return reason;
}

std::size_t AuOverlap::skipped() const {
  std::size_t n = 0;
  for (const auto& kv : skipped_) n += kv.second;
  return n;
}

AuOverlap::Group& AuOverlap::group(const std::string& layer, const std::string& emotion) {
  auto lit =
      std::find_if(layers_.begin(), layers_.end(), [&](const Layer& l) { return l.name == layer; });
  if (lit == layers_.end()) {
    Layer l;
    l.name = layer;
    for (const auto& e : emfacs_table(table_)) l.emotions.emplace_back(e.emotion, Group{});
    layers_.push_back(std::move(l));
    lit = layers_.end() - 1;
  }
  for (auto& [name, g] : lit->emotions)
    if (name == emotion) return g;
  throw std::logic_error("emotion not in table: " + emotion);
}

std::string AuOverlap::add(const Record& r) {
  ++records_;
  // Name the image in the reason when the record has one.
  std::string image;
  if (auto it = r.find("image"); it != r.end() && it->value().is_string())
    image = std::string(it->value().get_string()) + ": ";
  std::string why = add_checked(r);
  return why.empty() ? why : image + why;
}

std::string AuOverlap::add_checked(const Record& r) {
  if (has_error(r)) return skip("error", "record has an error");
  auto git = r.find("gradcam");
  if (git == r.end()) return skip("no_gradcam", "no gradcam");
  if (!git->value().is_object()) return skip("malformed", "gradcam: not an object");
  const auto& g = git->value().get_object();
  std::vector<double> act;
  std::string layer, name;
  try {
    act = activation_of(g);
    layer = string_in(g, "layer", "gradcam.layer");
    name = group_by_ == "class" ? string_in(g, "class", "gradcam.class")
                                : string_in(r, "label", "label");
  } catch (const RecordError& e) {
    return skip("malformed", e.what());
  }
  auto emotion = canonical_label(name);
  if (!emotion)
    return skip("malformed", (group_by_ == "class" ? "gradcam.class" : std::string("label")) +
                                 ": unknown emotion '" + name + "'");
  const EmfacsEntry* entry = emfacs_entry(table_, *emotion);
  if (!entry) {
    // Neutral (or a 3-class name) has no action units: counted, not an error.
    auto it = std::find_if(unscored_.begin(), unscored_.end(),
                           [&](const auto& kv) { return kv.first == *emotion; });
    if (it == unscored_.end())
      unscored_.emplace_back(*emotion, 1);
    else
      ++it->second;
    return "";
  }
  Group& grp = group(layer, entry->emotion);
  for (std::size_t i = 0; i < kLandmarkCount; ++i) grp.sum[i] += act[i];
  ++grp.n;
  if (per_image_) grp.per_image.push_back(au_overlap(act, entry->landmarks));
  ++scored_;
  return "";
}

json::object AuOverlap::report_json() const {
  json::object out;
  out["table"] = au_table_name(table_);
  out["group_by"] = group_by_;
  out["records"] = records_;
  out["scored"] = scored_;
  json::object skipped;
  for (const char* kind : {"error", "no_gradcam", "malformed"}) skipped[kind] = 0;
  for (const auto& [k, n] : skipped_) skipped[k] = n;
  out["skipped"] = std::move(skipped);
  json::object unscored;
  for (const auto& [k, n] : unscored_) unscored[k] = n;
  out["unscored"] = std::move(unscored);
  json::array layers;
  for (const auto& l : layers_) {
    json::array rows;
    double sum = 0, chance_sum = 0;
    std::size_t counted = 0;
    for (const auto& [emotion, g] : l.emotions) {
      if (g.n == 0) continue;
      const EmfacsEntry& e = *emfacs_entry(table_, emotion);
      std::vector<double> mean(g.sum);
      for (auto& x : mean) x /= static_cast<double>(g.n);
      auto top = top_k_landmarks(mean, e.landmarks.size());
      std::set<int> want(e.landmarks.begin(), e.landmarks.end());
      std::size_t hits = 0;
      for (int i : top) hits += want.count(i);
      double overlap = static_cast<double>(hits) / static_cast<double>(e.landmarks.size());
      json::object row;
      row["emotion"] = emotion;
      row["action_units"] = e.action_units;
      row["in_paper"] = e.in_paper;
      row["n"] = g.n;
      row["k"] = e.landmarks.size();
      row["hits"] = hits;
      row["overlap"] = overlap;
      row["chance"] = chance_overlap(e.landmarks.size());
      row["top_landmarks"] = to_json(top);
      if (per_image_) {
        Distribution d = describe(g.per_image);
        json::object pi;
        pi["n"] = d.n;
        pi["mean"] = d.mean;
        pi["min"] = d.min;
        pi["q1"] = d.q1;
        pi["median"] = d.median;
        pi["q3"] = d.q3;
        pi["max"] = d.max;
        row["per_image"] = std::move(pi);
      }
      rows.push_back(std::move(row));
      if (e.in_paper) {
        sum += overlap;
        chance_sum += chance_overlap(e.landmarks.size());
        ++counted;
      }
    }
    json::object layer;
    layer["layer"] = l.name;
    layer["emotions"] = std::move(rows);
    json::object avg;
    avg["emotions"] = counted;
    if (counted) {
      avg["overlap"] = sum / static_cast<double>(counted);
      avg["chance"] = chance_sum / static_cast<double>(counted);
    } else {
      avg["overlap"] = nullptr;
      avg["chance"] = nullptr;
    }
    layer["average"] = std::move(avg);
    layers.push_back(std::move(layer));
  }
  out["layers"] = std::move(layers);
  return out;
}

std::string AuOverlap::report_markdown() const {
  json::object rep = report_json();
  const auto& layers = rep["layers"].as_array();
  std::string s;
  // Table 5 layout: one row per emotion, one overlap column (and its n) per
  // layer, the chance baseline beside them.
  s += "| Emotion | AUs | k |";
  std::string rule = "|---|---|---:|";
  for (const auto& l : layers) {
    s += " " + std::string(l.as_object().at("layer").as_string()) + " | n |";
    rule += "---:|---:|";
  }
  s += " Chance |\n" + rule + "---:|\n";
  for (const auto& e : emfacs_table(table_)) {
    bool any = false;
    std::string row = "| " + e.emotion + (e.in_paper ? "" : " *") + " | " + e.action_units + " | " +
                      std::to_string(e.landmarks.size()) + " |";
    for (const auto& l : layers) {
      const json::object* found = nullptr;
      for (const auto& r : l.as_object().at("emotions").as_array())
        if (r.as_object().at("emotion").as_string() == e.emotion) found = &r.as_object();
      if (found) {
        any = true;
        row += " " + fixed(found->at("overlap").as_double()) + " | " +
               std::to_string(found->at("n").to_number<std::size_t>()) + " |";
      } else {
        row += " – | 0 |";
      }
    }
    if (any) s += row + " " + fixed(chance_overlap(e.landmarks.size())) + " |\n";
  }
  s += "| **Average** | | |";
  std::string chance_cell = "–";
  for (const auto& l : layers) {
    const auto& avg = l.as_object().at("average").as_object();
    std::size_t counted = avg.at("emotions").to_number<std::size_t>();
    if (counted) {
      s += " " + fixed(avg.at("overlap").as_double()) + " | " + std::to_string(counted) + " |";
      chance_cell = fixed(avg.at("chance").as_double());
    } else {
      s += " – | 0 |";
    }
  }
  s += " " + chance_cell + " |\n";

  if (per_image_) {
    for (const auto& l : layers) {
      s += "\nPer image, " + std::string(l.as_object().at("layer").as_string()) +
           " (overlap of each image's own top-k):\n\n"
           "| Emotion | n | Mean | Q1 | Median | Q3 | Chance |\n"
           "|---|---:|---:|---:|---:|---:|---:|\n";
      for (const auto& r : l.as_object().at("emotions").as_array()) {
        const auto& row = r.as_object();
        const auto& pi = row.at("per_image").as_object();
        s += "| " + std::string(row.at("emotion").as_string()) + " | " +
             std::to_string(pi.at("n").to_number<std::size_t>()) + " | " +
             fixed(pi.at("mean").as_double()) + " | " + fixed(pi.at("q1").as_double()) + " | " +
             fixed(pi.at("median").as_double()) + " | " + fixed(pi.at("q3").as_double()) + " | " +
             fixed(row.at("chance").as_double()) + " |\n";
      }
    }
  }

  s += "\nTable " + std::string(au_table_name(table_)) + ", grouped by " + group_by_ + "; " +
       std::to_string(rep["records"].to_number<std::size_t>()) + " records, " +
       std::to_string(scored_) + " scored, " + std::to_string(skipped()) + " skipped";
  if (skipped()) {
    std::string parts;
    for (const auto& [k, n] : skipped_)
      parts += (parts.empty() ? "" : ", ") + k + " " + std::to_string(n);
    s += " (" + parts + ")";
  }
  for (const auto& [k, n] : unscored_) s += ", " + std::to_string(n) + " " + k + " (no AUs)";
  s += ". Average: over the paper's emotions present (its n: how many); * not in the paper's "
       "table. "
       "Chance = k/68, the expected overlap of k random landmarks.\n";
  return s;
}

}  // namespace edan
