#pragma once
// Private to the training code: the checkpoint of a run (its loop state,
// weights, best weights and optimizer), its fingerprint, and the options a
// resumed run may change.
#include <torch/torch.h>

#include <boost/json.hpp>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "edan/model.hpp"
#include "edan/train.hpp"
#include "train_impl.hpp"

namespace edan {

using Snapshot = std::vector<torch::Tensor>;

// The model's parameters and buffers, in a fixed order (the checkpoint's).
std::vector<torch::Tensor> model_tensors(EmotionalDan& model);
// A copy of the model's tensors.
Snapshot snapshot(EmotionalDan& model);
// Copies a snapshot back into the model. Throws FatalError when it does not
// fit.
void restore(EmotionalDan& model, const Snapshot& s);

// The options of a run as the model's summary records them.
boost::json::object options_json(const TrainOptions& o, const ModelConfig& c);

// The parts of a run that must match for a checkpoint to be resumed.
boost::json::object fingerprint(const TrainOptions& o, const ModelConfig& c, const TrainingData& d);

// The mutable state of the loop; all of it goes into the checkpoint.
struct LoopState {
  std::int64_t stage = 0, epoch = 0, pos = 0, step = 0, stage_step = 0;
  std::int64_t evals_without_improvement = 0;                  // in this stage
  double best_loss = std::numeric_limits<double>::infinity();  // of this stage
  double seconds = 0;
  Tally running;
  boost::json::array log, stages;

  boost::json::object to_json() const;
  static LoopState from_json(const boost::json::object& o);
};

// Writes the checkpoint to `path` atomically (durably): the model's weights,
// the best weights, the optimizer (when not null), the state and the
// fingerprint `print`. Throws FatalError.
void save_checkpoint(const std::string& path, EmotionalDan& model, const Snapshot& best_weights,
                     torch::optim::Optimizer* optimizer, const LoopState& state,
                     const boost::json::object& print);

struct LoadedCheckpoint {
  LoopState state;
  Snapshot weights, best_weights;
  torch::serialize::InputArchive optimizer;
  bool has_optimizer = false;
};

// Reads a checkpoint of `n_tensors` tensors onto `device`. Throws FatalError
// naming `path` when it is not one, is damaged, or its fingerprint is not
// `print` (but for the options a resumed run may change).
LoadedCheckpoint load_checkpoint(const std::string& path, const boost::json::object& print,
                                 std::size_t n_tensors, torch::Device device);

}  // namespace edan
