#include "edan/predict.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <stdexcept>

#include "edan/detect.hpp"
#include "edan/error.hpp"
#include "edan/image.hpp"

namespace edan {

namespace {
using TimerClock = std::chrono::steady_clock;
// Adds the seconds since `start` to `sum`; returns now.
TimerClock::time_point add_since(TimerClock::time_point start, double& sum) {
  const auto now = TimerClock::now();
  sum += std::chrono::duration<double>(now - start).count();
  return now;
}
}  // namespace

// FaceCroppers are not thread-safe: a pool, each taken by one worker at a time.
struct Predictor::Croppers {
  std::mutex mutex;
  std::vector<std::unique_ptr<FaceCropper>> free;

  std::unique_ptr<FaceCropper> take() {
    std::lock_guard<std::mutex> lock(mutex);
    auto c = std::move(free.back());
    free.pop_back();
    if (free.empty()) free.push_back(std::make_unique<FaceCropper>(c->clone()));
    return c;
  }
  void give(std::unique_ptr<FaceCropper> c) {
    std::lock_guard<std::mutex> lock(mutex);
    free.push_back(std::move(c));
  }
};

Predictor::Predictor(LoadedModel loaded, torch::Device device, PredictOptions options)
    : loaded_(std::move(loaded)), device_(device), options_(std::move(options)) {
  const std::int64_t have = loaded_.model->num_stages();
  if (options_.stages < 0 || options_.stages > have)
    throw UsageError("--stages " + std::to_string(options_.stages) + ": the model has " +
                     std::to_string(have) + " stage" + (have == 1 ? "" : "s"));
  loaded_.model->to(device_);
  loaded_.model->eval();
  // Prediction runs an inference-prepared copy (BatchNorm folded into the
  // convolutions, no dropout, channels-last weights); the caller's model is
  // left as it was.
  loaded_.model = prepare_for_inference(loaded_.model);
  chunk_ = forward_chunk(loaded_.meta.config);
}

Predictor::~Predictor() = default;
Predictor::Predictor(Predictor&&) noexcept = default;

Predictor Predictor::load(const PredictOptions& options) {
  set_threads(options.threads);
  auto device = parse_device(options.device);
  auto path = options.model.empty() ? default_model_path() : options.model;
  return Predictor(load_model(path, device), device, options);
}

Predictor::Croppers& Predictor::croppers() {
  if (!croppers_) {
    CropOptions opt;
    opt.detector = options_.detector;
    opt.fallback = options_.fallback;
    opt.size = static_cast<int>(size());
    opt.max_faces = options_.all_faces ? 0 : 1;
    auto c = std::make_unique<Croppers>();
    c->free.push_back(std::make_unique<FaceCropper>(opt));
    croppers_ = std::move(c);
  }
  return *croppers_;
}

bool set_prediction(Record& r, const std::vector<std::string>& labels, int label,
                    const std::vector<double>& probs, const Shape& landmarks) {
  if (probs.size() != labels.size() || label < 0 || label >= static_cast<int>(labels.size()))
    throw std::invalid_argument("set_prediction: probabilities do not match the labels");
  const bool finite =
      std::all_of(probs.begin(), probs.end(), [](double p) { return std::isfinite(p); }) &&
      std::all_of(landmarks.begin(), landmarks.end(),
                  [](const Point2& q) { return std::isfinite(q.x) && std::isfinite(q.y); });
  if (!finite) {
    set_error(r, "the model's output is not finite: its file is damaged or its training diverged");
    return false;
  }
  boost::json::object pred;
  pred["label"] = labels[static_cast<std::size_t>(label)];
  boost::json::object p;
  for (std::size_t i = 0; i < labels.size(); ++i) p[labels[i]] = json_number(probs[i], 1e-6);
  pred["probs"] = std::move(p);
  boost::json::array points;
  for (const auto& q : landmarks)
    points.push_back(boost::json::array{json_number(q.x, 0.01), json_number(q.y, 0.01)});
  pred["landmarks"] = std::move(points);
  r["pred"] = std::move(pred);
  return true;
}

std::int64_t forward_chunk(const ModelConfig& config) {
  if (const char* env = std::getenv("EDAN_FORWARD_CHUNK"); env && *env) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (*end != '\0' || v < 1)
      throw UsageError(std::string("EDAN_FORWARD_CHUNK: '") + env +
                       "' is not a positive integer (unset it for the automatic size)");
    return v;
  }
  const double face_bytes = 4.0 * static_cast<double>(config.widths.at(0)) *
                            static_cast<double>(config.size) * static_cast<double>(config.size);
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(16.0 * 1024 * 1024 / face_bytes));
}

Predictor::Outputs Predictor::forward(const torch::Tensor& pixels) {
  c10::InferenceMode inference;
  auto x = normalise_images(pixels.to(device_, torch::kFloat32), loaded_.meta);
  const std::int64_t n = x.size(0);
  if (options_.flip) x = torch::cat({x, x.flip({3})});
  // The network in chunks (forward_chunk): the same outputs, face by face.
  std::vector<torch::Tensor> logits, points;
  const std::int64_t chunk = chunk_, total = x.size(0);
  for (std::int64_t i = 0; i < total; i += chunk) {
    auto out = loaded_.model->forward(x.narrow(0, i, std::min(chunk, total - i)), options_.stages);
    logits.push_back(out.logits);
    points.push_back(out.landmarks.back());
  }
  auto probs = torch::softmax(torch::cat(logits), /*dim=*/1).to(torch::kFloat64);
  auto landmarks = torch::cat(points).to(torch::kFloat64);
  if (options_.flip) {
    // The mirrored half: point k of the flipped face is point mirror[k] of
    // the face, at x' = S-1-x (pixel centres at integers).
    const auto& m = mirror_indices();
    auto perm = torch::tensor(std::vector<std::int64_t>(m.begin(), m.end()), torch::kLong)
                    .to(landmarks.device());
    auto back = landmarks.narrow(0, n, n).index_select(1, perm);
    back.select(2, 0).neg_().add_(static_cast<double>(size() - 1));
    probs = 0.5 * (probs.narrow(0, 0, n) + probs.narrow(0, n, n));
    landmarks = 0.5 * (landmarks.narrow(0, 0, n) + back);
  }
  Outputs o;
  o.probs = probs.to(torch::kCPU).contiguous();
  o.labels = o.probs.argmax(1).contiguous();
  o.landmarks = landmarks.to(torch::kCPU).contiguous();
  return o;
}

std::vector<FacePrediction> Predictor::predict(const torch::Tensor& pixels) {
  auto o = forward(pixels);
  const std::int64_t n = o.probs.size(0), c = o.probs.size(1);
  std::vector<FacePrediction> result(static_cast<std::size_t>(n));
  auto pa = o.probs.accessor<double, 2>();
  auto ka = o.labels.accessor<std::int64_t, 1>();
  auto la = o.landmarks.accessor<double, 3>();
  for (std::int64_t i = 0; i < n; ++i) {
    auto& f = result[static_cast<std::size_t>(i)];
    f.label = static_cast<int>(ka[i]);
    for (std::int64_t j = 0; j < c; ++j) f.probs.push_back(pa[i][j]);
    for (std::int64_t k = 0; k < la.size(1); ++k) f.landmarks.push_back({la[i][k][0], la[i][k][1]});
  }
  return result;
}

namespace {

// Faces (size s×s, 8-bit, continuous) -> [N,1,s,s] floats in [0,1], written
// into `buffer`, which keeps its storage from batch to batch.
torch::Tensor to_pixels(const std::vector<const cv::Mat*>& faces, std::int64_t s,
                        torch::Tensor& buffer) {
  const auto n = static_cast<std::int64_t>(faces.size());
  if (!buffer.defined() || buffer.size(0) < n || buffer.size(2) != s)
    buffer = torch::empty({n, 1, s, s}, torch::kFloat32);
  auto pixels = buffer.narrow(0, 0, n);
  float* dst = pixels.data_ptr<float>();
  const std::int64_t area = s * s;
  for (std::int64_t j = 0; j < n; ++j) {
    const std::uint8_t* src = faces[static_cast<std::size_t>(j)]->data;
    for (std::int64_t k = 0; k < area; ++k) dst[j * area + k] = static_cast<float>(src[k]) / 255.0f;
  }
  return pixels;
}

}  // namespace

struct Predictor::BatchFaces {
  std::vector<std::vector<FaceInput>> faces;  // per record of the batch, largest first
};

Predictor::Expanded Predictor::annotate(std::vector<Record*>& batch) {
  return annotate(batch, *read_faces(batch));
}

std::shared_ptr<Predictor::BatchFaces> Predictor::read_faces(const std::vector<Record*>& batch) {
  const auto start = TimerClock::now();
  const std::int64_t n = static_cast<std::int64_t>(batch.size());
  const int si = static_cast<int>(size());
  auto read = std::make_shared<BatchFaces>();
  auto& faces = read->faces;
  faces.resize(batch.size());
  bool detect = false;
  for (auto* r : batch) detect = detect || !r->contains("crop");
  Croppers* pool = detect ? &croppers() : nullptr;
  // Detecting is independent per record and costly: spread it over the
  // intra-op threads. Decoding crops is cheap (a small image): done here, on
  // the reader thread, it leaves the cores to the network instead of waking
  // a second team of threads beside it. A record whose face cannot be read
  // gets its error here (the batch is this thread's until it is handed on).
  const std::int64_t grain = detect ? 1 : std::max<std::int64_t>(n, 1);
  at::parallel_for(0, n, grain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      const auto k = static_cast<std::size_t>(i);
      Record& r = *batch[k];
      guard_records({&r}, [&] {
        if (r.contains("crop")) {
          faces[k] = edan::read_faces(r, si, nullptr);
          return;
        }
        auto cropper = pool->take();
        try {
          faces[k] = edan::read_faces(r, si, cropper.get());
        } catch (...) {
          pool->give(std::move(cropper));
          throw;
        }
        pool->give(std::move(cropper));
      });
    }
  });
  add_since(start, timings_.read);
  return read;
}

Predictor::Expanded Predictor::annotate(std::vector<Record*>& batch, BatchFaces& read) {
  if (read.faces.size() != batch.size())
    throw std::invalid_argument("annotate: faces read for another batch");
  const std::int64_t s = size();
  // Every face of every readable record (read_faces left an error on the
  // others), in one forward pass.
  std::vector<std::pair<std::size_t, std::size_t>> where;  // (record, face)
  std::vector<const cv::Mat*> pixels;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (has_error(*batch[i])) continue;
    for (std::size_t k = 0; k < read.faces[i].size(); ++k) {
      where.emplace_back(i, k);
      pixels.push_back(&read.faces[i][k].pixels);
    }
  }
  Expanded expanded(batch.size());
  if (where.empty()) return expanded;
  auto t = TimerClock::now();
  auto input = to_pixels(pixels, s, input_);
  t = add_since(t, timings_.pack);
  auto o = forward(input);
  t = add_since(t, timings_.forward);
  ++timings_.batches;
  timings_.faces += static_cast<std::int64_t>(where.size());
  auto pa = o.probs.accessor<double, 2>();
  auto ka = o.labels.accessor<std::int64_t, 1>();
  auto la = o.landmarks.accessor<double, 3>();
  std::vector<double> probs(static_cast<std::size_t>(o.probs.size(1)));
  Shape points(static_cast<std::size_t>(o.landmarks.size(1)));
  for (std::size_t j = 0; j < where.size(); ++j) {
    const auto [i, k] = where[j];
    const FaceInput& f = read.faces[i][k];
    const bool several = read.faces[i].size() > 1;
    if (several && k == 0) expanded[i].assign(read.faces[i].size(), *batch[i]);
    Record& r = several ? expanded[i][k] : *batch[i];
    const auto row = static_cast<std::int64_t>(j);
    for (std::size_t c = 0; c < probs.size(); ++c) probs[c] = pa[row][static_cast<std::int64_t>(c)];
    for (std::size_t q = 0; q < points.size(); ++q)
      points[q] = {la[row][static_cast<std::int64_t>(q)][0],
                   la[row][static_cast<std::int64_t>(q)][1]};
    // Detected here: the fields edan-crop's records carry.
    if (f.box) {
      set_face_fields(r, static_cast<std::int64_t>(k), *f.box, f.score, f.keypoints);
      if (f.fallback) r["fallback"] = true;
    }
    set_prediction(r, meta().config.labels, static_cast<int>(ka[row]), probs,
                   f.to_output(points, static_cast<double>(s)));
    if (several && k == 0) *batch[i] = r;
  }
  add_since(t, timings_.records);
  return expanded;
}

std::vector<Record> Predictor::predict_frame(const std::uint8_t* data, int rows, int cols) {
  cv::Mat gray(rows, cols, CV_8U, const_cast<std::uint8_t*>(data));
  auto& pool = croppers();
  auto cropper = pool.take();
  std::vector<Face> found;
  try {
    found = cropper->crop(gray);
  } catch (const RecordError&) {
    // No face in this frame.
  }
  pool.give(std::move(cropper));
  std::vector<Record> out;
  if (found.empty()) return out;
  const int si = static_cast<int>(size());
  std::vector<cv::Mat> crops;
  std::vector<const cv::Mat*> pixels;
  for (const auto& f : found) crops.push_back(resize_to_square(f.crop, si));
  for (const auto& c : crops) pixels.push_back(&c);
  auto preds = predict(to_pixels(pixels, size(), input_));
  for (std::size_t i = 0; i < found.size(); ++i) {
    FaceInput in;
    in.geometry = found[i].geometry;
    in.frame_size_x = in.frame_size_y = found[i].geometry.size;
    Record r;
    set_face_fields(r, static_cast<std::int64_t>(i), found[i].box, found[i].score,
                    found[i].keypoints);
    if (found[i].fallback) r["fallback"] = true;
    set_prediction(r, meta().config.labels, preds[i].label, preds[i].probs,
                   in.to_output(preds[i].landmarks, static_cast<double>(size())));
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace edan
