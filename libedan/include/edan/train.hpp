#pragma once
// Training EmotionalDAN: data loading, the joint loss, the cyclical learning
// rate, the subject split, and the stage-by-stage loop with checkpoints that
// a killed run resumes from with the same result.
#include <torch/torch.h>

#include <boost/json.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "edan/fs.hpp"
#include "edan/labels.hpp"
#include "edan/model.hpp"
#include "edan/record.hpp"
#include "edan/shape.hpp"

namespace edan {

// Everything edan-train can be told. Zero / empty means "from the preset" for
// size and widths, -1 for stages (0 stages is a usage error).
struct TrainOptions {
  std::string output;  // model file to write (required)
  std::string preset = "small";
  std::int64_t size = 0;
  std::vector<std::int64_t> widths;
  std::int64_t stages = -1;
  double dropout = -1;  // < 0: from the preset
  // "dataset" (the paper's: the training set's mean and std) or "image"
  // (each crop by its own, in training and in prediction alike; see
  // ModelMeta::input_norm).
  std::string input_norm = "dataset";
  std::string classes = "7";  // 7, 8 or 3 (edan/labels.hpp)
  std::string val;            // validation records file; empty: held out
  double val_fraction = 0.1;  // held-out share, split by subject
  double alpha = 0.4, beta = 0.6;
  std::int64_t epochs = 30;   // per stage, at most
  std::int64_t patience = 5;  // evaluations without improvement
  double lr_base = 1e-4, lr_max = 0.05;
  std::int64_t lr_step = 0;  // half cycle, iterations; 0: 2 epochs
  std::string optimizer = "sgd";
  // How a stage after the first starts: "random" (its own initialisation,
  // landmark head zero) or "previous" (EmotionalDanImpl::init_stage_from_previous).
  std::string stage_init = "random";
  // A trained model whose first init_stages stages (0: all of them) are
  // taken as they are and frozen; training begins with the next stage. Its
  // architecture must be this run's; its mean shape and input statistics
  // are kept.
  std::string init;
  std::int64_t init_stages = 0;
  // With init: its stages are not frozen but trained again from their
  // weights, from stage 1 on (a longer run in a second sitting: the copied
  // stages keep their weights, --stage-init applies to the others only).
  bool fine_tune = false;
  bool no_augment = false;
  // Weights of the emotion term by class (class_weights below): "none",
  // "balanced" (inverse frequency) or "sqrt" (inverse square root).
  std::string class_weights = "none";
  // With class_weights: no class weighs more than this (0: no cap; else at
  // least 1, the mean weight), the others rescaled (class_weights below).
  double class_weight_max = 0;
  std::string checkpoint;  // default: <output>.ckpt
  bool resume = false;
  std::string log;             // JSON Lines training log
  std::int64_t max_steps = 0;  // stop (checkpoint, no model) after this many steps
  int batch = 32;
  int threads = 0;  // 0: all cores
  std::string device = "cpu";
  std::uint64_t seed = 1;
};

// --- schedule ---------------------------------------------------------------
// Smith (2017), triangular policy: the rate rises linearly from base to max
// over `step` iterations, falls back over the next `step`, and repeats.
//   cycle = floor(1 + it / (2 step)), x = |it / step - 2 cycle + 1|,
//   lr = base + (max - base) * max(0, 1 - x).
// Requires step >= 1 (std::invalid_argument otherwise) and iteration >= 0.
double triangular_lr(std::int64_t iteration, double base, double max, std::int64_t step);

// --- loss -------------------------------------------------------------------
// Per-sample NME [N]: mean point-to-point distance between pred and truth
// ([N,68,2]) divided by the truth's distance between the eye centres (mean
// of points 36–41 and 42–47), or between the outer eye corners 36 and 45
// with NmeNorm::kInterOcular. A zero distance gives inf.
torch::Tensor sample_nme(const torch::Tensor& pred, const torch::Tensor& truth,
                         NmeNorm norm = NmeNorm::kInterPupil);

struct LossTerms {
  torch::Tensor total;  // alpha * nme + beta * ce (scalar)
  torch::Tensor nme;    // mean NME over samples with landmarks (0 if none)
  torch::Tensor ce;     // mean cross-entropy over labelled samples (0 if none)
  std::int64_t with_landmarks = 0, with_labels = 0;
};
// The joint loss with masks, so that landmark-only and label-only samples mix:
//   pred, truth: [N,68,2]; has_landmarks: [N] bool (truth ignored where false)
//   logits: [N,C]; targets: either [N] int64 hard labels (-1 = no label) or
//   [N,C] float soft targets (each row a distribution over the C classes,
//   an all-zero row = no target). ce is the cross-entropy against the
//   target distribution, -sum_c t_c log softmax(logits)_c (the FER+
//   paper's "probability" mode); for a one-hot row that is the usual
//   cross-entropy of its label.
// A sample without landmarks adds only to ce, one without a label only to nme.
// class_weight ([C] float, optional) weighs each class's part of ce:
//   ce = -sum_i sum_c w_c t_ic log p_ic / sum_i sum_c w_c t_ic,
// a weighted mean that is the plain ce when every w_c is 1.
LossTerms joint_loss(const torch::Tensor& pred, const torch::Tensor& truth,
                     const torch::Tensor& has_landmarks, const torch::Tensor& logits,
                     const torch::Tensor& targets, double alpha, double beta,
                     const torch::Tensor& class_weight = {});

// --- data -------------------------------------------------------------------
// Training samples, decoded once into memory.
struct TrainingSet {
  torch::Tensor images;         // [N,S,S] uint8
  torch::Tensor landmarks;      // [N,68,2] float32, crop pixels (0 where absent)
  torch::Tensor has_landmarks;  // [N] bool
  torch::Tensor labels;         // [N] int64 class index, -1 = none (for accuracy)
  // [N,C] float32 emotion target, rows sum to 1, all 0 = none; undefined:
  // the one-hot rows of `labels`.
  torch::Tensor targets;
  std::vector<std::string> subjects;  // "" when the record had none
  std::int64_t size() const { return images.defined() ? images.size(0) : 0; }
  // The samples at `index`, in that order.
  TrainingSet subset(const std::vector<std::size_t>& index) const;
};

// Held-out split by subject: records of one subject all go to the same side;
// records without a subject ("") are each their own group. Groups are
// shuffled with `seed` and taken into the validation side until it holds at
// least fraction·n records. Both sides are non-empty when fraction > 0 and
// there are at least two groups; fraction <= 0 gives an empty val side.
struct Split {
  std::vector<std::size_t> train, val;  // indices, ascending
};
Split split_by_subject(const std::vector<std::string>& subjects, double fraction,
                       std::uint64_t seed);

// The class weights of --class-weights for a training set of n_classes: the
// emotion mass m_c of each class (its target rows summed; a hard label is a
// one-hot row), w_c = k m_c^-power with k such that sum_c m_c w_c = sum_c m_c
// (the mean weight per labelled sample stays 1, and so does the loss's
// scale); a class with no mass gets 0. power 1 is "balanced" (every class
// then weighs as much in all), 0.5 "sqrt". A set without labels: all 1.
// max_weight > 0 caps the weights: a class above it gets max_weight, and the
// others are scaled up so that the mean weight stays 1 (repeated until none
// is above; max_weight must then be at least 1).
torch::Tensor class_weights(const TrainingSet& set, std::int64_t n_classes, double power,
                            double max_weight = 0);
// The power of a --class-weights MODE: none -> nullopt, balanced -> 1,
// sqrt -> 0.5; UsageError for another.
std::optional<double> class_weight_power(const std::string& mode);

// What loading found, for the report on stderr and the model's summary.
struct LoadReport {
  std::size_t read = 0, kept = 0;
  std::size_t failed = 0;             // error field, unreadable image, bad landmarks...
  std::size_t unusable = 0;           // neither landmarks nor a label of the class set
  std::size_t dropped = 0;            // by design: surprise in the 3-class set
  std::size_t label_ignored = 0;      // label outside the set, landmarks kept
  std::vector<std::string> messages;  // "record N: why", every skipped record
};

// Decodes records into samples of side `size`. A record names its face with
// "crop" (a grayscale PNG made by edan-crop) or else "image" (taken as an
// already-cropped face); it is read as grayscale and resized to size×size,
// its "landmarks" (pixels of that file) scaled with it. Its "label" is
// normalised (edan/labels.hpp) and mapped into `classes`. Its "target", when
// present (an object label -> probability, e.g. FER+ votes from edan-index
// --layout ferplus), is the soft emotion target: each label mapped into
// `classes` (those with no place in it are dropped) and the rest
// renormalised; without it the target is the label's one-hot row. "label"
// then only serves accuracy: a record with a target and no label (a FER+
// tie) trains the emotion but is not counted in accuracy. Relative paths are
// relative to the current directory, as in every program (edan(7)).
// Records are skipped, counted and explained in `report`, never dropped
// silently: with "error", an unreadable file, malformed landmarks or label,
// or neither landmarks nor a label of the set.
TrainingSet load_training_set(const std::vector<Record>& records, std::int64_t size,
                              ClassSet classes, LoadReport& report);

// Reads all records of a JSON Lines file. Throws FatalError naming it.
std::vector<Record> read_records_file(const std::string& path);

// A schematic frontal face: 68 points in iBUG order, its bounding box filling
// 0.8 of a size×size frame, centred. The mean shape when no training record
// has landmarks (the landmark term is then off), and a drawing template for
// synthetic test faces.
Shape schematic_shape(double size);

// The mean shape of training landmarks: Procrustes mean (edan::mean_shape),
// then placed by the similarity that best maps it onto the point-wise
// average of the shapes, so that stage 1 starts from where faces lie in
// these crops. Falls back to schematic_shape(size) when `shapes` is empty.
Shape training_mean_shape(const std::vector<Shape>& shapes, double size);

// Training and validation samples plus what the model's summary records.
struct TrainingData {
  TrainingSet train, val;
  std::vector<std::string> sources;  // input files ("-": stdin), val file
  LoadReport report;                 // of the training input (and --val)
  bool val_held_out = false;
};

// The files a run writes, held for it: refuses an output (the model, its
// checkpoint, the log) that is also an input (the records files `sources`,
// --val, --init), and locks the model and the checkpoint (MODEL.lock, and
// CHECKPOINT.lock when --checkpoint is not the default MODEL.ckpt) so that a
// second run with the same files fails at once. Throws UsageError (an
// output that is an input) or FatalError (held by another run).
class TrainOutputs {
 public:
  TrainOutputs(const TrainOptions& opt, const std::vector<std::string>& sources);

 private:
  std::optional<FileLock> model_, checkpoint_;
};

// Loads and splits the data for `opt` (resolving preset/classes), printing
// the load report through `note`. Throws UsageError for bad options and
// FatalError when no usable training record remains.
TrainingData prepare_training_data(const TrainOptions& opt, const std::vector<Record>& records,
                                   const std::vector<std::string>& sources,
                                   const std::function<void(const std::string&)>& note);

// --- the loop ---------------------------------------------------------------
// Where progress goes: `progress` gets a one-line bar after each step (meant
// for a terminal), `note` one line per evaluation and the load report.
struct TrainReporter {
  std::function<void(const std::string&)> progress;
  std::function<void(const std::string&)> note;
};

struct TrainResult {
  int signal = 0;        // SIGINT/SIGTERM that stopped the run (checkpointed)
  bool stopped = false;  // --max-steps reached or a signal (no model written)
  std::int64_t steps = 0;
  EmotionalDan model{nullptr};
  ModelMeta meta;          // meta.training holds the summary
  boost::json::array log;  // one object per evaluation
};

// Resolves the model config of `opt` (preset, overrides, classes). Throws
// UsageError.
ModelConfig train_config(const TrainOptions& opt);

// Trains stage by stage (see edan-train(1)) and writes opt.output (unless
// stopped early). Checkpoints go to opt.checkpoint (default
// <output>.ckpt) after every evaluation and when stopped; with opt.resume
// the run continues from it and ends as an uninterrupted run would. While it
// runs, SIGINT and SIGTERM finish the current step, checkpoint and return.
// Throws UsageError (options), FatalError (I/O, NaN loss, a checkpoint of
// another run).
TrainResult train_model(const TrainOptions& opt, const TrainingData& data,
                        const TrainReporter& reporter);

}  // namespace edan
