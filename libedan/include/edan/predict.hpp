#pragma once
// Batch prediction with a trained EmotionalDAN: records in, records with
// "pred" out (edan-predict's work, usable from any program).
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "edan/model.hpp"
#include "edan/record.hpp"
#include "edan/shape.hpp"

namespace edan {

struct PredictOptions {
  std::string model;           // model file; empty = default_model_path()
  std::string device = "cpu";  // cpu, cuda, cuda:N
  int threads = 0;             // LibTorch intra-op threads; 0 = all cores
};

// One face's prediction, landmarks in the model's input frame (S×S pixels).
struct FacePrediction {
  int label = 0;               // index into the model's labels
  std::vector<double> probs;   // softmax over the model's labels, in their order
  Shape landmarks;             // 68 points of the last stage
};

class Predictor {
 public:
  // Takes a loaded model (load_model) and the device it lives on; puts the
  // model in eval mode.
  Predictor(LoadedModel loaded, torch::Device device);
  // Resolves options: threads (set_threads), device (parse_device: throws
  // FatalError/UsageError), model path (default_model_path when empty), then
  // loads the model (FatalError naming the file).
  static Predictor load(const PredictOptions& options);

  const ModelMeta& meta() const { return loaded_.meta; }
  std::int64_t size() const { return loaded_.meta.config.size; }
  const torch::Device& device() const { return device_; }

  // Predicts a batch of faces: pixels [N,1,S,S], grayscale in [0,1] (not yet
  // normalised), on any device. Runs under eval() and NoGradGuard.
  std::vector<FacePrediction> predict(const torch::Tensor& pixels);

  // Annotates each record of a batch in place, with one forward pass for
  // the batch. The face is the record's "crop" (a grayscale face crop, resized
  // to S×S when it is another size) when present, otherwise its "image" taken
  // as an already-cropped face. Each record gains
  //   "pred": {"label": L, "probs": {class: p, ...}, "landmarks": [[x,y]...]}
  // with the landmarks in the pixel coordinates of the file the record's face
  // was read from. A record whose face cannot be read gains "error" instead
  // (naming the file); the others are still predicted. A record without
  // "crop" or "image" gains an error too.
  void annotate(std::vector<Record*>& batch);

 private:
  LoadedModel loaded_;
  torch::Device device_;
};

// Adds "pred" to a record: label name, probs by class name (rounded to 6
// decimals), landmarks (rounded to 0.01 px). Replaces an existing "pred" in
// place. Throws std::invalid_argument when probs do not match labels.
void set_prediction(Record& r, const std::vector<std::string>& labels, int label,
                    const std::vector<double>& probs, const Shape& landmarks);

}  // namespace edan
