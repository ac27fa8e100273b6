#include "edan/model.hpp"

#include <ATen/Parallel.h>
#include <ATen/ops/mkldnn_convolution.h>
#include <sched.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "edan/error.hpp"
#include "edan/fs.hpp"
#include "edan/labels.hpp"
#include "edan/version.hpp"

namespace edan {

// --- configuration ----------------------------------------------------------

ModelConfig preset_config(std::string_view name) {
  ModelConfig c;
  c.preset = std::string(name);
  c.labels = class_names(ClassSet::k7);
  if (name == "paper") {
    c.size = 224;
    c.widths = {64, 128, 256, 512};
  } else if (name == "dan") {
    c.size = 112;
    c.widths = {64, 128, 256, 512};
  } else if (name == "small") {
    c.size = 48;  // FER2013's own resolution
    c.widths = {16, 48, 96, 192};
  } else {
    throw UsageError("unknown preset '" + std::string(name) + "' (paper, dan, small)");
  }
  c.stages = 2;
  c.fc = 256;
  c.dropout = 0.5;
  return c;
}

void check_config(const ModelConfig& c) {
  if (c.size < 16 || c.size % 16 != 0)
    throw UsageError("size " + std::to_string(c.size) + ": must be a positive multiple of 16");
  if (c.widths.size() != 4) throw UsageError("widths: need 4 values, one per conv block");
  for (auto w : c.widths)
    if (w < 1) throw UsageError("widths: every width must be at least 1");
  if (c.stages < 1) throw UsageError("stages: need at least 1");
  if (c.fc < 1) throw UsageError("fc: need at least 1");
  if (!(c.dropout >= 0 && c.dropout < 1)) throw UsageError("dropout: must be in [0, 1)");
  if (c.labels.empty()) throw UsageError("labels: need at least one class");
}

namespace json = boost::json;

json::object meta_to_json(const ModelMeta& m) {
  json::object cfg;
  cfg["preset"] = m.config.preset;
  cfg["size"] = m.config.size;
  json::array widths;
  for (auto w : m.config.widths) widths.push_back(w);
  cfg["widths"] = std::move(widths);
  cfg["stages"] = m.config.stages;
  cfg["fc"] = m.config.fc;
  cfg["dropout"] = m.config.dropout;
  json::array labels;
  for (const auto& l : m.config.labels) labels.push_back(json::string(l));
  cfg["labels"] = std::move(labels);
  json::object o;
  o["format"] = "edan-model";
  o["format_version"] = 1;
  o["config"] = std::move(cfg);
  json::array mean;
  for (const auto& p : m.mean_shape) mean.push_back(json::array{p.x, p.y});
  o["mean_shape"] = std::move(mean);
  o["input_norm"] = m.input_norm;
  o["input_mean"] = m.input_mean;
  o["input_std"] = m.input_std;
  o["training"] = m.training;
  o["version"] = m.version;
  return o;
}

namespace {
const json::value& field(const json::object& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end()) throw std::runtime_error(std::string("metadata: missing '") + key + "'");
  return it->value();
}
double number(const json::value& v, const char* key) {
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  if (v.is_uint64()) return static_cast<double>(v.as_uint64());
  if (v.is_double()) return v.as_double();
  throw std::runtime_error(std::string("metadata: '") + key + "' is not a number");
}
std::int64_t integer(const json::value& v, const char* key) {
  if (v.is_int64()) return v.as_int64();
  if (v.is_uint64()) return static_cast<std::int64_t>(v.as_uint64());
  throw std::runtime_error(std::string("metadata: '") + key + "' is not an integer");
}
const json::array& array(const json::value& v, const char* key) {
  if (!v.is_array())
    throw std::runtime_error(std::string("metadata: '") + key + "' is not an array");
  return v.as_array();
}
std::string string(const json::value& v, const char* key) {
  if (!v.is_string())
    throw std::runtime_error(std::string("metadata: '") + key + "' is not a string");
  return std::string(v.as_string());
}
}  // namespace

ModelMeta meta_from_json(const json::object& o) {
  ModelMeta m;
  if (!o.contains("format") || !o.at("format").is_string() ||
      o.at("format").as_string() != "edan-model")
    throw std::runtime_error("metadata: not an edan model");
  auto fv = integer(field(o, "format_version"), "format_version");
  if (fv != 1)
    throw std::runtime_error("model format version " + std::to_string(fv) +
                             " is not supported by this edan (" + kVersion + ")");
  const auto& cv = field(o, "config");
  if (!cv.is_object()) throw std::runtime_error("metadata: 'config' is not an object");
  const auto& c = cv.as_object();
  m.config.preset = string(field(c, "preset"), "preset");
  m.config.size = integer(field(c, "size"), "size");
  m.config.widths.clear();
  for (const auto& w : array(field(c, "widths"), "widths"))
    m.config.widths.push_back(integer(w, "widths"));
  m.config.stages = integer(field(c, "stages"), "stages");
  m.config.fc = integer(field(c, "fc"), "fc");
  m.config.dropout = number(field(c, "dropout"), "dropout");
  for (const auto& l : array(field(c, "labels"), "labels"))
    m.config.labels.push_back(string(l, "labels"));
  for (const auto& p : array(field(o, "mean_shape"), "mean_shape")) {
    const auto& xy = array(p, "mean_shape");
    if (xy.size() != 2)
      throw std::runtime_error("metadata: 'mean_shape' has a point without 2 values");
    m.mean_shape.push_back({number(xy[0], "mean_shape"), number(xy[1], "mean_shape")});
  }
  if (m.mean_shape.size() != kNumLandmarks)
    throw std::runtime_error("metadata: 'mean_shape' must have 68 points");
  // Files written before input_norm existed normalised with the dataset's statistics.
  if (o.contains("input_norm")) m.input_norm = string(o.at("input_norm"), "input_norm");
  if (m.input_norm != "dataset" && m.input_norm != "image" && m.input_norm != "histeq")
    throw std::runtime_error("metadata: 'input_norm' must be \"dataset\", \"image\" or \"histeq\"");
  // Files of edan 0.1 could ask for a blur before prediction (a workaround
  // for a blurred training set, since removed): such a model cannot be
  // scored as it was meant to be.
  if (o.contains("input_blur") && number(o.at("input_blur"), "input_blur") != 0)
    throw std::runtime_error(
        "metadata: 'input_blur' is set: a model of an older edan that blurred faces before "
        "prediction; retrain it with this version");
  m.input_mean = number(field(o, "input_mean"), "input_mean");
  m.input_std = number(field(o, "input_std"), "input_std");
  if (!(m.input_std > 0)) throw std::runtime_error("metadata: 'input_std' must be positive");
  const auto& t = field(o, "training");
  if (!t.is_object()) throw std::runtime_error("metadata: 'training' is not an object");
  m.training = t.as_object();
  m.version = string(field(o, "version"), "version");
  return m;
}

// --- the network --------------------------------------------------------------

ConvBnRelu::ConvBnRelu(torch::nn::Module& owner, std::string name, std::int64_t in,
                       std::int64_t out)
    : name_(std::move(name)) {
  conv_ = owner.register_module(
      name_, torch::nn::Conv2d(
                 torch::nn::Conv2dOptions(in, out, /*kernel_size=*/3).padding(1).bias(false)));
  bn_ = owner.register_module("bn" + name_.substr(4), torch::nn::BatchNorm2d(out));
}

torch::Tensor ConvBnRelu::forward(const torch::Tensor& x, bool in_place) {
  if (!folded()) return torch::relu(bn_(conv_(x)));
  const auto& w = conv_->weight;
  torch::Tensor y;
  // LibTorch 1.13 sends a batch of one with few values (N*C*H*W <= 20480:
  // every block after the first at S=48) to its slow reference convolution
  // rather than oneDNN; call oneDNN directly whenever it is there.
  if (x.is_cpu() && x.scalar_type() == torch::kFloat && at::hasMKLDNN() &&
      at::globalContext().userEnabledMkldnn())
    y = at::mkldnn_convolution(x, w, folded_bias_, /*padding=*/{1, 1}, /*stride=*/{1, 1},
                               /*dilation=*/{1, 1}, /*groups=*/1);
  else
    y = torch::conv2d(x, w, folded_bias_, /*stride=*/1, /*padding=*/1);
  return in_place ? y.relu_() : torch::relu(y);
}

void ConvBnRelu::fold() {
  if (folded()) return;
  torch::NoGradGuard no_grad;
  // y = gamma (conv(x) - mean) / sqrt(var + eps) + beta
  //   = conv_{w * scale}(x) + (beta - mean * scale), computed in double.
  auto scale = bn_->weight.to(torch::kFloat64) /
               torch::sqrt(bn_->running_var.to(torch::kFloat64) + bn_->options.eps());
  auto w = conv_->weight.to(torch::kFloat64) * scale.view({-1, 1, 1, 1});
  auto b = bn_->bias.to(torch::kFloat64) - bn_->running_mean.to(torch::kFloat64) * scale;
  const auto dtype = conv_->weight.scalar_type();
  conv_->weight.set_data(w.to(dtype).contiguous(torch::MemoryFormat::ChannelsLast));
  folded_bias_ = b.to(dtype);
}

DanStageImpl::DanStageImpl(const ModelConfig& config, std::int64_t index)
    : config_(config), index_(index) {
  check_config(config_);
  const std::int64_t s = config_.size;
  std::int64_t in = 1;
  if (index_ > 0) {
    in = 3;
    input_bn_ = register_module("input_bn", torch::nn::BatchNorm2d(3));
    feature_dense_ =
        register_module("feature_dense", torch::nn::Linear(config_.fc, (s / 2) * (s / 2)));
  }
  for (std::size_t block = 0; block < 4; ++block) {
    const std::int64_t out = config_.widths[block];
    for (const char* half : {"a", "b"}) {
      body_.emplace_back(*this, "conv" + std::to_string(block + 1) + half, in, out);
      in = out;
    }
  }
  dropout_ = register_module("dropout", torch::nn::Dropout(config_.dropout));
  const std::int64_t side = s / 16;
  fc1_ = register_module("fc1", torch::nn::Linear(config_.widths[3] * side * side, config_.fc));
  landmarks_ = register_module("landmarks", torch::nn::Linear(config_.fc, 2 * kNumLandmarks));
  emotion_ = register_module(
      "emotion", torch::nn::Linear(config_.fc, static_cast<std::int64_t>(config_.labels.size())));
  if (index_ > 0) {
    // A later stage starts as the identity on landmarks (its Δ is 0), so
    // training it can only refine the previous stage's estimate rather than
    // first undo 136 random offsets.
    torch::NoGradGuard no_grad;
    landmarks_->weight.zero_();
    landmarks_->bias.zero_();
  }
}

DanStageImpl::Output DanStageImpl::forward(const torch::Tensor& input,
                                           const std::vector<std::string>& capture) {
  Output out;
  torch::Tensor x = input;
  if (input_bn_) x = input_bn_(x);
  if (folded_) {
    if (is_training()) throw std::logic_error("a folded stage cannot be trained");
    x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  }
  for (std::size_t i = 0; i < body_.size(); ++i) {
    auto& layer = body_[i];
    x = layer.forward(x, /*in_place=*/capture.empty());
    for (const auto& c : capture)
      if (c == layer.name()) out.activations[c] = x;
    if (i % 2 == 1) {
      x = torch::max_pool2d(x, /*kernel_size=*/2);
      if (!folded_) x = dropout_(x);
    }
  }
  x = torch::relu(fc1_(x.flatten(1)));
  out.features = x;
  out.offsets = landmarks_(x).view({-1, static_cast<std::int64_t>(kNumLandmarks), 2});
  out.logits = emotion_(x);
  for (const auto& c : capture)
    if (!out.activations.count(c)) throw std::out_of_range("no convolution named '" + c + "'");
  return out;
}

void DanStageImpl::fold_batchnorm() {
  for (auto& layer : body_) layer.fold();
  folded_ = true;
}

torch::Tensor DanStageImpl::feature_image(const torch::Tensor& previous_features) {
  if (!feature_dense_) throw std::logic_error("the first stage has no feature image");
  const std::int64_t h = config_.size / 2;
  auto f = torch::relu(feature_dense_(previous_features)).view({-1, 1, h, h});
  // Nearest ×2: every value fills a 2×2 block.
  return f.repeat_interleave(2, /*dim=*/2).repeat_interleave(2, /*dim=*/3);
}

torch::nn::Conv2d DanStageImpl::conv(const std::string& name) const {
  for (const auto& layer : body_)
    if (layer.name() == name) return layer.conv();
  throw std::out_of_range("no convolution named '" + name + "'");
}

std::vector<std::string> DanStageImpl::layer_names() const {
  std::vector<std::string> names;
  for (const auto& layer : body_) names.push_back(layer.name());
  return names;
}

torch::Tensor shape_to_tensor(const Shape& s) {
  auto t = torch::empty({static_cast<std::int64_t>(s.size()), 2}, torch::kFloat32);
  auto a = t.accessor<float, 2>();
  for (std::size_t i = 0; i < s.size(); ++i) {
    a[static_cast<std::int64_t>(i)][0] = static_cast<float>(s[i].x);
    a[static_cast<std::int64_t>(i)][1] = static_cast<float>(s[i].y);
  }
  return t;
}

Shape tensor_to_shape(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous().view({-1, 2});
  auto a = c.accessor<double, 2>();
  Shape s(static_cast<std::size_t>(c.size(0)));
  for (std::int64_t i = 0; i < c.size(0); ++i) s[static_cast<std::size_t>(i)] = {a[i][0], a[i][1]};
  return s;
}

EmotionalDanImpl::EmotionalDanImpl(ModelConfig config, Shape mean_shape)
    : config_(std::move(config)) {
  check_config(config_);
  if (mean_shape.size() != kNumLandmarks)
    throw std::invalid_argument("mean shape: expected 68 points, got " +
                                std::to_string(mean_shape.size()));
  mean_shape_ = register_buffer("mean_shape", shape_to_tensor(mean_shape));
  for (std::int64_t i = 0; i < config_.stages; ++i)
    stages_.push_back(register_module("stage" + std::to_string(i + 1), DanStage(config_, i)));
}

DanStage EmotionalDanImpl::stage(std::int64_t index) const {
  if (index < 0 || index >= num_stages())
    throw std::out_of_range("stage " + std::to_string(index) + " out of range");
  return stages_[static_cast<std::size_t>(index)];
}

void EmotionalDanImpl::init_stage_from_previous(std::int64_t index) {
  if (index < 1 || index >= num_stages())
    throw std::out_of_range("stage " + std::to_string(index) + ": no previous stage to copy");
  torch::NoGradGuard no_grad;
  auto own = [](const std::string& name) {
    return name.rfind("input_bn.", 0) == 0 || name.rfind("feature_dense.", 0) == 0;
  };
  auto copy = [&](torch::OrderedDict<std::string, torch::Tensor> from,
                  torch::OrderedDict<std::string, torch::Tensor> to) {
    for (auto& item : to) {
      const std::string& name = item.key();
      torch::Tensor& dst = item.value();
      if (own(name)) continue;
      if (name.rfind("landmarks.", 0) == 0) {
        dst.zero_();
        continue;
      }
      const torch::Tensor* src = from.find(name);
      if (!src) continue;
      if (src->sizes() == dst.sizes()) {
        dst.copy_(*src);
      } else if (name == "conv1a.weight") {  // 1 input channel -> the image channel of 3
        dst.zero_();
        dst.narrow(1, 0, src->size(1)).copy_(*src);
      } else {
        throw std::logic_error("stage " + std::to_string(index) + ": " + name + " does not fit");
      }
    }
  };
  auto prev = stage(index - 1), next = stage(index);
  copy(prev->named_parameters(), next->named_parameters());
  copy(prev->named_buffers(), next->named_buffers());
}

DanOutput EmotionalDanImpl::forward(const torch::Tensor& images, std::int64_t n_stages,
                                    const std::vector<std::string>& capture) {
  if (n_stages == 0) n_stages = num_stages();
  if (n_stages < 0 || n_stages > num_stages())
    throw std::invalid_argument("cannot run " + std::to_string(n_stages) + " stages of a " +
                                std::to_string(num_stages()) + "-stage model");
  DanOutput out;
  const std::int64_t n = images.size(0);
  auto mean = mean_shape_.unsqueeze(0);
  for (std::int64_t i = 0; i < n_stages; ++i) {
    auto& stage = stages_[static_cast<std::size_t>(i)];
    const auto& cap = (i == n_stages - 1) ? capture : std::vector<std::string>{};
    if (i == 0) {
      auto o = stage->forward(images, cap);
      out.landmarks.push_back(mean.expand({n, -1, -1}) + o.offsets);
      out.features = o.features;
      out.logits = o.logits;
      out.activations = std::move(o.activations);
      continue;
    }
    auto previous = out.landmarks.back().detach();
    auto t = estimate_transforms(previous, mean_shape_);
    auto aligned = apply_transforms(t, previous);
    auto x = torch::cat({warp_images(images, t), landmark_heatmaps(aligned, config_.size),
                         stage->feature_image(out.features)},
                        /*dim=*/1);
    auto o = stage->forward(x, cap);
    out.landmarks.push_back(apply_transforms(invert_transforms(t), aligned + o.offsets));
    out.features = o.features;
    out.logits = o.logits;
    out.activations = std::move(o.activations);
  }
  return out;
}

void copy_weights(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto copy = [](const torch::OrderedDict<std::string, torch::Tensor>& src,
                 torch::OrderedDict<std::string, torch::Tensor> dst) {
    for (auto& d : dst) {
      const torch::Tensor* s = src.find(d.key());
      if (!s || !s->sizes().equals(d.value().sizes()))
        throw std::invalid_argument("copy_weights: '" + d.key() +
                                    (s ? "' differs in shape" : "' is missing"));
      d.value().copy_(*s);
    }
  };
  copy(from.named_parameters(), to.named_parameters());
  copy(from.named_buffers(), to.named_buffers());
}

EmotionalDan prepare_for_inference(const EmotionalDan& model) {
  EmotionalDan copy(model->config(), tensor_to_shape(model->mean_shape()));
  copy->to(model->mean_shape().device());
  copy_weights(*model, *copy);
  copy->eval();
  for (std::int64_t i = 0; i < copy->num_stages(); ++i) copy->stage(i)->fold_batchnorm();
  return copy;
}

torch::Tensor equalize_histograms(const torch::Tensor& pixels) {
  const auto n = pixels.size(0);
  auto q = (pixels.reshape({n, -1}) * 255).round_().clamp_(0, 255).to(torch::kLong);
  auto hist = torch::zeros({n, 256}, pixels.options())
                  .scatter_add_(1, q, torch::ones(q.sizes(), pixels.options()));
  auto cdf = hist.cumsum(1);
  // The cumulative count at the darkest level present.
  auto c0 = std::get<0>(cdf.masked_fill(hist.eq(0), std::numeric_limits<float>::infinity())
                            .min(/*dim=*/1, /*keepdim=*/true));
  auto total = static_cast<double>(q.size(1));
  auto lut = ((cdf - c0) * 255 / (total - c0).clamp_min(1)).round_().clamp_(0, 255) / 255;
  return lut.gather(1, q).reshape(pixels.sizes());
}

torch::Tensor normalise_images(const torch::Tensor& pixels, const ModelMeta& meta) {
  if (meta.input_norm == "histeq") {
    ModelMeta per_image = meta;
    per_image.input_norm = "image";
    return normalise_images(equalize_histograms(pixels), per_image);
  }
  if (meta.input_norm == "image") {
    auto mean = pixels.mean({1, 2, 3}, /*keepdim=*/true);
    auto std = pixels.std({1, 2, 3}, /*unbiased=*/false, /*keepdim=*/true).clamp_min(1.0 / 255);
    return (pixels - mean) / std;
  }
  return (pixels - meta.input_mean) / meta.input_std;
}

// --- stage-to-stage operations -------------------------------------------------

torch::Tensor estimate_transforms(const torch::Tensor& from, const torch::Tensor& to) {
  auto dst = to.dim() == 2 ? to.unsqueeze(0).expand_as(from) : to;
  auto cf = from.mean(/*dim=*/1, /*keepdim=*/true);
  auto ct = dst.mean(/*dim=*/1, /*keepdim=*/true);
  auto f = from - cf;
  auto d = dst - ct;
  auto fx = f.select(2, 0), fy = f.select(2, 1);
  auto dx = d.select(2, 0), dy = d.select(2, 1);
  // Minimise sum |A f - d|^2 over A = [a -b; b a] (edan::estimate_similarity).
  auto den = (fx * fx + fy * fy).sum(1);
  auto a = (fx * dx + fy * dy).sum(1) / den;
  auto b = (fx * dy - fy * dx).sum(1) / den;
  auto cfx = cf.select(2, 0).squeeze(1), cfy = cf.select(2, 1).squeeze(1);
  auto ctx = ct.select(2, 0).squeeze(1), cty = ct.select(2, 1).squeeze(1);
  auto tx = ctx - (a * cfx - b * cfy);
  auto ty = cty - (b * cfx + a * cfy);
  auto row0 = torch::stack({a, -b, tx}, 1);
  auto row1 = torch::stack({b, a, ty}, 1);
  return torch::stack({row0, row1}, 1);
}

torch::Tensor apply_transforms(const torch::Tensor& t, const torch::Tensor& pts) {
  auto linear = t.narrow(2, 0, 2);           // [N,2,2]
  auto shift = t.select(2, 2).unsqueeze(1);  // [N,1,2]
  return torch::matmul(pts, linear.transpose(1, 2)) + shift;
}

torch::Tensor invert_transforms(const torch::Tensor& t) {
  auto a = t.select(2, 0).select(1, 0), b = t.select(2, 1).select(1, 0);
  auto c = t.select(2, 0).select(1, 1), d = t.select(2, 1).select(1, 1);
  auto tx = t.select(2, 2).select(1, 0), ty = t.select(2, 2).select(1, 1);
  auto det = a * d - b * c;
  auto ia = d / det, ib = -b / det, ic = -c / det, id = a / det;
  auto itx = -(ia * tx + ib * ty), ity = -(ic * tx + id * ty);
  return torch::stack({torch::stack({ia, ib, itx}, 1), torch::stack({ic, id, ity}, 1)}, 1);
}

torch::Tensor warp_images(const torch::Tensor& images, const torch::Tensor& t) {
  const std::int64_t n = images.size(0), h = images.size(2), w = images.size(3);
  auto opts = images.options();
  auto ys = torch::arange(h, opts), xs = torch::arange(w, opts);
  auto grid = torch::stack(torch::meshgrid({ys, xs}, "ij"), -1).flip(-1).reshape({1, h * w, 2});
  auto src = apply_transforms(invert_transforms(t).to(opts), grid.expand({n, -1, -1}));
  // align_corners=true: -1 and +1 are the centres of the first and last pixels.
  auto scale = torch::tensor({2.0 / static_cast<double>(std::max<std::int64_t>(w - 1, 1)),
                              2.0 / static_cast<double>(std::max<std::int64_t>(h - 1, 1))},
                             opts);
  auto norm = (src * scale - 1).view({n, h, w, 2});
  namespace F = torch::nn::functional;
  return F::grid_sample(images, norm,
                        F::GridSampleFuncOptions()
                            .mode(torch::kBilinear)
                            .padding_mode(torch::kZeros)
                            .align_corners(true));
}

namespace detail {
torch::Tensor landmark_heatmaps_vectorised(const torch::Tensor& landmarks, std::int64_t size) {
  torch::NoGradGuard no_grad;
  constexpr std::int64_t kHalf = 8;  // 17×17 patch
  const std::int64_t n = landmarks.size(0), k = landmarks.size(1);
  auto opts = landmarks.options();
  auto r = torch::arange(-kHalf, kHalf + 1, opts);
  auto offsets = torch::stack(torch::meshgrid({r, r}, "ij"), -1).flip(-1).reshape({1, 1, -1, 2});
  auto lm = landmarks.detach().unsqueeze(2);                  // [N,K,1,2]
  auto pix = lm.round() + offsets;                            // [N,K,P,2]
  auto value = 1.0 / (1.0 + (pix - lm).norm(2, /*dim=*/-1));  // [N,K,P]
  auto px = pix.select(-1, 0), py = pix.select(-1, 1);
  auto inside = (px >= 0) & (px <= size - 1) & (py >= 0) & (py <= size - 1);
  // Pixels outside the frame go to a spare last slot, dropped at the end.
  const std::int64_t spare = size * size;
  auto index = (py * size + px).to(torch::kLong).masked_fill(~inside, spare);
  value = value.masked_fill(~inside, 0);
  auto heat = torch::zeros({n, spare + 1}, opts);
  // One landmark at a time: within a patch every pixel is distinct, so a
  // gather-max-scatter is exact and deterministic (scatter_reduce "amax" is
  // still beta in LibTorch 1.13 and warns on stderr).
  index = index.transpose(0, 1).contiguous();  // [K,N,P]
  value = value.transpose(0, 1).contiguous();
  for (std::int64_t j = 0; j < k; ++j) {
    auto idx = index[j], val = value[j];
    heat.scatter_(1, idx, torch::maximum(heat.gather(1, idx), val));
  }
  return heat.narrow(1, 0, spare).reshape({n, 1, size, size});
}
}  // namespace detail

torch::Tensor landmark_heatmaps(const torch::Tensor& landmarks, std::int64_t size) {
  if (!landmarks.device().is_cpu()) return detail::landmark_heatmaps_vectorised(landmarks, size);
  // On the CPU a direct loop over the 17×17 patches is an order of magnitude
  // faster than the tensor formulation (a few hundred thousand pixels).
  constexpr int kHalf = 8;
  auto lm = landmarks.detach().to(torch::kFloat32).contiguous();
  const std::int64_t n = lm.size(0), k = lm.size(1);
  auto heat = torch::zeros({n, 1, size, size}, torch::kFloat32);
  const float* src = lm.data_ptr<float>();
  float* dst = heat.data_ptr<float>();
  at::parallel_for(0, n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      float* h = dst + i * size * size;
      for (std::int64_t j = 0; j < k; ++j) {
        const float lx = src[(i * k + j) * 2], ly = src[(i * k + j) * 2 + 1];
        if (!std::isfinite(lx) || !std::isfinite(ly)) continue;
        const float cx = std::nearbyint(lx), cy = std::nearbyint(ly);
        if (cx < -kHalf || cy < -kHalf || cx > size - 1 + kHalf || cy > size - 1 + kHalf) continue;
        for (int dy = -kHalf; dy <= kHalf; ++dy) {
          const float py = cy + static_cast<float>(dy);
          if (py < 0 || py > static_cast<float>(size - 1)) continue;
          for (int dx = -kHalf; dx <= kHalf; ++dx) {
            const float px = cx + static_cast<float>(dx);
            if (px < 0 || px > static_cast<float>(size - 1)) continue;
            const float v = 1.0f / (1.0f + std::hypot(px - lx, py - ly));
            float& cell = h[static_cast<std::int64_t>(py) * size + static_cast<std::int64_t>(px)];
            if (v > cell) cell = v;
          }
        }
      }
    }
  });
  return heat.to(landmarks.options().dtype(torch::kFloat32));
}

std::string tensors_checksum(std::string_view text,
                             const std::vector<std::pair<std::string, torch::Tensor>>& named) {
  boost::crc_32_type crc;
  crc.process_bytes(text.data(), text.size());
  for (const auto& [name, t] : named) {
    crc.process_bytes(name.data(), name.size() + 1);  // with its NUL: names stay apart
    auto c = t.to(torch::kCPU).contiguous();
    for (auto d : c.sizes()) crc.process_bytes(&d, sizeof d);
    crc.process_bytes(c.data_ptr(), c.numel() * c.element_size());
  }
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(crc.checksum()));
  return std::string("crc32:") + hex;
}

std::string error_message(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string m = c10 ? c10->what_without_backtrace() : e.what();
  auto nl = m.find('\n');
  return nl == std::string::npos ? m : m.substr(0, nl);
}

// --- the model file -----------------------------------------------------------

namespace {
const char* const kMetaKey = "edan_meta";
const char* const kChecksumKey = "edan_checksum";

// Over the metadata as stored and every parameter and buffer of the model,
// in registration order. The archive's own CRCs are not checked when
// LibTorch reads it, so a file damaged in place would otherwise load and
// predict nonsense.
std::string model_checksum(EmotionalDan& model, const std::string& meta) {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& p : model->named_parameters(/*recurse=*/true))
    named.emplace_back(p.key(), p.value());
  for (const auto& b : model->named_buffers(/*recurse=*/true))
    named.emplace_back(b.key(), b.value());
  return tensors_checksum(meta, named);
}

}  // namespace

void save_model(const std::string& path, EmotionalDan& model, const ModelMeta& meta) {
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive archive;
    // Weights are always written from the CPU so that any machine can load them.
    auto device = model->mean_shape().device();
    model->to(torch::kCPU);
    model->save(archive);
    const auto meta_json = json::serialize(meta_to_json(meta));
    archive.write(kMetaKey, c10::IValue(meta_json));
    archive.write(kChecksumKey, c10::IValue(model_checksum(model, meta_json)));
    model->to(device);
    archive.save_to(bytes);
  } catch (const c10::Error& e) {
    throw FatalError(path + ": cannot serialise the model: " + error_message(e));
  }
  write_file_atomic(path, bytes.str(), /*durable=*/true);
}

LoadedModel load_model(const std::string& path, const torch::Device& device) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw FatalError(path + ": cannot open model file: " +
                     (std::filesystem::exists(path, ec) ? "not a regular file" : "no such file"));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, torch::kCPU);
  } catch (const c10::Error& e) {
    throw FatalError(path + ": not an edan model file, or truncated (" + error_message(e) + ")");
  }
  LoadedModel loaded;
  try {
    c10::IValue meta;
    if (!archive.try_read(kMetaKey, meta) || !meta.isString())
      throw std::runtime_error("no edan metadata");
    auto parsed = json::parse(meta.toStringRef());
    if (!parsed.is_object()) throw std::runtime_error("metadata is not a JSON object");
    loaded.meta = meta_from_json(parsed.as_object());
    check_config(loaded.meta.config);
    loaded.model = EmotionalDan(loaded.meta.config, loaded.meta.mean_shape);
    loaded.model->load(archive);
    c10::IValue stored;
    if (!archive.try_read(kChecksumKey, stored) || !stored.isString())
      throw std::runtime_error(
          "no weights checksum: saved by an earlier edan, so its integrity cannot be "
          "verified; train it again with this edan-train");
    const auto computed = model_checksum(loaded.model, meta.toStringRef());
    if (stored.toStringRef() != computed)
      throw std::runtime_error("the file is damaged: its weights checksum is " + computed +
                               ", saved as " + stored.toStringRef());
  } catch (const c10::Error& e) {
    throw FatalError(path + ": not a usable edan model (" + error_message(e) + ")");
  } catch (const std::exception& e) {
    throw FatalError(path + ": not a usable edan model (" + e.what() + ")");
  }
  loaded.model->to(device);
  loaded.model->eval();
  return loaded;
}

std::string default_model_path() {
  if (const char* env = std::getenv("EDAN_MODEL"); env && *env) return env;
  std::string path;
  try {
    path = data_file_path("default.edan");
  } catch (const FatalError& e) {
    throw FatalError(std::string("no default model: ") + e.what() +
                     " (set EDAN_MODEL or pass -m FILE)");
  }
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) return path;
  throw FatalError("no default model at " + path + " (set EDAN_MODEL or pass -m FILE)");
}

void set_threads(int threads) {
  if (threads <= 0) {
    // The cores this process may run on (a container or taskset may allow
    // fewer than the machine has).
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) threads = CPU_COUNT(&set);
    if (threads <= 0) {
      unsigned n = std::thread::hardware_concurrency();
      threads = n ? static_cast<int>(n) : 1;
    }
  }
  torch::set_num_threads(threads);
}

torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      throw FatalError("--device " + name +
                       ": CUDA is not available on this machine or in this "
                       "LibTorch build; use --device cpu");
    try {
      return torch::Device(name);
    } catch (const c10::Error& e) {
      throw UsageError("--device " + name + ": " + error_message(e));
    }
  }
  throw UsageError("--device " + name + ": unknown device (use cpu or cuda)");
}

}  // namespace edan
