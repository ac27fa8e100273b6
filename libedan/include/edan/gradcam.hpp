#pragma once
// Class-specific Grad-CAM for EmotionalDAN (Selvaraju et al. 2017; the
// EmotionalDAN paper's eqs. 3-4) and its per-class mean maps over frontal
// faces (eqs. 5-6): edan-gradcam's work, usable from any program.
//
// For a class c, the score y^c is the emotion LOGIT of the last stage (before
// the softmax). With A^k the k-th feature map of a named convolution of the
// last stage (after its BatchNorm and ReLU),
//   alpha_k = mean_{i,j} dy^c / dA^k_{ij}        (eq. 3)
//   L^c     = ReLU(sum_k alpha_k A^k)            (eq. 4)
// then L^c is upsampled (bilinear) to the model's input size S. Stages t > 1
// see the face warped onto the mean shape by a similarity T; their maps are
// mapped back to the crop with T^-1 so that every map is in crop pixels.
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

// --- the computation ------------------------------------------------------------

// Eqs. 3-4 from activations A [N,K,h,w] and the gradients dy/dA of the same
// shape: ReLU(sum_k mean_ij(grad_k) * A_k), [N,h,w]. Throws
// std::invalid_argument when the shapes differ or are not 4-d.
torch::Tensor grad_cam_from_gradients(const torch::Tensor& activations,
                                      const torch::Tensor& gradients);

// Grad-CAM of per-sample scores [N] with respect to activations [N,K,h,w]
// that they were computed from (part of the autograd graph). One backward
// pass of scores.sum(): score i must depend on sample i only (true in eval
// mode), so each sample gets the gradient of its own score. Returns [N,h,w].
// Throws std::invalid_argument on mismatched sizes, std::runtime_error
// (torch) when the scores do not depend on the activations.
torch::Tensor grad_cam(const torch::Tensor& activations, const torch::Tensor& scores);

// Bilinear resize of maps [N,h,w] to [N,size,size] (pixel centres aligned:
// align_corners = false, the same convention as OpenCV's resize).
torch::Tensor upsample_maps(const torch::Tensor& maps, std::int64_t size);

// Samples a map [H,W] at points (x, y) in its pixel coordinates (pixel
// centres at integers), bilinear; coordinates are clamped to the map, so a
// point outside takes the nearest border value. Returns one value per point.
std::vector<double> sample_map(const torch::Tensor& map, const Shape& points);

// Indices of the k largest values, highest first, ties to the lower index
// (k larger than the vector is clamped).
std::vector<int> rank_landmarks(const std::vector<double>& activation, std::size_t k);

// Grad-CAM of a whole batch through the model.
struct GradCamBatch {
  torch::Tensor maps;        // [N,S,S] float32, CPU, crop frame, >= 0
  torch::Tensor logits;      // [N,C] float32, CPU
  torch::Tensor landmarks;   // [N,68,2] float32, CPU, last stage, crop pixels
  std::vector<int> classes;  // the class each map is for
};
// images: [N,1,S,S] normalised (normalise_images), on the model's device.
// classes: one per image, an index into the model's labels, or -1 for the
// predicted class (argmax of the logits). layer: a named convolution
// ("conv1a".."conv4b") of the last stage. Puts the model in eval() mode
// (dropout off, BatchNorm running statistics) and runs one forward and one
// backward pass for the batch; parameter gradients are not accumulated.
// Throws std::invalid_argument (class count, class out of range) and
// std::out_of_range (unknown layer).
GradCamBatch model_grad_cam(EmotionalDan& model, const torch::Tensor& images,
                            const std::string& layer, const std::vector<int>& classes);

// --- records ----------------------------------------------------------------------

struct GradCamOptions {
  std::string model;                     // model file; empty = default_model_path()
  std::string device = "cpu";            // cpu, cuda, cuda:N
  int threads = 0;                       // LibTorch intra-op threads; 0 = all cores
  std::string layer = "conv4a";          // a named convolution of the last stage
  std::string cls = "pred";              // pred, label, or a class name
  std::string out;                       // where maps and overlays go (required)
  std::string mean;                      // "" or where mean maps go
  double frontal_eps = -1;               // pixels; < 0 = 0.05 * S
  int top_k = 10;                        // length of top_landmarks, landmarks in the grid
  std::string detector = "blazeface";    // records without a crop: edan-crop's detector
  Fallback fallback = Fallback::kSmall;  // no face found (edan/detect.hpp)
};

// Writes Grad-CAM maps and overlays for records and accumulates the mean
// maps. Not thread-safe.
class GradCam {
 public:
  // Resolves threads, device, the model (as Predictor::load), checks the
  // options (UsageError: empty out, unknown layer or class name, top_k < 1)
  // and creates the output directories (FatalError).
  explicit GradCam(const GradCamOptions& options);
  ~GradCam();
  GradCam(GradCam&&) noexcept;

  std::int64_t size() const;
  const std::vector<std::string>& labels() const;

  // Annotates a batch in place with one forward and one backward pass. The
  // face is the record's "crop" (resized to S×S when it has another size),
  // else its "image", detected and cropped in memory (edan/detect.hpp; the
  // largest face). Each record gains "gradcam" {layer, class, size, max,
  // map, overlay, landmark_activation, top_landmarks} and "pred" when it has
  // none (edan/predict.hpp's form; landmarks in the pixels of the file the
  // face came from). A record whose face cannot be read, or whose label
  // cannot be used with --class label, gains "error" instead; the others are
  // still done. Writes the files atomically (FatalError on I/O errors).
  void annotate(std::vector<Record*>& batch);

  // With options.mean: selects the frontal faces among all annotated ones,
  // writes the mean maps and the grid, and returns a summary (per class:
  // faces, frontal, files). Without: returns an empty object.
  boost::json::object finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The class index that `spec` (--class) asks for, in `labels` (the model's
// classes): "pred" -> -1 (the predicted class); "label" -> the record's
// "label"; anything else is a class name. Names may be aliases (labels.hpp);
// for a 3-class model they are mapped with to_three_class. Throws
// RecordError when the record has no label or it is not one of the model's
// classes, UsageError when a class name is not.
int class_for_record(const Record& r, const std::string& spec,
                     const std::vector<std::string>& labels);

}  // namespace edan
