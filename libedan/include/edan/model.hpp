#pragma once
// EmotionalDAN: a Deep Alignment Network whose last stage also classifies the
// emotion. The network, its presets, and the model file.
//
// Coordinates: landmarks are in crop pixels, pixel centres at integer
// coordinates (OpenCV's convention), the crop being size×size.
#include <torch/torch.h>

#include <boost/json.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "edan/shape.hpp"

namespace edan {

// Architecture of a model. Presets fill it; every field can be overridden.
struct ModelConfig {
  std::string preset = "small";
  std::int64_t size = 64;                             // S: input crop side
  std::vector<std::int64_t> widths{16, 32, 64, 128};  // channels of the 4 conv blocks
  std::int64_t stages = 2;
  std::int64_t fc = 256;            // fc1 width
  double dropout = 0.5;             // after each pool
  std::vector<std::string> labels;  // emotion classes, output order
};

// "paper" (S=224, widths 64/128/256/512, 2 stages), "dan" (S=112, same
// widths, 2 stages), "small" (the CPU preset of the shipped model: S=48,
// widths 16/48/96/192, 2 stages). labels default to the 7-class set.
// Throws UsageError for an unknown name.
ModelConfig preset_config(std::string_view name);

// Checks a (possibly overridden) config: size a positive multiple of 16 (four
// 2×2 pools; the feature image needs S/2), 4 positive widths, stages >= 1,
// fc >= 1, dropout in [0,1), at least one label. Throws UsageError saying
// which field is wrong.
void check_config(const ModelConfig& config);

// What a model file carries besides the weights.
struct ModelMeta {
  ModelConfig config;
  Shape mean_shape;  // 68 points in crop pixels (from the training set)
  // How a crop in [0,1] is normalised, the same way in training and in
  // prediction: "dataset" (the paper's) subtracts input_mean and divides by
  // input_std (the training set's statistics); "image" uses each crop's own
  // mean and standard deviation, so that contrast differences between
  // datasets do not reach the network; "histeq" equalises each crop's
  // histogram (as OpenCV's equalizeHist, on the crop quantised to 256
  // levels), then standardises it as "image" does. Equalisation is
  // idempotent, so an equalised and a raw copy of one face reach the network
  // alike. (Why the shipped model uses histeq: models/README.md.)
  std::string input_norm = "dataset";
  double input_mean = 0.5;
  double input_std = 0.25;
  boost::json::object training;  // training data summary, recipe, metrics
  std::string version;           // edan version that wrote the file
};

// ModelMeta <-> JSON (the form stored in the model file). meta_from_json
// throws std::runtime_error naming the missing or malformed field.
boost::json::object meta_to_json(const ModelMeta& meta);
ModelMeta meta_from_json(const boost::json::object& json);

// The output of a forward pass.
struct DanOutput {
  std::vector<torch::Tensor> landmarks;  // per stage run: [N,68,2] crop pixels
  torch::Tensor logits;                  // [N,C] emotion scores of the last stage run
  torch::Tensor features;                // [N,fc] fc1 of the last stage run
  // Activations of the last stage run asked for with `capture` (see
  // EmotionalDanImpl::forward), by conv name.
  std::map<std::string, torch::Tensor> activations;
};

// One layer of a DAN stage's body as the paper draws it: a 3×3 convolution
// (no bias), BatchNorm, ReLU. The convolution and the BatchNorm are
// registered on the owning stage under the layer's name ("conv1a") and
// "bn1a", the names in the model file. fold() turns the layer into its
// inference form: the BatchNorm (its running statistics) folded into the
// convolution's weights, scaled per output channel and stored channels-last,
// plus a bias; forward then computes the eval-mode function in one pass.
// Irreversible: only for inference copies, which are not trained or saved.
class ConvBnRelu {
 public:
  ConvBnRelu(torch::nn::Module& owner, std::string name, std::int64_t in, std::int64_t out);
  // x [N,in,H,W] -> [N,out,H,W]. in_place: a folded layer may apply its ReLU
  // in place (no caller keeps the convolution's output).
  torch::Tensor forward(const torch::Tensor& x, bool in_place = false);
  void fold();  // idempotent
  bool folded() const { return folded_bias_.defined(); }
  const std::string& name() const { return name_; }
  torch::nn::Conv2d conv() const { return conv_; }

 private:
  std::string name_;
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
  torch::Tensor folded_bias_;  // defined once folded
};

// One DAN stage: VGG-like body (4 blocks of conv3x3-BN-ReLU ×2, maxpool 2,
// dropout) → fc1 (+ReLU) → landmark offsets (136), and emotion logits from
// fc1. Each stage has its own emotion head so that it can be trained with the
// joint loss while it is the last stage; the model's prediction always comes
// from the last stage's head. Stage t>1 (index >= 1) takes 3 input channels
// (image, heatmap, feature image) passed through BatchNorm first, and owns the
// dense layer that turns the previous stage's fc1 into its feature image.
class DanStageImpl : public torch::nn::Module {
 public:
  // index: 0-based stage number. Throws UsageError on a bad config.
  DanStageImpl(const ModelConfig& config, std::int64_t index);
  struct Output {
    torch::Tensor offsets;                             // [N,68,2]
    torch::Tensor features;                            // [N,fc]
    torch::Tensor logits;                              // [N,C]
    std::map<std::string, torch::Tensor> activations;  // see forward
  };
  // x: [N,1,S,S] (stage 1) or [N,3,S,S] (later stages). The outputs of the
  // named convolutions in `capture` (after their BatchNorm and ReLU, e.g.
  // "conv4a") are returned in Output::activations, part of the graph so that
  // gradients with respect to them can be taken (Grad-CAM).
  Output forward(const torch::Tensor& x, const std::vector<std::string>& capture = {});
  // Stage t>1 only: previous fc1 [N,fc] → dense (S/2)² + ReLU → reshape →
  // nearest upsample ×2 → [N,1,S,S]. Throws std::logic_error on stage 1.
  torch::Tensor feature_image(const torch::Tensor& previous_features);
  // Named convolutions for Grad-CAM: "conv1a".."conv4b". Throws
  // std::out_of_range for another name.
  torch::nn::Conv2d conv(const std::string& name) const;
  // The body's layer names, input first: conv1a, conv1b, ..., conv4b.
  std::vector<std::string> layer_names() const;
  std::int64_t index() const { return index_; }
  // Turns every layer of the body into its inference form (ConvBnRelu::fold);
  // forward then also skips dropout. Only for inference copies
  // (prepare_for_inference), which must not be trained or saved; forward of
  // a folded stage in training mode throws std::logic_error. Idempotent.
  void fold_batchnorm();
  bool folded() const { return folded_; }

 private:
  ModelConfig config_;
  std::int64_t index_;
  torch::nn::BatchNorm2d input_bn_{nullptr};  // stage t>1
  torch::nn::Linear feature_dense_{nullptr};  // stage t>1
  std::vector<ConvBnRelu> body_;              // 4 blocks of 2 layers, each block then pooled
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear fc1_{nullptr}, landmarks_{nullptr}, emotion_{nullptr};
  bool folded_ = false;
};
TORCH_MODULE(DanStage);

class EmotionalDanImpl : public torch::nn::Module {
 public:
  // mean_shape: 68 points in crop pixels. Throws UsageError on a bad config,
  // std::invalid_argument when mean_shape has not 68 points.
  EmotionalDanImpl(ModelConfig config, Shape mean_shape);
  // images: [N,1,S,S], already normalised. Runs stages 1..n_stages
  // (0 = all; more than the model has: std::invalid_argument). The emotion
  // logits come from the last stage run. `capture` names convolutions of the
  // last stage run whose activations are returned (DanStageImpl::forward).
  // Later stages see the earlier stages' landmarks detached: the transform
  // and heatmap carry no gradient (earlier stages are frozen when a stage
  // trains), the feature image does.
  DanOutput forward(const torch::Tensor& images, std::int64_t n_stages = 0,
                    const std::vector<std::string>& capture = {});
  const ModelConfig& config() const { return config_; }
  std::int64_t num_stages() const { return static_cast<std::int64_t>(stages_.size()); }
  // 0-based. Throws std::out_of_range.
  DanStage stage(std::int64_t index) const;
  // A warm start for stage `index` (>= 1): every layer copied from the stage
  // before it, except that the first convolution's extra input channels
  // (heatmap, feature image) start at zero, its input BatchNorm and feature
  // layer keep their initialisation, and the landmark head is zero (Δ = 0).
  // The new stage then begins at the previous stage's landmarks with a body
  // that already reads faces. Throws std::out_of_range for a bad index.
  void init_stage_from_previous(std::int64_t index);
  // [68,2] buffer (moves with .to(device)).
  const torch::Tensor& mean_shape() const { return mean_shape_; }

 private:
  ModelConfig config_;
  torch::Tensor mean_shape_;
  std::vector<DanStage> stages_;
};
TORCH_MODULE(EmotionalDan);

// Copies every parameter and buffer of `from` into the one of the same name
// in `to`, without recording gradients: two modules of one architecture (two
// models, or two stages). Throws std::invalid_argument naming the first
// tensor of `to` that `from` lacks or holds in another shape.
void copy_weights(const torch::nn::Module& from, torch::nn::Module& to);

// An inference-prepared copy of `model` (which is left untouched): the same
// weights on the same device, in eval mode, with every stage's BatchNorms
// folded into its convolutions and dropout removed
// (DanStageImpl::fold_batchnorm). Its forward equals model's eval-mode
// forward up to float rounding. For prediction only: it cannot be trained,
// and save_model must be given the original.
EmotionalDan prepare_for_inference(const EmotionalDan& model);

// Normalises grayscale pixels in [0,1] ([N,1,S,S] float) as meta.input_norm
// says: (x - input_mean) / input_std, or per image (x - mean(x)) / std(x) with
// std(x) at least 1/255 (a flat crop becomes all zeros), or that after
// equalize_histograms.
torch::Tensor normalise_images(const torch::Tensor& pixels, const ModelMeta& meta);

// Per-image histogram equalisation of [N,1,H,W] pixels in [0,1], as OpenCV's
// cv::equalizeHist computes it on the image quantised to 0..255: with h the
// histogram, c its cumulative sum and c0 the count of the darkest level
// present, level v maps to round(255 (c[v] - c0) / (H W - c0)) / 255. The
// darkest level present becomes 0, the brightest 1; a flat image becomes 0.
// Idempotent up to that quantisation.
torch::Tensor equalize_histograms(const torch::Tensor& pixels);

// DAN's stage-to-stage operations, public for tests and Grad-CAM.
// Transforms are [N,2,3] affine matrices [[a,-b,tx],[b,a,ty]] in pixels.
// Per-sample similarity transforms mapping `from` onto `to` (closed-form
// least squares, as edan::estimate_similarity), from: [N,K,2], to: [K,2] or
// [N,K,2]. A degenerate `from` (all points equal) gives non-finite values.
torch::Tensor estimate_transforms(const torch::Tensor& from, const torch::Tensor& to);
// Applies transforms [N,2,3] to points [N,K,2].
torch::Tensor apply_transforms(const torch::Tensor& t, const torch::Tensor& pts);
// Inverse affine transforms [N,2,3].
torch::Tensor invert_transforms(const torch::Tensor& t);
// Warps images [N,C,H,W] with transforms [N,2,3] (output pixel p samples the
// input at T^-1 p, bilinear, zeros outside; pixel centres at integers).
torch::Tensor warp_images(const torch::Tensor& images, const torch::Tensor& t);
// Landmark heatmaps [N,1,S,S] of landmarks [N,K,2]: per pixel max over
// landmarks l of 1/(1+|p-l|) within the 17×17 patch centred on l rounded to
// the nearest pixel (0 elsewhere). Not differentiable.
torch::Tensor landmark_heatmaps(const torch::Tensor& landmarks, std::int64_t size);
namespace detail {
// The same in tensor operations (used on GPUs; public for its test).
torch::Tensor landmark_heatmaps_vectorised(const torch::Tensor& landmarks, std::int64_t size);
}  // namespace detail

// Shape <-> tensor ([68,2] float32 on the CPU).
torch::Tensor shape_to_tensor(const Shape& s);
Shape tensor_to_shape(const torch::Tensor& t);

// "crc32:xxxxxxxx" over `text`, then each tensor's name, shape and bytes
// (model and checkpoint files store it to detect damage on load).
std::string tensors_checksum(std::string_view text,
                             const std::vector<std::pair<std::string, torch::Tensor>>& named);

// An exception's message in one line: LibTorch's without its backtrace
// (c10::Error::what() holds a C++ stack trace), anything else's first line.
std::string error_message(const std::exception& e);

// Writes a model file (weights + ModelMeta + a CRC-32 of both) atomically
// (temporary + rename). Throws FatalError naming the file on I/O errors.
void save_model(const std::string& path, EmotionalDan& model, const ModelMeta& meta);
// Loads a model file. Throws FatalError naming the file when it is missing,
// not an edan model, truncated, damaged (its weights or metadata do not
// match the checksum saved with them), without a checksum (saved by an
// earlier edan), or of an incompatible version.
struct LoadedModel {
  EmotionalDan model{nullptr};
  ModelMeta meta;
};
LoadedModel load_model(const std::string& path, const torch::Device& device);

// The shipped default model: $EDAN_MODEL (when set and not empty, returned as
// is), else <program dir>/../share/edan/default.edan, else <installed
// datadir>/default.edan, else <source dir>/models/default.edan. Throws
// FatalError listing the places looked in when none exists.
std::string default_model_path();

// Sets LibTorch's intra-op threads (0 = every core this process may run on).
void set_threads(int threads);
// Parses "cpu" / "cuda" / "cuda:N"; throws FatalError when CUDA is asked
// for but not available, UsageError for any other name.
torch::Device parse_device(const std::string& name);

}  // namespace edan
