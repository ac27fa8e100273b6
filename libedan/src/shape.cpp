#include "edan/shape.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <stdexcept>

namespace edan {

Shape Similarity::apply(const Shape& s) const {
  Shape out;
  out.reserve(s.size());
  for (const auto& p : s) out.push_back(apply(p));
  return out;
}

Similarity Similarity::inverse() const {
  double d = a * a + b * b;
  if (d == 0) throw std::domain_error("singular similarity transform");
  // Inverse of [a -b; b a] is [a b; -b a] / d.
  Similarity inv;
  inv.a = a / d;
  inv.b = -b / d;
  inv.tx = -(inv.a * tx - inv.b * ty);
  inv.ty = -(inv.b * tx + inv.a * ty);
  return inv;
}

double Similarity::scale() const { return std::sqrt(a * a + b * b); }

}  // namespace edan

namespace edan {
namespace {
Point2 centroid(const Shape& s) {
  Point2 c;
  for (const auto& p : s) {
    c.x += p.x;
    c.y += p.y;
  }
  c.x /= static_cast<double>(s.size());
  c.y /= static_cast<double>(s.size());
  return c;
}

double dist(Point2 a, Point2 b) { return std::hypot(a.x - b.x, a.y - b.y); }

void require68(const Shape& s, const char* what) {
  if (s.size() != kNumLandmarks)
    throw std::invalid_argument(std::string(what) + ": expected 68 landmarks, got " +
                                std::to_string(s.size()));
}
}  // namespace

Similarity estimate_similarity(const Shape& from, const Shape& to) {
  if (from.empty() || from.size() != to.size())
    throw std::invalid_argument("estimate_similarity: shapes must be non-empty and equal in size");
  Point2 cf = centroid(from), ct = centroid(to);
  // Minimise sum |A(f - cf) - (t - ct)|^2 over A = [a -b; b a].
  double num_a = 0, num_b = 0, den = 0;
  for (std::size_t i = 0; i < from.size(); ++i) {
    double fx = from[i].x - cf.x, fy = from[i].y - cf.y;
    double tx = to[i].x - ct.x, ty = to[i].y - ct.y;
    num_a += fx * tx + fy * ty;
    num_b += fx * ty - fy * tx;
    den += fx * fx + fy * fy;
  }
  if (den == 0) throw std::invalid_argument("estimate_similarity: degenerate source shape");
  Similarity s;
  s.a = num_a / den;
  s.b = num_b / den;
  s.tx = ct.x - (s.a * cf.x - s.b * cf.y);
  s.ty = ct.y - (s.b * cf.x + s.a * cf.y);
  return s;
}

Shape mean_shape(const std::vector<Shape>& shapes, double size, double fill) {
  if (shapes.empty()) throw std::invalid_argument("mean_shape: no shapes");
  const std::size_t n = shapes.front().size();
  for (const auto& s : shapes)
    if (s.size() != n) throw std::invalid_argument("mean_shape: shapes differ in size");

  // Normalise a shape to zero centroid and unit RMS radius.
  auto normalise = [](Shape s) {
    Point2 c = centroid(s);
    double r = 0;
    for (auto& p : s) {
      p.x -= c.x;
      p.y -= c.y;
      r += p.x * p.x + p.y * p.y;
    }
    r = std::sqrt(r / static_cast<double>(s.size()));
    if (r > 0)
      for (auto& p : s) {
        p.x /= r;
        p.y /= r;
      }
    return s;
  };

  Shape mean = normalise(shapes.front());
  std::vector<Shape> aligned(shapes.size());
  for (int iter = 0; iter < 100; ++iter) {
    Shape next(n);
    for (std::size_t k = 0; k < shapes.size(); ++k) {
      aligned[k] = estimate_similarity(shapes[k], mean).apply(shapes[k]);
      for (std::size_t i = 0; i < n; ++i) {
        next[i].x += aligned[k][i].x;
        next[i].y += aligned[k][i].y;
      }
    }
    for (auto& p : next) {
      p.x /= static_cast<double>(shapes.size());
      p.y /= static_cast<double>(shapes.size());
    }
    next = normalise(next);
    // Keep the first shape's orientation: re-align the new mean to the old.
    next = estimate_similarity(next, mean).apply(next);
    next = normalise(next);
    double moved = 0;
    for (std::size_t i = 0; i < n; ++i) moved = std::max(moved, dist(next[i], mean[i]));
    mean = next;
    if (moved < 1e-7) break;
  }

  // Place in the frame: the bounding box's larger side spans fill*size, centred.
  auto box = bounding_box(mean);
  double w = box[2] - box[0], h = box[3] - box[1];
  double scale = fill * size / std::max(w, h);
  double cx = (box[0] + box[2]) / 2, cy = (box[1] + box[3]) / 2;
  for (auto& p : mean) {
    p.x = (p.x - cx) * scale + size / 2;
    p.y = (p.y - cy) * scale + size / 2;
  }
  return mean;
}

Point2 left_eye_centre(const Shape& s) {
  require68(s, "left_eye_centre");
  return centroid(Shape(s.begin() + 36, s.begin() + 42));
}

Point2 right_eye_centre(const Shape& s) {
  require68(s, "right_eye_centre");
  return centroid(Shape(s.begin() + 42, s.begin() + 48));
}

double inter_pupil_distance(const Shape& s) { return dist(left_eye_centre(s), right_eye_centre(s)); }

double inter_ocular_distance(const Shape& s) {
  require68(s, "inter_ocular_distance");
  return dist(s[36], s[45]);
}

double nme(const Shape& pred, const Shape& truth, NmeNorm norm) {
  if (pred.size() != truth.size() || truth.empty())
    throw std::invalid_argument("nme: shapes differ in size");
  double d = norm == NmeNorm::kInterOcular ? inter_ocular_distance(truth)
                                           : inter_pupil_distance(truth);
  if (!(d > 0)) throw std::invalid_argument("nme: zero normalising distance");
  double e = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) e += dist(pred[i], truth[i]);
  return e / static_cast<double>(pred.size()) / d;
}

const std::array<int, 68>& mirror_indices() {
  static const std::array<int, 68> m = [] {
    std::array<int, 68> a{};
    for (int i = 0; i < 68; ++i) a[i] = i;
    auto pair = [&](int i, int j) {
      a[i] = j;
      a[j] = i;
    };
    for (int i = 0; i <= 7; ++i) pair(i, 16 - i);            // jaw
    for (int i = 17; i <= 21; ++i) pair(i, 43 - i);          // brows 17-21 <-> 26-22
    pair(31, 35); pair(32, 34);                              // nostrils
    pair(36, 45); pair(37, 44); pair(38, 43);                // eyes
    pair(39, 42); pair(40, 47); pair(41, 46);
    pair(48, 54); pair(49, 53); pair(50, 52);                // outer lip
    pair(59, 55); pair(58, 56);
    pair(60, 64); pair(61, 63); pair(67, 65);                // inner lip
    return a;
  }();
  return m;
}

Shape mirror_shape(const Shape& s, double width) {
  require68(s, "mirror_shape");
  const auto& m = mirror_indices();
  Shape out(68);
  for (int i = 0; i < 68; ++i) out[m[i]] = {width - 1 - s[i].x, s[i].y};
  return out;
}

std::array<double, 4> bounding_box(const Shape& s) {
  if (s.empty()) throw std::invalid_argument("bounding_box: empty shape");
  std::array<double, 4> b{s[0].x, s[0].y, s[0].x, s[0].y};
  for (const auto& p : s) {
    b[0] = std::min(b[0], p.x);
    b[1] = std::min(b[1], p.y);
    b[2] = std::max(b[2], p.x);
    b[3] = std::max(b[3], p.y);
  }
  return b;
}

}  // namespace edan
