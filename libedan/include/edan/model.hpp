#pragma once
// EmotionalDAN: a Deep Alignment Network whose last stage also classifies the
// emotion. The network, its presets, and the model file.
//
// Coordinates: landmarks are in crop pixels, pixel centres at integer
// coordinates (OpenCV's convention), the crop being size×size.
#include <torch/torch.h>

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "edan/shape.hpp"

namespace edan {

// Architecture of a model. Presets fill it; every field can be overridden.
struct ModelConfig {
  std::string preset = "small";
  std::int64_t size = 64;                           // S: input crop side
  std::vector<std::int64_t> widths{32, 64, 96, 128};  // channels of the 4 conv blocks
  std::int64_t stages = 2;
  std::int64_t fc = 256;                            // fc1 width
  double dropout = 0.5;                             // after each pool
  std::vector<std::string> labels;                  // emotion classes, output order
};

// "paper" (S=224, widths 64/128/256/512, 2 stages), "dan" (S=112, same
// widths, 2 stages), "small" (the CPU preset of the shipped model).
// labels default to the 7-class set. Throws UsageError for an unknown name.
ModelConfig preset_config(std::string_view name);

// What a model file carries besides the weights.
struct ModelMeta {
  ModelConfig config;
  Shape mean_shape;          // 68 points in crop pixels (from the training set)
  double input_mean = 0.5;   // grayscale in [0,1] is normalised (x-mean)/std
  double input_std = 0.25;
  boost::json::object training;  // training data summary, recipe, metrics
  std::string version;           // edan version that wrote the file
};

// The output of a forward pass.
struct DanOutput {
  std::vector<torch::Tensor> landmarks;  // per stage run: [N,68,2] crop pixels
  torch::Tensor logits;                  // [N,C] emotion scores of the last stage run
  torch::Tensor features;                // [N,fc] fc1 of the last stage run
};

// One DAN stage: VGG-like body (4 blocks of conv3x3-BN-ReLU ×2, maxpool 2,
// dropout) → fc1 → landmark offsets (136), and emotion logits from fc1. Each
// stage has its own emotion head so that it can be trained with the joint
// loss while it is the last stage; the model's prediction always comes from
// the last stage's head. Stage t>1 takes 3 input channels (image, heatmap,
// feature image) passed through BatchNorm first.
class DanStageImpl : public torch::nn::Module {
 public:
  DanStageImpl(const ModelConfig& config, std::int64_t index);
  struct Output {
    torch::Tensor offsets;   // [N,68,2]
    torch::Tensor features;  // [N,fc]
    torch::Tensor logits;    // [N,C]
  };
  Output forward(const torch::Tensor& x);
  // Named convolutions for Grad-CAM: "conv1a".."conv4b".
  torch::nn::Conv2d conv(const std::string& name) const;
  // ...
};
TORCH_MODULE(DanStage);

class EmotionalDanImpl : public torch::nn::Module {
 public:
  EmotionalDanImpl(ModelConfig config, Shape mean_shape);
  // images: [N,1,S,S], already normalised. Runs stages 1..n_stages
  // (0 = all). The emotion logits come from the last stage run.
  DanOutput forward(const torch::Tensor& images, std::int64_t n_stages = 0);
  const ModelConfig& config() const;
  // ...
};
TORCH_MODULE(EmotionalDan);

// DAN's stage-to-stage operations, public for tests and Grad-CAM.
// Per-sample similarity transforms [N,2,3] mapping `from` onto `to`
// (closed-form least squares), shapes [N,68,2] and [68,2].
torch::Tensor estimate_transforms(const torch::Tensor& from, const torch::Tensor& to);
// Applies transforms [N,2,3] to points [N,K,2].
torch::Tensor apply_transforms(const torch::Tensor& t, const torch::Tensor& pts);
torch::Tensor invert_transforms(const torch::Tensor& t);
// Warps images [N,C,S,S] with transforms [N,2,3] (output pixel p samples the
// input at T^-1 p, bilinear, zeros outside).
torch::Tensor warp_images(const torch::Tensor& images, const torch::Tensor& t);
// Landmark heatmaps [N,1,S,S]: per pixel max over landmarks l of 1/(1+|p-l|)
// within a 17×17 patch around l (0 elsewhere).
torch::Tensor landmark_heatmaps(const torch::Tensor& landmarks, std::int64_t size);

// Writes a model file (weights + ModelMeta) atomically (temporary + rename).
// Throws FatalError naming the file on I/O errors.
void save_model(const std::string& path, EmotionalDan& model, const ModelMeta& meta);
// Loads a model file. Throws FatalError naming the file when it is missing,
// not an edan model, truncated, or of an incompatible version.
struct LoadedModel {
  EmotionalDan model{nullptr};
  ModelMeta meta;
};
LoadedModel load_model(const std::string& path, const torch::Device& device);

// The shipped default model: $EDAN_MODEL, else <installed datadir>/default.edan,
// else <source dir>/models/default.edan. Throws FatalError when none exists.
std::string default_model_path();

// Sets LibTorch's intra-op threads (0 = all cores).
void set_threads(int threads);
// Parses "cpu" / "cuda" / "cuda:N"; throws FatalError when CUDA is asked
// for but not available.
torch::Device parse_device(const std::string& name);

}  // namespace edan
