#pragma once
// Batch prediction with a trained EmotionalDAN: records in, records with
// "pred" out (edan-predict's work, usable from any program).
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edan/detect.hpp"
#include "edan/model.hpp"
#include "edan/record.hpp"
#include "edan/shape.hpp"

namespace edan {

struct PredictOptions {
  std::string model;           // model file; empty = default_model_path()
  std::string device = "cpu";  // cpu, cuda, cuda:N
  int threads = 0;             // LibTorch intra-op threads; 0 = all cores
  // Run only the first `stages` DAN stages (0 = all): the prediction then
  // comes from that stage's own emotion head and landmarks, i.e. the model
  // as it was when that stage finished training (for ablations).
  std::int64_t stages = 0;
  // Test-time mirroring: also run each face flipped left-right and average
  // the two predictions (emotion probabilities; landmarks mapped back by
  // mirror_indices). Twice the network's work per face.
  bool flip = false;
  // Records (and video frames) without a "crop" are detected, aligned and
  // cropped in memory as edan-crop does (edan/detect.hpp):
  std::string detector = "blazeface";    // a name of detector_names()
  Fallback fallback = Fallback::kSmall;  // no face found (edan/detect.hpp)
  // Records without a crop: predict every face found (one record each) or
  // only the largest.
  bool all_faces = true;
};

// One face's prediction, landmarks in the model's input frame (S×S pixels).
struct FacePrediction {
  int label = 0;              // index into the model's labels
  std::vector<double> probs;  // softmax over the model's labels, in their order
  Shape landmarks;            // 68 points of the last stage
};

// Where a Predictor's time went (seconds of wall-clock time, summed over
// calls): reading and detecting faces (read_faces, on the reader thread of
// annotate_records, so it overlaps the rest), packing pixels into the input
// tensor, the forward pass (normalisation, network, softmax, copy back),
// and writing the predictions into the records.
struct PredictTimings {
  double read = 0, pack = 0, forward = 0, records = 0;
  std::int64_t batches = 0, faces = 0;
};

class Predictor {
 public:
  // Takes a loaded model (load_model) and the device it lives on; puts the
  // model in eval mode and predicts with an inference-prepared copy of it
  // (prepare_for_inference: BatchNorm folded, no dropout), made once here. `options` gives the face
  // detector for records without a crop (created on first use; UsageError for an unknown name).
  Predictor(LoadedModel loaded, torch::Device device, PredictOptions options = {});
  // Resolves options: threads (set_threads), device (parse_device: throws
  // FatalError/UsageError), model path (default_model_path when empty), then
  // loads the model (FatalError naming the file).
  static Predictor load(const PredictOptions& options);
  ~Predictor();
  Predictor(Predictor&&) noexcept;

  const ModelMeta& meta() const { return loaded_.meta; }
  std::int64_t size() const { return loaded_.meta.config.size; }
  const torch::Device& device() const { return device_; }
  const PredictTimings& timings() const { return timings_; }

  // Predicts a batch of faces: pixels [N,1,S,S], grayscale in [0,1] (not yet
  // normalised), on any device. Runs under eval() and NoGradGuard.
  std::vector<FacePrediction> predict(const torch::Tensor& pixels);

  // Annotates each record of a batch in place, with one forward pass for
  // the batch. The face is
  //  - the record's "crop" when present (a face crop, resized to S×S when it
  //    is another size); landmarks are mapped to the crop file's pixels, and
  //    on to the source image's when the record has edan-crop's geometry
  //    (crop_transform, crop_size);
  //  - otherwise its "image", detected, aligned and cropped in memory
  //    exactly as edan-crop does (its own "landmarks" or "box" define the
  //    face when present), landmarks in the image's pixels. Such a record
  //    gains what edan-crop's records carry: "face" (0 = the largest),
  //    "box" ([x, y, w, h] in the image), "score" and, when no face was
  //    found and the image was taken whole (fallback), "fallback": true.
  // Each record gains
  //   "pred": {"label": L, "probs": {class: p, ...}, "landmarks": [[x,y]...]}
  // A record whose face cannot be read or found gains "error" instead
  // (naming the file); the others are still predicted.
  // In place, a photo's record gets its largest face. The result has, for
  // each record of the batch, the records of all its faces (with all_faces
  // and more than one found; empty otherwise): the same record once per
  // face, each with its own face, box, score and pred.
  using Expanded = std::vector<std::vector<Record>>;
  Expanded annotate(std::vector<Record*>& batch);

  // annotate in two steps, so that reading a batch can overlap predicting
  // the previous one (annotate_records, edan/programs.hpp). read_faces reads
  // (and detects) the faces of a batch without touching the network: it may
  // run on another thread than the other step, one call at a time; a record
  // whose face cannot be read gains "error" there (FatalError is thrown).
  // annotate(batch, faces) predicts the faces of the others.
  struct BatchFaces;
  std::shared_ptr<BatchFaces> read_faces(const std::vector<Record*>& batch);
  Expanded annotate(std::vector<Record*>& batch, BatchFaces& faces);

  // For video: predicts every face of an 8-bit grayscale frame given as
  // rows×cols bytes (row-major), largest first. Each result is a record with
  // "face", "box", "score" and "pred" (landmarks in frame pixels).
  std::vector<Record> predict_frame(const std::uint8_t* pixels, int rows, int cols);

 private:
  struct Croppers;
  Croppers& croppers();
  // The forward pass of predict: probs [N,C] and landmarks [N,68,2] as CPU
  // doubles, labels [N] (argmax), under InferenceMode.
  struct Outputs {
    torch::Tensor probs, labels, landmarks;
  };
  Outputs forward(const torch::Tensor& pixels);
  LoadedModel loaded_;
  torch::Tensor input_;  // reused input buffer of annotate / predict_frame
  torch::Device device_;
  PredictOptions options_;
  std::int64_t chunk_ = 1;  // faces per forward pass of the network (forward_chunk)
  std::unique_ptr<Croppers> croppers_;
  PredictTimings timings_;  // read: written by read_faces only; the rest by annotate
};

// How many faces one forward pass of the network takes at a time, so that a
// large batch never runs slower than a small one: the first conv block's
// activations of a chunk (4 * widths[0] * size^2 bytes a face) fit in
// 16 MiB, about what a core's share of the last-level cache streams well;
// at least 1. The environment variable EDAN_FORWARD_CHUNK (a positive
// integer) overrides it, for measurements.
std::int64_t forward_chunk(const ModelConfig& config);

// Adds "pred" to a record: label name, probs by class name (rounded to 6
// decimals), landmarks (rounded to 0.01 px). Replaces an existing "pred" in
// place. A non-finite probability or landmark (a damaged or diverged model)
// is never written as a prediction: the record gets an "error" instead and
// false is returned. Throws std::invalid_argument when probs do not match
// labels.
bool set_prediction(Record& r, const std::vector<std::string>& labels, int label,
                    const std::vector<double>& probs, const Shape& landmarks);

}  // namespace edan
