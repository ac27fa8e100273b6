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

// A face box in source pixels: top-left pixel (x, y), width and height.
struct FaceBox {
  double x = 0, y = 0, w = 0, h = 0;
  double area() const { return w * h; }
  // The box's centre in pixel-centre coordinates.
  Point2 centre() const { return {x + (w - 1) / 2, y + (h - 1) / 2}; }
};

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

namespace edan {

// Least-squares similarity transform mapping `from` onto `to` (closed form,
// as DAN's stage transform). Both shapes must have the same, non-zero number
// of points. Throws std::invalid_argument otherwise.
Similarity estimate_similarity(const Shape& from, const Shape& to);

// The mean shape of a set of shapes, as DAN builds it: every shape is
// Procrustes-aligned (similarity) to the running mean, iterated until the
// mean stops moving; the result is then scaled and centred so that its
// bounding box fills `fill` of a frame of size×size pixels (DAN: 0.8 ·
// the frame, centred). Throws std::invalid_argument on an empty set.
Shape mean_shape(const std::vector<Shape>& shapes, double size, double fill = 0.8);

// Centres of the eyes (mean of points 36–41 and 42–47, 0-based).
Point2 left_eye_centre(const Shape& s);
Point2 right_eye_centre(const Shape& s);
// Distance between the eye centres (inter-pupil) and between the outer eye
// corners 36 and 45 (inter-ocular). Require 68 points.
double inter_pupil_distance(const Shape& s);
double inter_ocular_distance(const Shape& s);

enum class NmeNorm { kInterOcular, kInterPupil };
// Mean point-to-point error between pred and truth divided by the truth's
// normalising distance. Throws std::invalid_argument on size mismatch or a
// zero normaliser.
double nme(const Shape& pred, const Shape& truth, NmeNorm norm = NmeNorm::kInterOcular);

// The index of each point's mirror image under a horizontal flip (iBUG 68).
const std::array<int, 68>& mirror_indices();
// Flips a shape horizontally in a frame `width` pixels wide (x -> width-1-x
// for pixel-centre coordinates) and reorders points so left stays left.
Shape mirror_shape(const Shape& s, double width);

// Where a face crop lies in its source image: the source -> crop similarity
// and the crop's side (records carry it as crop_transform and crop_size).
struct CropGeometry {
  Similarity to_crop;
  int size = 0;
  Point2 to_source(Point2 p) const { return to_crop.inverse().apply(p); }
  Shape to_source(const Shape& s) const { return to_crop.inverse().apply(s); }
  Shape crop_points(const Shape& s) const { return to_crop.apply(s); }
};

// Axis-aligned bounding box of a shape: {min_x, min_y, max_x, max_y}.
std::array<double, 4> bounding_box(const Shape& s);

}  // namespace edan
