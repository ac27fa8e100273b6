#pragma once
// Face detection, landmark fitting and the canonical face crop.
//
// Coordinates follow OpenCV's pixel-centre convention: pixel (i, j) of an
// image is the point x = i, y = j, so a W-pixel-wide image spans
// [-0.5, W - 0.5]. A box [x, y, w, h] covers pixels x .. x+w-1.
//
// The canonical crop. Every face, whatever found it, is resampled into an
// S x S crop by one similarity transform T (rotation, uniform scale, shift)
// from source pixels to crop pixels:
//  - when 68 landmarks are known (from the record or fitted with dlib), T is
//    the least-squares similarity taking the eye and nose points 27..47 (the
//    points expressions move least) onto a fixed template; the template is
//    placed so that an average face's 68-point bounding box is centred and
//    spans 0.8 of the crop (DAN's mean-shape framing);
//  - when only a box is known, T is axis-aligned: a square of side
//    k_d * sqrt(w * h), centred at the box centre shifted by (dx_d * w,
//    dy_d * h), is mapped onto the crop. The constants of each detector d
//    were measured on 300-W HELEN training images (tests/fixtures/
//    crop-calibrate.cpp) as the medians that make its box crops match the
//    landmark crops, so a face fills the frame the same way for every
//    detector;
//  - `none` takes the whole image as the canonical square: already-cropped
//    datasets (FER2013, CK+48) keep their own framing unless landmarks are
//    known or fitted, in which case the landmark rule applies as above.
// A crop pixel c maps back to the source as T^-1(c); crop_transform in a
// record is [a, b, tx, ty] of T (edan/shape.hpp's Similarity).
#include <array>
#include <memory>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <vector>

#include "edan/record.hpp"
#include "edan/shape.hpp"

namespace edan {

struct Detection {
  FaceBox box;
  // Detector confidence, higher is surer; the scale depends on the detector
  // (cascades: number of merged neighbour windows; dlib: SVM margin;
  // blazeface: probability; none: 1).
  double score = 1;
  // Points the detector located, in source pixels: blazeface's 6 keypoints
  // (eyes, nose tip, mouth, ears: edan/blazeface.hpp); empty for the others.
  std::vector<Point2> keypoints;
};

// How a detector's boxes relate to the canonical face square (see above).
struct BoxCalibration {
  double dx = 0, dy = 0, k = 1;
  // Detectors with keypoints (blazeface): where its eyes, nose tip and mouth
  // fall in the canonical crop, in fractions of the crop side (0 = left /
  // top edge); a detection is then framed by them, not by its box.
  bool has_keypoints = false;
  std::array<Point2, 4> keypoints{};
};

// The names --detector accepts, in the order --help lists them.
const std::vector<std::string>& detector_names();

// A face detector. Not thread-safe: use one per thread (clone()).
class FaceDetector {
 public:
  virtual ~FaceDetector() = default;
  // Faces of an 8-bit grayscale image, largest first. Throws RecordError
  // when the image is empty.
  virtual std::vector<Detection> detect(const cv::Mat& gray) = 0;
  virtual std::unique_ptr<FaceDetector> clone() const = 0;
  const std::string& name() const { return name_; }
  const BoxCalibration& calibration() const { return calibration_; }

 protected:
  FaceDetector(std::string name, BoxCalibration c) : name_(std::move(name)), calibration_(c) {}

 private:
  std::string name_;
  BoxCalibration calibration_;
};

// Makes a detector by name: blazeface (MediaPipe's BlazeFace CNN, its
// 256-px "back" model over the whole image and over tiles of a large one),
// blazeface-front (its 128-px short-range model, whole image only), haar
// (= haar-alt2), haar-default, haar-alt, haar-alt2, lbp, lbp-improved
// (OpenCV cascades from opencv_data_dir), dlib (dlib's HOG frontal face
// detector), none (the whole image is the face). Throws UsageError for an
// unknown name, FatalError when a model or cascade file is missing or
// unreadable.
std::unique_ptr<FaceDetector> make_detector(const std::string& name,
                                            const std::string& opencv_data_dir = "");

// dlib's 68-point shape predictor. Loaded once; fit() is const and may be
// called from several threads at once (it only reads the model).
class Landmarker {
 public:
  // path "" = shape_predictor_68_face_landmarks.dat in the dlib data
  // directory (libdlib-data). Throws FatalError naming the file when it is
  // missing or unreadable.
  static std::shared_ptr<const Landmarker> load(const std::string& path = "");
  ~Landmarker();
  // Fits 68 landmarks inside a dlib-style face box of an 8-bit gray image.
  Shape fit(const cv::Mat& gray, const FaceBox& dlib_box) const;

 private:
  struct Impl;
  Landmarker();
  std::unique_ptr<Impl> impl_;
};

// --- crop geometry ----------------------------------------------------------

// The canonical template: 68 points, only 27..47 used for alignment, in
// crop pixels of an S x S crop. The other points are an average face, for
// reference (e.g. to seed a fit). Requires size >= 1.
Shape canonical_template(int size);

// Canonical geometry from 68 source landmarks (least squares on points
// 27..47). Throws RecordError when the shape is not 68 points or degenerate.
CropGeometry geometry_from_landmarks(const Shape& landmarks, int size);
// Canonical geometry from a detector box and that detector's calibration.
// Throws RecordError on an empty box.
CropGeometry geometry_from_box(const FaceBox& box, const BoxCalibration& c, int size);
// The same, turned so that the eyes lie level in the crop: the canonical
// square's centre is the calibrated one with the offset (dx * w, dy * h)
// turned by the eyes' angle, and the crop turns about it by that angle
// (right_eye: the subject's, on the image's left when upright). Throws
// RecordError on an empty box.
CropGeometry geometry_from_box_and_eyes(const FaceBox& box, const BoxCalibration& c, int size,
                                        const Point2& right_eye, const Point2& left_eye);
// Canonical geometry from a keypoint detector's eyes, nose tip and mouth
// (source pixels, BlazeFace's order) and where its calibration places them:
// the least-squares similarity. Throws RecordError when they are degenerate
// or the calibration has no keypoints.
CropGeometry geometry_from_keypoints(const std::vector<Point2>& keypoints, const BoxCalibration& c,
                                     int size);
// A detection's geometry: by its keypoints when it has some and the
// calibration places them (falling back on its box and eyes when they are
// degenerate), else by its box.
CropGeometry geometry_from_detection(const Detection& d, const BoxCalibration& c, int size);
// The box the dlib shape predictor expects for a face whose canonical
// geometry is g (dlib's own calibration applied backwards).
FaceBox dlib_box_for(const CropGeometry& g);

// Resamples the crop: bilinear, pixels outside the source are black; a
// source much larger than the crop is first reduced with area averaging
// (no aliasing). Returns an 8-bit size x size image.
cv::Mat warp_crop(const cv::Mat& gray, const CropGeometry& g);

// --- the cropper ----------------------------------------------------------

// What a record whose image shows no detectable face becomes:
//  - kNone: an error record ("no face found");
//  - kSmall: the whole image is the face when its shorter side is at most
//    kSmallImageSide pixels (a face crop too small for the detectors, such
//    as FER2013's or CK+48's 48 px images), an error record otherwise;
//  - kFull: the whole image is the face, whatever its size.
// A face taken this way is marked "fallback": true.
enum class Fallback { kNone, kSmall, kFull };
constexpr int kSmallImageSide = 64;
// none, small or full; UsageError naming --fallback otherwise.
Fallback parse_fallback(const std::string& mode);

struct CropOptions {
  std::string detector = "blazeface";  // a name of detector_names()
  std::string landmarks;               // "" or "dlib": fit 68 landmarks
  bool refit = false;                  // fit dlib landmarks even when the record has some
  // Frame a record that has landmarks by the detector (the face whose box
  // matches its landmarks) rather than by the landmarks, which are then
  // carried into the crop: training faces framed as prediction frames them.
  bool frame_by_detector = false;
  int size = 64;                         // crop side in pixels
  Fallback fallback = Fallback::kSmall;  // no face found
  int max_faces = 0;                     // keep the largest N faces; 0 = all
  std::string opencv_data_dir;           // "" = the build's default (edan/version.hpp)
  std::string dlib_model;                // "" = the default shape predictor
};

struct Face {
  FaceBox box;  // source pixels
  double score = 1;
  std::vector<Point2> keypoints;  // the detector's, source pixels (Detection)
  bool fallback = false;          // true: no face was found, the whole image is used
  CropGeometry geometry;
  std::optional<Shape> landmarks;  // crop pixels
  cv::Mat crop;                    // size x size, 8-bit gray
};

// Detects, aligns and crops faces in memory; the library API behind
// edan-crop, reused by prediction. Not thread-safe (it owns a detector):
// make one per thread, sharing the Landmarker (see clone()).
class FaceCropper {
 public:
  // Throws UsageError on bad options (unknown detector or landmark method,
  // size < 8), FatalError when a model file cannot be loaded. `landmarker`
  // may be passed to share one already loaded.
  explicit FaceCropper(const CropOptions& opt,
                       std::shared_ptr<const Landmarker> landmarker = nullptr);
  // A cropper with the same options sharing this one's landmarker.
  FaceCropper clone() const;

  // Faces of an 8-bit gray image, largest first. When `landmarks` (68
  // source points) are given, they define the one face (and are refitted
  // with dlib only when opt.refit); with opt.frame_by_detector they only
  // choose it: the crop is framed by the matching detection (or by `box`)
  // and the landmarks are carried into it. Else when `box` is given it is
  // the one face (taken as a dlib-style box); else the detector runs. No
  // face: the whole image as opt.fallback allows, else RecordError.
  std::vector<Face> crop(const cv::Mat& gray, const std::optional<Shape>& landmarks = {},
                         const std::optional<FaceBox>& box = {});
  // The same for a record: decodes r["image"] (edan/image.hpp), takes
  // "landmarks" (mapped back to the source first when the record carries a
  // crop_transform) and "box" from it. Throws RecordError naming the image
  // or the field on bad input.
  std::vector<Face> crop(const Record& r);

  const CropOptions& options() const { return opt_; }

 private:
  Face frame_by_detector(const cv::Mat& gray, const Shape& landmarks,
                         const std::optional<FaceBox>& box);
  // No face found in gray: may the whole image be taken (opt.fallback)?
  bool whole_image_allowed(const cv::Mat& gray) const;

  CropOptions opt_;
  std::unique_ptr<FaceDetector> detector_;
  std::shared_ptr<const Landmarker> landmarker_;
};

// A record's face as a model sees it (pixels resized to its input side) and
// how model-frame points map back to the image the record names.
struct FaceInput {
  cv::Mat pixels;                             // size×size, 8-bit gray, continuous
  double frame_size_x = 0, frame_size_y = 0;  // the crop frame the model frame scales to
  std::optional<CropGeometry> geometry;       // crop frame -> source image
  std::optional<FaceBox> box;                 // detected here (records without a crop)
  double score = 0;                           // the detector's, with box
  std::vector<Point2> keypoints;              // the detector's, with box (source pixels)
  bool fallback = false;                      // no face found: the whole image
  // Model-frame points (model_size×model_size) -> the record's image pixels:
  // through the crop file's frame, then the crop geometry when there is one.
  Shape to_output(Shape s, double model_size) const;
};

// gray resized to size×size (area averaging when shrinking, bilinear when
// growing); continuous.
cv::Mat resize_to_square(const cv::Mat& gray, int size);

// The fields a face found in r's image adds to r: "face" (its index,
// largest first), "box", "score" (unless r named the face itself, by "box"
// or "landmarks", and carries a "score" already), "keypoints" when the
// detector gave some (an earlier detector's are removed). The caller adds
// "fallback": true last when the whole image was taken.
void set_face_fields(Record& r, std::int64_t index, const FaceBox& box, double score,
                     const std::vector<Point2>& keypoints);

// A face box as records carry it: [x, y, w, h], 0.01 px.
boost::json::array box_json(const FaceBox& b);

// Reads a record's face for a model of input side `size`:
//  - its "crop" (a face crop, resized to size×size when it is another size),
//    with the record's crop geometry (crop_transform, crop_size) if any;
//  - otherwise its "image", detected, aligned and cropped by `cropper`
//    exactly as edan-crop does; the largest face is taken.
// cropper may be null for records with a crop. Throws RecordError naming
// the file (no "crop" or "image", unreadable, no face found).
FaceInput read_face(const Record& r, int size, FaceCropper* cropper);
// The same with every face the cropper finds in the record's "image",
// largest first (as many as its max_faces allows); one for a "crop".
std::vector<FaceInput> read_faces(const Record& r, int size, FaceCropper* cropper);

// Where the crop of face `face` of `image` is written under out_dir:
// out_dir/<image path>.<face>.png, the image path kept as given with "%"
// written "%25", ".." components "%2E%2E" and a leading "/" as "%2F", so
// that different image paths can never give the same crop path.
std::string crop_path(const std::string& out_dir, const std::string& image, int face);

// edan-crop's per-record work: crops r, writes each face's PNG under
// out_dir (atomically) and returns one record per face: r's fields in
// order, plus face, box, score, crop, crop_transform, crop_size, landmarks
// (crop pixels; replaces the input's) and "fallback": true when no face
// was found. Throws RecordError (bad input, no face) or FatalError (write).
std::vector<Record> crop_record(FaceCropper& cropper, const Record& r, const std::string& out_dir);

}  // namespace edan
