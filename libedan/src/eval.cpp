#include "edan/eval.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <stdexcept>

#include "edan/error.hpp"
#include "edan/shape.hpp"

namespace json = boost::json;

namespace edan {

// --- skip reports ------------------------------------------------------------

namespace {
// Report order of the reasons; problems first.
const std::vector<std::string>& reason_order() {
  static const std::vector<std::string> order{
      "error",         "no_truth",       "no_prediction",         "bad_prediction", "bad_truth",
      "unknown_label", "truth_surprise", "truth_outside_classes", "no_label",       "no_landmarks"};
  return order;
}
std::size_t reason_rank(std::string_view reason) {
  const auto& o = reason_order();
  return static_cast<std::size_t>(std::find(o.begin(), o.end(), reason) - o.begin());
}
}  // namespace

bool is_problem_reason(std::string_view r) {
  return r == "error" || r == "no_truth" || r == "unknown_label" || r == "bad_truth" ||
         r == "no_prediction" || r == "bad_prediction";
}

void SkipReport::add(std::string_view reason, std::size_t k) {
  if (k == 0 || reason.empty()) return;
  for (auto& [name, n] : reasons)
    if (name == reason) {
      n += k;
      return;
    }
  auto at = std::find_if(reasons.begin(), reasons.end(),
                         [&](const auto& e) { return reason_rank(e.first) > reason_rank(reason); });
  reasons.insert(at, {std::string(reason), k});
}

std::size_t SkipReport::total() const {
  std::size_t t = 0;
  for (const auto& e : reasons) t += e.second;
  return t;
}

std::size_t SkipReport::problems() const {
  std::size_t t = 0;
  for (const auto& e : reasons)
    if (is_problem_reason(e.first)) t += e.second;
  return t;
}

namespace {
void merge(SkipReport& into, const SkipReport& from) {
  for (const auto& [name, n] : from.reasons) into.add(name, n);
}
}  // namespace

std::size_t Report::problems() const { return overall.problem_records; }

int Report::exit_status() const { return problems() ? kExitSomeFailed : kExitOk; }

// --- accumulating records --------------------------------------------------------

namespace {

// One record that will enter the classification metrics once the label
// space is known (it may depend on every record's prediction).
struct Item {
  std::size_t group;
  std::string truth;  // canonical
  Prediction pred;
  std::string key;  // the face it scores: pairs records of two groups
};

// "crop", else "image" and "face", else the record's position in its group.
std::string item_key(const Record& r, std::size_t position) {
  if (auto crop = get_string(r, "crop")) return "crop:" + *crop;
  if (auto image = get_string(r, "image")) {
    auto face = r.find("face");
    return "image:" + *image + "#" + (face == r.end() ? "" : json::serialize(face->value()));
  }
  return "#" + std::to_string(position);
}

struct GroupData {
  std::string name;
  std::size_t records = 0, problem_records = 0;
  SkipReport cls_skipped, lm_skipped;
  std::vector<double> inter_ocular, inter_pupil;
  std::map<std::string, double> keyed_inter_ocular;  // for the baseline comparison
};

// The record's key, or its position when a crop/image field is malformed.
std::string safe_key(const Record& r, std::size_t position) {
  try {
    return item_key(r, position);
  } catch (const RecordError&) {
    return "#" + std::to_string(position);
  }
}

// Parses "pred" into canonical names. Throws RecordError when malformed.
Prediction parse_prediction(const json::object& pred) {
  Prediction p;
  if (auto label = get_string(pred, "label")) {
    auto c = canonical_label(*label);
    if (!c) throw RecordError("unknown predicted label '" + *label + "'");
    p.label = *c;
  }
  auto it = pred.find("probs");
  if (it != pred.end() && !it->value().is_null()) {
    if (!it->value().is_object()) throw RecordError("pred.probs must be an object");
    for (const auto& kv : it->value().as_object()) {
      auto c = canonical_label(kv.key());
      if (!c) throw RecordError("unknown label in pred.probs: '" + std::string(kv.key()) + "'");
      const auto& v = kv.value();
      double x;
      if (v.is_double())
        x = v.as_double();
      else if (v.is_int64())
        x = double(v.as_int64());
      else if (v.is_uint64())
        x = double(v.as_uint64());
      else
        throw RecordError("pred.probs values must be numbers");
      if (!std::isfinite(x)) throw RecordError("pred.probs values must be finite");
      p.probs.emplace_back(*c, x);
    }
  }
  return p;
}

std::string group_value(const Record& r, const std::string& field) {
  auto it = r.find(field);
  if (it == r.end() || it->value().is_null()) return "(none)";
  if (it->value().is_string()) return std::string(it->value().as_string());
  return json::serialize(it->value());
}

bool present(const Record& r, std::string_view key) {
  auto it = r.find(key);
  return it != r.end() && !it->value().is_null();
}

}  // namespace

struct Evaluator::Impl {
  EvalOptions opt;
  std::optional<LabelSpace> fixed;  // --classes N
  std::vector<std::string> used;    // labels the predictions use
  std::vector<std::string> truths;  // labels of the truth (scored records)
  bool any_probs = false;
  std::vector<GroupData> groups;
  std::map<std::string, std::size_t> group_index;
  std::vector<Item> items;
  bool any_landmarks = false;

  std::size_t current = 0;  // group of the record being added

  GroupData& group_of(const Record& r) {
    std::string name = opt.group_by.empty() ? "overall" : group_value(r, opt.group_by);
    auto [it, fresh] = group_index.emplace(name, groups.size());
    if (fresh) groups.push_back(GroupData{name});
    current = it->second;
    return groups[current];
  }

  void use_labels(const Prediction& p, const std::string& truth) {
    auto note = [](std::vector<std::string>& v, const std::string& l) {
      if (std::find(v.begin(), v.end(), l) == v.end()) v.push_back(l);
    };
    if (p.label) note(used, *p.label);
    for (const auto& kv : p.probs) note(used, kv.first);
    any_probs = any_probs || !p.probs.empty();
    note(truths, truth);
  }

  // Without --classes: the model's classes are the keys of its probs. When
  // no record has probs, the predicted labels alone would leave out a class
  // the model never predicted, and skipping its records would inflate the
  // accuracy, so the truth labels are classes too.
  LabelSpace default_space() const {
    auto labels = used;
    if (!any_probs) labels.insert(labels.end(), truths.begin(), truths.end());
    return LabelSpace::of_labels(labels);
  }

  // Each returns why the record was skipped, or "" when it was scored (or
  // kept for scoring once the label space is known).
  std::string_view classify(const Record& r, const json::object* pred, bool pred_bad) {
    bool has_label = present(r, "label");
    if (!has_label) return present(r, "landmarks") ? "no_label" : "no_truth";
    std::optional<std::string> truth;
    try {
      truth = get_string(r, "label");
    } catch (const RecordError&) {
      return "bad_truth";
    }
    auto canonical = canonical_label(*truth);
    if (!canonical) return "unknown_label";
    if (pred_bad) return "bad_prediction";
    if (!pred) return "no_prediction";
    Prediction p;
    try {
      p = parse_prediction(*pred);
    } catch (const RecordError&) {
      return "bad_prediction";
    }
    if (!p.label && p.probs.empty()) return "no_prediction";
    if (fixed && fixed->map(*canonical) == kOutside)
      return fixed->set == ClassSet::k3 && *canonical == "surprise" ? "truth_surprise"
                                                                    : "truth_outside_classes";
    use_labels(p, *canonical);
    items.push_back(Item{current, *canonical, std::move(p), safe_key(r, groups[current].records)});
    return "";
  }

  std::string_view landmark(const Record& r, const json::object* pred, bool pred_bad,
                            GroupData& g) {
    if (!present(r, "landmarks")) return present(r, "label") ? "no_landmarks" : "no_truth";
    any_landmarks = true;
    std::optional<Shape> truth, guess;
    try {
      truth = get_shape(r, "landmarks");
      // A crop record's landmarks are in crop pixels, its prediction in the
      // source image's (edan-predict maps them back): compare in the source.
      if (auto geometry = get_crop_geometry(r)) truth = geometry->to_source(*truth);
    } catch (const RecordError&) {
      return "bad_truth";
    }
    if (pred_bad) return "bad_prediction";
    if (!pred) return "no_prediction";
    try {
      guess = get_shape(*pred, "landmarks");
    } catch (const RecordError&) {
      return "bad_prediction";
    }
    if (!guess) return "no_prediction";
    double io, ip;
    try {
      io = nme(*guess, *truth, NmeNorm::kInterOcular);
      ip = nme(*guess, *truth, NmeNorm::kInterPupil);
    } catch (const std::invalid_argument&) {
      return "bad_truth";  // eyes on one point: no scale
    }
    g.inter_ocular.push_back(io);
    g.inter_pupil.push_back(ip);
    if (!opt.baseline.empty()) g.keyed_inter_ocular.emplace(safe_key(r, g.records), io);
    return "";
  }
};

Evaluator::Evaluator(EvalOptions opt) : impl_(std::make_unique<Impl>()) {
  if (!opt.classes.empty()) impl_->fixed = LabelSpace::of_set(parse_class_set(opt.classes));
  if (opt.bootstrap < 0) throw UsageError("--bootstrap must be 0 or more");
  if (!(opt.threshold > 0)) throw UsageError("--threshold must be greater than 0");
  if (!opt.baseline.empty() && opt.group_by.empty())
    throw UsageError("--baseline needs --group-by (the field whose values are compared)");
  impl_->opt = std::move(opt);
}

Evaluator::~Evaluator() = default;

void Evaluator::add(const Record& r) {
  auto& g = impl_->group_of(r);
  ++g.records;
  if (has_error(r)) {
    g.cls_skipped.add("error");
    g.lm_skipped.add("error");
    ++g.problem_records;
    return;
  }
  const json::object* pred = nullptr;
  bool pred_bad = false;
  if (auto it = r.find("pred"); it != r.end() && !it->value().is_null()) {
    if (it->value().is_object())
      pred = &it->value().as_object();
    else
      pred_bad = true;
  }
  auto cls = impl_->classify(r, pred, pred_bad);
  auto lm = impl_->landmark(r, pred, pred_bad, g);
  g.cls_skipped.add(cls);
  g.lm_skipped.add(lm);
  if (is_problem_reason(cls) || is_problem_reason(lm)) ++g.problem_records;
}

// --- the report ------------------------------------------------------------------

namespace {

// Fills the classification part of a summary from its matrix.
void finish_classification(GroupSummary& s, const std::vector<bool>& correct,
                           const EvalOptions& opt) {
  s.metrics = classification_metrics(s.confusion);
  if (opt.bootstrap > 0) s.accuracy_ci = bootstrap_accuracy_ci(correct, opt.bootstrap, opt.seed);
}

LandmarkSummary finish_landmarks(std::vector<double> io, std::vector<double> ip, SkipReport skipped,
                                 double threshold) {
  LandmarkSummary l;
  l.inter_ocular_stats = error_stats(io, threshold);
  l.inter_pupil_stats = error_stats(ip, threshold);
  l.inter_ocular = std::move(io);
  l.inter_pupil = std::move(ip);
  l.skipped = std::move(skipped);
  return l;
}

void add_notes(const GroupSummary& s, const std::string& where, std::vector<std::string>& notes) {
  if (s.metrics.n == 0) return;
  std::string absent, unpredicted;
  for (const auto& c : s.metrics.classes) {
    if (!c.recall_defined)
      absent += (absent.empty() ? "" : ", ") + c.label;
    else if (!c.precision_defined)
      unpredicted += (unpredicted.empty() ? "" : ", ") + c.label;
  }
  if (!absent.empty())
    notes.push_back(where + "no examples of " + absent +
                    ": recall and F1 undefined (shown as 0), left out of balanced accuracy "
                    "and macro-F1");
  if (!unpredicted.empty())
    notes.push_back(where + "never predicted: " + unpredicted +
                    ": precision undefined, counted as 0");
}

// Paired comparison on the keys both groups scored.
Comparison compare(const std::map<std::string, bool>& group,
                   const std::map<std::string, bool>& base, const EvalOptions& opt) {
  Comparison c;
  c.baseline = opt.baseline;
  std::vector<double> diff;
  std::size_t hits = 0, base_hits = 0;
  for (const auto& [key, ok] : group) {
    auto b = base.find(key);
    if (b == base.end()) continue;
    hits += ok;
    base_hits += b->second;
    diff.push_back(double(ok) - double(b->second));
  }
  c.n = diff.size();
  if (c.n) {
    c.accuracy = double(hits) / double(c.n);
    c.baseline_accuracy = double(base_hits) / double(c.n);
    c.difference = c.accuracy - c.baseline_accuracy;
  }
  if (opt.bootstrap > 0) c.difference_ci = bootstrap_mean_ci(diff, opt.bootstrap, opt.seed);
  return c;
}

// Adds the paired landmark comparison (inter-ocular NME) to c.
void compare_landmarks(Comparison& c, const std::map<std::string, double>& group,
                       const std::map<std::string, double>& base, const EvalOptions& opt) {
  std::vector<double> diff;
  double sum = 0, base_sum = 0;
  for (const auto& [key, e] : group) {
    auto b = base.find(key);
    if (b == base.end()) continue;
    sum += e;
    base_sum += b->second;
    diff.push_back(e - b->second);
  }
  c.lm_n = diff.size();
  if (!c.lm_n) return;
  c.nme = sum / double(c.lm_n);
  c.baseline_nme = base_sum / double(c.lm_n);
  c.nme_difference = c.nme - c.baseline_nme;
  if (opt.bootstrap > 0) c.nme_difference_ci = bootstrap_mean_ci(diff, opt.bootstrap, opt.seed);
}

}  // namespace

Report Evaluator::finish() const {
  const auto& d = *impl_;
  Report rep;
  rep.options = d.opt;
  LabelSpace space = d.fixed ? *d.fixed : d.default_space();
  rep.labels = space.labels;

  std::size_t ng = d.groups.size();
  std::vector<GroupSummary> sums(ng);
  std::vector<std::vector<bool>> correct(ng);
  std::vector<std::map<std::string, bool>> keyed(ng);  // for the baseline comparison
  GroupSummary all;
  all.name = "overall";
  all.confusion = ConfusionMatrix(space.labels);
  std::vector<bool> all_correct;
  for (std::size_t i = 0; i < ng; ++i) {
    sums[i].name = d.groups[i].name;
    sums[i].records = d.groups[i].records;
    sums[i].confusion = ConfusionMatrix(space.labels);
    sums[i].skipped = d.groups[i].cls_skipped;
    sums[i].problem_records = d.groups[i].problem_records;
  }
  for (const auto& it : d.items) {
    auto& s = sums[it.group];
    int t = space.map(it.truth);
    if (t == kOutside) {
      s.skipped.add("truth_outside_classes");
      continue;
    }
    // A prediction whose every label falls outside the space is wrong.
    int p = resolve_prediction(it.pred, space).value_or(kOutside);
    s.confusion.add(t, p);
    all.confusion.add(t, p);
    correct[it.group].push_back(p == t);
    all_correct.push_back(p == t);
    if (!d.opt.baseline.empty()) keyed[it.group].emplace(it.key, p == t);
  }
  std::vector<double> all_io, all_ip;
  SkipReport all_lm_skipped;
  for (std::size_t i = 0; i < ng; ++i) {
    finish_classification(sums[i], correct[i], d.opt);
    all.records += sums[i].records;
    all.problem_records += sums[i].problem_records;
    merge(all.skipped, sums[i].skipped);
    const auto& g = d.groups[i];
    if (d.any_landmarks)
      sums[i].landmarks =
          finish_landmarks(g.inter_ocular, g.inter_pupil, g.lm_skipped, d.opt.threshold);
    all_io.insert(all_io.end(), g.inter_ocular.begin(), g.inter_ocular.end());
    all_ip.insert(all_ip.end(), g.inter_pupil.begin(), g.inter_pupil.end());
    merge(all_lm_skipped, g.lm_skipped);
  }
  finish_classification(all, all_correct, d.opt);
  if (d.any_landmarks)
    all.landmarks = finish_landmarks(std::move(all_io), std::move(all_ip),
                                     std::move(all_lm_skipped), d.opt.threshold);
  rep.overall = std::move(all);
  if (!d.opt.baseline.empty()) {
    auto base = d.group_index.find(d.opt.baseline);
    if (base == d.group_index.end())
      throw UsageError("--baseline " + d.opt.baseline + ": no record has " + d.opt.group_by +
                       " = " + d.opt.baseline);
    const std::size_t b = base->second;
    for (std::size_t i = 0; i < ng; ++i) {
      if (i == b) continue;
      sums[i].vs_baseline = compare(keyed[i], keyed[b], d.opt);
      compare_landmarks(*sums[i].vs_baseline, d.groups[i].keyed_inter_ocular,
                        d.groups[b].keyed_inter_ocular, d.opt);
    }
  }
  if (!d.opt.group_by.empty()) {
    rep.groups = std::move(sums);
    for (const auto& g : rep.groups) add_notes(g, g.name + ": ", rep.notes);
    add_notes(rep.overall, "overall: ", rep.notes);
  } else {
    add_notes(rep.overall, "", rep.notes);
  }
  return rep;
}

// --- JSON ------------------------------------------------------------------------

namespace {

json::value opt_number(const std::optional<double>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

// [low, high], or null.
json::value interval_json(const std::optional<Interval>& ci) {
  return ci ? json::value(json::array{ci->low, ci->high}) : json::value(nullptr);
}

json::object skip_json(const SkipReport& s) {
  json::object reasons;
  for (const auto& [name, n] : s.reasons) reasons[name] = n;
  json::object o;
  o["total"] = s.total();
  o["reasons"] = std::move(reasons);
  return o;
}

json::object error_json(const ErrorStats& e) {
  json::object o;
  o["mean_nme"] = opt_number(e.mean);
  o["auc"] = opt_number(e.auc);
  o["failure_rate"] = opt_number(e.failure_rate);
  return o;
}

json::object summary_json(const GroupSummary& s, const Report& rep, bool other_column) {
  const auto& m = s.metrics;
  json::object o;
  o["records"] = s.records;
  o["n"] = m.n;
  o["correct"] = m.correct;
  o["accuracy"] = opt_number(m.accuracy);
  if (rep.options.bootstrap > 0) {
    json::object b;
    b["resamples"] = rep.options.bootstrap;
    b["seed"] = rep.options.seed;
    b["level"] = 0.95;
    b["accuracy_ci"] = interval_json(s.accuracy_ci);
    o["bootstrap"] = std::move(b);
  }
  if (s.vs_baseline) {
    const auto& c = *s.vs_baseline;
    json::object v;
    v["baseline"] = c.baseline;
    v["n"] = c.n;
    v["accuracy"] = c.accuracy;
    v["baseline_accuracy"] = c.baseline_accuracy;
    v["difference"] = c.difference;
    if (rep.options.bootstrap > 0) v["difference_ci"] = interval_json(c.difference_ci);
    if (c.lm_n) {
      json::object l;
      l["n"] = c.lm_n;
      l["mean_nme"] = c.nme;
      l["baseline_mean_nme"] = c.baseline_nme;
      l["difference"] = c.nme_difference;
      if (rep.options.bootstrap > 0) l["difference_ci"] = interval_json(c.nme_difference_ci);
      v["landmarks"] = std::move(l);
    }
    o["vs_baseline"] = std::move(v);
  }
  o["balanced_accuracy"] = opt_number(m.balanced_accuracy);
  o["macro_f1"] = opt_number(m.macro_f1);
  json::array per_class;
  for (const auto& c : m.classes) {
    json::object k;
    k["label"] = c.label;
    k["precision"] = c.precision;
    k["recall"] = c.recall;
    k["f1"] = c.f1;
    k["support"] = c.support;
    k["predicted"] = c.predicted;
    k["precision_defined"] = c.precision_defined;
    k["recall_defined"] = c.recall_defined;
    per_class.push_back(std::move(k));
  }
  o["per_class"] = std::move(per_class);

  const auto& cm = s.confusion;
  json::array labels, columns, counts, fractions;
  for (const auto& l : cm.labels()) {
    labels.push_back(json::value(l));
    columns.push_back(json::value(l));
  }
  if (other_column) columns.push_back("other");
  for (int t = 0; t < cm.size(); ++t) {
    json::array row, frac;
    for (int p = 0; p < cm.size(); ++p) {
      row.push_back(cm.count(t, p));
      frac.push_back(cm.row_fraction(t, p));
    }
    if (other_column) {
      row.push_back(cm.count(t, kOutside));
      frac.push_back(cm.row_fraction(t, kOutside));
    }
    counts.push_back(std::move(row));
    fractions.push_back(std::move(frac));
  }
  json::object conf;
  conf["labels"] = std::move(labels);
  conf["columns"] = std::move(columns);
  conf["counts"] = std::move(counts);
  conf["row_normalized"] = std::move(fractions);
  o["confusion"] = std::move(conf);
  o["skipped"] = skip_json(s.skipped);

  if (s.landmarks) {
    const auto& l = *s.landmarks;
    json::object lm;
    lm["n"] = l.inter_ocular_stats.n;
    lm["threshold"] = rep.options.threshold;
    lm["inter_ocular"] = error_json(l.inter_ocular_stats);
    lm["inter_pupil"] = error_json(l.inter_pupil_stats);
    lm["skipped"] = skip_json(l.skipped);
    o["landmarks"] = std::move(lm);
  }
  return o;
}

json::array notes_json(const Report& rep) {
  json::array a;
  for (const auto& n : rep.notes) a.push_back(json::value(n));
  return a;
}

}  // namespace

json::object report_to_json(const Report& rep) {
  bool other = rep.overall.confusion.outside_total() > 0;
  std::string set = rep.options.classes.empty() ? "predicted" : rep.options.classes;
  if (rep.options.group_by.empty()) {
    json::object o;
    o["class_set"] = set;
    for (auto& kv : summary_json(rep.overall, rep, other)) o[kv.key()] = kv.value();
    o["notes"] = notes_json(rep);
    return o;
  }
  json::object o;
  o["class_set"] = set;
  o["group_by"] = rep.options.group_by;
  json::array labels;
  for (const auto& l : rep.labels) labels.push_back(json::value(l));
  o["labels"] = std::move(labels);
  json::array groups;
  for (const auto& g : rep.groups) {
    json::object e;
    e["group"] = g.name;
    for (auto& kv : summary_json(g, rep, other)) e[kv.key()] = kv.value();
    groups.push_back(std::move(e));
  }
  o["groups"] = std::move(groups);
  o["overall"] = summary_json(rep.overall, rep, other);
  o["notes"] = notes_json(rep);
  return o;
}

// --- markdown and TSV -------------------------------------------------------------

namespace {

std::string fixed(double v, int digits) { return fixed_decimals(v, digits); }
std::string pct(const std::optional<double>& v, int digits = 1) {
  return v ? fixed(100 * *v, digits) : "–";
}
// A difference of fractions in percentage points with its sign: "+1.2", "-0.4".
std::string signed_points(double v, int digits = 1) {
  std::string s = fixed(100 * v, digits);
  if (s.find_first_not_of("-0.") == std::string::npos) return s[0] == '-' ? s.substr(1) : s;
  return v >= 0 ? "+" + s : s;
}
std::string ci_text(const std::optional<Interval>& ci) {
  return ci ? fixed(100 * ci->low, 1) + "–" + fixed(100 * ci->high, 1) : "–";
}
std::string class_set_text(const Report& rep) {
  const auto& c = rep.options.classes;
  if (c.empty())
    return std::to_string(rep.labels.size()) + (rep.labels.size() == 1 ? " class" : " classes") +
           " (the model's)";
  if (c == "3") return "3 classes (negative / positive / neutral; surprise dropped)";
  if (c == "6") return "6 classes (basic emotions)";
  return c + " classes";
}
std::string skip_text(const SkipReport& s) {
  std::string t;
  for (const auto& [name, n] : s.reasons)
    t += (t.empty() ? "" : ", ") + name + " " + std::to_string(n);
  return t.empty() ? "none" : t;
}

// The per-class table and the confusion matrix of one summary.
void markdown_classes(std::ostringstream& md, const GroupSummary& s) {
  md << "### Per class\n\n| class | precision (%) | recall (%) | F1 (%) | support | predicted |\n"
     << "|---|--:|--:|--:|--:|--:|\n";
  for (const auto& c : s.metrics.classes)
    md << "| " << c.label << " | " << (c.precision_defined ? pct(c.precision) : "–") << " | "
       << (c.recall_defined ? pct(c.recall) : "–") << " | "
       << (c.precision_defined || c.recall_defined ? pct(c.f1) : "–") << " | " << c.support << " | "
       << c.predicted << " |\n";

  const auto& cm = s.confusion;
  bool other = cm.outside_total() > 0;
  md << "\n### Confusion matrix\n\nRows: truth; columns: prediction; each cell: count (row %).\n\n"
     << "| truth \\ pred |";
  for (const auto& l : cm.labels()) md << " " << l << " |";
  if (other) md << " other |";
  md << " support |\n|---|";
  for (int p = 0; p < cm.size() + (other ? 1 : 0); ++p) md << "--:|";
  md << "--:|\n";
  for (int t = 0; t < cm.size(); ++t) {
    md << "| **" << cm.labels()[std::size_t(t)] << "** |";
    auto cell = [&](int p) {
      md << " " << cm.count(t, p);
      if (cm.support(t)) md << " (" << fixed(100 * cm.row_fraction(t, p), 1) << ")";
      md << " |";
    };
    for (int p = 0; p < cm.size(); ++p) cell(p);
    if (other) cell(kOutside);
    md << " " << cm.support(t) << " |\n";
  }
}

// A skip table: "k of n records were not scored" and the reasons.
void markdown_skips(std::ostringstream& md, const char* what, const SkipReport& skipped,
                    std::size_t records) {
  md << "\n### Skipped (" << what << ")\n\n"
     << skipped.total() << " of " << records << " records were not scored";
  if (!skipped.total()) {
    md << ".\n";
    return;
  }
  md << ":\n\n| reason | records |\n|---|--:|\n";
  for (const auto& [name, n] : skipped.reasons) md << "| " << name << " | " << n << " |\n";
}

void markdown_single(std::ostringstream& md, const Report& rep) {
  const auto& s = rep.overall;
  const auto& m = s.metrics;
  const bool classes = !rep.labels.empty();
  // A landmark-only run (e.g. 300-W) has no classification to show.
  const bool classification = classes || !s.landmarks;
  auto percent = [](const std::optional<double>& v) { return v ? pct(v) + "%" : pct(v); };
  md << "## Evaluation"
     << (classes          ? ": " + class_set_text(rep)
         : classification ? ""
                          : ": landmarks")
     << "\n\n";
  if (classification) {
    md << "| metric | value |\n|---|---|\n";
    md << "| records | " << s.records << " |\n";
    md << "| scored (n) | " << m.n << " |\n";
    md << "| accuracy | " << percent(m.accuracy);
    if (rep.options.bootstrap > 0)
      md << " (95% CI " << ci_text(s.accuracy_ci) << ", " << rep.options.bootstrap
         << " bootstrap resamples, seed " << rep.options.seed << ")";
    md << " |\n";
    md << "| balanced accuracy | " << percent(m.balanced_accuracy) << " |\n";
    md << "| macro-F1 | " << percent(m.macro_f1) << " |\n";
    md << "| skipped | " << s.skipped.total() << " |\n\n";
    if (classes) markdown_classes(md, s);
  }

  if (s.landmarks) {
    const auto& l = *s.landmarks;
    std::string th = fixed(rep.options.threshold, 2);
    md << (classification ? "\n### Landmarks\n\n" : "")
       << "| normalisation | n | mean NME (%) | AUC@" << th << " (%) | failure@" << th
       << " (%) |\n|---|--:|--:|--:|--:|\n";
    auto row = [&](const char* name, const ErrorStats& e) {
      md << "| " << name << " | " << e.n << " | " << pct(e.mean, 2) << " | " << pct(e.auc, 2)
         << " | " << pct(e.failure_rate, 2) << " |\n";
    };
    row("inter-ocular (corners 36, 45)", l.inter_ocular_stats);
    row("inter-pupil (eye centres)", l.inter_pupil_stats);
  }

  if (classification) markdown_skips(md, "classification", s.skipped, s.records);
  if (s.landmarks) markdown_skips(md, "landmarks", s.landmarks->skipped, s.records);
}

// One group's side of a paired comparison (see Comparison).
struct PairedRow {
  std::size_t n;
  double value, baseline, difference;
  std::optional<Interval> difference_ci;
};

// The table of every group against the --baseline group (nothing without
// one); get(Comparison) gives a row, a row with n = 0 is left out.
template <typename Name, typename Get>
void markdown_paired_table(std::ostringstream& md, const Report& rep,
                           const std::vector<const GroupSummary*>& rows, const Name& name,
                           const std::string& heading, const std::string& what, int digits,
                           const Get& get) {
  if (rep.options.baseline.empty()) return;
  const bool boot = rep.options.bootstrap > 0;
  md << heading << "\n\n| " << rep.options.group_by << " | n | " << what << " | baseline " << what
     << " | difference (points) |" << (boot ? " 95% CI (points) |" : "")
     << "\n|---|--:|--:|--:|--:|" << (boot ? "--:|" : "") << "\n";
  for (const auto* g : rows) {
    if (!g->vs_baseline) continue;
    PairedRow r = get(*g->vs_baseline);
    if (!r.n) continue;
    md << "| " << name(g) << " | " << r.n << " | " << pct(r.value, digits) << " | "
       << pct(r.baseline, digits) << " | " << signed_points(r.difference, digits) << " |";
    if (boot)
      md << " "
         << (r.difference_ci ? signed_points(r.difference_ci->low, digits) + " to " +
                                   signed_points(r.difference_ci->high, digits)
                             : std::string("–"))
         << " |";
    md << "\n";
  }
}

// The cross-group accuracy table and the recall of each class per group.
template <typename Name>
void markdown_accuracy_tables(std::ostringstream& md, const Report& rep,
                              const std::vector<const GroupSummary*>& rows, const Name& name) {
  const auto& by = rep.options.group_by;
  const bool boot = rep.options.bootstrap > 0;
  md << "## Accuracy by " << by << ": " << class_set_text(rep) << "\n\n";
  md << "| " << by << " | n | Acc. (%) |" << (boot ? " 95% CI |" : "")
     << " Bal. acc. (%) | Macro-F1 (%) | skipped |\n|---|--:|--:|" << (boot ? "--:|" : "")
     << "--:|--:|--:|\n";
  for (const auto* g : rows) {
    const auto& m = g->metrics;
    md << "| " << name(g) << " | " << m.n << " | " << pct(m.accuracy) << " |";
    if (boot) md << " " << ci_text(g->accuracy_ci) << " |";
    md << " " << pct(m.balanced_accuracy) << " | " << pct(m.macro_f1) << " | " << g->skipped.total()
       << " |\n";
  }

  markdown_paired_table(
      md, rep, rows, name,
      "\n### Against " + by + " = " + rep.options.baseline + " (paired: the records both scored)",
      "Acc. (%)", 1, [](const Comparison& c) {
        return PairedRow{c.n, c.accuracy, c.baseline_accuracy, c.difference, c.difference_ci};
      });

  md << "\n### Recall per class (%)\n\n| " << by << " |";
  for (const auto& l : rep.labels) md << " " << l << " |";
  md << "\n|---|";
  for (std::size_t i = 0; i < rep.labels.size(); ++i) md << "--:|";
  md << "\n";
  for (const auto* g : rows) {
    md << "| " << name(g) << " |";
    for (const auto& c : g->metrics.classes)
      md << " " << (c.recall_defined ? pct(c.recall) : "–") << " |";
    md << "\n";
  }
}

void markdown_grouped(std::ostringstream& md, const Report& rep) {
  const auto& by = rep.options.group_by;
  std::vector<const GroupSummary*> rows;
  for (const auto& g : rep.groups) rows.push_back(&g);
  rows.push_back(&rep.overall);
  auto name = [&](const GroupSummary* g) {
    return g == &rep.overall ? std::string("**overall**") : g->name;
  };
  if (!rep.labels.empty()) markdown_accuracy_tables(md, rep, rows, name);
  const bool lm = rep.overall.landmarks.has_value();

  if (lm) {
    std::string th = fixed(rep.options.threshold, 2);
    md << (rep.labels.empty() ? "## Landmarks by " : "\n### Landmarks by ") << by << "\n\n| " << by
       << " | n | NME inter-ocular (%) | NME inter-pupil (%) | AUC@" << th << " (%) | failure@"
       << th << " (%) |\n|---|--:|--:|--:|--:|--:|\n";
    for (const auto* g : rows) {
      const auto& l = *g->landmarks;
      md << "| " << name(g) << " | " << l.inter_ocular_stats.n << " | "
         << pct(l.inter_ocular_stats.mean, 2) << " | " << pct(l.inter_pupil_stats.mean, 2) << " | "
         << pct(l.inter_ocular_stats.auc, 2) << " | " << pct(l.inter_ocular_stats.failure_rate, 2)
         << " |\n";
    }
    markdown_paired_table(
        md, rep, rows, name,
        "\n#### Landmarks against " + by + " = " + rep.options.baseline +
            " (paired: the faces both scored; negative = lower error)",
        "NME inter-ocular (%)", 2, [](const Comparison& c) {
          return PairedRow{c.lm_n, c.nme, c.baseline_nme, c.nme_difference, c.nme_difference_ci};
        });
  }

  md << "\n### Skipped\n\n| " << by << " | records | skipped | reasons |"
     << (lm ? " landmarks skipped | reasons |" : "") << "\n|---|--:|--:|---|"
     << (lm ? "--:|---|" : "") << "\n";
  for (const auto* g : rows) {
    md << "| " << name(g) << " | " << g->records << " | " << g->skipped.total() << " | "
       << skip_text(g->skipped) << " |";
    if (lm)
      md << " " << g->landmarks->skipped.total() << " | " << skip_text(g->landmarks->skipped)
         << " |";
    md << "\n";
  }
}

}  // namespace

std::string report_to_markdown(const Report& rep) {
  std::ostringstream md;
  if (rep.options.group_by.empty())
    markdown_single(md, rep);
  else
    markdown_grouped(md, rep);
  if (!rep.notes.empty()) {
    md << "\nNotes:\n\n";
    for (const auto& n : rep.notes) md << "- " << n << "\n";
  }
  return md.str();
}

std::string report_to_tsv(const Report& rep) {
  auto num = [](const std::optional<double>& v) {
    if (!v) return std::string("NA");
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", *v);
    return std::string(buf);
  };
  bool lm = rep.overall.landmarks.has_value();
  std::ostringstream t;
  t << "group\trecords\tn\taccuracy\tci_low\tci_high\tbalanced_accuracy\tmacro_f1\tskipped";
  for (const auto& l : rep.labels) t << "\trecall_" << l;
  if (lm) t << "\tlandmarks_n\tnme_inter_ocular\tnme_inter_pupil\tauc\tfailure_rate";
  t << "\n";
  std::vector<const GroupSummary*> rows;
  for (const auto& g : rep.groups) rows.push_back(&g);
  rows.push_back(&rep.overall);
  for (const auto* g : rows) {
    const auto& m = g->metrics;
    std::optional<double> lo, hi;
    if (g->accuracy_ci) {
      lo = g->accuracy_ci->low;
      hi = g->accuracy_ci->high;
    }
    t << g->name << "\t" << g->records << "\t" << m.n << "\t" << num(m.accuracy) << "\t" << num(lo)
      << "\t" << num(hi) << "\t" << num(m.balanced_accuracy) << "\t" << num(m.macro_f1) << "\t"
      << g->skipped.total();
    for (const auto& c : m.classes)
      t << "\t" << (c.recall_defined ? num(c.recall) : std::string("NA"));
    if (lm) {
      const auto& l = *g->landmarks;
      t << "\t" << l.inter_ocular_stats.n << "\t" << num(l.inter_ocular_stats.mean) << "\t"
        << num(l.inter_pupil_stats.mean) << "\t" << num(l.inter_ocular_stats.auc) << "\t"
        << num(l.inter_ocular_stats.failure_rate);
    }
    t << "\n";
  }
  return t.str();
}

std::string format_report(const Report& rep, ReportFormat format) {
  switch (format) {
    case ReportFormat::kMarkdown:
      return report_to_markdown(rep);
    case ReportFormat::kTsv:
      return report_to_tsv(rep);
    case ReportFormat::kJson:
      break;
  }
  return to_line(report_to_json(rep)) + "\n";
}

}  // namespace edan
