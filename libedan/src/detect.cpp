#include "edan/detect.hpp"

#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>
#include <dlib/opencv/cv_image.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <filesystem>
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>
#include <thread>

#include "edan/blazeface.hpp"
#include "edan/error.hpp"
#include "edan/fs.hpp"
#include "edan/image.hpp"
#include "edan/version.hpp"

namespace edan {
namespace json = boost::json;

namespace {

// dlib's average positions of face points 17..67 in a unit box
// (dlib/image_transforms/interpolation.h, get_face_chip_details; Boost
// Software License 1.0). Points 27..47 (eyes and nose) are the template.
constexpr double kMeanFaceX[51] = {
    0.000213256, 0.0752622, 0.18113,  0.29077,  0.393397, 0.586856, 0.689483, 0.799124, 0.904991,
    0.98004,     0.490127,  0.490127, 0.490127, 0.490127, 0.36688,  0.426036, 0.490127, 0.554217,
    0.613373,    0.121737,  0.187122, 0.265825, 0.334606, 0.260918, 0.182743, 0.645647, 0.714428,
    0.793132,    0.858516,  0.79751,  0.719335, 0.254149, 0.340985, 0.428858, 0.490127, 0.551395,
    0.639268,    0.726104,  0.642159, 0.556721, 0.490127, 0.423532, 0.338094, 0.290379, 0.428096,
    0.490127,    0.552157,  0.689874, 0.553364, 0.490127, 0.42689};
constexpr double kMeanFaceY[51] = {
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915,
    0.106454, 0.203352, 0.307009,  0.409805,  0.515625,  0.587326,  0.609345,  0.628106,  0.609345,
    0.587326, 0.216423, 0.178758,  0.179852,  0.231733,  0.245099,  0.244077,  0.231733,  0.179852,
    0.178758, 0.216423, 0.244077,  0.245099,  0.780233,  0.745405,  0.727388,  0.742578,  0.727388,
    0.745405, 0.780233, 0.864805,  0.902192,  0.909281,  0.902192,  0.864805,  0.784792,  0.778746,
    0.785343, 0.778746, 0.784792,  0.824182,  0.831803,  0.824182};
// The jaw line (points 0..16) of an average face in the same unit box,
// measured on 300-W HELEN training faces (tests/fixtures/crop-calibrate.cpp).
constexpr double kMeanJawX[17] = {-0.0933, -0.0902, -0.0724, -0.0396, 0.0218, 0.1183,
                                  0.2345,  0.3591,  0.4975,  0.6343,  0.7578, 0.8726,
                                  0.9670,  1.0295,  1.0628,  1.0807,  1.0883};
constexpr double kMeanJawY[17] = {0.2368, 0.3925, 0.5473, 0.6970, 0.8355, 0.9563,
                                  1.0556, 1.1338, 1.1536, 1.1280, 1.0481, 0.9500,
                                  0.8313, 0.6932, 0.5451, 0.3934, 0.2392};

constexpr std::size_t kAlignFirst = 27, kAlignLast = 47;  // eyes and nose

// Placement of the unit-box template in the crop, in units of the crop side
// (0 = the crop's left/top edge, 1 = its right/bottom edge): an average
// face's 68-point bounding box is centred and spans 0.8 of the crop.
// Measured by crop-calibrate.
constexpr double kTemplateScale = 0.666555;
constexpr double kTemplateX = 0.169542, kTemplateY = 0.114244;

// Box calibrations (see detect.hpp): medians over the faces each detector
// finds among the 870 HELEN training images (haar-default 834, haar-alt
// 792, haar-alt2 809, lbp 745, lbp-improved 755, dlib 828), measured by
// `crop-calibrate .../300w-subset/helen/trainset`.
constexpr BoxCalibration kCalibDlib{0.0106, 0.0806, 1.1954};
constexpr BoxCalibration kCalibHaarDefault{0.0051, 0.1353, 1.0493};
constexpr BoxCalibration kCalibHaarAlt{0.0023, 0.1389, 1.0606};
constexpr BoxCalibration kCalibHaarAlt2{0.0035, 0.1401, 1.0721};
constexpr BoxCalibration kCalibLbp{0.0070, 0.1367, 1.0504};
constexpr BoxCalibration kCalibLbpImproved{0.0121, 0.0999, 1.5386};
constexpr BoxCalibration kCalibNone{0, 0, 1};
// BlazeFace finds all 870 (same command), and its crops are framed by its
// keypoints (eyes, nose tip, mouth) placed where the same command measured
// them in the landmark crops (medians, fractions of the crop side).
constexpr BoxCalibration kCalibBlazeFace{
    -0.0033,
    0.0585,
    1.1605,
    true,
    {{{0.3141, 0.2636}, {0.6764, 0.2626}, {0.4860, 0.4758}, {0.4905, 0.6568}}}};
constexpr BoxCalibration kCalibBlazeFaceFront{
    0.0036,
    0.0495,
    1.2100,
    true,
    {{{0.3199, 0.2700}, {0.6765, 0.2717}, {0.4957, 0.4752}, {0.4953, 0.6444}}}};

void sort_largest_first(std::vector<Detection>& d) {
  std::stable_sort(d.begin(), d.end(), [](const Detection& a, const Detection& b) {
    return a.box.area() > b.box.area();
  });
}

void require_gray(const cv::Mat& gray) {
  if (gray.empty()) throw RecordError("empty image");
  if (gray.type() != CV_8UC1) throw RecordError("expected an 8-bit grayscale image");
}

class CascadeDetector : public FaceDetector {
 public:
  CascadeDetector(std::string name, std::string file, BoxCalibration c)
      : FaceDetector(std::move(name), c), file_(std::move(file)) {
    if (!std::filesystem::exists(file_))
      throw FatalError(file_ + ": cascade not found (install opencv-data)");
    if (!cascade_.load(file_)) throw FatalError(file_ + ": cannot load cascade");
  }
  std::vector<Detection> detect(const cv::Mat& gray) override {
    require_gray(gray);
    cv::Mat eq;
    cv::equalizeHist(gray, eq);
    // Faces under 1/20 of the short side (or 24 px) are not looked for: on
    // large photos the smallest scales cost most and are mostly noise.
    int min_side = std::max(24, std::min(gray.cols, gray.rows) / 20);
    std::vector<cv::Rect> rects;
    std::vector<int> neighbours;
    cascade_.detectMultiScale(eq, rects, neighbours, 1.1, 3, 0, cv::Size(min_side, min_side));
    std::vector<Detection> out;
    for (std::size_t i = 0; i < rects.size(); ++i) {
      const auto& r = rects[i];
      out.push_back({{double(r.x), double(r.y), double(r.width), double(r.height)},
                     i < neighbours.size() ? double(neighbours[i]) : 1.0});
    }
    sort_largest_first(out);
    return out;
  }
  std::unique_ptr<FaceDetector> clone() const override {
    return std::make_unique<CascadeDetector>(name(), file_, calibration());
  }

 private:
  std::string file_;
  cv::CascadeClassifier cascade_;
};

class DlibDetector : public FaceDetector {
 public:
  DlibDetector() : FaceDetector("dlib", kCalibDlib), det_(dlib::get_frontal_face_detector()) {}
  std::vector<Detection> detect(const cv::Mat& gray) override {
    require_gray(gray);
    dlib::cv_image<unsigned char> img(gray);
    std::vector<dlib::rect_detection> found;
    // The HOG detector's window is 80x80: small images are doubled first so
    // that faces down to ~40 px are found.
    bool up = std::min(gray.cols, gray.rows) < 400;
    if (up) {
      dlib::array2d<unsigned char> big;
      dlib::pyramid_up(img, big, dlib::pyramid_down<2>());
      det_(big, found);
    } else {
      det_(img, found);
    }
    std::vector<Detection> out;
    dlib::pyramid_down<2> pyr;
    for (const auto& d : found) {
      dlib::rectangle r = up ? dlib::rectangle(pyr.rect_down(d.rect)) : d.rect;
      out.push_back({{double(r.left()), double(r.top()), double(r.width()), double(r.height())},
                     d.detection_confidence});
    }
    sort_largest_first(out);
    return out;
  }
  std::unique_ptr<FaceDetector> clone() const override { return std::make_unique<DlibDetector>(); }

 private:
  dlib::frontal_face_detector det_;
};

// MediaPipe's BlazeFace (edan/blazeface.hpp) through OpenCV's dnn module.
// The image is run whole (letterboxed to a square, black padding), and, when
// `tiled` and its longer side is at least kTileFrom model inputs, again in
// overlapping square tiles of half, a quarter, ... of that side down to the
// input's own size, so that small faces in a large photo are seen at the
// resolution the model was trained for. A detection that touches a tile's
// inner edge is dropped (the face is cut there; the overlap of a quarter
// tile shows it whole in a neighbour, or the coarser level finds it), and so
// is one that overlaps a face of a coarser level. Each level's detections
// are merged by weighted suppression.
class BlazeFaceDetector : public FaceDetector {
 public:
  BlazeFaceDetector(std::string name, std::string file, int input_size, bool tiled,
                    BoxCalibration c)
      : FaceDetector(std::move(name), c),
        file_(std::move(file)),
        input_size_(input_size),
        tiled_(tiled) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file_, ec))
      throw FatalError(file_ +
                       ": BlazeFace model not found (run `make deps`, which fetches it, "
                       "or set EDAN_BLAZEFACE_DIR to the folder holding it)");
    try {
      net_ = cv::dnn::readNetFromONNX(file_);
    } catch (const cv::Exception& e) {
      throw FatalError(file_ + ": cannot load the BlazeFace model: " + e.what());
    }
    out_names_ = net_.getUnconnectedOutLayersNames();
    if (out_names_.size() != 4) throw FatalError(file_ + ": not a BlazeFace model (4 outputs)");
  }

  std::vector<Detection> detect(const cv::Mat& gray) override {
    require_gray(gray);
    cv::Mat rgb;
    cv::cvtColor(gray, rgb, cv::COLOR_GRAY2RGB);
    const double W = gray.cols, H = gray.rows, M = std::max(W, H);
    std::vector<Detection> kept = weighted_nms(run_tile(rgb, {0, 0, M}, false), kMinIou);
    const bool tile = tiled_ && M >= kTileFrom * input_size_;
    for (double side = M / 2; tile && side >= input_size_; side /= 2) {
      const double stride = 0.75 * side;
      const int nx = W <= side ? 1 : 1 + static_cast<int>(std::ceil((W - side) / stride));
      const int ny = H <= side ? 1 : 1 + static_cast<int>(std::ceil((H - side) / stride));
      std::vector<Detection> level;
      for (int j = 0; j < ny; ++j)
        for (int i = 0; i < nx; ++i) {
          double x0 = nx == 1 ? 0 : i * (W - side) / (nx - 1);
          double y0 = ny == 1 ? 0 : j * (H - side) / (ny - 1);
          auto found = run_tile(rgb, {x0, y0, side}, true);
          level.insert(level.end(), found.begin(), found.end());
        }
      // A tile adds only faces where the coarser views found none: seen up
      // close, part of a large face can pass for a face of its own.
      for (auto& d : weighted_nms(std::move(level), kMinIou)) {
        bool covered = false;
        for (const auto& k : kept)
          covered = covered || box_intersection(d.box, k.box) >
                                   kMaxCover * std::min(d.box.area(), k.box.area());
        if (!covered) kept.push_back(std::move(d));
      }
    }
    sort_largest_first(kept);
    return kept;
  }

  std::unique_ptr<FaceDetector> clone() const override {
    return std::make_unique<BlazeFaceDetector>(name(), file_, input_size_, tiled_, calibration());
  }

 private:
  static constexpr double kMinScore = 0.5;  // MediaPipe's threshold
  static constexpr double kMinIou = 0.3;    // MediaPipe's suppression overlap
  // Tiles only for images whose longer side is at least this many model
  // inputs (1,024 px for the 256-px model): below, the whole-image view
  // finds faces down to about 1/13 of the side (50 px in a 640x480 photo)
  // at one pass (tiles cost 6 more there).
  static constexpr double kTileFrom = 4;
  // A tile's face overlapping a coarser view's by this share of the smaller
  // box is the same face (or part of it).
  static constexpr double kMaxCover = 0.3;

  std::vector<Detection> run_tile(const cv::Mat& rgb, const BlazeTile& tile, bool inner) {
    const int S = input_size_;
    // The tile's part of the image, pasted into a black square canvas.
    const int side = static_cast<int>(std::lround(tile.side));
    const int x0 = static_cast<int>(std::lround(tile.x0)),
              y0 = static_cast<int>(std::lround(tile.y0));
    cv::Rect roi = cv::Rect(x0, y0, side, side) & cv::Rect(0, 0, rgb.cols, rgb.rows);
    cv::Mat canvas(side, side, CV_8UC3, cv::Scalar::all(0));
    rgb(roi).copyTo(canvas(cv::Rect(roi.x - x0, roi.y - y0, roi.width, roi.height)));
    cv::Mat input;
    cv::resize(canvas, input, cv::Size(S, S), 0, 0, side > S ? cv::INTER_AREA : cv::INTER_LINEAR);
    cv::Mat pixels;
    input.convertTo(pixels, CV_32F, 2.0 / 255, -1.0);  // [-1, 1], as MediaPipe feeds it
    const int shape[] = {1, S, S, 3};                  // NHWC
    net_.setInput(cv::Mat(4, shape, CV_32F, pixels.data));
    std::vector<cv::Mat> outs;
    net_.forward(outs, out_names_);
    // Two grids (512 and 384 anchors), each a score and a regression output.
    const cv::Mat* scores[2] = {nullptr, nullptr};
    const cv::Mat* regs[2] = {nullptr, nullptr};
    for (const auto& o : outs) {
      if (o.dims != 3 || o.type() != CV_32F) throw FatalError(file_ + ": unexpected output");
      const int grid = o.size[1] == 512 ? 0 : o.size[1] == 384 ? 1 : -1;
      if (grid < 0) throw FatalError(file_ + ": unexpected output size");
      (o.size[2] == 1 ? scores : regs)[grid] = &o;
    }
    if (!scores[0] || !scores[1] || !regs[0] || !regs[1] || regs[0]->size[2] != 16)
      throw FatalError(file_ + ": unexpected outputs");
    std::vector<float> s(kBlazeAnchors), r(kBlazeAnchors * 16);
    std::copy_n(scores[0]->ptr<float>(), 512, s.begin());
    std::copy_n(scores[1]->ptr<float>(), 384, s.begin() + 512);
    std::copy_n(regs[0]->ptr<float>(), 512 * 16, r.begin());
    std::copy_n(regs[1]->ptr<float>(), 384 * 16, r.begin() + 512 * 16);
    BlazeTile t{double(x0), double(y0), double(side)};
    auto found = decode_blazeface(s.data(), r.data(), S, t, kMinScore);
    if (!inner) return found;
    // Drop faces cut by an edge of the tile that lies inside the image.
    const double margin = 0.02 * side;
    std::vector<Detection> kept;
    for (auto& d : found) {
      const auto& b = d.box;
      bool cut = (x0 > 0 && b.x < x0 + margin) || (y0 > 0 && b.y < y0 + margin) ||
                 (x0 + side < rgb.cols && b.x + b.w > x0 + side - margin) ||
                 (y0 + side < rgb.rows && b.y + b.h > y0 + side - margin);
      if (!cut) kept.push_back(std::move(d));
    }
    return kept;
  }

  std::string file_;
  int input_size_;
  bool tiled_;
  cv::dnn::Net net_;
  std::vector<std::string> out_names_;
};

std::string blazeface_file(const char* name) {
  if (const char* dir = std::getenv("EDAN_BLAZEFACE_DIR"); dir && *dir) return join_path(dir, name);
  return data_file_path(std::string("blazeface/") + name);
}

class WholeImage : public FaceDetector {
 public:
  WholeImage() : FaceDetector("none", kCalibNone) {}
  std::vector<Detection> detect(const cv::Mat& gray) override {
    require_gray(gray);
    return {{{0, 0, double(gray.cols), double(gray.rows)}, 1.0}};
  }
  std::unique_ptr<FaceDetector> clone() const override { return std::make_unique<WholeImage>(); }
};

struct CascadeSpec {
  const char* name;
  const char* file;
  BoxCalibration calib;
};
const CascadeSpec kCascades[] = {
    {"haar", "haarcascades/haarcascade_frontalface_alt2.xml", kCalibHaarAlt2},
    {"haar-default", "haarcascades/haarcascade_frontalface_default.xml", kCalibHaarDefault},
    {"haar-alt", "haarcascades/haarcascade_frontalface_alt.xml", kCalibHaarAlt},
    {"haar-alt2", "haarcascades/haarcascade_frontalface_alt2.xml", kCalibHaarAlt2},
    {"lbp", "lbpcascades/lbpcascade_frontalface.xml", kCalibLbp},
    {"lbp-improved", "lbpcascades/lbpcascade_frontalface_improved.xml", kCalibLbpImproved},
};

}  // namespace

const std::vector<std::string>& detector_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    n.push_back("blazeface");
    n.push_back("blazeface-front");
    for (const auto& c : kCascades) n.push_back(c.name);
    n.push_back("dlib");
    n.push_back("none");
    return n;
  }();
  return names;
}

std::unique_ptr<FaceDetector> make_detector(const std::string& name,
                                            const std::string& opencv_data_dir) {
  if (name == "blazeface")
    return std::make_unique<BlazeFaceDetector>(
        name, blazeface_file("face_detection_back_256x256_barracuda.onnx"), 256, true,
        kCalibBlazeFace);
  if (name == "blazeface-front")
    return std::make_unique<BlazeFaceDetector>(
        name, blazeface_file("face_detection_front_128x128_barracuda.onnx"), 128, false,
        kCalibBlazeFaceFront);
  if (name == "dlib") return std::make_unique<DlibDetector>();
  if (name == "none") return std::make_unique<WholeImage>();
  std::string dir = opencv_data_dir.empty() ? kOpenCVDataDir : opencv_data_dir;
  for (const auto& c : kCascades)
    if (name == c.name) return std::make_unique<CascadeDetector>(name, dir + "/" + c.file, c.calib);
  std::string known;
  for (const auto& n : detector_names()) known += (known.empty() ? "" : ", ") + n;
  throw UsageError("unknown detector '" + name + "' (known: " + known + ")");
}

// --- landmarks --------------------------------------------------------------

struct Landmarker::Impl {
  dlib::shape_predictor sp;
};

Landmarker::Landmarker() : impl_(std::make_unique<Impl>()) {}
Landmarker::~Landmarker() = default;

std::shared_ptr<const Landmarker> Landmarker::load(const std::string& path) {
  std::string file =
      path.empty() ? std::string(kDlibDataDir) + "/shape_predictor_68_face_landmarks.dat" : path;
  if (!std::filesystem::exists(file))
    throw FatalError(file + ": shape predictor not found (install libdlib-data)");
  std::shared_ptr<Landmarker> lm(new Landmarker());
  try {
    dlib::deserialize(file) >> lm->impl_->sp;
  } catch (const std::exception& e) {
    throw FatalError(file + ": cannot load shape predictor: " + e.what());
  }
  if (lm->impl_->sp.num_parts() != kNumLandmarks)
    throw FatalError(file + ": expected a 68-point shape predictor, got " +
                     std::to_string(lm->impl_->sp.num_parts()) + " points");
  return lm;
}

Shape Landmarker::fit(const cv::Mat& gray, const FaceBox& b) const {
  require_gray(gray);
  dlib::cv_image<unsigned char> img(gray);
  long l = std::lround(b.x), t = std::lround(b.y);
  dlib::rectangle rect(l, t, l + std::max(1L, std::lround(b.w)) - 1,
                       t + std::max(1L, std::lround(b.h)) - 1);
  dlib::full_object_detection d = impl_->sp(img, rect);
  Shape s(d.num_parts());
  for (unsigned long i = 0; i < d.num_parts(); ++i)
    s[i] = {double(d.part(i).x()), double(d.part(i).y())};
  return s;
}

// --- geometry ---------------------------------------------------------------

Shape canonical_template(int size) {
  Shape s(kNumLandmarks);
  auto place = [&](double u, double v) {
    return Point2{size * (kTemplateX + kTemplateScale * u) - 0.5,
                  size * (kTemplateY + kTemplateScale * v) - 0.5};
  };
  for (std::size_t i = 0; i < 17; ++i) s[i] = place(kMeanJawX[i], kMeanJawY[i]);
  for (std::size_t i = 17; i < kNumLandmarks; ++i)
    s[i] = place(kMeanFaceX[i - 17], kMeanFaceY[i - 17]);
  return s;
}

namespace {
// The least-squares similarity taking `from` onto `to` (crop pixels) as the
// geometry of a size x size crop; RecordError(degenerate) when the points
// coincide.
CropGeometry fitted_geometry(const Shape& from, const Shape& to, int size, const char* degenerate) {
  CropGeometry g;
  g.size = size;
  try {
    g.to_crop = estimate_similarity(from, to);
  } catch (const std::exception&) {
    throw RecordError(degenerate);
  }
  if (!(g.to_crop.scale() > 1e-9) || !std::isfinite(g.to_crop.scale()))
    throw RecordError(degenerate);
  return g;
}
}  // namespace

CropGeometry geometry_from_landmarks(const Shape& landmarks, int size) {
  if (landmarks.size() != kNumLandmarks)
    throw RecordError("landmarks: expected 68 points, got " + std::to_string(landmarks.size()));
  Shape tmpl = canonical_template(size);
  Shape from(landmarks.begin() + kAlignFirst, landmarks.begin() + kAlignLast + 1);
  Shape to(tmpl.begin() + kAlignFirst, tmpl.begin() + kAlignLast + 1);
  return fitted_geometry(from, to, size, "landmarks: degenerate shape (eyes and nose coincide)");
}

CropGeometry geometry_from_box(const FaceBox& box, const BoxCalibration& c, int size) {
  if (!(box.w > 0 && box.h > 0)) throw RecordError("box: empty face box");
  double side = c.k * std::sqrt(box.w * box.h);
  Point2 centre = box.centre();
  centre.x += c.dx * box.w;
  centre.y += c.dy * box.h;
  CropGeometry g;
  g.size = size;
  double s = size / side;
  g.to_crop = {s, 0, (size - 1) / 2.0 - s * centre.x, (size - 1) / 2.0 - s * centre.y};
  return g;
}

CropGeometry geometry_from_box_and_eyes(const FaceBox& box, const BoxCalibration& c, int size,
                                        const Point2& right_eye, const Point2& left_eye) {
  if (!(box.w > 0 && box.h > 0)) throw RecordError("box: empty face box");
  const double angle = std::atan2(left_eye.y - right_eye.y, left_eye.x - right_eye.x);
  if (!std::isfinite(angle)) return geometry_from_box(box, c, size);
  const double co = std::cos(angle), si = std::sin(angle);
  const double ox = c.dx * box.w, oy = c.dy * box.h;
  Point2 centre = box.centre();
  centre.x += co * ox - si * oy;
  centre.y += si * ox + co * oy;
  const double s = size / (c.k * std::sqrt(box.w * box.h));
  // crop = s R(-angle) (p - centre) + mid; Similarity: [a -b; b a] p + t.
  const double a = s * co, b = -s * si, mid = (size - 1) / 2.0;
  CropGeometry g;
  g.size = size;
  g.to_crop = {a, b, mid - (a * centre.x - b * centre.y), mid - (b * centre.x + a * centre.y)};
  return g;
}

CropGeometry geometry_from_keypoints(const std::vector<Point2>& keypoints, const BoxCalibration& c,
                                     int size) {
  if (!c.has_keypoints || keypoints.size() < c.keypoints.size())
    throw RecordError("keypoints: none to frame the face by");
  Shape from(keypoints.begin(), keypoints.begin() + c.keypoints.size()), to;
  for (const auto& p : c.keypoints) to.push_back({p.x * size - 0.5, p.y * size - 0.5});
  return fitted_geometry(from, to, size, "keypoints: degenerate (eyes, nose and mouth coincide)");
}

CropGeometry geometry_from_detection(const Detection& d, const BoxCalibration& c, int size) {
  if (d.keypoints.size() == kBlazeKeypoints) {
    if (c.has_keypoints) {
      try {
        return geometry_from_keypoints(d.keypoints, c, size);
      } catch (const RecordError&) {
        // degenerate keypoints: the box and the eyes
      }
    }
    return geometry_from_box_and_eyes(d.box, c, size, d.keypoints[kRightEye],
                                      d.keypoints[kLeftEye]);
  }
  return geometry_from_box(d.box, c, size);
}

FaceBox dlib_box_for(const CropGeometry& g) {
  double mid = (g.size - 1) / 2.0;
  Point2 centre = g.to_source(Point2{mid, mid});
  double side = g.size / g.to_crop.scale();  // the canonical square in the source
  double w = side / kCalibDlib.k;
  centre.x -= kCalibDlib.dx * w;
  centre.y -= kCalibDlib.dy * w;
  return {centre.x - (w - 1) / 2, centre.y - (w - 1) / 2, w, w};
}

cv::Mat warp_crop(const cv::Mat& gray, const CropGeometry& g) {
  require_gray(gray);
  if (g.size < 1) throw RecordError("crop size must be positive");
  const Similarity& t = g.to_crop;
  // The part of the source the crop sees, with a margin for interpolation.
  Similarity inv = t.inverse();
  double lo_x = 1e300, lo_y = 1e300, hi_x = -1e300, hi_y = -1e300;
  for (double cx : {-0.5, g.size - 0.5})
    for (double cy : {-0.5, g.size - 0.5}) {
      Point2 p = inv.apply(Point2{cx, cy});
      lo_x = std::min(lo_x, p.x), hi_x = std::max(hi_x, p.x);
      lo_y = std::min(lo_y, p.y), hi_y = std::max(hi_y, p.y);
    }
  int x0 = std::max(0, static_cast<int>(std::floor(lo_x)) - 2);
  int y0 = std::max(0, static_cast<int>(std::floor(lo_y)) - 2);
  int x1 = std::min(gray.cols, static_cast<int>(std::ceil(hi_x)) + 3);
  int y1 = std::min(gray.rows, static_cast<int>(std::ceil(hi_y)) + 3);
  if (x1 <= x0 || y1 <= y0) return cv::Mat(g.size, g.size, CV_8UC1, cv::Scalar(0));
  cv::Mat src = gray(cv::Rect(x0, y0, x1 - x0, y1 - y0));
  // crop = A p + t with p = p_roi + (x0, y0).
  double a = t.a, b = t.b;
  double tx = t.tx + a * x0 - b * y0, ty = t.ty + b * x0 + a * y0;
  double m00 = a, m01 = -b, m10 = b, m11 = a;
  double s = t.scale();
  if (s < 0.5) {
    // Area-average down to twice the crop's resolution first; the source
    // pixel p maps to (p + 0.5) * r - 0.5 in the reduced image.
    int w = std::max(1, static_cast<int>(std::lround(src.cols * 2 * s)));
    int h = std::max(1, static_cast<int>(std::lround(src.rows * 2 * s)));
    double rx = double(w) / src.cols, ry = double(h) / src.rows;
    cv::Mat small;
    cv::resize(src, small, cv::Size(w, h), 0, 0, cv::INTER_AREA);
    src = small;
    // p = (q + 0.5) / r - 0.5  =>  crop = M diag(1/r) q + M (0.5/r - 0.5) + t
    double ox = 0.5 / rx - 0.5, oy = 0.5 / ry - 0.5;
    tx += m00 * ox + m01 * oy;
    ty += m10 * ox + m11 * oy;
    m00 /= rx, m10 /= rx, m01 /= ry, m11 /= ry;
  }
  cv::Mat m = (cv::Mat_<double>(2, 3) << m00, m01, tx, m10, m11, ty);
  cv::Mat out;
  cv::warpAffine(src, out, m, cv::Size(g.size, g.size), cv::INTER_LINEAR, cv::BORDER_CONSTANT,
                 cv::Scalar(0));
  return out;
}

// --- faces for a model ------------------------------------------------------

cv::Mat resize_to_square(const cv::Mat& gray, int size) {
  if (gray.cols == size && gray.rows == size) return gray.isContinuous() ? gray : gray.clone();
  cv::Mat out;
  bool shrink = gray.cols > size || gray.rows > size;
  cv::resize(gray, out, cv::Size(size, size), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

Shape FaceInput::to_output(Shape s, double model_size) const {
  for (auto& q : s)
    q = {(q.x + 0.5) * frame_size_x / model_size - 0.5,
         (q.y + 0.5) * frame_size_y / model_size - 0.5};
  return geometry ? geometry->to_source(s) : s;
}

boost::json::array box_json(const FaceBox& b) {
  return {json_number(b.x, 0.01), json_number(b.y, 0.01), json_number(b.w, 0.01),
          json_number(b.h, 0.01)};
}

void set_face_fields(Record& r, std::int64_t index, const FaceBox& box, double score,
                     const std::vector<Point2>& keypoints) {
  const bool named = r.contains("box") || r.contains("landmarks");
  r["face"] = index;
  r["box"] = box_json(box);
  if (!(named && r.contains("score"))) r["score"] = json_number(score, 1e-4);
  if (keypoints.empty())
    r.erase("keypoints");  // an earlier detector's
  else
    r["keypoints"] = shape_to_json(keypoints);
}

std::vector<FaceInput> read_faces(const Record& r, int size, FaceCropper* cropper) {
  if (auto crop = get_string(r, "crop")) {
    FaceInput f;
    cv::Mat gray = read_gray(*crop);
    f.pixels = resize_to_square(gray, size);
    f.geometry = get_crop_geometry(r);
    f.frame_size_x = f.geometry ? f.geometry->size : gray.cols;
    f.frame_size_y = f.geometry ? f.geometry->size : gray.rows;
    return {std::move(f)};
  }
  auto image = get_string(r, "image");
  if (!image) throw RecordError("no \"crop\" or \"image\" field");
  if (!cropper) throw std::logic_error("read_face: a record without a crop needs a cropper");
  auto found = cropper->crop(r);  // largest first
  if (found.empty()) throw RecordError(*image + ": no face found");
  std::vector<FaceInput> out;
  for (Face& face : found) {
    FaceInput f;
    f.pixels = resize_to_square(face.crop, size);
    f.geometry = face.geometry;
    f.frame_size_x = f.frame_size_y = face.geometry.size;
    f.box = face.box;
    f.score = face.score;
    f.keypoints = face.keypoints;
    f.fallback = face.fallback;
    out.push_back(std::move(f));
  }
  return out;
}

FaceInput read_face(const Record& r, int size, FaceCropper* cropper) {
  return std::move(read_faces(r, size, cropper).front());
}

// --- cropper ----------------------------------------------------------------

Fallback parse_fallback(const std::string& mode) {
  if (mode == "none") return Fallback::kNone;
  if (mode == "small") return Fallback::kSmall;
  if (mode == "full") return Fallback::kFull;
  throw UsageError("--fallback must be none, small or full (got '" + mode + "')");
}

FaceCropper::FaceCropper(const CropOptions& opt, std::shared_ptr<const Landmarker> landmarker)
    : opt_(opt), landmarker_(std::move(landmarker)) {
  if (opt_.size < 8 || opt_.size > 4096)
    throw UsageError("--size must be between 8 and 4096 (got " + std::to_string(opt_.size) + ")");
  if (opt_.max_faces < 0) throw UsageError("--max-faces must be 0 (all) or more");
  if (!opt_.landmarks.empty() && opt_.landmarks != "dlib" && opt_.landmarks != "none")
    throw UsageError("unknown landmark method '" + opt_.landmarks + "' (known: dlib, none)");
  detector_ = make_detector(opt_.detector, opt_.opencv_data_dir);
  if (opt_.landmarks == "dlib" && !landmarker_) landmarker_ = Landmarker::load(opt_.dlib_model);
}

bool FaceCropper::whole_image_allowed(const cv::Mat& gray) const {
  return opt_.fallback == Fallback::kFull ||
         (opt_.fallback == Fallback::kSmall && std::min(gray.cols, gray.rows) <= kSmallImageSide);
}

FaceCropper FaceCropper::clone() const { return FaceCropper(opt_, landmarker_); }

std::vector<Face> FaceCropper::crop(const cv::Mat& gray, const std::optional<Shape>& landmarks,
                                    const std::optional<FaceBox>& box) {
  require_gray(gray);
  const int size = opt_.size;
  bool fit = landmarker_ && opt_.landmarks == "dlib";
  std::vector<Face> faces;
  if (landmarks && opt_.frame_by_detector) {
    faces.push_back(frame_by_detector(gray, *landmarks, box));
  } else if (landmarks) {
    Face f;
    Shape shape = *landmarks;
    CropGeometry g = geometry_from_landmarks(shape, size);
    if (fit && opt_.refit) {
      shape = landmarker_->fit(gray, box ? *box : dlib_box_for(g));
      g = geometry_from_landmarks(shape, size);
    }
    if (box) {
      f.box = *box;
    } else {
      auto bb = bounding_box(*landmarks);
      f.box = {bb[0], bb[1], bb[2] - bb[0] + 1, bb[3] - bb[1] + 1};
    }
    f.geometry = g;
    f.landmarks = g.crop_points(shape);
    faces.push_back(std::move(f));
  } else {
    std::vector<Detection> dets;
    BoxCalibration calib = kCalibDlib;
    bool dlib_style = true, fallback = false;
    if (box) {
      dets.push_back({*box, 1.0});
    } else {
      dets = detector_->detect(gray);
      calib = detector_->calibration();
      dlib_style = detector_->name() == "dlib";
      if (dets.empty()) {
        if (!whole_image_allowed(gray)) throw RecordError("no face found");
        dets.push_back({{0, 0, double(gray.cols), double(gray.rows)}, 0.0});
        calib = kCalibNone;
        dlib_style = false;
        fallback = true;
      }
    }
    if (opt_.max_faces > 0 && dets.size() > static_cast<std::size_t>(opt_.max_faces))
      dets.resize(opt_.max_faces);
    for (const auto& d : dets) {
      Face f;
      f.box = d.box;
      f.score = d.score;
      f.keypoints = d.keypoints;
      f.fallback = fallback;
      f.geometry = geometry_from_detection(d, calib, size);
      if (fit) {
        Shape shape = landmarker_->fit(gray, dlib_style ? d.box : dlib_box_for(f.geometry));
        // A fallback keeps the whole image as its crop, and --frame detector
        // the detection; the fitted points are still mapped into it.
        if (!fallback && !opt_.frame_by_detector) f.geometry = geometry_from_landmarks(shape, size);
        f.landmarks = f.geometry.crop_points(shape);
      }
      faces.push_back(std::move(f));
    }
  }
  for (auto& f : faces) f.crop = warp_crop(gray, f.geometry);
  return faces;
}

// The detection that matches known landmarks: its box holds their centre
// and its side is within a factor 2 of their bounding box's; the largest
// such. None: the whole image with --fallback full, else an error.
Face FaceCropper::frame_by_detector(const cv::Mat& gray, const Shape& landmarks,
                                    const std::optional<FaceBox>& box) {
  auto bb = bounding_box(landmarks);
  const double cx = (bb[0] + bb[2]) / 2, cy = (bb[1] + bb[3]) / 2;
  const double side = std::max(bb[2] - bb[0], bb[3] - bb[1]);
  std::vector<Detection> dets = box ? std::vector<Detection>{{*box, 1.0}} : detector_->detect(gray);
  BoxCalibration calib = box ? kCalibDlib : detector_->calibration();
  const Detection* best = nullptr;
  for (const auto& d : dets) {
    const auto& b = d.box;
    const double s = std::max(b.w, b.h);
    bool holds = cx >= b.x && cx <= b.x + b.w && cy >= b.y && cy <= b.y + b.h;
    if (holds && s >= side / 2 && s <= side * 2 && (!best || b.area() > best->box.area()))
      best = &d;
  }
  Face f;
  if (best) {
    f.box = best->box;
    f.score = best->score;
    f.keypoints = best->keypoints;
    f.geometry = geometry_from_detection(*best, calib, opt_.size);
  } else {
    if (!whole_image_allowed(gray))
      throw RecordError("no detected face matches the record's landmarks");
    f.box = {0, 0, double(gray.cols), double(gray.rows)};
    f.score = 0;
    f.fallback = true;
    f.geometry = geometry_from_box(f.box, kCalibNone, opt_.size);
  }
  f.landmarks = f.geometry.crop_points(landmarks);
  return f;
}

std::vector<Face> FaceCropper::crop(const Record& r) {
  auto image = get_string(r, "image");
  if (!image) throw RecordError("no \"image\" field");
  if (image->empty()) throw RecordError("\"image\" is empty");
  std::optional<Shape> landmarks = get_shape(r, "landmarks");
  if (landmarks) {
    if (auto g = get_crop_geometry(r)) landmarks = g->to_source(*landmarks);
  }
  std::optional<FaceBox> box = get_box(r);
  cv::Mat gray = read_gray(*image);
  try {
    // A box off the image would frame black padding only, and be classified.
    if (box &&
        !(box->x < gray.cols && box->y < gray.rows && box->x + box->w > 0 && box->y + box->h > 0))
      throw RecordError("box: " + to_text(box_json(*box)) + " lies outside the " +
                        std::to_string(gray.cols) + "x" + std::to_string(gray.rows) + " image");
    return crop(gray, landmarks, box);
  } catch (const RecordError& e) {
    throw RecordError(*image + ": " + e.what());
  }
}

std::string crop_path(const std::string& out_dir, const std::string& image, int face) {
  std::string rel;
  std::size_t i = 0;
  if (!image.empty() && image[0] == '/') rel = "%2F";
  while (i <= image.size()) {
    std::size_t j = image.find('/', i);
    if (j == std::string::npos) j = image.size();
    std::string c = image.substr(i, j - i);
    i = j + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      c = "%2E%2E";
    } else {
      std::string esc;
      for (char ch : c) esc += ch == '%' ? std::string("%25") : std::string(1, ch);
      c = esc;
    }
    rel += (rel.empty() ? "" : "/") + c;
  }
  std::string dir = out_dir.empty() ? "." : out_dir;
  return dir + "/" + rel + "." + std::to_string(face) + ".png";
}

std::vector<Record> crop_record(FaceCropper& cropper, const Record& r, const std::string& out_dir) {
  std::vector<Face> faces = cropper.crop(r);
  std::string image = *get_string(r, "image");
  std::vector<Record> out;
  for (std::size_t i = 0; i < faces.size(); ++i) {
    const Face& f = faces[i];
    Record o = r;
    set_face_fields(o, static_cast<std::int64_t>(i), f.box, f.score, f.keypoints);
    std::string path = crop_path(out_dir, image, static_cast<int>(i));
    write_png(path, f.crop);
    o["crop"] = path;
    set_crop_geometry(o, f.geometry);
    if (f.landmarks) o["landmarks"] = shape_to_json(*f.landmarks);  // 0.01 px
    if (f.fallback) o["fallback"] = true;
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace edan
