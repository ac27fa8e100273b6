// FaceTracker: ids across frames by box overlap, by landmarks when the
// boxes no longer overlap, the timeout, and the smoothing over seconds;
// draw_faces on a frame.
#include <gtest/gtest.h>

#include <cmath>
#include <opencv2/core.hpp>
#include <vector>

#include "edan/track.hpp"
#include "edan/video.hpp"

namespace {

namespace json = boost::json;

// A face record with a box and, optionally, a 68-point shape filling it
// and probabilities for two classes.
edan::Record face(double x, double y, double side, double p_happy = -1, bool landmarks = false) {
  edan::Record r;
  r["box"] = json::array{x, y, side, side};
  json::object pred;
  if (p_happy >= 0) {
    pred["label"] = p_happy >= 0.5 ? "happy" : "sad";
    pred["probs"] = json::object{{"happy", p_happy}, {"sad", 1 - p_happy}};
  }
  if (landmarks) {
    edan::Shape s(68);
    for (int i = 0; i < 68; ++i)
      s[i] = {x + side * (0.1 + 0.8 * (i % 17) / 16.0), y + side * (0.2 + 0.15 * (i / 17))};
    s[36] = {x + 0.25 * side, y + 0.4 * side};  // outer eye corners: inter-ocular 0.5 side
    s[45] = {x + 0.75 * side, y + 0.4 * side};
    pred["landmarks"] = edan::shape_to_json(s);
  }
  if (!pred.empty()) r["pred"] = pred;
  return r;
}

std::int64_t track_of(const edan::Record& r) { return r.at("track").as_int64(); }

TEST(Track_FaceTracker, KeepsIdsWhileFacesMoveAndCross) {
  edan::FaceTracker tracker;
  // Two faces moving towards each other, 10 px a frame at 10 fps.
  std::int64_t a = 0, b = 0;
  for (int f = 0; f < 10; ++f) {
    std::vector<edan::Record> faces{face(100 + 10 * f, 100, 80), face(400 - 10 * f, 300, 80)};
    tracker.update(faces, f * 0.1);
    if (f == 0) {
      a = track_of(faces[0]);
      b = track_of(faces[1]);
      EXPECT_EQ(a, 1);
      EXPECT_EQ(b, 2);
    }
    EXPECT_EQ(track_of(faces[0]), a) << "frame " << f;
    EXPECT_EQ(track_of(faces[1]), b) << "frame " << f;
  }
  EXPECT_EQ(tracker.live(), 2u);
}

TEST(Track_FaceTracker, OrderOfTheRecordsDoesNotMatter) {
  edan::FaceTracker tracker;
  std::vector<edan::Record> first{face(0, 0, 50), face(300, 0, 50)};
  tracker.update(first, 0);
  std::vector<edan::Record> swapped{face(302, 1, 50), face(2, 1, 50)};  // largest-first reorder
  tracker.update(swapped, 0.04);
  EXPECT_EQ(track_of(swapped[0]), track_of(first[1]));
  EXPECT_EQ(track_of(swapped[1]), track_of(first[0]));
}

TEST(Track_FaceTracker, FastMotionIsFollowedByVelocity) {
  // An 80-px face at 15 fps, a first step of 30 px (IoU 0.45 with the last
  // box), then 50 px a frame: IoU 0.23 with the last box, below min_iou,
  // but the box moved by the track's velocity overlaps enough.
  edan::FaceTracker tracker;
  std::vector<edan::Record> f0{face(0, 0, 80)};
  tracker.update(f0, 0);
  double x = 30;
  for (int f = 1; f < 7; ++f, x += 50) {
    std::vector<edan::Record> faces{face(x, 0, 80)};
    tracker.update(faces, f / 15.0);
    EXPECT_EQ(track_of(faces[0]), track_of(f0[0])) << "frame " << f;
  }
  // A new tracker sees the same 50-px jump without a velocity: a new face.
  edan::FaceTracker fresh;
  std::vector<edan::Record> a{face(0, 0, 80)}, b{face(50, 0, 80)};
  fresh.update(a, 0);
  fresh.update(b, 1 / 15.0);
  EXPECT_NE(track_of(b[0]), track_of(a[0]));
}

TEST(Track_FaceTracker, LandmarksMatchWhenBoxesDoNotOverlap) {
  edan::TrackOptions opt;
  opt.min_iou = 0.9;  // boxes alone would not match a 10-px move
  edan::FaceTracker tracker(opt);
  std::vector<edan::Record> a{face(100, 100, 80, -1, true)};
  tracker.update(a, 0);
  std::vector<edan::Record> b{face(110, 100, 80, -1, true)};
  tracker.update(b, 0.1);
  // 10 px shift / 40 px inter-ocular = 0.25 <= 0.5: same track.
  EXPECT_EQ(track_of(b[0]), track_of(a[0]));
  std::vector<edan::Record> c{face(200, 100, 80, -1, true)};  // 90 px: 2.25 inter-ocular
  tracker.update(c, 0.2);
  EXPECT_NE(track_of(c[0]), track_of(a[0]));
}

TEST(Track_FaceTracker, TimeoutEndsATrack) {
  edan::TrackOptions opt;
  opt.timeout = 1.0;
  edan::FaceTracker tracker(opt);
  std::vector<edan::Record> f0{face(100, 100, 80)};
  tracker.update(f0, 0);
  std::vector<edan::Record> none;
  tracker.update(none, 0.5);
  EXPECT_EQ(tracker.live(), 1u);
  std::vector<edan::Record> back{face(100, 100, 80)};
  tracker.update(back, 0.9);  // gone 0.9 s: the same track
  EXPECT_EQ(track_of(back[0]), track_of(f0[0]));
  tracker.update(none, 2.0);  // 1.1 s since: ended
  EXPECT_EQ(tracker.live(), 0u);
  std::vector<edan::Record> again{face(100, 100, 80)};
  tracker.update(again, 2.1);
  EXPECT_EQ(track_of(again[0]), 2);
}

TEST(Track_FaceTracker, SmoothsOverSecondsNotFrames) {
  // A step from p = 0 to p = 1, seen at 10 fps and at 30 fps: after 0.5 s
  // (one time constant) both means are 1 - 1/e of the way, whatever the
  // frame rate.
  for (double fps : {10.0, 30.0}) {
    edan::TrackOptions opt;
    opt.smooth = 0.5;
    edan::FaceTracker tracker(opt);
    std::vector<edan::Record> f0{face(0, 0, 50, 0.0)};
    tracker.update(f0, 0);
    EXPECT_DOUBLE_EQ(f0[0].at("smooth").at("probs").at("happy").to_number<double>(), 0.0);
    double p = 0;
    const int n = static_cast<int>(std::lround(0.5 * fps));
    for (int i = 1; i <= n; ++i) {
      std::vector<edan::Record> f{face(0, 0, 50, 1.0)};
      tracker.update(f, i / fps);
      p = f[0].at("smooth").at("probs").at("happy").to_number<double>();
      // The raw prediction is kept as it was.
      EXPECT_EQ(f[0].at("pred").at("label").as_string(), "happy");
    }
    EXPECT_NEAR(p, 1 - std::exp(-1.0), 1e-5) << fps << " fps";
  }
}

TEST(Track_FaceTracker, SmoothedLabelLagsTheRawOne) {
  edan::FaceTracker tracker;  // 0.5 s
  std::vector<edan::Record> f0{face(0, 0, 50, 0.1)};
  tracker.update(f0, 0);
  std::vector<edan::Record> f1{face(0, 0, 50, 0.9)};
  tracker.update(f1, 0.1);
  EXPECT_EQ(f1[0].at("pred").at("label").as_string(), "happy");
  EXPECT_EQ(f1[0].at("smooth").at("label").as_string(), "sad");
}

TEST(Track_FaceTracker, NoSmoothWhenOffAndRecordsWithoutBoxUntouched) {
  edan::TrackOptions opt;
  opt.smooth = 0;
  edan::FaceTracker tracker(opt);
  edan::Record error{{"error", "x"}};
  std::vector<edan::Record> f{face(0, 0, 50, 0.7), error};
  tracker.update(f, 0);
  EXPECT_TRUE(f[0].contains("track"));
  EXPECT_FALSE(f[0].contains("smooth"));
  EXPECT_FALSE(f[1].contains("track"));
  EXPECT_THROW(edan::FaceTracker(edan::TrackOptions{-1}), std::invalid_argument);
}

TEST(Video_DrawFaces, DrawsTheBoxInTheTracksColourAndBars) {
  cv::Mat bgr(200, 300, CV_8UC3, cv::Scalar(0, 0, 0));
  edan::FaceTracker tracker;
  std::vector<edan::Record> f{face(50, 60, 80, 0.8)};
  tracker.update(f, 0);
  edan::draw_faces(bgr, f);
  // The box's left edge is drawn, the inside of the face is not.
  EXPECT_GT(cv::norm(bgr.at<cv::Vec3b>(100, 50)), 100);
  EXPECT_EQ(cv::norm(bgr.at<cv::Vec3b>(100, 90)), 0);
  // The bars under the box (from y = 60 + 80 + 4 to 174): the top class's
  // (happy, 0.8 of 30 px, the first column) in the track's colour, the
  // other's (sad, 0.2: 6 px) grey; above them the empty bar's dark grey.
  EXPECT_EQ(bgr.at<cv::Vec3b>(174 - 20, 52), bgr.at<cv::Vec3b>(100, 50));
  EXPECT_EQ(bgr.at<cv::Vec3b>(174 - 3, 50 + 40 + 2), cv::Vec3b(170, 170, 170));
  EXPECT_EQ(bgr.at<cv::Vec3b>(174 - 10, 50 + 40 + 2), cv::Vec3b(40, 40, 40));
  // Without a box nothing is drawn.
  cv::Mat empty(50, 50, CV_8UC3, cv::Scalar(0, 0, 0));
  std::vector<edan::Record> none{edan::Record{{"error", "x"}}};
  edan::draw_faces(empty, none);
  EXPECT_EQ(cv::countNonZero(empty.reshape(1)), 0);
}

}  // namespace
