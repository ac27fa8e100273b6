#include "edan/train.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <limits>
#include <map>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "edan/augment.hpp"
#include "edan/cli.hpp"
#include "edan/detect.hpp"
#include "edan/error.hpp"
#include "edan/fs.hpp"
#include "edan/image.hpp"
#include "edan/version.hpp"

namespace edan {

// --- schedule ---------------------------------------------------------------

double triangular_lr(std::int64_t iteration, double base, double max, std::int64_t step) {
  if (step < 1) throw std::invalid_argument("triangular_lr: step must be at least 1");
  const double it = static_cast<double>(iteration), st = static_cast<double>(step);
  const double cycle = std::floor(1 + it / (2 * st));
  const double x = std::fabs(it / st - 2 * cycle + 1);
  return base + (max - base) * std::max(0.0, 1 - x);
}

// --- loss -------------------------------------------------------------------

torch::Tensor sample_nme(const torch::Tensor& pred, const torch::Tensor& truth, NmeNorm norm) {
  torch::Tensor d;
  if (norm == NmeNorm::kInterOcular) {
    d = (truth.select(1, 36) - truth.select(1, 45)).norm(2, -1);
  } else {
    auto left = truth.narrow(1, 36, 6).mean(1), right = truth.narrow(1, 42, 6).mean(1);
    d = (left - right).norm(2, -1);
  }
  return (pred - truth).norm(2, -1).mean(1) / d;
}

LossTerms joint_loss(const torch::Tensor& pred, const torch::Tensor& truth,
                     const torch::Tensor& has_landmarks, const torch::Tensor& logits,
                     const torch::Tensor& targets, double alpha, double beta) {
  LossTerms t;
  auto lm_mask = has_landmarks.to(torch::kBool);
  const bool soft = targets.dim() == 2;
  if (soft && targets.size(1) != logits.size(1))
    throw std::invalid_argument("joint_loss: targets have " + std::to_string(targets.size(1)) +
                                " classes, logits " + std::to_string(logits.size(1)));
  auto lab_mask = soft ? targets.sum(1) > 0 : targets >= 0;
  t.with_landmarks = lm_mask.sum().item<std::int64_t>();
  t.with_labels = lab_mask.sum().item<std::int64_t>();
  auto zero = torch::zeros({}, logits.options());
  if (t.with_landmarks > 0) {
    // Only the masked samples: a missing truth (zeros) would give 0/0.
    auto idx = lm_mask.nonzero().squeeze(1);
    t.nme = sample_nme(pred.index_select(0, idx), truth.index_select(0, idx)).mean();
  } else {
    t.nme = zero;
  }
  if (t.with_labels > 0) {
    auto idx = lab_mask.nonzero().squeeze(1);
    auto log_p = torch::log_softmax(logits.index_select(0, idx), /*dim=*/1);
    t.ce = soft ? -(targets.index_select(0, idx) * log_p).sum(1).mean()
                : torch::nll_loss(log_p, targets.index_select(0, idx));
  } else {
    t.ce = zero;
  }
  t.total = alpha * t.nme + beta * t.ce;
  return t;
}

// --- data -------------------------------------------------------------------

TrainingSet TrainingSet::subset(const std::vector<std::size_t>& index) const {
  std::vector<std::int64_t> idx(index.begin(), index.end());
  auto t = torch::tensor(idx, torch::kLong);
  TrainingSet s;
  s.images = images.index_select(0, t);
  s.landmarks = landmarks.index_select(0, t);
  s.has_landmarks = has_landmarks.index_select(0, t);
  s.labels = labels.index_select(0, t);
  if (targets.defined()) s.targets = targets.index_select(0, t);
  for (auto i : index) s.subjects.push_back(subjects[i]);
  return s;
}

Split split_by_subject(const std::vector<std::string>& subjects, double fraction,
                       std::uint64_t seed) {
  Split split;
  const std::size_t n = subjects.size();
  if (fraction <= 0 || n == 0) {
    split.train.resize(n);
    std::iota(split.train.begin(), split.train.end(), std::size_t{0});
    return split;
  }
  // Groups in order of first appearance, so the result does not depend on
  // hashing.
  std::vector<std::vector<std::size_t>> groups;
  std::map<std::string, std::size_t> group_of;
  for (std::size_t i = 0; i < n; ++i) {
    if (subjects[i].empty()) {
      groups.push_back({i});
      continue;
    }
    auto it = group_of.find(subjects[i]);
    if (it == group_of.end()) {
      group_of.emplace(subjects[i], groups.size());
      groups.push_back({i});
    } else {
      groups[it->second].push_back(i);
    }
  }
  std::vector<std::size_t> order(groups.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  for (std::size_t i = order.size(); i > 1; --i) {
    std::size_t j = mix_seed({seed, 0x5917ull, i}) % i;
    std::swap(order[i - 1], order[j]);
  }
  const double want = fraction * static_cast<double>(n);
  std::vector<bool> in_val(n, false);
  std::size_t taken = 0;
  for (std::size_t k = 0; k + 1 < order.size() && static_cast<double>(taken) < want; ++k) {
    for (auto i : groups[order[k]]) in_val[i] = true;
    taken += groups[order[k]].size();
  }
  for (std::size_t i = 0; i < n; ++i) (in_val[i] ? split.val : split.train).push_back(i);
  return split;
}

Shape schematic_shape(double size) {
  constexpr double kPi = 3.14159265358979323846;
  Shape s;
  for (int i = 0; i <= 16; ++i) {  // jaw, from the left temple to the right
    double t = kPi * i / 16;
    s.push_back({-0.9 * std::cos(t), -0.1 + 0.9 * std::sin(t)});
  }
  for (int k = 0; k < 5; ++k)  // left brow
    s.push_back({-0.75 + 0.15 * k, -0.45 - 0.08 * std::sin(kPi * k / 4)});
  for (int k = 0; k < 5; ++k)  // right brow
    s.push_back({0.15 + 0.15 * k, -0.45 - 0.08 * std::sin(kPi * (4 - k) / 4)});
  for (int k = 0; k < 4; ++k) s.push_back({0, -0.3 + 0.15 * k});  // nose bridge
  const double nostril_y[5] = {0.25, 0.27, 0.28, 0.27, 0.25};
  for (int k = 0; k < 5; ++k) s.push_back({-0.2 + 0.1 * k, nostril_y[k]});
  const Shape left_eye = {{-0.62, -0.25}, {-0.5, -0.32},  {-0.34, -0.32},
                          {-0.22, -0.25}, {-0.34, -0.19}, {-0.5, -0.19}};
  const Shape right_eye = {{0.22, -0.25}, {0.34, -0.32}, {0.5, -0.32},
                           {0.62, -0.25}, {0.5, -0.19},  {0.34, -0.19}};
  s.insert(s.end(), left_eye.begin(), left_eye.end());
  s.insert(s.end(), right_eye.begin(), right_eye.end());
  const Shape mouth = {{-0.35, 0.5},  {-0.22, 0.44}, {-0.08, 0.42}, {0, 0.43},    {0.08, 0.42},
                       {0.22, 0.44},  {0.35, 0.5},   {0.22, 0.58},  {0.08, 0.61}, {0, 0.62},
                       {-0.08, 0.61}, {-0.22, 0.58}, {-0.28, 0.5},  {-0.1, 0.48}, {0, 0.48},
                       {0.1, 0.48},   {0.28, 0.5},   {0.1, 0.53},   {0, 0.53},    {-0.1, 0.53}};
  s.insert(s.end(), mouth.begin(), mouth.end());
  return mean_shape({s}, size, 0.8);
}

Shape training_mean_shape(const std::vector<Shape>& shapes, double size) {
  if (shapes.empty()) return schematic_shape(size);
  Shape procrustes = mean_shape(shapes, size);
  Shape average(kNumLandmarks);
  for (const auto& s : shapes)
    for (std::size_t i = 0; i < kNumLandmarks; ++i) {
      average[i].x += s[i].x / static_cast<double>(shapes.size());
      average[i].y += s[i].y / static_cast<double>(shapes.size());
    }
  return estimate_similarity(procrustes, average).apply(procrustes);
}

namespace {
// A record's "target" ({label: probability}) as a distribution over
// `classes`: labels outside the set are dropped, the rest renormalised.
// Empty when nothing is left. Throws RecordError for a malformed target.
std::vector<double> parse_target(const boost::json::value& v, ClassSet classes) {
  if (!v.is_object()) throw RecordError("\"target\" must be an object of label: probability");
  std::vector<double> t(static_cast<std::size_t>(class_count(classes)), 0.0);
  double sum = 0;
  for (const auto& kv : v.get_object()) {
    const std::string name(kv.key());
    auto canon = canonical_label(name);
    if (!canon) throw RecordError("target: unknown label '" + name + "'");
    if (!kv.value().is_number()) throw RecordError("target: '" + name + "' is not a number");
    const double p = kv.value().to_number<double>();
    if (!(p >= 0) || !std::isfinite(p))
      throw RecordError("target: '" + name + "' must be a finite number >= 0");
    auto mapped = map_label(*canon, classes);
    if (!mapped) continue;
    t[static_cast<std::size_t>(class_index(classes, *mapped))] += p;
    sum += p;
  }
  if (!(sum > 0)) return {};
  for (auto& p : t) p /= sum;
  return t;
}

// The face a record names, decoded: "crop", else "image". read_gray, as
// edan-predict reads faces: the same pixels for the same file (alpha, EXIF
// orientation), and its limits (an image larger than kMaxImagePixels is
// refused from its header, before decoding).
cv::Mat read_record_face(const Record& r) {
  auto path = get_string(r, "crop");
  if (!path) path = get_string(r, "image");
  if (!path) throw RecordError("no \"crop\" or \"image\" field");
  std::error_code ec;
  // Checked first: OpenCV would also print its own warning on stderr.
  if (!std::filesystem::is_regular_file(*path, ec))
    throw RecordError(*path + ": cannot read image: no such file");
  return read_gray(*path);
}
}  // namespace

TrainingSet load_training_set(const std::vector<Record>& records, std::int64_t size,
                              ClassSet classes, LoadReport& report) {
  const std::int64_t n = static_cast<std::int64_t>(records.size());
  auto images = torch::empty({n, size, size}, torch::kUInt8);
  auto landmarks = torch::zeros({n, 68, 2}, torch::kFloat32);
  auto has = torch::zeros({n}, torch::kBool);
  auto labels = torch::full({n}, -1, torch::kLong);
  const std::int64_t n_classes = class_count(classes);
  auto targets = torch::zeros({n, n_classes}, torch::kFloat32);
  auto ta = targets.accessor<float, 2>();
  auto lm = landmarks.accessor<float, 3>();
  auto ha = has.accessor<bool, 1>();
  auto la = labels.accessor<std::int64_t, 1>();
  std::vector<std::string> subjects;
  std::int64_t kept = 0;
  for (std::size_t k = 0; k < records.size(); ++k) {
    const Record& r = records[k];
    ++report.read;
    auto skip = [&](std::size_t& counter, const std::string& why) {
      ++counter;
      report.messages.push_back("record " + std::to_string(k + 1) + ": " + why);
    };
    try {
      if (has_error(r)) {
        skip(report.failed, "has an error: " + get_string(r, "error").value_or("?"));
        continue;
      }
      std::optional<Shape> shape = get_shape(r, "landmarks");
      int label = -1;
      if (auto name = get_string(r, "label")) {
        auto canon = canonical_label(*name);
        if (!canon) throw RecordError("unknown label '" + *name + "'");
        auto mapped = map_label(*canon, classes);
        if (mapped) {
          label = class_index(classes, *mapped);
        } else if (classes == ClassSet::k3 && *canon == "surprise") {
          if (!shape) {
            skip(report.dropped, "surprise has no place in the 3-class set (dropped)");
            continue;
          }
          ++report.label_ignored;
        } else if (!shape) {
          skip(report.unusable, "label '" + *canon + "' is not in the class set");
          continue;
        } else {
          ++report.label_ignored;
        }
      }
      std::vector<double> target;
      if (auto it = r.find("target"); it != r.end()) {
        target = parse_target(it->value(), classes);
        if (target.empty() && !shape) {
          skip(report.unusable, "its \"target\" has no class of the set");
          continue;
        }
      } else if (label >= 0) {
        target.assign(static_cast<std::size_t>(n_classes), 0.0);
        target[static_cast<std::size_t>(label)] = 1;
      }
      if (!shape && target.empty()) {
        skip(report.unusable, "neither landmarks nor a label");
        continue;
      }
      cv::Mat img = read_record_face(r);
      const double sx = static_cast<double>(size) / img.cols;
      const double sy = static_cast<double>(size) / img.rows;
      // Resized as edan-predict resizes faces (detect.hpp).
      img = resize_to_square(img, static_cast<int>(size));
      if (shape) {
        // Pixel centres at integers: x' = (x + 0.5)·s - 0.5.
        for (auto& p : *shape) {
          p.x = (p.x + 0.5) * sx - 0.5;
          p.y = (p.y + 0.5) * sy - 0.5;
        }
        if (!(inter_pupil_distance(*shape) >= 1.0))
          throw RecordError("landmarks: eye centres less than a pixel apart");
        for (std::size_t i = 0; i < kNumLandmarks; ++i) {
          lm[kept][static_cast<std::int64_t>(i)][0] = static_cast<float>((*shape)[i].x);
          lm[kept][static_cast<std::int64_t>(i)][1] = static_cast<float>((*shape)[i].y);
        }
        ha[kept] = true;
      }
      la[kept] = label;
      for (std::size_t c = 0; c < target.size(); ++c)
        ta[kept][static_cast<std::int64_t>(c)] = static_cast<float>(target[c]);
      std::memcpy(images[kept].data_ptr<std::uint8_t>(), img.ptr<std::uint8_t>(),
                  static_cast<std::size_t>(size * size));
      subjects.push_back(get_string(r, "subject").value_or(""));
      ++kept;
      ++report.kept;
    } catch (const FatalError&) {
      throw;
    } catch (const std::exception& e) {
      skip(report.failed, e.what());
    }
  }
  TrainingSet set;
  set.images = images.narrow(0, 0, kept).clone();
  set.landmarks = landmarks.narrow(0, 0, kept).clone();
  set.has_landmarks = has.narrow(0, 0, kept).clone();
  set.labels = labels.narrow(0, 0, kept).clone();
  set.targets = targets.narrow(0, 0, kept).clone();
  set.subjects = std::move(subjects);
  return set;
}

std::vector<Record> read_records_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw FatalError(path + ": cannot open: " + std::strerror(errno));
  std::vector<Record> out;
  RecordReader reader(f, path);
  Record r;
  try {
    while (reader.next(r)) out.push_back(std::move(r));
  } catch (...) {
    std::fclose(f);
    throw;
  }
  std::fclose(f);
  return out;
}

ModelConfig train_config(const TrainOptions& opt) {
  ModelConfig c = preset_config(opt.preset);
  if (opt.size > 0) c.size = opt.size;
  if (!opt.widths.empty()) c.widths = opt.widths;
  if (opt.stages != -1) c.stages = opt.stages;
  if (opt.dropout >= 0) c.dropout = opt.dropout;
  c.labels = class_names(parse_class_set(opt.classes));
  check_config(c);
  return c;
}

namespace {
void check_options(const TrainOptions& opt) {
  if (opt.output.empty()) throw UsageError("missing -o/--output MODEL");
  if (opt.val_fraction < 0 || opt.val_fraction >= 1)
    throw UsageError("--val-fraction must be in [0,1)");
  if (opt.alpha < 0 || opt.beta < 0 || opt.alpha + opt.beta <= 0)
    throw UsageError("--alpha and --beta must be >= 0, not both 0");
  if (opt.epochs < 0) throw UsageError("--epochs must be 0 or more");
  if (opt.patience < 1) throw UsageError("--patience must be at least 1");
  if (!(opt.lr_base > 0) || opt.lr_max < opt.lr_base)
    throw UsageError("need 0 < --lr-base <= --lr-max");
  if (opt.lr_step < 0) throw UsageError("--lr-step must be 0 (automatic) or more");
  if (opt.optimizer != "sgd" && opt.optimizer != "adam")
    throw UsageError("--optimizer must be sgd or adam");
  if (opt.stage_init != "random" && opt.stage_init != "previous")
    throw UsageError("--stage-init must be random or previous");
  if (opt.input_norm != "image" && opt.input_norm != "dataset" && opt.input_norm != "histeq")
    throw UsageError("--input-norm must be dataset, image or histeq");
  if (opt.max_steps < 0) throw UsageError("--max-steps must be 0 (no limit) or more");
  if (opt.batch < 2) throw UsageError("--batch must be at least 2 (BatchNorm)");
  if (opt.stages != -1 && opt.stages < 1) throw UsageError("--stages must be at least 1");
}

void print_report(const LoadReport& r, const std::string& what,
                  const std::function<void(const std::string&)>& note) {
  const std::size_t skipped = r.failed + r.unusable + r.dropped;
  if (skipped == 0 && r.label_ignored == 0) return;
  const std::size_t shown = 10;
  for (std::size_t i = 0; i < r.messages.size() && i < shown; ++i) note(what + " " + r.messages[i]);
  if (r.messages.size() > shown)
    note(what + ": ... " + std::to_string(r.messages.size() - shown) + " more skipped");
  std::ostringstream s;
  s << what << ": " << r.kept << " of " << r.read << " records used; skipped " << r.failed
    << " failed, " << r.unusable << " without a usable target, " << r.dropped
    << " dropped (surprise, 3 classes)";
  if (r.label_ignored) s << "; " << r.label_ignored << " labels outside the set ignored";
  note(s.str());
}
}  // namespace

TrainOutputs::TrainOutputs(const TrainOptions& opt, const std::vector<std::string>& sources) {
  if (opt.output.empty()) return;  // check_options names it
  const std::string ckpt = opt.checkpoint.empty() ? opt.output + ".ckpt" : opt.checkpoint;
  std::vector<std::pair<std::string, std::string>> outputs{{"-o", opt.output},
                                                           {"--checkpoint", ckpt}};
  if (!opt.log.empty()) outputs.emplace_back("--log", opt.log);
  std::vector<std::string> inputs = sources;
  if (!opt.val.empty()) inputs.push_back(opt.val);
  if (!opt.init.empty()) inputs.push_back(opt.init);
  for (const auto& [flag, out] : outputs)
    for (const auto& in : inputs)
      if (in != "-" && same_file(in, out))
        throw UsageError(flag + " " + out + " is also an input (" + in +
                         "): the run would overwrite it; write elsewhere");
  model_.emplace(opt.output, "the model " + opt.output);
  if (!opt.checkpoint.empty())
    checkpoint_.emplace(opt.checkpoint, "the checkpoint " + opt.checkpoint);
}

TrainingData prepare_training_data(const TrainOptions& opt, const std::vector<Record>& records,
                                   const std::vector<std::string>& sources,
                                   const std::function<void(const std::string&)>& note) {
  check_options(opt);
  ModelConfig config = train_config(opt);
  ClassSet classes = parse_class_set(opt.classes);
  // Before hours of training, not after them.
  check_writable(opt.output);
  check_writable(opt.checkpoint.empty() ? opt.output + ".ckpt" : opt.checkpoint);
  if (!opt.log.empty()) check_writable(opt.log);
  TrainingData data;
  data.sources = sources;
  TrainingSet all = load_training_set(records, config.size, classes, data.report);
  print_report(data.report, "training input", note);
  if (!opt.val.empty()) {
    LoadReport val_report;
    data.val = load_training_set(read_records_file(opt.val), config.size, classes, val_report);
    print_report(val_report, opt.val, note);
    data.report.read += val_report.read;
    data.report.failed += val_report.failed;
    data.report.unusable += val_report.unusable;
    data.report.dropped += val_report.dropped;
    data.report.label_ignored += val_report.label_ignored;
    data.sources.push_back(opt.val);
    data.train = std::move(all);
  } else {
    Split split = split_by_subject(all.subjects, opt.val_fraction, opt.seed);
    data.train = all.subset(split.train);
    data.val = all.subset(split.val);
    data.val_held_out = true;
  }
  if (data.train.size() < 2) throw FatalError("fewer than 2 usable training records");
  return data;
}

// --- reporting --------------------------------------------------------------

TrainReporter stderr_reporter(const std::string& program, bool quiet) {
  TrainReporter r;
  const bool tty = isatty(STDERR_FILENO) != 0;
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  auto shown = std::make_shared<bool>(false);
  r.progress = [=](const std::string& status) {
    if (quiet || !tty) return;
    auto now = std::chrono::steady_clock::now();
    if (*shown && now - *last < std::chrono::milliseconds(200)) return;
    *last = now;
    *shown = true;
    std::fprintf(stderr, "\r%s: %s\033[K", program.c_str(), status.c_str());
    std::fflush(stderr);
  };
  r.note = [=](const std::string& line) {
    if (quiet) return;
    if (tty && *shown) std::fputs("\r\033[K", stderr);
    std::fprintf(stderr, "%s: %s\n", program.c_str(), line.c_str());
    *shown = false;
  };
  return r;
}

// --- the loop ---------------------------------------------------------------

namespace {
volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_stop_signal(int sig) { g_signal = sig; }

// Installs the SIGINT/SIGTERM handlers for the duration of training.
class SignalScope {
 public:
  SignalScope() {
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalScope() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

struct Batch {
  torch::Tensor images, landmarks, has_landmarks, labels, targets;
};

// Sums over samples, turned into metrics at the end.
struct Tally {
  double nme = 0, nme_io = 0, ce = 0;
  std::int64_t n = 0, with_landmarks = 0, with_labels = 0, with_hard_labels = 0, correct = 0;

  void add(const LossTerms& t, const torch::Tensor& pred, const Batch& b,
           const torch::Tensor& logits) {
    n += b.images.size(0);
    with_landmarks += t.with_landmarks;
    with_labels += t.with_labels;
    nme += t.nme.item<double>() * static_cast<double>(t.with_landmarks);
    ce += t.ce.item<double>() * static_cast<double>(t.with_labels);
    if (t.with_landmarks > 0) {
      auto idx = b.has_landmarks.nonzero().squeeze(1);
      nme_io += sample_nme(pred.index_select(0, idx), b.landmarks.index_select(0, idx),
                           NmeNorm::kInterOcular)
                    .sum()
                    .item<double>();
    }
    auto mask = b.labels >= 0;
    with_hard_labels += mask.sum().item<std::int64_t>();
    correct += (logits.argmax(1).eq(b.labels) & mask).sum().item<std::int64_t>();
  }
  // Accuracy over the samples with a hard label (a soft target alone, as a
  // FER+ tie, trains but has no single right answer).
  double accuracy() const {
    return static_cast<double>(correct) / static_cast<double>(with_hard_labels);
  }
  double mean_nme() const { return with_landmarks ? nme / static_cast<double>(with_landmarks) : 0; }
  double mean_ce() const { return with_labels ? ce / static_cast<double>(with_labels) : 0; }
  double loss(double alpha, double beta) const { return alpha * mean_nme() + beta * mean_ce(); }
  boost::json::object to_json(double alpha, double beta) const {
    boost::json::object o;
    o["loss"] = loss(alpha, beta);
    o["accuracy"] = with_hard_labels ? boost::json::value(accuracy()) : boost::json::value(nullptr);
    o["nme"] = with_landmarks ? boost::json::value(mean_nme()) : boost::json::value(nullptr);
    o["nme_io"] = with_landmarks ? boost::json::value(nme_io / static_cast<double>(with_landmarks))
                                 : boost::json::value(nullptr);
    o["samples"] = n;
    return o;
  }
  boost::json::object state() const {
    return {{"nme", nme},
            {"nme_io", nme_io},
            {"ce", ce},
            {"n", n},
            {"with_landmarks", with_landmarks},
            {"with_labels", with_labels},
            {"with_hard_labels", with_hard_labels},
            {"correct", correct}};
  }
  static Tally from_state(const boost::json::object& o) {
    Tally t;
    t.nme = o.at("nme").to_number<double>();
    t.nme_io = o.at("nme_io").to_number<double>();
    t.ce = o.at("ce").to_number<double>();
    t.n = o.at("n").to_number<std::int64_t>();
    t.with_landmarks = o.at("with_landmarks").to_number<std::int64_t>();
    t.with_labels = o.at("with_labels").to_number<std::int64_t>();
    t.correct = o.at("correct").to_number<std::int64_t>();
    t.with_hard_labels = o.at("with_hard_labels").to_number<std::int64_t>();
    return t;
  }
};

// Builds batches: a pure function of (seed, stage, epoch, sample index).
class BatchMaker {
 public:
  BatchMaker(const TrainingSet& set, const ModelMeta& meta, bool augment, std::uint64_t seed,
             torch::Device device)
      : set_(set), meta_(meta), augment_(augment), seed_(seed), device_(device) {}

  Batch make(const std::vector<std::int64_t>& index, std::int64_t stage, std::int64_t epoch) const {
    auto idx = torch::tensor(index, torch::kLong);
    Batch b;
    auto pixels = set_.images.index_select(0, idx).to(torch::kFloat32).div_(255.0).unsqueeze(1);
    auto lm = set_.landmarks.index_select(0, idx);
    if (augment_) {
      std::vector<Augmentation> augs;
      const std::int64_t size = set_.images.size(1);
      for (auto i : index)
        augs.push_back(draw_augmentation(
            AugmentConfig{}, size,
            mix_seed({seed_, static_cast<std::uint64_t>(stage), static_cast<std::uint64_t>(epoch),
                      static_cast<std::uint64_t>(i)})));
      apply_augmentations(pixels, lm, augs);
    }
    b.images = normalise_images(pixels, meta_).to(device_);
    b.landmarks = lm.to(device_);
    b.has_landmarks = set_.has_landmarks.index_select(0, idx).to(device_);
    b.labels = set_.labels.index_select(0, idx).to(device_);
    // Sets built without soft targets train on their hard labels.
    b.targets =
        (set_.targets.defined() ? set_.targets : set_.labels).index_select(0, idx).to(device_);
    return b;
  }

 private:
  const TrainingSet& set_;
  const ModelMeta& meta_;
  bool augment_;
  std::uint64_t seed_;
  torch::Device device_;
};

// The order of an epoch: a pure function of (seed, stage, epoch).
std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t stage,
                                      std::int64_t epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  const std::uint64_t s = mix_seed(
      {seed, 0x0DE7ull, static_cast<std::uint64_t>(stage), static_cast<std::uint64_t>(epoch)});
  for (std::size_t i = order.size(); i > 1; --i)
    std::swap(order[i - 1], order[mix_seed({s, i}) % i]);
  return order;
}

// Evaluates the first n_stages stages on a whole set, without augmentation.
Tally evaluate(EmotionalDan& model, const TrainingSet& set, const ModelMeta& meta,
               std::int64_t n_stages, int batch, torch::Device device) {
  Tally tally;
  if (set.size() == 0) return tally;
  model->eval();
  torch::NoGradGuard no_grad;
  BatchMaker maker(set, meta, false, 0, device);
  const std::int64_t step = std::max<std::int64_t>(batch, 64);
  for (std::int64_t start = 0; start < set.size(); start += step) {
    std::vector<std::int64_t> idx;
    for (std::int64_t i = start; i < std::min(set.size(), start + step); ++i) idx.push_back(i);
    Batch b = maker.make(idx, 0, 0);
    auto out = model->forward(b.images, n_stages);
    auto pred = out.landmarks.back();
    auto terms = joint_loss(pred, b.landmarks, b.has_landmarks, out.logits, b.targets, 1, 1);
    tally.add(terms, pred, b, out.logits);
  }
  return tally;
}

using Snapshot = std::vector<torch::Tensor>;

std::vector<torch::Tensor> model_tensors(EmotionalDan& model) {
  std::vector<torch::Tensor> out;
  for (auto& p : model->named_parameters(true)) out.push_back(p.value());
  for (auto& b : model->named_buffers(true)) out.push_back(b.value());
  return out;
}

Snapshot snapshot(EmotionalDan& model) {
  Snapshot s;
  for (auto& t : model_tensors(model)) s.push_back(t.detach().clone());
  return s;
}

void restore(EmotionalDan& model, const Snapshot& s) {
  torch::NoGradGuard no_grad;
  auto tensors = model_tensors(model);
  if (tensors.size() != s.size()) throw FatalError("checkpoint: weights do not fit the model");
  for (std::size_t i = 0; i < s.size(); ++i) tensors[i].copy_(s[i]);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainOptions& opt,
                                                        std::vector<torch::Tensor> params) {
  if (opt.optimizer == "adam")
    return std::make_unique<torch::optim::Adam>(std::move(params),
                                                torch::optim::AdamOptions(opt.lr_base));
  return std::make_unique<torch::optim::SGD>(std::move(params),
                                             torch::optim::SGDOptions(opt.lr_base).momentum(0.9));
}

// --init: copies the first stages of a trained model into `model` (and its
// mean shape and input statistics into meta). Returns how many were copied
// and the first stage to train: the one after them, or stage 0 with
// --fine-tune, where every copied stage trains again (and all of the
// model's stages may be copied).
struct InitResult {
  std::int64_t first_stage = 0;  // the first stage to train
  std::int64_t copied = 0;       // stages copied from the model
};
InitResult init_from(EmotionalDan& model, ModelMeta& meta, const TrainOptions& opt,
                     const torch::Device& device) {
  if (opt.init.empty()) {
    if (opt.init_stages != 0) throw UsageError("--init-stages needs --init MODEL");
    if (opt.fine_tune) throw UsageError("--fine-tune needs --init MODEL");
    return {};
  }
  auto init = load_model(opt.init, device);
  const auto& a = init.meta.config;
  const auto& b = meta.config;
  if (a.size != b.size || a.widths != b.widths || a.fc != b.fc || a.labels != b.labels)
    throw UsageError("--init " + opt.init +
                     ": its architecture (size, widths, fc, classes) is not this run's");
  const std::int64_t k = opt.init_stages > 0 ? opt.init_stages : a.stages;
  if (opt.init_stages < 0 || k > a.stages || k > b.stages || (!opt.fine_tune && k >= b.stages))
    throw UsageError(
        "--init-stages " + std::to_string(k) + ": " + opt.init + " has " +
        std::to_string(a.stages) + " stage(s) and this run " + std::to_string(b.stages) +
        (opt.fine_tune ? "" : "; at least one must be left to train (or --fine-tune)"));
  for (std::int64_t i = 0; i < k; ++i) copy_weights(*init.model->stage(i), *model->stage(i));
  torch::NoGradGuard no_grad;
  model->named_buffers()["mean_shape"].copy_(init.model->mean_shape());
  meta.mean_shape = init.meta.mean_shape;
  meta.input_mean = init.meta.input_mean;
  meta.input_std = init.meta.input_std;
  if (init.meta.input_norm != meta.input_norm)
    throw UsageError("--init " + opt.init + ": it normalises input by '" + init.meta.input_norm +
                     "', this run by '" + meta.input_norm + "'");
  return {opt.fine_tune ? 0 : k, k};
}

// Trainable = stage s only; earlier stages frozen.
void freeze_all_but(EmotionalDan& model, std::int64_t s) {
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  for (auto& p : model->stage(s)->parameters()) p.set_requires_grad(true);
}

// Train mode for stage s, eval mode (BatchNorm statistics, no dropout) for
// the frozen stages before it.
void set_modes(EmotionalDan& model, std::int64_t s) {
  model->train();
  for (std::int64_t j = 0; j < s; ++j) model->stage(j)->eval();
}

std::string fmt(double v, int prec = 4) { return fixed_decimals(v, prec); }

std::string duration(double s) {
  long t = static_cast<long>(s + 0.5);
  char buf[64];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

boost::json::object options_json(const TrainOptions& o, const ModelConfig& c) {
  boost::json::array widths;
  for (auto w : c.widths) widths.push_back(w);
  return {{"preset", o.preset},
          {"size", c.size},
          {"widths", widths},
          {"stages", c.stages},
          {"dropout", c.dropout},
          {"input_norm", o.input_norm},
          {"classes", o.classes},
          {"alpha", o.alpha},
          {"beta", o.beta},
          {"epochs", o.epochs},
          {"patience", o.patience},
          {"lr_base", o.lr_base},
          {"lr_max", o.lr_max},
          {"lr_step", o.lr_step},
          {"optimizer", o.optimizer},
          {"stage_init", o.stage_init},
          {"init", o.init},
          {"init_stages", o.init_stages},
          {"fine_tune", o.fine_tune},
          {"augment", !o.no_augment},
          {"batch", o.batch},
          {"seed", static_cast<std::int64_t>(o.seed)},
          {"val", o.val},
          {"val_fraction", o.val_fraction}};
}

boost::json::object class_counts(const TrainingSet& s, const std::vector<std::string>& names) {
  boost::json::object o;
  std::vector<std::int64_t> counts(names.size(), 0);
  std::int64_t unlabelled = 0;
  auto la = s.labels.accessor<std::int64_t, 1>();
  for (std::int64_t i = 0; i < s.size(); ++i) {
    if (la[i] >= 0)
      ++counts[static_cast<std::size_t>(la[i])];
    else
      ++unlabelled;
  }
  for (std::size_t i = 0; i < names.size(); ++i) o[names[i]] = counts[i];
  o["unlabelled"] = unlabelled;
  return o;
}

// The parts of a run that must match for a checkpoint to be resumed.
boost::json::object fingerprint(const TrainOptions& o, const ModelConfig& c,
                                const TrainingData& d) {
  auto f = options_json(o, c);
  f["train_records"] = d.train.size();
  f["val_records"] = d.val.size();
  return f;
}

// The mutable state of the loop; all of it goes into the checkpoint.
struct LoopState {
  std::int64_t stage = 0, epoch = 0, pos = 0, step = 0, stage_step = 0, bad = 0;
  double best = std::numeric_limits<double>::infinity();
  double seconds = 0;
  Tally running;
  boost::json::array log, stages;

  boost::json::object to_json() const {
    return {{"stage", stage},
            {"epoch", epoch},
            {"pos", pos},
            {"step", step},
            {"stage_step", stage_step},
            {"bad", bad},
            {"best", std::isfinite(best) ? boost::json::value(best) : boost::json::value(nullptr)},
            {"seconds", seconds},
            {"running", running.state()},
            {"log", log},
            {"stages", stages}};
  }
  static LoopState from_json(const boost::json::object& o) {
    LoopState s;
    s.stage = o.at("stage").to_number<std::int64_t>();
    s.epoch = o.at("epoch").to_number<std::int64_t>();
    s.pos = o.at("pos").to_number<std::int64_t>();
    s.step = o.at("step").to_number<std::int64_t>();
    s.stage_step = o.at("stage_step").to_number<std::int64_t>();
    s.bad = o.at("bad").to_number<std::int64_t>();
    s.best = o.at("best").is_null() ? std::numeric_limits<double>::infinity()
                                    : o.at("best").to_number<double>();
    s.seconds = o.at("seconds").to_number<double>();
    s.running = Tally::from_state(o.at("running").as_object());
    s.log = o.at("log").as_array();
    s.stages = o.at("stages").as_array();
    return s;
  }
};

// The checkpoint's metadata, weights and best weights (not the optimizer's
// moments: damage there only slows the resumed run), as save_checkpoint
// wrote them.
std::string checkpoint_checksum(const std::string& meta, const std::vector<torch::Tensor>& weights,
                                const Snapshot& best) {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (std::size_t i = 0; i < weights.size(); ++i)
    named.emplace_back("weights.t" + std::to_string(i), weights[i].detach());
  for (std::size_t i = 0; i < best.size(); ++i)
    named.emplace_back("best.t" + std::to_string(i), best[i]);
  return tensors_checksum(meta, named);
}

void save_checkpoint(const std::string& path, EmotionalDan& model, const Snapshot& best,
                     torch::optim::Optimizer* optimizer, const LoopState& state,
                     const boost::json::object& print) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive weights, best_archive, opt_archive;
  auto current = model_tensors(model);
  for (std::size_t i = 0; i < current.size(); ++i)
    weights.write("t" + std::to_string(i), current[i].detach().to(torch::kCPU));
  for (std::size_t i = 0; i < best.size(); ++i)
    best_archive.write("t" + std::to_string(i), best[i].to(torch::kCPU));
  archive.write("weights", weights);
  archive.write("best", best_archive);
  if (optimizer) {
    optimizer->save(opt_archive);
    archive.write("optimizer", opt_archive);
  }
  boost::json::object meta{
      {"format", "edan-train-checkpoint 1"}, {"fingerprint", print}, {"state", state.to_json()}};
  const auto meta_json = boost::json::serialize(meta);
  archive.write("meta", c10::IValue(meta_json));
  archive.write("checksum", c10::IValue(checkpoint_checksum(meta_json, current, best)));
  // Serialised in memory and written by write_file_atomic, whose write
  // errors (a full disk) are checked; LibTorch's own file writer is not
  // relied on to notice them.
  std::ostringstream bytes;
  try {
    archive.save_to(bytes);
  } catch (const std::exception& e) {
    throw FatalError(path + ": cannot write checkpoint: " + error_message(e));
  }
  write_file_atomic(path, bytes.str(), /*durable=*/true);
}

struct LoadedCheckpoint {
  LoopState state;
  Snapshot weights, best;
  torch::serialize::InputArchive optimizer;
  bool has_optimizer = false;
};

LoadedCheckpoint load_checkpoint(const std::string& path, const boost::json::object& print,
                                 std::size_t n_tensors, torch::Device device) {
  LoadedCheckpoint c;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, device);
    c10::IValue meta_value;
    archive.read("meta", meta_value);
    auto meta = boost::json::parse(meta_value.toStringRef()).as_object();
    if (meta.at("format").as_string() != "edan-train-checkpoint 1")
      throw std::runtime_error("not an edan-train checkpoint");
    // --epochs and --patience only decide when stages end: a resumed run may
    // change them (e.g. to end a long run early with the best weights so far).
    // (input_blur*: written by edan 0.1, never compared.)
    auto saved = meta.at("fingerprint").as_object(), wanted = print;
    for (const char* key : {"epochs", "patience", "input_blur", "input_blur_from"}) {
      saved.erase(key);
      wanted.erase(key);
    }
    if (saved != wanted)
      throw FatalError(path +
                       ": checkpoint of a run with other options or data; remove it or "
                       "train without --resume");
    c.state = LoopState::from_json(meta.at("state").as_object());
    torch::serialize::InputArchive weights, best;
    archive.read("weights", weights);
    archive.read("best", best);
    for (std::size_t i = 0; i < n_tensors; ++i) {
      torch::Tensor w, b;
      weights.read("t" + std::to_string(i), w);
      best.read("t" + std::to_string(i), b);
      c.weights.push_back(w);
      c.best.push_back(b);
    }
    c10::IValue stored;
    if (!archive.try_read("checksum", stored) || !stored.isString() ||
        stored.toStringRef() != checkpoint_checksum(meta_value.toStringRef(), c.weights, c.best))
      throw std::runtime_error("the file is damaged (its checksum does not match)");
    c.has_optimizer = archive.try_read("optimizer", c.optimizer);
  } catch (const FatalError&) {
    throw;
  } catch (const std::exception& e) {
    throw FatalError(path + ": cannot resume from this checkpoint: " + error_message(e));
  }
  return c;
}

void write_log(const std::string& path, const boost::json::array& log) {
  if (path.empty()) return;
  std::string text;
  for (const auto& v : log)
    text += (v.is_object() ? to_line(v.get_object()) : boost::json::serialize(v)) + "\n";
  write_file_atomic(path, text);
}
}  // namespace

TrainResult train_model(const TrainOptions& opt, const TrainingData& data,
                        const TrainReporter& reporter) {
  check_options(opt);
  const ModelConfig config = train_config(opt);
  if (opt.resume && opt.checkpoint.empty() && opt.output.empty())
    throw UsageError("--resume needs --checkpoint or --output");
  const std::string ckpt_path = opt.checkpoint.empty() ? opt.output + ".ckpt" : opt.checkpoint;
  const auto start_time = std::chrono::steady_clock::now();
  set_threads(opt.threads);
  const torch::Device device = parse_device(opt.device);
  auto note = [&](const std::string& s) {
    if (reporter.note) reporter.note(s);
  };
  if (device.is_cpu() && torch::get_num_threads() > 1) {
    // The thread count is kept (the result depends on it); the user is told.
    const int threads = torch::get_num_threads();
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    const int busy = cli::busy_cores();
    if (busy > 0 && threads > cores - busy)
      note("other work keeps " + std::to_string(busy) + " of " + std::to_string(cores) +
           " cores busy: " + std::to_string(threads) + " threads will run slowly beside it (" +
           "--threads " + std::to_string(std::max(1, cores - busy)) +
           " would not; the model depends on the thread count)");
  }

  // Statistics of the training set: mean shape and input normalisation.
  ModelMeta meta;
  meta.config = config;
  std::vector<Shape> shapes;
  {
    auto has = data.train.has_landmarks.accessor<bool, 1>();
    auto lm = data.train.landmarks.accessor<float, 3>();
    for (std::int64_t i = 0; i < data.train.size(); ++i) {
      if (!has[i]) continue;
      Shape s(kNumLandmarks);
      for (std::int64_t k = 0; k < 68; ++k) s[k] = {lm[i][k][0], lm[i][k][1]};
      shapes.push_back(std::move(s));
    }
  }
  meta.mean_shape = training_mean_shape(shapes, static_cast<double>(config.size));
  {
    // A histogram keeps this exact and cheap for large sets (no float copy).
    std::vector<std::int64_t> hist(256, 0);
    auto images = data.train.images.contiguous();
    const std::uint8_t* p = images.data_ptr<std::uint8_t>();
    for (std::int64_t i = 0, m = images.numel(); i < m; ++i) ++hist[p[i]];
    double count = static_cast<double>(images.numel()), sum = 0, sq = 0;
    for (int v = 0; v < 256; ++v) {
      sum += hist[v] * (v / 255.0);
      sq += hist[v] * (v / 255.0) * (v / 255.0);
    }
    meta.input_mean = sum / count;
    meta.input_std =
        std::max(std::sqrt(std::max(sq / count - meta.input_mean * meta.input_mean, 0.0)), 1e-3);
  }
  meta.input_norm = opt.input_norm;
  meta.version = kVersion;

  torch::manual_seed(mix_seed({opt.seed, 0x1417ull}));
  EmotionalDan model(config, meta.mean_shape);
  model->to(device);
  const InitResult initialised = init_from(model, meta, opt, device);

  const std::int64_t n = data.train.size();
  const std::int64_t n_batches = (n / opt.batch) + ((n % opt.batch) >= 2 ? 1 : 0);
  const std::int64_t lr_step = opt.lr_step > 0 ? opt.lr_step : 2 * n_batches;
  const auto print = fingerprint(opt, config, data);
  const double alpha = shapes.empty() ? 0.0 : opt.alpha;  // no landmarks: term off

  LoopState st;
  st.stage = initialised.first_stage;
  Snapshot best = snapshot(model);
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::optional<LoadedCheckpoint> resumed;
  if (opt.resume) {
    if (std::filesystem::exists(ckpt_path)) {
      resumed = load_checkpoint(ckpt_path, print, best.size(), device);
      st = resumed->state;
      restore(model, resumed->weights);
      best = resumed->best;
      note("resuming from " + ckpt_path + " at stage " + std::to_string(st.stage + 1) + ", epoch " +
           std::to_string(st.epoch + 1) + ", step " + std::to_string(st.step));
    } else {
      note(ckpt_path + ": no checkpoint yet; starting from the beginning");
    }
  }

  TrainResult result;
  SignalScope signals;
  BatchMaker maker(data.train, meta, !opt.no_augment, opt.seed, device);
  const bool have_val = data.val.size() > 0;
  double run_seconds = st.seconds;
  auto elapsed = [&] {
    return run_seconds +
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  };
  auto checkpoint = [&] {
    st.seconds = elapsed();
    save_checkpoint(ckpt_path, model, best, optimizer.get(), st, print);
  };

  // The result of a run stopped by --max-steps or a signal (checkpointed).
  auto stopped = [&] {
    result.signal = g_signal;
    result.stopped = true;
    result.steps = st.step;
    result.model = model;
    result.meta = meta;
    result.log = st.log;
    note("stopped at step " + std::to_string(st.step) + "; checkpoint " + ckpt_path +
         " (continue with --resume)");
    return result;
  };

  const std::int64_t stages_to_train = opt.epochs > 0 ? config.stages : 0;
  auto stop_requested = [&] {
    return g_signal != 0 || (opt.max_steps > 0 && st.step >= opt.max_steps);
  };
  while (st.stage < stages_to_train) {
    const std::int64_t s = st.stage;
    if (s >= initialised.copied && s > 0 && opt.stage_init == "previous" && st.stage_step == 0 &&
        st.pos == 0) {
      model->init_stage_from_previous(s);
      best = snapshot(model);
    }
    freeze_all_but(model, s);
    optimizer = make_optimizer(opt, model->stage(s)->parameters());
    if (resumed && resumed->has_optimizer && (st.epoch > 0 || st.pos > 0))
      optimizer->load(resumed->optimizer);
    resumed.reset();
    const std::string stage_name =
        "stage " + std::to_string(s + 1) + "/" + std::to_string(config.stages);

    while (st.epoch < opt.epochs && st.bad < opt.patience) {
      const auto order = epoch_order(n, opt.seed, s, st.epoch);
      auto batch_index = [&](std::int64_t b) {
        std::vector<std::int64_t> idx;
        for (std::int64_t i = b * opt.batch; i < std::min(n, (b + 1) * opt.batch); ++i)
          idx.push_back(order[static_cast<std::size_t>(i)]);
        return idx;
      };
      const auto epoch_start = std::chrono::steady_clock::now();
      const std::int64_t first = st.pos;
      std::future<Batch> next = std::async(
          std::launch::async, [&, b = st.pos] { return maker.make(batch_index(b), s, st.epoch); });
      for (std::int64_t b = st.pos; b < n_batches; ++b) {
        Batch batch = next.get();
        if (b + 1 < n_batches)
          next = std::async(std::launch::async,
                            [&, b] { return maker.make(batch_index(b + 1), s, st.epoch); });
        set_modes(model, s);
        torch::manual_seed(mix_seed({opt.seed, 0x57E9ull, static_cast<std::uint64_t>(s),
                                     static_cast<std::uint64_t>(st.step)}));
        const double lr = triangular_lr(st.stage_step, opt.lr_base, opt.lr_max, lr_step);
        for (auto& g : optimizer->param_groups()) g.options().set_lr(lr);
        auto out = model->forward(batch.images, s + 1);
        auto pred = out.landmarks.back();
        auto terms = joint_loss(pred, batch.landmarks, batch.has_landmarks, out.logits,
                                batch.targets, alpha, opt.beta);
        if (!std::isfinite(terms.total.item<double>()))
          throw FatalError("the loss is not finite at stage " + std::to_string(s + 1) + ", step " +
                           std::to_string(st.step) + " (try a lower --lr-max)");
        optimizer->zero_grad();
        terms.total.backward();
        optimizer->step();
        {
          torch::NoGradGuard no_grad;
          st.running.add(terms, pred.detach(), batch, out.logits.detach());
        }
        ++st.step;
        ++st.stage_step;
        st.pos = b + 1;

        if (reporter.progress) {
          const double spent =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
          const double eta =
              spent / static_cast<double>(b + 1 - first) * static_cast<double>(n_batches - b - 1);
          const int width = 20;
          const int filled = static_cast<int>(width * (b + 1) / n_batches);
          std::string bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
          std::string line = stage_name + " epoch " + std::to_string(st.epoch + 1) + " " + bar +
                             " loss " + fmt(st.running.loss(alpha, opt.beta));
          if (st.running.with_hard_labels) line += " acc " + fmt(st.running.accuracy(), 3);
          if (st.running.with_landmarks) line += " nme " + fmt(st.running.mean_nme());
          line += " ETA " + duration(eta);
          reporter.progress(line);
        }
        // At the end of an epoch, stop after its evaluation instead.
        if (stop_requested() && b + 1 < n_batches) {
          if (next.valid()) next.wait();
          checkpoint();
          return stopped();
        }
      }

      // Evaluation at the end of each epoch.
      Tally val = have_val ? evaluate(model, data.val, meta, s + 1, opt.batch, device) : st.running;
      const double val_loss = val.loss(alpha, opt.beta);
      if (!std::isfinite(val_loss))
        throw FatalError("the validation loss is not finite at stage " + std::to_string(s + 1));
      const bool improved = val_loss < st.best;
      if (improved) {
        st.best = val_loss;
        st.bad = 0;
        best = snapshot(model);
      } else {
        ++st.bad;
      }
      boost::json::object entry{
          {"stage", s + 1},
          {"epoch", st.epoch + 1},
          {"step", st.step},
          {"lr", triangular_lr(st.stage_step, opt.lr_base, opt.lr_max, lr_step)},
          {"train", st.running.to_json(alpha, opt.beta)},
          {"val", have_val ? boost::json::value(val.to_json(alpha, opt.beta))
                           : boost::json::value(nullptr)},
          {"best", improved},
          {"seconds", elapsed()}};
      st.log.push_back(entry);
      {
        std::string line = stage_name + " epoch " + std::to_string(st.epoch + 1) + " step " +
                           std::to_string(st.step) + ": train loss " +
                           fmt(st.running.loss(alpha, opt.beta));
        if (st.running.with_hard_labels) line += " acc " + fmt(st.running.accuracy(), 3);
        if (have_val) {
          line += ", val loss " + fmt(val_loss);
          if (val.with_hard_labels) line += " acc " + fmt(val.accuracy(), 3);
          if (val.with_landmarks)
            line += " nme " + fmt(val.mean_nme()) + " nme_io " +
                    fmt(val.nme_io / static_cast<double>(val.with_landmarks));
        }
        line += improved ? " (best)" : "";
        line += " [" + duration(elapsed()) + "]";
        note(line);
      }
      ++st.epoch;
      st.pos = 0;
      st.running = Tally{};
      write_log(opt.log, st.log);
      if (st.epoch >= opt.epochs || st.bad >= opt.patience) break;  // stage done
      checkpoint();
      if (stop_requested()) return stopped();
    }

    // The stage is done: keep its best weights, record what they achieve, and
    // checkpoint at the start of the next stage.
    restore(model, best);
    if (st.stages.size() <= static_cast<std::size_t>(s)) {
      boost::json::object summary{{"stage", s + 1}, {"epochs", st.epoch}, {"steps", st.step}};
      if (have_val)
        summary["val"] =
            evaluate(model, data.val, meta, s + 1, opt.batch, device).to_json(alpha, opt.beta);
      st.stages.push_back(summary);
    }
    st.stage += 1;
    st.epoch = st.pos = st.stage_step = st.bad = 0;
    st.best = std::numeric_limits<double>::infinity();
    best = snapshot(model);
    optimizer.reset();
    checkpoint();
    if (stop_requested() && st.stage < stages_to_train) return stopped();
  }

  // The training summary stored in the model.
  boost::json::object summary;
  summary["records"] = {
      {"read", data.report.read},       {"train", data.train.size()},
      {"val", data.val.size()},         {"val_held_out", data.val_held_out},
      {"failed", data.report.failed},   {"unusable", data.report.unusable},
      {"dropped", data.report.dropped}, {"labels_ignored", data.report.label_ignored}};
  summary["classes"] = {{"train", class_counts(data.train, config.labels)},
                        {"val", class_counts(data.val, config.labels)}};
  summary["landmarks"] = {{"train", static_cast<std::int64_t>(shapes.size())},
                          {"val", data.val.has_landmarks.sum().item<std::int64_t>()}};
  boost::json::array sources;
  for (const auto& s : data.sources) sources.push_back(boost::json::value(s));
  summary["sources"] = sources;
  summary["options"] = options_json(opt, config);
  // Not an option of the run's identity (a resumed run may use another), but
  // the summation order, and so the exact weights, depend on it.
  summary["threads"] = torch::get_num_threads();
  summary["mean_shape"] = shapes.empty() ? "schematic (no training landmarks)"
                                         : "procrustes mean of the training landmarks";
  summary["stages"] = st.stages;
  summary["steps"] = st.step;
  summary["seconds"] = elapsed();
  if (have_val)
    summary["final"] =
        evaluate(model, data.val, meta, 0, opt.batch, device).to_json(alpha, opt.beta);
  meta.training = summary;

  model->to(torch::kCPU);
  save_model(opt.output, model, meta);
  write_log(opt.log, st.log);
  result.model = model;
  result.meta = meta;
  result.log = st.log;
  result.steps = st.step;
  return result;
}

}  // namespace edan
