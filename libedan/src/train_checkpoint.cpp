// Checkpoints of a training run: save, load, the checksum that finds a
// damaged one, and the fingerprint that finds one of another run, beside the
// options a resumed run may change.
#include "train_checkpoint.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "edan/error.hpp"
#include "edan/fs.hpp"

namespace edan {

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

boost::json::object options_json(const TrainOptions& o, const ModelConfig& c) {
  boost::json::array widths;
  for (auto w : c.widths) widths.push_back(w);
  boost::json::object j{{"preset", o.preset},
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
  // Only when used, so that a checkpoint of an edan before --class-weights
  // (or --class-weight-max) still resumes.
  if (o.class_weights != "none") j["class_weights"] = o.class_weights;
  if (o.class_weight_max > 0) j["class_weight_max"] = o.class_weight_max;
  return j;
}

// The fingerprint's keys that a resumed run may change: the rest must match.
// --epochs and --patience only decide when stages end: a resumed run may
// change them (e.g. to end a long run early with the best weights so far).
// (input_blur*: written by edan 0.1, never compared.)
constexpr const char* kResumeMayChange[] = {"epochs", "patience", "input_blur", "input_blur_from"};

boost::json::object fingerprint(const TrainOptions& o, const ModelConfig& c,
                                const TrainingData& d) {
  auto f = options_json(o, c);
  f["train_records"] = d.train.size();
  f["val_records"] = d.val.size();
  return f;
}

// "bad" and "best": the checkpoint format's names for evals_without_improvement
// and best_loss.
boost::json::object LoopState::to_json() const {
  return {{"stage", stage},
          {"epoch", epoch},
          {"pos", pos},
          {"step", step},
          {"stage_step", stage_step},
          {"bad", evals_without_improvement},
          {"best",
           std::isfinite(best_loss) ? boost::json::value(best_loss) : boost::json::value(nullptr)},
          {"seconds", seconds},
          {"running", running.state()},
          {"log", log},
          {"stages", stages}};
}

LoopState LoopState::from_json(const boost::json::object& o) {
  LoopState s;
  s.stage = o.at("stage").to_number<std::int64_t>();
  s.epoch = o.at("epoch").to_number<std::int64_t>();
  s.pos = o.at("pos").to_number<std::int64_t>();
  s.step = o.at("step").to_number<std::int64_t>();
  s.stage_step = o.at("stage_step").to_number<std::int64_t>();
  s.evals_without_improvement = o.at("bad").to_number<std::int64_t>();
  s.best_loss = o.at("best").is_null() ? std::numeric_limits<double>::infinity()
                                       : o.at("best").to_number<double>();
  s.seconds = o.at("seconds").to_number<double>();
  s.running = Tally::from_state(o.at("running").as_object());
  s.log = o.at("log").as_array();
  s.stages = o.at("stages").as_array();
  return s;
}

// The checkpoint's metadata, weights and best weights (not the optimizer's
// moments: damage there only slows the resumed run), as save_checkpoint
// wrote them.
namespace {
std::string checkpoint_checksum(const std::string& meta, const std::vector<torch::Tensor>& weights,
                                const Snapshot& best_weights) {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (std::size_t i = 0; i < weights.size(); ++i)
    named.emplace_back("weights.t" + std::to_string(i), weights[i].detach());
  for (std::size_t i = 0; i < best_weights.size(); ++i)
    named.emplace_back("best.t" + std::to_string(i), best_weights[i]);
  return tensors_checksum(meta, named);
}
}  // namespace

void save_checkpoint(const std::string& path, EmotionalDan& model, const Snapshot& best_weights,
                     torch::optim::Optimizer* optimizer, const LoopState& state,
                     const boost::json::object& print) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive weights, best_archive, opt_archive;
  auto current = model_tensors(model);
  for (std::size_t i = 0; i < current.size(); ++i)
    weights.write("t" + std::to_string(i), current[i].detach().to(torch::kCPU));
  for (std::size_t i = 0; i < best_weights.size(); ++i)
    best_archive.write("t" + std::to_string(i), best_weights[i].to(torch::kCPU));
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
  archive.write("checksum", c10::IValue(checkpoint_checksum(meta_json, current, best_weights)));
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
    auto saved = meta.at("fingerprint").as_object(), wanted = print;
    for (const char* key : kResumeMayChange) {
      saved.erase(key);
      wanted.erase(key);
    }
    if (saved != wanted)
      throw FatalError(path +
                       ": checkpoint of a run with other options or data; remove it or "
                       "train without --resume");
    c.state = LoopState::from_json(meta.at("state").as_object());
    torch::serialize::InputArchive weights, best_weights;
    archive.read("weights", weights);
    archive.read("best", best_weights);
    for (std::size_t i = 0; i < n_tensors; ++i) {
      torch::Tensor w, b;
      weights.read("t" + std::to_string(i), w);
      best_weights.read("t" + std::to_string(i), b);
      c.weights.push_back(w);
      c.best_weights.push_back(b);
    }
    c10::IValue stored;
    if (!archive.try_read("checksum", stored) || !stored.isString() ||
        stored.toStringRef() !=
            checkpoint_checksum(meta_value.toStringRef(), c.weights, c.best_weights))
      throw std::runtime_error("the file is damaged (its checksum does not match)");
    c.has_optimizer = archive.try_read("optimizer", c.optimizer);
  } catch (const FatalError&) {
    throw;
  } catch (const std::exception& e) {
    throw FatalError(path + ": cannot resume from this checkpoint: " + error_message(e));
  }
  return c;
}

}  // namespace edan
