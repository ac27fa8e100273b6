// BlazeFace's anchors, output decoding and weighted suppression against
// hand-computed values, and the eye-levelled crop geometry; the network on
// real faces (HELEN test images, turned by 30 degrees) when the model and the
// shared data are there.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "edan/blazeface.hpp"
#include "edan/dataset.hpp"
#include "edan/detect.hpp"
#include "edan/error.hpp"
#include "edan/fs.hpp"
#include "edan/image.hpp"

namespace fs = std::filesystem;

namespace {
constexpr double kPi = 3.14159265358979323846;

// One model output, all logits far below any threshold.
struct RawOutput {
  std::vector<float> scores = std::vector<float>(edan::kBlazeAnchors, -50.0f);
  std::vector<float> regs = std::vector<float>(edan::kBlazeAnchors * 16, 0.0f);
  float* reg(int anchor) { return regs.data() + 16 * anchor; }
};
}  // namespace

TEST(BlazeFace_Anchors, twoGridsInOutputOrder) {
  const auto& a = edan::blazeface_anchors();
  ASSERT_EQ(a.size(), 896u);
  // 16 x 16 cells, 2 anchors each: anchors 0 and 1 share cell (0, 0).
  EXPECT_DOUBLE_EQ(a[0].x, 0.5 / 16);
  EXPECT_DOUBLE_EQ(a[0].y, 0.5 / 16);
  EXPECT_DOUBLE_EQ(a[1].x, 0.5 / 16);
  EXPECT_DOUBLE_EQ(a[2].x, 1.5 / 16);  // cell (1, 0)
  EXPECT_DOUBLE_EQ(a[2].y, 0.5 / 16);
  EXPECT_DOUBLE_EQ(a[32].x, 0.5 / 16);  // row 1 starts after 16 cells x 2
  EXPECT_DOUBLE_EQ(a[32].y, 1.5 / 16);
  EXPECT_DOUBLE_EQ(a[511].x, 15.5 / 16);
  EXPECT_DOUBLE_EQ(a[511].y, 15.5 / 16);
  // 8 x 8 cells, 6 anchors each, from anchor 512.
  EXPECT_DOUBLE_EQ(a[512].x, 0.5 / 8);
  EXPECT_DOUBLE_EQ(a[517].x, 0.5 / 8);
  EXPECT_DOUBLE_EQ(a[518].x, 1.5 / 8);
  EXPECT_DOUBLE_EQ(a[512 + 48].y, 1.5 / 8);
  EXPECT_DOUBLE_EQ(a[895].x, 7.5 / 8);
  EXPECT_DOUBLE_EQ(a[895].y, 7.5 / 8);
}

TEST(BlazeFace_Decode, boxAndKeypointsInSourcePixels) {
  RawOutput out;
  // Anchor 600: 8 x 8 grid, cell (88 / 6 = 14 -> x 6, y 1), centre (6.5/8, 1.5/8).
  const int k = 600;
  out.scores[k] = 2.0f;  // sigmoid 0.8808
  float* r = out.reg(k);
  r[0] = 12.8f, r[1] = -25.6f;  // centre offset, input pixels (S = 128)
  r[2] = 32.0f, r[3] = 64.0f;   // w, h
  for (int p = 0; p < 6; ++p) r[4 + 2 * p] = float(p), r[5 + 2 * p] = -float(p);
  // The input was a 256-px square whose top-left edge is at (100, 50).
  edan::BlazeTile tile{100, 50, 256};
  auto d = edan::decode_blazeface(out.scores.data(), out.regs.data(), 128, tile, 0.5);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NEAR(d[0].score, 1 / (1 + std::exp(-2.0)), 1e-9);
  // Unit centre (6.5/8 + 0.1, 1.5/8 - 0.2) = (0.9125, -0.0125); size (0.25, 0.5).
  EXPECT_NEAR(d[0].box.x, 100 + (0.9125 - 0.125) * 256, 1e-4);
  EXPECT_NEAR(d[0].box.y, 50 + (-0.0125 - 0.25) * 256, 1e-4);
  EXPECT_NEAR(d[0].box.w, 64, 1e-4);
  EXPECT_NEAR(d[0].box.h, 128, 1e-4);
  ASSERT_EQ(d[0].keypoints.size(), 6u);
  // Keypoint 3: unit (6.5/8 + 3/128, 1.5/8 - 3/128), pixel centres at -0.5.
  EXPECT_NEAR(d[0].keypoints[3].x, 100 + (6.5 / 8 + 3.0 / 128) * 256 - 0.5, 1e-4);
  EXPECT_NEAR(d[0].keypoints[3].y, 50 + (1.5 / 8 - 3.0 / 128) * 256 - 0.5, 1e-4);
  // The threshold is on the probability: 0.8808 passes 0.88 and fails 0.89.
  EXPECT_EQ(edan::decode_blazeface(out.scores.data(), out.regs.data(), 128, tile, 0.88).size(), 1u);
  EXPECT_TRUE(edan::decode_blazeface(out.scores.data(), out.regs.data(), 128, tile, 0.89).empty());
}

TEST(BlazeFace_Decode, emptyBoxesAndNonFiniteLogitsAreDropped) {
  RawOutput out;
  out.scores[5] = 10.0f;  // w = h = 0
  out.scores[6] = std::nanf("");
  out.reg(6)[2] = out.reg(6)[3] = 10.0f;
  EXPECT_TRUE(edan::decode_blazeface(out.scores.data(), out.regs.data(), 128, {}, 0.5).empty());
}

TEST(BlazeFace_Nms, mergesOverlapsWeightedByScoreAndKeepsTheRest) {
  edan::Detection a{{0, 0, 10, 10}, 0.9, {{1, 1}}};
  edan::Detection b{{2, 0, 10, 10}, 0.6, {{3, 1}}};  // IoU with a: 80 / 120 = 0.667
  edan::Detection c{{50, 50, 10, 10}, 0.7, {{55, 55}}};
  EXPECT_NEAR(edan::box_iou(a.box, b.box), 80.0 / 120.0, 1e-12);
  EXPECT_EQ(edan::box_iou(a.box, c.box), 0);
  auto out = edan::weighted_nms({b, c, a}, 0.3);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_DOUBLE_EQ(out[0].score, 0.9);  // highest first, the merge keeps a's score
  EXPECT_NEAR(out[0].box.x, (0.9 * 0 + 0.6 * 2) / 1.5, 1e-12);
  EXPECT_NEAR(out[0].keypoints[0].x, (0.9 * 1 + 0.6 * 3) / 1.5, 1e-12);
  EXPECT_DOUBLE_EQ(out[1].score, 0.7);
  EXPECT_DOUBLE_EQ(out[1].box.x, 50);
  // Above the overlap asked for, nothing merges.
  EXPECT_EQ(edan::weighted_nms({a, b, c}, 0.7).size(), 3u);
}

TEST(BlazeFace_Geometry, eyesLieLevelInTheCrop) {
  const edan::BoxCalibration calib{0.01, 0.1, 1.2};
  const edan::FaceBox box{100, 80, 60, 60};
  // Level eyes: the same geometry as the box alone.
  auto flat = edan::geometry_from_box_and_eyes(box, calib, 64, {110, 100}, {150, 100});
  auto plain = edan::geometry_from_box(box, calib, 64);
  EXPECT_NEAR(flat.to_crop.a, plain.to_crop.a, 1e-12);
  EXPECT_NEAR(flat.to_crop.b, 0, 1e-12);
  EXPECT_NEAR(flat.to_crop.tx, plain.to_crop.tx, 1e-9);
  EXPECT_NEAR(flat.to_crop.ty, plain.to_crop.ty, 1e-9);
  // Eyes turned by 30 degrees on screen (left eye lower): level in the crop,
  // same scale.
  const double t = 30 * kPi / 180;
  edan::Point2 re{110, 100}, le{110 + 40 * std::cos(t), 100 + 40 * std::sin(t)};
  auto g = edan::geometry_from_box_and_eyes(box, calib, 64, re, le);
  auto cr = g.to_crop.apply(re), cl = g.to_crop.apply(le);
  EXPECT_NEAR(cr.y, cl.y, 1e-9);
  EXPECT_GT(cl.x, cr.x);
  EXPECT_NEAR(g.to_crop.scale(), plain.to_crop.scale(), 1e-12);
  // The detection form picks the eyes from the keypoints.
  edan::Detection d{box, 0.9, {re, le, {}, {}, {}, {}}};
  auto gd = edan::geometry_from_detection(d, calib, 64);
  EXPECT_DOUBLE_EQ(gd.to_crop.b, g.to_crop.b);
  EXPECT_THROW(edan::geometry_from_box_and_eyes({0, 0, 0, 5}, calib, 64, re, le),
               edan::RecordError);
}

// The network itself: every one of 40 HELEN test faces is found upright and
// turned by 30 degrees, with its eyes where the ground truth has them.
TEST(BlazeFace_Helen, findsUprightAndTurnedFacesWithTheirEyes) {
  const std::string dir = std::string(EDAN_SHARED_DATA) + "/300w-subset/helen/testset";
  if (!fs::is_directory(dir)) GTEST_SKIP() << "shared data not found at " << dir;
  std::unique_ptr<edan::FaceDetector> det;
  try {
    det = edan::make_detector("blazeface");
  } catch (const edan::FatalError& e) {
    GTEST_SKIP() << e.what();
  }
  std::vector<fs::path> images;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".jpg") images.push_back(e.path());
  std::sort(images.begin(), images.end());
  images.resize(40);
  int found = 0, eyes_close = 0, tried = 0;
  for (const auto& img : images) {
    auto pts_path = img;
    pts_path.replace_extension(".pts");
    const edan::Shape s = edan::read_pts_file(pts_path.string());
    ASSERT_EQ(s.size(), 68u) << pts_path;
    cv::Mat gray = edan::read_gray(img.string());
    for (double angle : {0.0, 30.0}) {
      cv::Mat m =
          cv::getRotationMatrix2D(cv::Point2f(gray.cols / 2.0f, gray.rows / 2.0f), angle, 1);
      cv::Mat turned;
      cv::warpAffine(gray, turned, m, gray.size());
      auto move = [&](edan::Point2 p) {
        return edan::Point2{
            m.at<double>(0, 0) * p.x + m.at<double>(0, 1) * p.y + m.at<double>(0, 2),
            m.at<double>(1, 0) * p.x + m.at<double>(1, 1) * p.y + m.at<double>(1, 2)};
      };
      edan::Point2 re{0, 0}, le{0, 0};
      for (int i = 36; i < 42; ++i) re = {re.x + s[i].x / 6, re.y + s[i].y / 6};
      for (int i = 42; i < 48; ++i) le = {le.x + s[i].x / 6, le.y + s[i].y / 6};
      re = move(re), le = move(le);
      const double iod = std::hypot(le.x - re.x, le.y - re.y);
      ++tried;
      for (const auto& d : det->detect(turned)) {
        ASSERT_EQ(d.keypoints.size(), 6u);
        const auto& k = d.keypoints;
        double er = std::hypot(k[edan::kRightEye].x - re.x, k[edan::kRightEye].y - re.y);
        double el = std::hypot(k[edan::kLeftEye].x - le.x, k[edan::kLeftEye].y - le.y);
        if (er < 0.5 * iod && el < 0.5 * iod) {
          ++found;
          eyes_close += er < 0.25 * iod && el < 0.25 * iod;
          break;
        }
      }
    }
  }
  std::printf(
      "BlazeFace on %d HELEN test faces (upright and turned 30 degrees): %d found, %d "
      "with both eyes within a quarter of the eye distance\n",
      tried, found, eyes_close);
  EXPECT_GE(found, tried - 2);
  EXPECT_GE(eyes_close, tried * 9 / 10);
}

// Tiling: a 48-px face in a 1600 x 1200 photo is about 8 px at the model's
// 256-px view of the whole image, too small to find; the tiles of 400 px
// (the last level, 1.6 source pixels per model pixel) see it at 31 px.
TEST(BlazeFace_Tiles, findSmallFacesAnywhereInALargePhoto) {
  const std::string face =
      std::string(EDAN_SHARED_DATA) + "/300w-subset/helen/testset/296814969_3.jpg";
  if (!fs::exists(face)) GTEST_SKIP() << "shared data not found at " << face;
  std::unique_ptr<edan::FaceDetector> det;
  try {
    det = edan::make_detector("blazeface");
  } catch (const edan::FatalError& e) {
    GTEST_SKIP() << e.what();
  }
  cv::Mat src = edan::read_gray(face), small;
  cv::resize(src, small, cv::Size(96, 96), 0, 0, cv::INTER_AREA);  // the face is ~half of it
  // One copy at each of four places, none on a tile's centre.
  const std::vector<cv::Point> at = {{37, 41}, {1480, 90}, {700, 620}, {130, 1080}};
  cv::Mat photo(1200, 1600, CV_8UC1, cv::Scalar(110));
  for (const auto& p : at) small.copyTo(photo(cv::Rect(p.x, p.y, 96, 96)));
  auto dets = det->detect(photo);
  int found = 0;
  for (const auto& p : at) {
    for (const auto& d : dets) {
      auto c = d.box.centre();
      if (std::abs(c.x - (p.x + 48)) < 30 && std::abs(c.y - (p.y + 48)) < 30 && d.box.w > 24 &&
          d.box.w < 96) {
        ++found;
        break;
      }
    }
  }
  EXPECT_EQ(found, 4) << dets.size() << " detections";
  EXPECT_LE(dets.size(), 6u);
}
