#include "edan/track.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <tuple>

#include "edan/blazeface.hpp"
#include "edan/error.hpp"

namespace edan {

std::optional<FaceBox> face_box(const Record& r) {
  try {
    return get_box(r);
  } catch (const RecordError&) {
    return std::nullopt;
  }
}

namespace {

// The prediction's landmarks (frame pixels), or empty.
Shape record_landmarks(const Record& r) {
  auto it = r.find("pred");
  if (it == r.end() || !it->value().is_object()) return {};
  try {
    if (auto s = get_shape(it->value().as_object(), "landmarks")) return *s;
  } catch (const std::exception&) {
  }
  return {};
}

// Mean distance between two 68-point shapes in units of a's inter-ocular
// distance (infinity when either is missing or degenerate).
double landmark_shift(const Shape& a, const Shape& b) {
  if (a.size() != 68 || b.size() != 68) return std::numeric_limits<double>::infinity();
  const double iod = inter_ocular_distance(a);
  if (!(iod > 0)) return std::numeric_limits<double>::infinity();
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += std::hypot(a[i].x - b[i].x, a[i].y - b[i].y);
  return sum / a.size() / iod;
}

}  // namespace

FaceTracker::FaceTracker(TrackOptions options) : options_(options) {
  if (!(options_.timeout >= 0)) throw std::invalid_argument("track timeout must be >= 0");
  if (!(options_.smooth >= 0)) throw std::invalid_argument("smoothing window must be >= 0");
}

void FaceTracker::smooth(Track& track, Record& face, double dt, bool first) const {
  if (options_.smooth <= 0) return;
  auto pred = face.find("pred");
  if (pred == face.end() || !pred->value().is_object()) return;
  auto probs = pred->value().as_object().find("probs");
  if (probs == pred->value().as_object().end() || !probs->value().is_object()) return;
  std::vector<std::string> labels;
  std::vector<double> p;
  for (const auto& kv : probs->value().as_object()) {
    if (!kv.value().is_number()) return;
    labels.emplace_back(kv.key());
    p.push_back(kv.value().to_number<double>());
  }
  if (first || labels != track.labels) {
    track.labels = labels;
    track.mean = p;
  } else {
    const double w = 1 - std::exp(-std::max(dt, 0.0) / options_.smooth);
    for (std::size_t i = 0; i < p.size(); ++i) track.mean[i] += w * (p[i] - track.mean[i]);
  }
  boost::json::object out_probs;
  std::size_t top = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    out_probs[labels[i]] = json_number(track.mean[i], 1e-6);
    if (track.mean[i] > track.mean[top]) top = i;
  }
  face["smooth"] = boost::json::object{{"label", labels[top]}, {"probs", std::move(out_probs)}};
}

void FaceTracker::update(std::vector<Record>& faces, double time) {
  // Tracks that timed out end before matching.
  tracks_.erase(std::remove_if(tracks_.begin(), tracks_.end(),
                               [&](const Track& t) { return time - t.time > options_.timeout; }),
                tracks_.end());
  struct Face {
    std::size_t index;
    FaceBox box;
    Shape landmarks;
  };
  std::vector<Face> found;
  for (std::size_t i = 0; i < faces.size(); ++i)
    if (auto b = face_box(faces[i])) found.push_back({i, *b, record_landmarks(faces[i])});

  // Every track moved to this frame's time by its velocity.
  std::vector<FaceBox> predicted;
  std::vector<Shape> predicted_landmarks;
  for (const auto& t : tracks_) {
    const double dt = time - t.time, dx = t.velocity[0] * dt, dy = t.velocity[1] * dt;
    predicted.push_back({t.box.x + dx, t.box.y + dy, t.box.w, t.box.h});
    Shape s = t.landmarks;
    for (auto& p : s) p.x += dx, p.y += dy;
    predicted_landmarks.push_back(std::move(s));
  }
  // Candidate pairs: overlap first (higher is better), then landmarks
  // (smaller is better); greedy over the sorted list.
  std::vector<std::tuple<int, double, std::size_t, std::size_t>> pairs;  // tier, cost, face, track
  for (std::size_t f = 0; f < found.size(); ++f)
    for (std::size_t t = 0; t < tracks_.size(); ++t) {
      const double iou = box_iou(found[f].box, predicted[t]);
      if (iou >= options_.min_iou) {
        pairs.emplace_back(0, -iou, f, t);
        continue;
      }
      const double shift = landmark_shift(predicted_landmarks[t], found[f].landmarks);
      if (shift <= options_.max_landmark_shift) pairs.emplace_back(1, shift, f, t);
    }
  std::sort(pairs.begin(), pairs.end());
  std::vector<int> face_track(found.size(), -1);
  std::vector<bool> track_used(tracks_.size(), false);
  for (const auto& [tier, cost, f, t] : pairs) {
    if (face_track[f] >= 0 || track_used[t]) continue;
    face_track[f] = static_cast<int>(t);
    track_used[t] = true;
  }
  for (std::size_t f = 0; f < found.size(); ++f) {
    Record& rec = faces[found[f].index];
    const FaceBox& b = found[f].box;
    if (face_track[f] < 0) {
      Track t;
      t.id = next_id_++;
      t.time = time;
      t.box = b;
      t.landmarks = found[f].landmarks;
      rec["track"] = t.id;
      smooth(t, rec, 0, /*first=*/true);
      tracks_.push_back(std::move(t));
      continue;
    }
    Track& t = tracks_[face_track[f]];
    const double dt = time - t.time;
    if (dt > 0) {
      // The velocity of the box centre, lightly averaged: detector jitter
      // alone should not carry a box away.
      const double vx = (b.x + b.w / 2 - t.box.x - t.box.w / 2) / dt;
      const double vy = (b.y + b.h / 2 - t.box.y - t.box.h / 2) / dt;
      t.velocity[0] = 0.5 * t.velocity[0] + 0.5 * vx;
      t.velocity[1] = 0.5 * t.velocity[1] + 0.5 * vy;
    }
    t.time = time;
    t.box = b;
    if (!found[f].landmarks.empty()) t.landmarks = found[f].landmarks;
    rec["track"] = t.id;
    smooth(t, rec, dt, /*first=*/false);
  }
}

}  // namespace edan
