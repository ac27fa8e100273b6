// The training loop, as named steps: one training step, the end of an epoch
// (its evaluation), the end of a stage, and the summary stored in the model.
// Data loading lives in train_data.cpp, checkpoints in train_checkpoint.cpp.
#include "edan/train.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <future>
#include <limits>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <thread>

#include "edan/augment.hpp"
#include "edan/cli.hpp"
#include "edan/error.hpp"
#include "edan/fs.hpp"
#include "edan/version.hpp"
#include "train_checkpoint.hpp"
#include "train_data.hpp"
#include "train_impl.hpp"

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
                     const torch::Tensor& targets, double alpha, double beta,
                     const torch::Tensor& class_weight) {
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
    if (!class_weight.defined()) {
      t.ce = soft ? -(targets.index_select(0, idx) * log_p).sum(1).mean()
                  : torch::nll_loss(log_p, targets.index_select(0, idx));
    } else if (soft) {
      auto weighted = targets.index_select(0, idx) * class_weight.to(logits.options());
      t.ce = -(weighted * log_p).sum() / weighted.sum();
    } else {
      t.ce =
          torch::nll_loss(log_p, targets.index_select(0, idx), class_weight.to(logits.options()));
    }
  } else {
    t.ce = zero;
  }
  t.total = alpha * t.nme + beta * t.ce;
  return t;
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

void write_log(const std::string& path, const boost::json::array& log) {
  if (path.empty()) return;
  std::string text;
  for (const auto& v : log)
    text += (v.is_object() ? to_line(v.get_object()) : boost::json::serialize(v)) + "\n";
  write_file_atomic(path, text);
}

// Which metrics a line shows after the loss and the accuracy: nothing more,
// the NME, or the NME and the inter-ocular NME.
enum class Shown { kLossAccuracy, kNme, kNmeIo };

// "loss L[ acc A][ nme N[ nme_io M]]": the metrics of the progress bar and of
// the evaluation line, formatted in one place.
std::string format_metrics(const Tally& t, double alpha, double beta, Shown shown) {
  std::string s = "loss " + fmt(t.loss(alpha, beta));
  if (t.with_hard_labels) s += " acc " + fmt(t.accuracy(), 3);
  if (shown != Shown::kLossAccuracy && t.with_landmarks) {
    s += " nme " + fmt(t.mean_nme());
    if (shown == Shown::kNmeIo) s += " nme_io " + fmt(t.mean_nme_io());
  }
  return s;
}

// check_options, then the model config of `opt`. Throws UsageError.
ModelConfig checked_config(const TrainOptions& opt) {
  check_options(opt);
  ModelConfig config = train_config(opt);
  if (opt.resume && opt.checkpoint.empty() && opt.output.empty())
    throw UsageError("--resume needs --checkpoint or --output");
  return config;
}

// Sets the thread count of `opt`, then resolves its device.
torch::Device threads_and_device(const TrainOptions& opt) {
  set_threads(opt.threads);
  return parse_device(opt.device);
}

// One run of train_model: its settings, fixed when it starts, and the state
// that its steps advance (LoopState, which the checkpoint keeps, the current
// and best weights and the optimizer).
class Trainer {
 public:
  // Checks the options, builds the model (with --init) and, with --resume,
  // takes up the checkpoint. Throws as train_model.
  Trainer(const TrainOptions& opt, const TrainingData& data, const TrainReporter& reporter);
  // Trains the stages left and writes the model, or stops (checkpointed).
  TrainResult run();

 private:
  void note(const std::string& s) const {
    if (reporter_.note) reporter_.note(s);
  }
  void warn_busy_cores() const;
  void build_model();
  void resume();
  double elapsed() const;
  void checkpoint();
  bool stop_requested() const;
  TrainResult stopped();
  bool train_stage();
  void begin_stage(std::int64_t s);
  bool train_epoch(std::int64_t s);
  void train_step(const Batch& batch, std::int64_t s);
  void show_progress(std::int64_t b, std::int64_t first,
                     std::chrono::steady_clock::time_point epoch_start) const;
  void end_epoch(std::int64_t s);
  bool end_stage(std::int64_t s);
  boost::json::object training_summary();
  TrainResult finish();

  const TrainOptions& opt_;
  const TrainingData& data_;
  const TrainReporter& reporter_;
  const ModelConfig config_;
  const std::string ckpt_path_;
  const std::chrono::steady_clock::time_point start_time_;
  const torch::Device device_;
  const bool have_val_;
  const std::int64_t stages_to_train_;
  ModelMeta meta_;
  std::int64_t train_landmarks_ = 0;  // training samples with landmarks
  EmotionalDan model_{nullptr};
  InitResult initialised_;
  std::int64_t n_ = 0, n_batches_ = 0, lr_step_ = 0;
  boost::json::object print_;  // the fingerprint
  double alpha_ = 0;
  torch::Tensor class_weight_;  // --class-weights; undefined: none
  LoopState state_;
  Snapshot best_weights_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::optional<LoadedCheckpoint> resumed_;
  std::optional<BatchMaker> maker_;
  double run_seconds_ = 0;  // of the run before it was resumed
  std::string stage_name_;
};

Trainer::Trainer(const TrainOptions& opt, const TrainingData& data, const TrainReporter& reporter)
    : opt_(opt),
      data_(data),
      reporter_(reporter),
      config_(checked_config(opt)),
      ckpt_path_(opt.checkpoint.empty() ? opt.output + ".ckpt" : opt.checkpoint),
      start_time_(std::chrono::steady_clock::now()),
      device_(threads_and_device(opt)),
      have_val_(data.val.size() > 0),
      stages_to_train_(opt.epochs > 0 ? config_.stages : 0) {
  warn_busy_cores();
  build_model();
  n_ = data_.train.size();
  n_batches_ = (n_ / opt_.batch) + ((n_ % opt_.batch) >= 2 ? 1 : 0);
  lr_step_ = opt_.lr_step > 0 ? opt_.lr_step : 2 * n_batches_;
  print_ = fingerprint(opt_, config_, data_);
  alpha_ = train_landmarks_ == 0 ? 0.0 : opt_.alpha;  // no landmarks: term off
  if (auto power = class_weight_power(opt_.class_weights)) {
    const auto n_classes = static_cast<std::int64_t>(config_.labels.size());
    class_weight_ = class_weights(data_.train, n_classes, *power, opt_.class_weight_max);
    std::string shown;
    for (std::int64_t c = 0; c < n_classes; ++c)
      shown += (c ? ", " : "") + config_.labels[static_cast<std::size_t>(c)] + " " +
               fixed_decimals(class_weight_[c].item<double>(), 2);
    note("class weights (" + opt_.class_weights + "): " + shown);
    class_weight_ = class_weight_.to(device_);
  }
  state_.stage = initialised_.first_stage;
  best_weights_ = snapshot(model_);
  if (opt_.resume) resume();
}

void Trainer::warn_busy_cores() const {
  if (device_.is_cpu() && torch::get_num_threads() > 1) {
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
}

// The model and its meta: the training set's statistics (mean shape and input
// normalisation), then --init.
void Trainer::build_model() {
  // Statistics of the training set: mean shape and input normalisation.
  meta_.config = config_;
  const std::vector<Shape> shapes = training_shapes(data_.train);
  train_landmarks_ = static_cast<std::int64_t>(shapes.size());
  meta_.mean_shape = training_mean_shape(shapes, static_cast<double>(config_.size));
  set_input_statistics(data_.train, meta_);
  meta_.input_norm = opt_.input_norm;
  meta_.version = kVersion;

  torch::manual_seed(mix_seed({opt_.seed, 0x1417ull}));
  model_ = EmotionalDan(config_, meta_.mean_shape);
  model_->to(device_);
  initialised_ = init_from(model_, meta_, opt_, device_);
}

void Trainer::resume() {
  if (std::filesystem::exists(ckpt_path_)) {
    resumed_ = load_checkpoint(ckpt_path_, print_, best_weights_.size(), device_);
    state_ = resumed_->state;
    restore(model_, resumed_->weights);
    best_weights_ = resumed_->best_weights;
    note("resuming from " + ckpt_path_ + " at stage " + std::to_string(state_.stage + 1) +
         ", epoch " + std::to_string(state_.epoch + 1) + ", step " + std::to_string(state_.step));
  } else {
    note(ckpt_path_ + ": no checkpoint yet; starting from the beginning");
  }
}

double Trainer::elapsed() const {
  return run_seconds_ +
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time_).count();
}

void Trainer::checkpoint() {
  state_.seconds = elapsed();
  save_checkpoint(ckpt_path_, model_, best_weights_, optimizer_.get(), state_, print_);
}

bool Trainer::stop_requested() const {
  return g_signal != 0 || (opt_.max_steps > 0 && state_.step >= opt_.max_steps);
}

// The result of a run stopped by --max-steps or a signal (checkpointed).
TrainResult Trainer::stopped() {
  TrainResult result;
  result.signal = g_signal;
  result.stopped = true;
  result.steps = state_.step;
  result.model = model_;
  result.meta = meta_;
  result.log = state_.log;
  note("stopped at step " + std::to_string(state_.step) + "; checkpoint " + ckpt_path_ +
       " (continue with --resume)");
  return result;
}

TrainResult Trainer::run() {
  SignalScope signals;
  maker_.emplace(data_.train, meta_, !opt_.no_augment, opt_.seed, device_);
  run_seconds_ = state_.seconds;
  while (state_.stage < stages_to_train_)
    if (!train_stage()) return stopped();
  return finish();
}

// Trains stage state_.stage, from where the state stands, until its epochs or
// its patience run out. Returns false when stopped (checkpointed) first.
bool Trainer::train_stage() {
  const std::int64_t s = state_.stage;
  begin_stage(s);
  while (state_.epoch < opt_.epochs && state_.evals_without_improvement < opt_.patience) {
    if (!train_epoch(s)) return false;
    end_epoch(s);
    if (state_.epoch >= opt_.epochs || state_.evals_without_improvement >= opt_.patience)
      break;  // stage done
    checkpoint();
    if (stop_requested()) return false;
  }
  return end_stage(s);
}

// Stage s trainable alone (with --stage-init previous, first initialised from
// the stage before it), a new optimizer, or the resumed one mid-stage.
void Trainer::begin_stage(std::int64_t s) {
  if (s >= initialised_.copied && s > 0 && opt_.stage_init == "previous" &&
      state_.stage_step == 0 && state_.pos == 0) {
    model_->init_stage_from_previous(s);
    best_weights_ = snapshot(model_);
  }
  freeze_all_but(model_, s);
  optimizer_ = make_optimizer(opt_, model_->stage(s)->parameters());
  if (resumed_ && resumed_->has_optimizer && (state_.epoch > 0 || state_.pos > 0))
    optimizer_->load(resumed_->optimizer);
  resumed_.reset();
  stage_name_ = "stage " + std::to_string(s + 1) + "/" + std::to_string(config_.stages);
}

// The steps of one epoch of stage s from state_.pos on, each batch made while
// the one before it trains. Returns false when stopped (checkpointed) before
// the epoch's last step.
bool Trainer::train_epoch(std::int64_t s) {
  const auto order = epoch_order(n_, opt_.seed, s, state_.epoch);
  auto batch_index = [&](std::int64_t b) {
    std::vector<std::int64_t> idx;
    for (std::int64_t i = b * opt_.batch; i < std::min(n_, (b + 1) * opt_.batch); ++i)
      idx.push_back(order[static_cast<std::size_t>(i)]);
    return idx;
  };
  const auto epoch_start = std::chrono::steady_clock::now();
  const std::int64_t first = state_.pos;
  std::future<Batch> next = std::async(std::launch::async, [&, b = state_.pos] {
    return maker_->make(batch_index(b), s, state_.epoch);
  });
  for (std::int64_t b = state_.pos; b < n_batches_; ++b) {
    Batch batch = next.get();
    if (b + 1 < n_batches_)
      next = std::async(std::launch::async,
                        [&, b] { return maker_->make(batch_index(b + 1), s, state_.epoch); });
    train_step(batch, s);
    state_.pos = b + 1;
    if (reporter_.progress) show_progress(b, first, epoch_start);
    // At the end of an epoch, stop after its evaluation instead.
    if (stop_requested() && b + 1 < n_batches_) {
      if (next.valid()) next.wait();
      checkpoint();
      return false;
    }
  }
  return true;
}

// One step of stage s: the loss of `batch` at the step's learning rate, its
// gradient, the update, and the epoch's running tally.
void Trainer::train_step(const Batch& batch, std::int64_t s) {
  set_modes(model_, s);
  torch::manual_seed(mix_seed({opt_.seed, 0x57E9ull, static_cast<std::uint64_t>(s),
                               static_cast<std::uint64_t>(state_.step)}));
  const double lr = triangular_lr(state_.stage_step, opt_.lr_base, opt_.lr_max, lr_step_);
  for (auto& g : optimizer_->param_groups()) g.options().set_lr(lr);
  auto out = model_->forward(batch.images, s + 1);
  auto pred = out.landmarks.back();
  auto terms = joint_loss(pred, batch.landmarks, batch.has_landmarks, out.logits, batch.targets,
                          alpha_, opt_.beta, class_weight_);
  if (!std::isfinite(terms.total.item<double>()))
    throw FatalError("the loss is not finite at stage " + std::to_string(s + 1) + ", step " +
                     std::to_string(state_.step) + " (try a lower --lr-max)");
  optimizer_->zero_grad();
  terms.total.backward();
  optimizer_->step();
  {
    torch::NoGradGuard no_grad;
    state_.running.add(terms, pred.detach(), batch, out.logits.detach());
  }
  ++state_.step;
  ++state_.stage_step;
}

// The progress bar after batch b of the epoch (its steps from `first` on
// timed since epoch_start, for the ETA).
void Trainer::show_progress(std::int64_t b, std::int64_t first,
                            std::chrono::steady_clock::time_point epoch_start) const {
  const double spent =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
  const double eta =
      spent / static_cast<double>(b + 1 - first) * static_cast<double>(n_batches_ - b - 1);
  const int width = 20;
  const int filled = static_cast<int>(width * (b + 1) / n_batches_);
  std::string bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
  reporter_.progress(stage_name_ + " epoch " + std::to_string(state_.epoch + 1) + " " + bar + " " +
                     format_metrics(state_.running, alpha_, opt_.beta, Shown::kNme) + " ETA " +
                     duration(eta));
}

// Evaluation at the end of each epoch (of the validation set, or without one
// the epoch's running tally): keeps the best weights, logs the epoch, notes
// its line, and moves the state on to the next epoch.
void Trainer::end_epoch(std::int64_t s) {
  Tally val =
      have_val_ ? evaluate(model_, data_.val, meta_, s + 1, opt_.batch, device_) : state_.running;
  const double val_loss = val.loss(alpha_, opt_.beta);
  if (!std::isfinite(val_loss))
    throw FatalError("the validation loss is not finite at stage " + std::to_string(s + 1));
  const bool improved = val_loss < state_.best_loss;
  if (improved) {
    state_.best_loss = val_loss;
    state_.evals_without_improvement = 0;
    best_weights_ = snapshot(model_);
  } else {
    ++state_.evals_without_improvement;
  }
  boost::json::object entry{
      {"stage", s + 1},
      {"epoch", state_.epoch + 1},
      {"step", state_.step},
      {"lr", triangular_lr(state_.stage_step, opt_.lr_base, opt_.lr_max, lr_step_)},
      {"train", state_.running.to_json(alpha_, opt_.beta)},
      {"val", have_val_ ? boost::json::value(val.to_json(alpha_, opt_.beta))
                        : boost::json::value(nullptr)},
      {"best", improved},
      {"seconds", elapsed()}};
  state_.log.push_back(entry);
  std::string line = stage_name_ + " epoch " + std::to_string(state_.epoch + 1) + " step " +
                     std::to_string(state_.step) + ": train " +
                     format_metrics(state_.running, alpha_, opt_.beta, Shown::kLossAccuracy);
  if (have_val_) line += ", val " + format_metrics(val, alpha_, opt_.beta, Shown::kNmeIo);
  line += improved ? " (best)" : "";
  line += " [" + duration(elapsed()) + "]";
  note(line);
  ++state_.epoch;
  state_.pos = 0;
  state_.running = Tally{};
  write_log(opt_.log, state_.log);
}

// The stage is done: keep its best weights, record what they achieve, and
// checkpoint at the start of the next stage. Returns false when stopped there
// with stages left.
bool Trainer::end_stage(std::int64_t s) {
  restore(model_, best_weights_);
  if (state_.stages.size() <= static_cast<std::size_t>(s)) {
    boost::json::object summary{{"stage", s + 1}, {"epochs", state_.epoch}, {"steps", state_.step}};
    if (have_val_)
      summary["val"] =
          evaluate(model_, data_.val, meta_, s + 1, opt_.batch, device_).to_json(alpha_, opt_.beta);
    state_.stages.push_back(summary);
  }
  state_.stage += 1;
  state_.epoch = state_.pos = state_.stage_step = state_.evals_without_improvement = 0;
  state_.best_loss = std::numeric_limits<double>::infinity();
  best_weights_ = snapshot(model_);
  optimizer_.reset();
  checkpoint();
  return !(stop_requested() && state_.stage < stages_to_train_);
}

// The training summary stored in the model.
boost::json::object Trainer::training_summary() {
  boost::json::object summary;
  summary["records"] = {
      {"read", data_.report.read},       {"train", data_.train.size()},
      {"val", data_.val.size()},         {"val_held_out", data_.val_held_out},
      {"failed", data_.report.failed},   {"unusable", data_.report.unusable},
      {"dropped", data_.report.dropped}, {"labels_ignored", data_.report.label_ignored}};
  summary["classes"] = {{"train", class_counts(data_.train, config_.labels)},
                        {"val", class_counts(data_.val, config_.labels)}};
  summary["landmarks"] = {{"train", train_landmarks_},
                          {"val", data_.val.has_landmarks.sum().item<std::int64_t>()}};
  boost::json::array sources;
  for (const auto& s : data_.sources) sources.push_back(boost::json::value(s));
  summary["sources"] = sources;
  summary["options"] = options_json(opt_, config_);
  // Not an option of the run's identity (a resumed run may use another), but
  // the summation order, and so the exact weights, depend on it.
  summary["threads"] = torch::get_num_threads();
  summary["mean_shape"] = train_landmarks_ == 0 ? "schematic (no training landmarks)"
                                                : "procrustes mean of the training landmarks";
  summary["stages"] = state_.stages;
  summary["steps"] = state_.step;
  summary["seconds"] = elapsed();
  if (have_val_)
    summary["final"] =
        evaluate(model_, data_.val, meta_, 0, opt_.batch, device_).to_json(alpha_, opt_.beta);
  return summary;
}

// Stores the summary in the model and writes the model and the log.
TrainResult Trainer::finish() {
  meta_.training = training_summary();
  model_->to(torch::kCPU);
  save_model(opt_.output, model_, meta_);
  write_log(opt_.log, state_.log);
  TrainResult result;
  result.model = model_;
  result.meta = meta_;
  result.log = state_.log;
  result.steps = state_.step;
  return result;
}
}  // namespace

TrainResult train_model(const TrainOptions& opt, const TrainingData& data,
                        const TrainReporter& reporter) {
  Trainer trainer(opt, data, reporter);
  return trainer.run();
}

}  // namespace edan
