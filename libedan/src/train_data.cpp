// Training data: reading records into a TrainingSet, the subject split, the
// load report, the mean shape and input statistics of the training set, and
// the checks of a run's options and output files.
#include "train_data.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "edan/augment.hpp"
#include "edan/detect.hpp"
#include "edan/error.hpp"
#include "edan/fs.hpp"
#include "edan/image.hpp"

namespace edan {

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

std::optional<double> class_weight_power(const std::string& mode) {
  if (mode == "none") return std::nullopt;
  if (mode == "balanced") return 1.0;
  if (mode == "sqrt") return 0.5;
  throw UsageError("--class-weights must be none, balanced or sqrt");
}

torch::Tensor class_weights(const TrainingSet& set, std::int64_t n_classes, double power,
                            double max_weight) {
  torch::Tensor mass;
  if (set.targets.defined()) {
    mass = set.targets.to(torch::kDouble).sum(0);
  } else {
    mass = torch::zeros({n_classes}, torch::kDouble);
    if (set.labels.defined() && set.labels.numel() > 0) {
      auto labelled = set.labels.masked_select(set.labels >= 0);
      mass.index_add_(0, labelled, torch::ones({labelled.numel()}, torch::kDouble));
    }
  }
  if (mass.numel() != n_classes)
    throw std::invalid_argument("class_weights: the targets have " + std::to_string(mass.numel()) +
                                " classes, not " + std::to_string(n_classes));
  const double total = mass.sum().item<double>();
  if (total <= 0) return torch::ones({n_classes}, torch::kFloat);
  auto present = mass > 0;
  auto raw = torch::where(present, mass.clamp_min(1e-300).pow(-power), torch::zeros_like(mass));
  const double k = total / (mass * raw).sum().item<double>();
  auto w = raw * k;
  if (max_weight > 0) {
    if (max_weight < 1) throw std::invalid_argument("class_weights: max_weight below 1");
    // Water-filling: cap, then spread the mass the capped classes lost over
    // the others; each round caps at least one more class, so it ends.
    for (std::int64_t round = 0; round < n_classes; ++round) {
      auto capped = w >= max_weight;
      w = torch::where(capped, torch::full_like(w, max_weight), w);
      const double held = (mass * w).masked_select(capped).sum().item<double>();
      const double free = (mass * w).masked_select(capped.logical_not()).sum().item<double>();
      if (free <= 0) break;
      w = torch::where(capped, w, w * ((total - held) / free));
      if ((w > max_weight * (1 + 1e-12)).sum().item<std::int64_t>() == 0) break;
    }
  }
  return w.to(torch::kFloat);
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

std::vector<Shape> training_shapes(const TrainingSet& set) {
  std::vector<Shape> shapes;
  auto has = set.has_landmarks.accessor<bool, 1>();
  auto lm = set.landmarks.accessor<float, 3>();
  for (std::int64_t i = 0; i < set.size(); ++i) {
    if (!has[i]) continue;
    Shape s(kNumLandmarks);
    for (std::int64_t k = 0; k < 68; ++k) s[k] = {lm[i][k][0], lm[i][k][1]};
    shapes.push_back(std::move(s));
  }
  return shapes;
}

void set_input_statistics(const TrainingSet& set, ModelMeta& meta) {
  // A histogram keeps this exact and cheap for large sets (no float copy).
  std::vector<std::int64_t> hist(256, 0);
  auto images = set.images.contiguous();
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

// A record decoded, before it is stored in the set.
struct Sample {
  cv::Mat image;               // size×size
  std::optional<Shape> shape;  // in the pixels of `image`
  int label = -1;
  std::vector<double> target;  // empty: none
};

using SkipFn = std::function<void(std::size_t&, const std::string&)>;

// Decodes one record into a sample of side `size`, or returns nothing after
// `skip` has counted and explained why the record is not used. Throws for a
// failed record (RecordError, or the errors of reading its image).
std::optional<Sample> decode_sample(const Record& r, std::int64_t size, ClassSet classes,
                                    LoadReport& report, const SkipFn& skip) {
  if (has_error(r)) {
    skip(report.failed, "has an error: " + get_string(r, "error").value_or("?"));
    return std::nullopt;
  }
  Sample sample;
  std::optional<Shape>& shape = sample.shape;
  shape = get_shape(r, "landmarks");
  int& label = sample.label;
  if (auto name = get_string(r, "label")) {
    auto canon = canonical_label(*name);
    if (!canon) throw RecordError("unknown label '" + *name + "'");
    auto mapped = map_label(*canon, classes);
    if (mapped) {
      label = class_index(classes, *mapped);
    } else if (classes == ClassSet::k3 && *canon == "surprise") {
      if (!shape) {
        skip(report.dropped, "surprise has no place in the 3-class set (dropped)");
        return std::nullopt;
      }
      ++report.label_ignored;
    } else if (!shape) {
      skip(report.unusable, "label '" + *canon + "' is not in the class set");
      return std::nullopt;
    } else {
      ++report.label_ignored;
    }
  }
  std::vector<double>& target = sample.target;
  if (auto it = r.find("target"); it != r.end()) {
    target = parse_target(it->value(), classes);
    if (target.empty() && !shape) {
      skip(report.unusable, "its \"target\" has no class of the set");
      return std::nullopt;
    }
  } else if (label >= 0) {
    target.assign(static_cast<std::size_t>(class_count(classes)), 0.0);
    target[static_cast<std::size_t>(label)] = 1;
  }
  if (!shape && target.empty()) {
    skip(report.unusable, "neither landmarks nor a label");
    return std::nullopt;
  }
  cv::Mat img = read_record_face(r);
  const double sx = static_cast<double>(size) / img.cols;
  const double sy = static_cast<double>(size) / img.rows;
  // Resized as edan-predict resizes faces (detect.hpp).
  sample.image = resize_to_square(img, static_cast<int>(size));
  if (shape) {
    // Pixel centres at integers: x' = (x + 0.5)·s - 0.5.
    for (auto& p : *shape) {
      p.x = (p.x + 0.5) * sx - 0.5;
      p.y = (p.y + 0.5) * sy - 0.5;
    }
    if (!(inter_pupil_distance(*shape) >= 1.0))
      throw RecordError("landmarks: eye centres less than a pixel apart");
  }
  return sample;
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
      std::optional<Sample> sample = decode_sample(r, size, classes, report, skip);
      if (!sample) continue;
      if (sample->shape) {
        for (std::size_t i = 0; i < kNumLandmarks; ++i) {
          lm[kept][static_cast<std::int64_t>(i)][0] = static_cast<float>((*sample->shape)[i].x);
          lm[kept][static_cast<std::int64_t>(i)][1] = static_cast<float>((*sample->shape)[i].y);
        }
        ha[kept] = true;
      }
      la[kept] = sample->label;
      for (std::size_t c = 0; c < sample->target.size(); ++c)
        ta[kept][static_cast<std::int64_t>(c)] = static_cast<float>(sample->target[c]);
      std::memcpy(images[kept].data_ptr<std::uint8_t>(), sample->image.ptr<std::uint8_t>(),
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
  class_weight_power(opt.class_weights);
  if (opt.class_weight_max != 0 && opt.class_weight_max < 1)
    throw UsageError("--class-weight-max must be 0 (no cap) or at least 1, the mean weight");
  if (opt.max_steps < 0) throw UsageError("--max-steps must be 0 (no limit) or more");
  if (opt.batch < 2) throw UsageError("--batch must be at least 2 (BatchNorm)");
  if (opt.stages != -1 && opt.stages < 1) throw UsageError("--stages must be at least 1");
}

namespace {
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

}  // namespace edan
