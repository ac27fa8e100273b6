#pragma once
// Landmark shapes (68 points, iBUG 300-W order), similarity transforms and
// landmark metrics. No OpenCV or torch here.
#include <array>
#include <cstddef>
#include <vector>

namespace edan {

inline constexpr std::size_t kNumLandmarks = 68;

struct Point2 {
  double x = 0;
  double y = 0;
};
using Shape = std::vector<Point2>;

// x' = a*x - b*y + tx ; y' = b*x + a*y + ty  (rotation+uniform scale+shift)
struct Similarity {
  double a = 1, b = 0, tx = 0, ty = 0;
  Point2 apply(Point2 p) const { return {a * p.x - b * p.y + tx, b * p.x + a * p.y + ty}; }
  Shape apply(const Shape& s) const;
  // Throws std::domain_error when the transform is singular (a = b = 0).
  Similarity inverse() const;
  double scale() const;
};

}  // namespace edan
