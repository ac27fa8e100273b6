#include "edan/predict.hpp"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

#include "edan/error.hpp"
#include "edan/image.hpp"

namespace edan {

namespace {

// A record's face, read and resized to the model's input, and how to map
// model-frame points back to the file it came from.
struct Face {
  cv::Mat pixels;         // S×S, 8-bit gray
  double sx = 1, sy = 1;  // file pixels per model pixel
  std::string error;
};

Face read_face(const Record& r, std::int64_t size) {
  Face face;
  auto path = get_string(r, "crop");
  if (!path) path = get_string(r, "image");
  if (!path) throw RecordError("no \"crop\" or \"image\" field");
  cv::Mat gray = read_gray(*path);
  const int s = static_cast<int>(size);
  if (gray.cols == s && gray.rows == s) {
    face.pixels = gray;
  } else {
    bool shrink = gray.cols > s || gray.rows > s;
    cv::resize(gray, face.pixels, cv::Size(s, s), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
  }
  face.sx = static_cast<double>(gray.cols) / static_cast<double>(size);
  face.sy = static_cast<double>(gray.rows) / static_cast<double>(size);
  if (!face.pixels.isContinuous()) face.pixels = face.pixels.clone();
  return face;
}

double round_to(double v, double step) { return std::round(v / step) * step; }

}  // namespace

void set_prediction(Record& r, const std::vector<std::string>& labels, int label,
                    const std::vector<double>& probs, const Shape& landmarks) {
  if (probs.size() != labels.size() || label < 0 || label >= static_cast<int>(labels.size()))
    throw std::invalid_argument("set_prediction: probabilities do not match the labels");
  boost::json::object pred;
  pred["label"] = labels[static_cast<std::size_t>(label)];
  boost::json::object p;
  for (std::size_t i = 0; i < labels.size(); ++i) p[labels[i]] = round_to(probs[i], 1e-6);
  pred["probs"] = std::move(p);
  Shape rounded = landmarks;
  for (auto& q : rounded) q = {round_to(q.x, 0.01), round_to(q.y, 0.01)};
  pred["landmarks"] = shape_to_json(rounded);
  r["pred"] = std::move(pred);
}

Predictor::Predictor(LoadedModel loaded, torch::Device device)
    : loaded_(std::move(loaded)), device_(device) {
  loaded_.model->to(device_);
  loaded_.model->eval();
  // Channels-last convolutions are several times faster on the CPU for the
  // narrow layers of the small preset (oneDNN); results are unchanged.
  for (auto& p : loaded_.model->parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
}

Predictor Predictor::load(const PredictOptions& options) {
  set_threads(options.threads);
  auto device = parse_device(options.device);
  auto path = options.model.empty() ? default_model_path() : options.model;
  return Predictor(load_model(path, device), device);
}

std::vector<FacePrediction> Predictor::predict(const torch::Tensor& pixels) {
  torch::NoGradGuard no_grad;
  loaded_.model->eval();
  auto x = normalise_images(pixels.to(device_, torch::kFloat32), loaded_.meta)
               .contiguous(torch::MemoryFormat::ChannelsLast);
  auto out = loaded_.model->forward(x);
  auto probs = torch::softmax(out.logits, /*dim=*/1).to(torch::kCPU, torch::kFloat64).contiguous();
  auto labels = probs.argmax(1);
  auto lm = out.landmarks.back().to(torch::kCPU, torch::kFloat64).contiguous();
  const std::int64_t n = probs.size(0), c = probs.size(1);
  std::vector<FacePrediction> result(static_cast<std::size_t>(n));
  auto pa = probs.accessor<double, 2>();
  auto la = lm.accessor<double, 3>();
  for (std::int64_t i = 0; i < n; ++i) {
    auto& f = result[static_cast<std::size_t>(i)];
    f.label = static_cast<int>(labels[i].item<std::int64_t>());
    for (std::int64_t j = 0; j < c; ++j) f.probs.push_back(pa[i][j]);
    for (std::int64_t k = 0; k < la.size(1); ++k) f.landmarks.push_back({la[i][k][0], la[i][k][1]});
  }
  return result;
}

void Predictor::annotate(std::vector<Record*>& batch) {
  const std::int64_t n = static_cast<std::int64_t>(batch.size());
  const std::int64_t s = size();
  std::vector<Face> faces(batch.size());
  // Decoding is independent per record: spread it over the intra-op threads.
  at::parallel_for(0, n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      auto& f = faces[static_cast<std::size_t>(i)];
      try {
        f = read_face(*batch[static_cast<std::size_t>(i)], s);
      } catch (const std::exception& e) {
        f.error = e.what();
        if (f.error.empty()) f.error = "cannot read the face";
      }
    }
  });
  std::vector<std::size_t> live;
  for (std::size_t i = 0; i < faces.size(); ++i) {
    if (faces[i].error.empty())
      live.push_back(i);
    else
      set_error(*batch[i], faces[i].error);
  }
  if (live.empty()) return;
  auto pixels = torch::empty({static_cast<std::int64_t>(live.size()), 1, s, s}, torch::kUInt8);
  for (std::size_t j = 0; j < live.size(); ++j)
    std::memcpy(pixels[static_cast<std::int64_t>(j)].data_ptr<std::uint8_t>(),
                faces[live[j]].pixels.data, static_cast<std::size_t>(s * s));
  auto preds = predict(pixels.to(torch::kFloat32).div_(255.0));
  for (std::size_t j = 0; j < live.size(); ++j) {
    const Face& f = faces[live[j]];
    auto& p = preds[j];
    // Model pixel centres to file pixel centres.
    for (auto& q : p.landmarks) q = {(q.x + 0.5) * f.sx - 0.5, (q.y + 0.5) * f.sy - 0.5};
    set_prediction(*batch[live[j]], meta().config.labels, p.label, p.probs, p.landmarks);
  }
}

}  // namespace edan
