#include "edan/blazeface.hpp"

#include <algorithm>
#include <cmath>

namespace edan {

const std::vector<Point2>& blazeface_anchors() {
  static const std::vector<Point2> anchors = [] {
    std::vector<Point2> a;
    a.reserve(kBlazeAnchors);
    for (auto [cells, per_cell] : {std::pair{16, 2}, std::pair{8, 6}})
      for (int y = 0; y < cells; ++y)
        for (int x = 0; x < cells; ++x)
          for (int k = 0; k < per_cell; ++k) a.push_back({(x + 0.5) / cells, (y + 0.5) / cells});
    return a;
  }();
  return anchors;
}

std::vector<Detection> decode_blazeface(const float* scores, const float* regressions,
                                        int input_size, const BlazeTile& tile, double threshold) {
  const auto& anchors = blazeface_anchors();
  // The logit a score must reach (MediaPipe clips logits to +-100 first).
  const double min_logit = std::log(threshold / (1 - threshold));
  const double unit = 1.0 / input_size;
  auto to_source = [&](double ux, double uy) {
    return Point2{tile.x0 + ux * tile.side - 0.5, tile.y0 + uy * tile.side - 0.5};
  };
  std::vector<Detection> out;
  for (int i = 0; i < kBlazeAnchors; ++i) {
    const double logit = std::clamp(static_cast<double>(scores[i]), -100.0, 100.0);
    if (!(logit >= min_logit)) continue;
    const float* r = regressions + 16 * i;
    const Point2& a = anchors[static_cast<std::size_t>(i)];
    const double cx = a.x + r[0] * unit, cy = a.y + r[1] * unit;
    const double w = r[2] * unit, h = r[3] * unit;
    if (!(w > 0 && h > 0)) continue;
    Detection d;
    d.score = 1 / (1 + std::exp(-logit));
    d.box = {tile.x0 + (cx - w / 2) * tile.side, tile.y0 + (cy - h / 2) * tile.side, w * tile.side,
             h * tile.side};
    for (int k = 0; k < kBlazeKeypoints; ++k)
      d.keypoints.push_back(to_source(a.x + r[4 + 2 * k] * unit, a.y + r[5 + 2 * k] * unit));
    out.push_back(std::move(d));
  }
  return out;
}

double box_intersection(const FaceBox& a, const FaceBox& b) {
  const double ix = std::min(a.x + a.w, b.x + b.w) - std::max(a.x, b.x);
  const double iy = std::min(a.y + a.h, b.y + b.h) - std::max(a.y, b.y);
  return ix > 0 && iy > 0 ? ix * iy : 0;
}

double box_iou(const FaceBox& a, const FaceBox& b) {
  const double inter = box_intersection(a, b), uni = a.area() + b.area() - inter;
  return inter > 0 && uni > 0 ? inter / uni : 0;
}

std::vector<Detection> weighted_nms(std::vector<Detection> dets, double min_iou) {
  std::stable_sort(dets.begin(), dets.end(),
                   [](const Detection& a, const Detection& b) { return a.score > b.score; });
  std::vector<bool> taken(dets.size(), false);
  std::vector<Detection> out;
  for (std::size_t i = 0; i < dets.size(); ++i) {
    if (taken[i]) continue;
    const Detection& top = dets[i];
    Detection merged;
    merged.score = top.score;
    merged.keypoints.assign(top.keypoints.size(), Point2{});
    double weight = 0;
    for (std::size_t j = i; j < dets.size(); ++j) {
      if (taken[j] || box_iou(top.box, dets[j].box) < min_iou) continue;
      const Detection& d = dets[j];
      if (d.keypoints.size() != top.keypoints.size()) continue;
      taken[j] = true;
      const double s = d.score;
      merged.box.x += s * d.box.x;
      merged.box.y += s * d.box.y;
      merged.box.w += s * d.box.w;
      merged.box.h += s * d.box.h;
      for (std::size_t k = 0; k < d.keypoints.size(); ++k) {
        merged.keypoints[k].x += s * d.keypoints[k].x;
        merged.keypoints[k].y += s * d.keypoints[k].y;
      }
      weight += s;
    }
    if (!(weight > 0)) {
      out.push_back(top);
      continue;
    }
    merged.box = {merged.box.x / weight, merged.box.y / weight, merged.box.w / weight,
                  merged.box.h / weight};
    for (auto& p : merged.keypoints) p = {p.x / weight, p.y / weight};
    out.push_back(std::move(merged));
  }
  return out;
}

}  // namespace edan
