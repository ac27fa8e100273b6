#include "edan/gradcam.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

#include "edan/detect.hpp"
#include "edan/error.hpp"
#include "edan/fs.hpp"
#include "edan/image.hpp"
#include "edan/labels.hpp"
#include "edan/predict.hpp"

namespace json = boost::json;

namespace edan {

// --- the computation ------------------------------------------------------------

torch::Tensor grad_cam_from_gradients(const torch::Tensor& activations,
                                      const torch::Tensor& gradients) {
  if (activations.dim() != 4 || activations.sizes() != gradients.sizes())
    throw std::invalid_argument("grad_cam: activations and gradients must both be [N,K,h,w]");
  auto alpha = gradients.mean(/*dim=*/{2, 3}, /*keepdim=*/true);  // eq. 3
  return torch::relu((alpha * activations).sum(/*dim=*/1));       // eq. 4
}

torch::Tensor grad_cam(const torch::Tensor& activations, const torch::Tensor& scores) {
  if (activations.dim() != 4 || scores.dim() != 1 || scores.size(0) != activations.size(0))
    throw std::invalid_argument("grad_cam: activations [N,K,h,w] and scores [N] expected");
  auto grads = torch::autograd::grad({scores.sum()}, {activations}, /*grad_outputs=*/{},
                                     /*retain_graph=*/false, /*create_graph=*/false)[0];
  return grad_cam_from_gradients(activations.detach(), grads.detach());
}

torch::Tensor upsample_maps(const torch::Tensor& maps, std::int64_t size) {
  namespace F = torch::nn::functional;
  return F::interpolate(maps.unsqueeze(1), F::InterpolateFuncOptions()
                                               .size(std::vector<std::int64_t>{size, size})
                                               .mode(torch::kBilinear)
                                               .align_corners(false))
      .squeeze(1);
}

std::vector<double> sample_map(const torch::Tensor& map, const Shape& points) {
  if (map.dim() != 2 || map.size(0) < 1 || map.size(1) < 1)
    throw std::invalid_argument("sample_map: a non-empty [H,W] map expected");
  auto m = map.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  auto a = m.accessor<double, 2>();
  const double h = static_cast<double>(m.size(0)), w = static_cast<double>(m.size(1));
  std::vector<double> out;
  out.reserve(points.size());
  for (const auto& p : points) {
    double x = std::clamp(p.x, 0.0, w - 1), y = std::clamp(p.y, 0.0, h - 1);
    auto x0 = static_cast<std::int64_t>(std::floor(x)),
         y0 = static_cast<std::int64_t>(std::floor(y));
    auto x1 = std::min<std::int64_t>(x0 + 1, m.size(1) - 1);
    auto y1 = std::min<std::int64_t>(y0 + 1, m.size(0) - 1);
    double fx = x - static_cast<double>(x0), fy = y - static_cast<double>(y0);
    out.push_back((1 - fy) * ((1 - fx) * a[y0][x0] + fx * a[y0][x1]) +
                  fy * ((1 - fx) * a[y1][x0] + fx * a[y1][x1]));
  }
  return out;
}

std::vector<int> rank_landmarks(const std::vector<double>& activation, std::size_t k) {
  std::vector<int> idx(activation.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) {
    return activation[static_cast<std::size_t>(a)] > activation[static_cast<std::size_t>(b)];
  });
  idx.resize(std::min(k, idx.size()));
  return idx;
}

GradCamBatch model_grad_cam(EmotionalDan& model, const torch::Tensor& images,
                            const std::string& layer, const std::vector<int>& classes) {
  const std::int64_t n = images.size(0);
  const auto c = static_cast<int>(model->config().labels.size());
  if (static_cast<std::int64_t>(classes.size()) != n)
    throw std::invalid_argument("model_grad_cam: one class per image expected");
  for (int k : classes)
    if (k < -1 || k >= c) throw std::invalid_argument("model_grad_cam: class out of range");
  model->eval();
  torch::AutoGradMode grad_mode(true);
  // Only the activations need gradients: the weights stay out of the graph's
  // leaves, so nothing accumulates in their .grad.
  std::vector<torch::Tensor> saved;
  for (auto& p : model->parameters()) saved.push_back(p), p.requires_grad_(false);
  auto restore = [&] {
    for (auto& p : saved) p.requires_grad_(true);
  };
  GradCamBatch out;
  try {
    auto x = images.detach().requires_grad_(true);
    auto fwd = model->forward(x, /*n_stages=*/0, {layer});
    auto pred = fwd.logits.argmax(1).to(torch::kCPU);
    out.classes = classes;
    for (std::int64_t i = 0; i < n; ++i)
      if (out.classes[static_cast<std::size_t>(i)] < 0)
        out.classes[static_cast<std::size_t>(i)] = static_cast<int>(pred[i].item<std::int64_t>());
    auto index = torch::tensor(std::vector<std::int64_t>(out.classes.begin(), out.classes.end()),
                               torch::kLong)
                     .to(fwd.logits.device());
    auto scores = fwd.logits.gather(1, index.unsqueeze(1)).squeeze(1);
    auto maps = upsample_maps(grad_cam(fwd.activations.at(layer), scores), model->config().size);
    if (fwd.landmarks.size() > 1) {
      // The last stage saw the face warped by T onto the mean shape; map its
      // maps back to the crop with T^-1.
      auto t = estimate_transforms(fwd.landmarks[fwd.landmarks.size() - 2].detach(),
                                   model->mean_shape());
      maps = warp_images(maps.unsqueeze(1), invert_transforms(t)).squeeze(1).clamp_min(0);
    }
    out.maps = maps.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    out.logits = fwd.logits.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    out.landmarks = fwd.landmarks.back().detach().to(torch::kCPU, torch::kFloat32).contiguous();
  } catch (...) {
    restore();
    throw;
  }
  restore();
  return out;
}

int class_for_record(const Record& r, const std::string& spec,
                     const std::vector<std::string>& labels) {
  auto index_of = [&](const std::string& name) {
    auto it = std::find(labels.begin(), labels.end(), name);
    return it == labels.end() ? -1 : static_cast<int>(it - labels.begin());
  };
  // A class name given on the command line or a record's label, in the
  // model's class set.
  auto resolve = [&](const std::string& name) {
    auto canon = canonical_label(name);
    if (!canon) return -1;
    int i = index_of(*canon);
    if (i < 0 && index_of("negative") >= 0)
      if (auto three = to_three_class(*canon)) i = index_of(*three);
    return i;
  };
  if (spec == "pred") return -1;
  if (spec == "label") {
    auto label = get_string(r, "label");
    if (!label) throw RecordError("--class label: the record has no \"label\"");
    int i = resolve(*label);
    if (i < 0) throw RecordError("label '" + *label + "' is not one of the model's classes");
    return i;
  }
  int i = resolve(spec);
  if (i < 0) throw UsageError("--class: '" + spec + "' is not one of the model's classes");
  return i;
}

// --- images -------------------------------------------------------------------------

namespace {

constexpr double kHeatAlpha = 0.5;   // heat colours' weight over the face
constexpr int kMinVisualSide = 256;  // overlays and grid cells are upscaled to this

// Integer upscale factor that makes an S-pixel image at least kMinVisualSide.
int visual_scale(std::int64_t size) {
  return static_cast<int>(std::max<std::int64_t>(1, (kMinVisualSide + size - 1) / size));
}

std::string encode_png(const cv::Mat& img, const std::string& path) {
  std::vector<uchar> buf;
  if (!cv::imencode(".png", img, buf)) throw FatalError(path + ": cannot encode PNG");
  return std::string(buf.begin(), buf.end());
}

// The raw map file: 16-bit gray PNG, 65535 = the map's maximum (all 0 when
// the map is 0 everywhere).
void write_map_png16(const std::string& path, const cv::Mat& map, double max) {
  cv::Mat m16;
  map.convertTo(m16, CV_16U, max > 0 ? 65535.0 / max : 0.0);
  write_file_atomic(path, encode_png(m16, path));
}

// JET heat colours of a map normalised by `max`, blended over a gray face,
// both upscaled by `scale`.
cv::Mat heat_overlay(const cv::Mat& gray8, const cv::Mat& map, double max, int scale) {
  cv::Mat m8, heat, face, big_heat, big_face, out;
  map.convertTo(m8, CV_8U, max > 0 ? 255.0 / max : 0.0);
  cv::applyColorMap(m8, heat, cv::COLORMAP_JET);
  cv::cvtColor(gray8, face, cv::COLOR_GRAY2BGR);
  cv::Size big(gray8.cols * scale, gray8.rows * scale);
  cv::resize(heat, big_heat, big, 0, 0, cv::INTER_LINEAR);
  cv::resize(face, big_face, big, 0, 0, cv::INTER_LINEAR);
  cv::addWeighted(big_heat, kHeatAlpha, big_face, 1 - kHeatAlpha, 0, out);
  return out;
}

// Dots at points given in pixels of the unscaled image.
void draw_dots(cv::Mat& img, const Shape& pts, int scale, const cv::Scalar& colour, int radius) {
  for (const auto& p : pts) {
    cv::Point c(static_cast<int>(std::lround((p.x + 0.5) * scale - 0.5)),
                static_cast<int>(std::lround((p.y + 0.5) * scale - 0.5)));
    cv::circle(img, c, radius, colour, cv::FILLED, cv::LINE_AA);
  }
}

cv::Mat tensor_to_mat(const torch::Tensor& map) {  // [H,W] float32 CPU contiguous
  return cv::Mat(static_cast<int>(map.size(0)), static_cast<int>(map.size(1)), CV_32F,
                 map.data_ptr<float>())
      .clone();
}

// A record's face (edan/detect.hpp read_face) and what names its outputs.
struct GradFace {
  FaceInput in;
  std::string name;  // crop or image path (for output names)
  int face = 0;      // the record's "face" number
};

// --- the spill file of --mean -------------------------------------------------------
// Per face: class, 68 landmarks, 68 normalised activations, the S×S
// normalised map and the S×S face, so that the frontal subset (known only
// once every face is seen) is averaged with bounded memory.
struct SpillRecord {
  std::int32_t cls = 0;
  std::vector<float> landmarks;    // 136
  std::vector<float> activation;   // 68
  std::vector<float> map;          // S*S, max 1
  std::vector<std::uint8_t> face;  // S*S
};

}  // namespace

// --- GradCam ------------------------------------------------------------------------

struct GradCam::Impl {
  GradCamOptions opt;
  torch::Device device{torch::kCPU};
  LoadedModel loaded;
  std::unique_ptr<FaceCropper> cropper;
  int fixed_class = -1;  // --class NAME
  // --mean state
  std::FILE* spill = nullptr;
  std::size_t faces = 0;
  double eye_sum[4] = {0, 0, 0, 0};
  std::vector<std::size_t> per_class_faces;
  std::vector<std::size_t> per_class_zero;  // faces whose map is 0 everywhere

  ~Impl() {
    if (spill) std::fclose(spill);
  }
  std::int64_t size() const { return loaded.meta.config.size; }
  const std::vector<std::string>& labels() const { return loaded.meta.config.labels; }

  GradFace read(const Record& r);
  void spill_write(const SpillRecord& s);
  bool spill_read(SpillRecord& s);
};

GradCam::GradCam(const GradCamOptions& options) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.opt = options;
  if (m.opt.out.empty()) throw UsageError("--out-dir DIR is required");
  if (m.opt.top_k < 1 || m.opt.top_k > static_cast<int>(kNumLandmarks))
    throw UsageError("--top-k must be in 1..68");
  if (m.opt.cls != "pred" && m.opt.cls != "label" && !canonical_label(m.opt.cls))
    throw UsageError("--class: expected pred, label or a class name, got '" + m.opt.cls + "'");
  set_threads(m.opt.threads);
  m.device = parse_device(m.opt.device);
  auto path = m.opt.model.empty() ? default_model_path() : m.opt.model;
  m.loaded = load_model(path, m.device);
  m.loaded.model->to(m.device);
  m.loaded.model->eval();
  // The layers are the model's own (its last stage's body).
  const auto& model = m.loaded.model;
  const auto layers = model->stage(model->num_stages() - 1)->layer_names();
  if (std::find(layers.begin(), layers.end(), m.opt.layer) == layers.end())
    throw UsageError("--layer: no convolution named '" + m.opt.layer + "' (" + layers.front() +
                     ", " + layers[1] + ", ..., " + layers.back() + ")");
  if (m.opt.cls != "pred" && m.opt.cls != "label")
    m.fixed_class = class_for_record(Record{}, m.opt.cls, m.labels());
  if (m.opt.frontal_eps < 0) m.opt.frontal_eps = 0.05 * static_cast<double>(m.size());
  make_dirs(m.opt.out);
  if (!m.opt.mean.empty()) {
    make_dirs(m.opt.mean);
    m.spill = std::tmpfile();
    if (!m.spill) throw FatalError("--mean: cannot create a temporary file");
    m.per_class_faces.assign(m.labels().size(), 0);
    m.per_class_zero.assign(m.labels().size(), 0);
  }
}

GradCam::~GradCam() = default;
GradCam::GradCam(GradCam&&) noexcept = default;

std::int64_t GradCam::size() const { return impl_->size(); }
const std::vector<std::string>& GradCam::labels() const { return impl_->labels(); }

GradFace GradCam::Impl::read(const Record& r) {
  const bool has_crop = r.contains("crop");
  if (!has_crop && !cropper) {
    CropOptions co;
    co.detector = opt.detector;
    co.size = static_cast<int>(size());
    co.fallback = opt.fallback;
    cropper = std::make_unique<FaceCropper>(co);
  }
  GradFace f;
  f.in = read_face(r, static_cast<int>(size()), has_crop ? nullptr : cropper.get());
  f.name = get_string(r, has_crop ? "crop" : "image").value_or("");
  if (auto face = get_number(r, "face")) f.face = static_cast<int>(*face);
  return f;
}

void GradCam::annotate(std::vector<Record*>& batch) {
  auto& m = *impl_;
  const std::int64_t s = m.size();
  std::vector<GradFace> faces(batch.size());
  std::vector<int> classes(batch.size(), -1);
  // Faces are read one after the other: the in-memory cropper is not
  // thread-safe, and decoding is small next to the backward pass.
  // A face that cannot be read leaves its error on the record.
  std::vector<std::size_t> live;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const bool read = guard_records({batch[i]}, [&] {
      faces[i] = m.read(*batch[i]);
      classes[i] =
          m.fixed_class >= 0 ? m.fixed_class : class_for_record(*batch[i], m.opt.cls, m.labels());
    });
    if (read) live.push_back(i);
  }
  if (live.empty()) return;
  const auto n = static_cast<std::int64_t>(live.size());
  auto pixels = torch::empty({n, 1, s, s}, torch::kUInt8);
  std::vector<int> live_classes;
  for (std::size_t j = 0; j < live.size(); ++j) {
    std::memcpy(pixels[static_cast<std::int64_t>(j)].data_ptr<std::uint8_t>(),
                faces[live[j]].in.pixels.data, static_cast<std::size_t>(s * s));
    live_classes.push_back(classes[live[j]]);
  }
  auto x = normalise_images(pixels.to(torch::kFloat32).div_(255.0), m.loaded.meta).to(m.device);
  auto cam = model_grad_cam(m.loaded.model, x, m.opt.layer, live_classes);
  auto probs = torch::softmax(cam.logits.to(torch::kFloat64), 1).contiguous();
  const int scale = visual_scale(s);
  for (std::size_t j = 0; j < live.size(); ++j) {
    const auto jj = static_cast<std::int64_t>(j);
    Record& r = *batch[live[j]];
    const GradFace& f = faces[live[j]];
    cv::Mat map = tensor_to_mat(cam.maps[jj]);
    double max = 0;
    cv::minMaxLoc(map, nullptr, &max);
    if (!cv::checkRange(map) || !std::isfinite(max)) {
      // A degenerate stage-1 shape gives a non-finite transform.
      set_error(r, "Grad-CAM map is not finite");
      continue;
    }
    Shape lm = tensor_to_shape(cam.landmarks[jj]);
    auto act = sample_map(cam.maps[jj], lm);
    for (auto& a : act) a = max > 0 ? a / max : 0.0;
    auto top = rank_landmarks(act, static_cast<std::size_t>(m.opt.top_k));
    // Output names: the face's file path made safe by crop_path (distinct
    // paths never collide), then layer and class, so that maps of one face
    // for other classes or layers never overwrite each other, e.g.
    // DIR/crops/a.png.0.conv4a.happy.map.png.
    const std::string& cls = m.labels()[static_cast<std::size_t>(cam.classes[j])];
    std::string stem = crop_path(m.opt.out, f.name, f.face);
    stem.resize(stem.size() - 4);  // ".png"
    stem += "." + m.opt.layer + "." + cls;
    std::string map_path = stem + ".map.png", overlay_path = stem + ".overlay.png";
    write_map_png16(map_path, map, max);
    cv::Mat overlay = heat_overlay(f.in.pixels, map, max, scale);
    draw_dots(overlay, lm, scale, cv::Scalar(255, 255, 255), std::max(1, scale / 2));
    write_file_atomic(overlay_path, encode_png(overlay, overlay_path));

    if (r.find("pred") == r.end()) {
      std::vector<double> p(static_cast<std::size_t>(probs.size(1)));
      for (std::int64_t k = 0; k < probs.size(1); ++k)
        p[static_cast<std::size_t>(k)] = probs[jj][k].item<double>();
      int label = static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
      Shape file_lm = f.in.to_output(lm, static_cast<double>(s));
      if (!set_prediction(r, m.labels(), label, p, file_lm)) continue;
    }
    json::object g;
    g["layer"] = m.opt.layer;
    g["class"] = cls;
    g["size"] = s;
    g["max"] = max;
    g["map"] = map_path;
    g["overlay"] = overlay_path;
    json::array ja, jt;
    for (double a : act) ja.push_back(json_number(a, 1e-6));
    for (int t : top) jt.push_back(t);
    g["landmark_activation"] = std::move(ja);
    g["top_landmarks"] = std::move(jt);
    r["gradcam"] = std::move(g);

    if (m.spill) {
      SpillRecord sr;
      sr.cls = cam.classes[j];
      for (const auto& q : lm)
        sr.landmarks.push_back(float(q.x)), sr.landmarks.push_back(float(q.y));
      for (double a : act) sr.activation.push_back(static_cast<float>(a));
      cv::Mat norm;
      map.convertTo(norm, CV_32F, max > 0 ? 1.0 / max : 0.0);
      sr.map.assign(norm.ptr<float>(), norm.ptr<float>() + s * s);
      sr.face.assign(f.in.pixels.data, f.in.pixels.data + s * s);
      m.spill_write(sr);
      m.eye_sum[0] += lm[36].x, m.eye_sum[1] += lm[36].y;
      m.eye_sum[2] += lm[45].x, m.eye_sum[3] += lm[45].y;
      ++m.faces;
      ++m.per_class_faces[static_cast<std::size_t>(sr.cls)];
      if (max <= 0) ++m.per_class_zero[static_cast<std::size_t>(sr.cls)];
    }
  }
}

void GradCam::Impl::spill_write(const SpillRecord& s) {
  bool ok = std::fwrite(&s.cls, sizeof s.cls, 1, spill) == 1 &&
            std::fwrite(s.landmarks.data(), sizeof(float), s.landmarks.size(), spill) ==
                s.landmarks.size() &&
            std::fwrite(s.activation.data(), sizeof(float), s.activation.size(), spill) ==
                s.activation.size() &&
            std::fwrite(s.map.data(), sizeof(float), s.map.size(), spill) == s.map.size() &&
            std::fwrite(s.face.data(), 1, s.face.size(), spill) == s.face.size();
  if (!ok) throw FatalError("--mean: cannot write the temporary file");
}

bool GradCam::Impl::spill_read(SpillRecord& s) {
  const auto ss = static_cast<std::size_t>(size() * size());
  if (std::fread(&s.cls, sizeof s.cls, 1, spill) != 1) return false;
  s.landmarks.resize(2 * kNumLandmarks);
  s.activation.resize(kNumLandmarks);
  s.map.resize(ss);
  s.face.resize(ss);
  bool ok = std::fread(s.landmarks.data(), sizeof(float), s.landmarks.size(), spill) ==
                s.landmarks.size() &&
            std::fread(s.activation.data(), sizeof(float), s.activation.size(), spill) ==
                s.activation.size() &&
            std::fread(s.map.data(), sizeof(float), ss, spill) == ss &&
            std::fread(s.face.data(), 1, ss, spill) == ss;
  if (!ok) throw FatalError("--mean: the temporary file is truncated");
  return true;
}

json::object GradCam::finish() {
  auto& m = *impl_;
  json::object summary;
  if (!m.spill) return summary;
  const std::int64_t s = m.size();
  const auto ss = static_cast<std::size_t>(s * s);
  const std::size_t nc = m.labels().size();
  // Eq. 5: the mean positions of the outer eye corners over all faces.
  double mean_eye[4] = {0, 0, 0, 0};
  if (m.faces > 0)
    for (int i = 0; i < 4; ++i) mean_eye[i] = m.eye_sum[i] / static_cast<double>(m.faces);
  auto frontal = [&](const SpillRecord& r) {
    const double eps = m.opt.frontal_eps;
    return std::hypot(r.landmarks[72] - mean_eye[0], r.landmarks[73] - mean_eye[1]) <= eps &&
           std::hypot(r.landmarks[90] - mean_eye[2], r.landmarks[91] - mean_eye[3]) <= eps;
  };
  struct ClassSum {
    std::size_t n = 0;
    std::vector<double> map, face, landmarks, activation;
    double best = std::numeric_limits<double>::infinity();
    std::vector<std::uint8_t> closest;
  };
  std::vector<ClassSum> sums(nc);
  for (auto& c : sums) {
    c.map.assign(ss, 0);
    c.face.assign(ss, 0);
    c.landmarks.assign(2 * kNumLandmarks, 0);
    c.activation.assign(kNumLandmarks, 0);
  }
  SpillRecord r;
  // Pass 1: running sums over the frontal faces (eq. 6).
  std::rewind(m.spill);
  while (m.spill_read(r)) {
    if (!frontal(r)) continue;
    auto& c = sums[static_cast<std::size_t>(r.cls)];
    ++c.n;
    for (std::size_t i = 0; i < ss; ++i) c.map[i] += r.map[i], c.face[i] += r.face[i];
    for (std::size_t i = 0; i < c.landmarks.size(); ++i) c.landmarks[i] += r.landmarks[i];
    for (std::size_t i = 0; i < kNumLandmarks; ++i) c.activation[i] += r.activation[i];
  }
  for (auto& c : sums) {
    if (c.n == 0) continue;
    const double k = 1.0 / static_cast<double>(c.n);
    for (auto* v : {&c.map, &c.face, &c.landmarks, &c.activation})
      for (auto& x : *v) x *= k;
  }
  // Pass 2: the frontal face whose map is closest (L2) to its class mean.
  std::rewind(m.spill);
  while (m.spill_read(r)) {
    if (!frontal(r)) continue;
    auto& c = sums[static_cast<std::size_t>(r.cls)];
    double d = 0;
    for (std::size_t i = 0; i < ss; ++i) d += (r.map[i] - c.map[i]) * (r.map[i] - c.map[i]);
    if (d < c.best) c.best = d, c.closest = r.face;
  }
  // Files: DIR/<class>.png per class with frontal faces; DIR/grid.png.
  const int scale = visual_scale(s);
  const int cell = static_cast<int>(s) * scale, label_w = 120;
  cv::Mat grid(static_cast<int>(nc) * cell, label_w + 3 * cell, CV_8UC3, cv::Scalar(0, 0, 0));
  json::object classes;
  std::size_t total_frontal = 0;
  for (std::size_t k = 0; k < nc; ++k) {
    const auto& c = sums[k];
    const std::string& name = m.labels()[k];
    json::object row;
    row["faces"] = m.per_class_faces[k];
    row["frontal"] = c.n;
    // A map that is 0 everywhere (the class's logit only falls with the
    // layer's activations) ranks no landmark: worth knowing before reading
    // an overlap figure.
    row["zero_maps"] = m.per_class_zero[k];
    total_frontal += c.n;
    cv::Rect label_rect(0, static_cast<int>(k) * cell, label_w, cell);
    cv::putText(grid, name, {6, label_rect.y + cell / 2}, cv::FONT_HERSHEY_SIMPLEX, 0.6,
                cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
    cv::putText(grid, "n=" + std::to_string(c.n), {6, label_rect.y + cell / 2 + 24},
                cv::FONT_HERSHEY_SIMPLEX, 0.5, cv::Scalar(200, 200, 200), 1, cv::LINE_AA);
    if (c.n > 0) {
      cv::Mat mean_map(static_cast<int>(s), static_cast<int>(s), CV_32F);
      cv::Mat mean_face(static_cast<int>(s), static_cast<int>(s), CV_8U);
      for (std::size_t i = 0; i < ss; ++i) {
        mean_map.ptr<float>()[i] = static_cast<float>(c.map[i]);
        mean_face.data[i] = cv::saturate_cast<std::uint8_t>(c.face[i]);
      }
      double max = 0;
      cv::minMaxLoc(mean_map, nullptr, &max);
      std::string path = m.opt.mean + "/" + name + ".png";
      write_map_png16(path, mean_map, max);
      Shape mean_lm;
      for (std::size_t i = 0; i < kNumLandmarks; ++i)
        mean_lm.push_back({c.landmarks[2 * i], c.landmarks[2 * i + 1]});
      auto top = rank_landmarks(c.activation, static_cast<std::size_t>(m.opt.top_k));
      Shape top_pts;
      for (int t : top) top_pts.push_back(mean_lm[static_cast<std::size_t>(t)]);
      // Row: mean heat map | mean face with the top-k landmarks in red |
      // the face whose map is closest to the mean.
      cv::Mat heat_only;
      {
        cv::Mat m8;
        mean_map.convertTo(m8, CV_8U, max > 0 ? 255.0 / max : 0.0);
        cv::applyColorMap(m8, heat_only, cv::COLORMAP_JET);
        cv::resize(heat_only, heat_only, cv::Size(cell, cell), 0, 0, cv::INTER_LINEAR);
      }
      cv::Mat face_bgr, closest_bgr;
      cv::cvtColor(mean_face, face_bgr, cv::COLOR_GRAY2BGR);
      cv::resize(face_bgr, face_bgr, cv::Size(cell, cell), 0, 0, cv::INTER_LINEAR);
      draw_dots(face_bgr, mean_lm, scale, cv::Scalar(160, 160, 160), std::max(1, scale / 3));
      // A map that is 0 everywhere ranks nothing: no red dots then.
      if (max > 0)
        draw_dots(face_bgr, top_pts, scale, cv::Scalar(0, 0, 255), std::max(2, scale / 2 + 1));
      cv::Mat closest(static_cast<int>(s), static_cast<int>(s), CV_8U);
      std::memcpy(closest.data, c.closest.data(), ss);
      cv::cvtColor(closest, closest_bgr, cv::COLOR_GRAY2BGR);
      cv::resize(closest_bgr, closest_bgr, cv::Size(cell, cell), 0, 0, cv::INTER_LINEAR);
      const int y = static_cast<int>(k) * cell;
      heat_only.copyTo(grid(cv::Rect(label_w, y, cell, cell)));
      face_bgr.copyTo(grid(cv::Rect(label_w + cell, y, cell, cell)));
      closest_bgr.copyTo(grid(cv::Rect(label_w + 2 * cell, y, cell, cell)));
      row["map"] = path;
      row["max"] = max;
      json::array jt;
      for (int t : top) jt.push_back(t);
      row["top_landmarks"] = std::move(jt);
      row["closest_distance"] = std::sqrt(c.best);
    }
    classes[name] = std::move(row);
  }
  std::string grid_path = m.opt.mean + "/grid.png";
  write_file_atomic(grid_path, encode_png(grid, grid_path));
  summary["faces"] = m.faces;
  summary["frontal"] = total_frontal;
  summary["frontal_eps"] = m.opt.frontal_eps;
  summary["layer"] = m.opt.layer;
  summary["grid"] = grid_path;
  summary["classes"] = std::move(classes);
  std::string json_path = m.opt.mean + "/means.json";
  write_file_atomic(json_path, to_line(summary) + "\n");
  return summary;
}

}  // namespace edan
