#pragma once
// Faces over time: a track id that stays with the same person from frame
// to frame, and each track's emotion probabilities smoothed over seconds.
// Works on the face records of one frame at a time (edan-predict --video /
// --camera), in frame order.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "edan/detect.hpp"
#include "edan/record.hpp"

namespace edan {

struct TrackOptions {
  // A track not matched for longer than this (seconds of video time) ends;
  // a face seen again after it gets a new id.
  double timeout = 1.0;
  // Time constant of the exponential mean of each track's probabilities,
  // in seconds (0 = no "smooth"). A frame dt seconds after the track's last
  // one weighs 1 - exp(-dt / smooth) against the mean so far: the mean
  // reflects about the last `smooth` seconds, at any frame rate.
  double smooth = 0.5;
  // The least box overlap (IoU) of a face with a track's predicted box for
  // them to be matched; below it, landmarks decide (max_landmark_shift).
  double min_iou = 0.3;
  // A face and a track whose boxes overlap less are still matched when the
  // face's 68 landmarks lie, on average, within this many inter-ocular
  // distances of the track's landmarks moved by its velocity.
  double max_landmark_shift = 0.5;
};

// Assigns track ids and smoothed probabilities.
//
// A face record's box (get_box), or nullopt when it has none or a malformed
// one: a face that the tracker and draw_faces pass over.
std::optional<FaceBox> face_box(const Record& r);

// Each live track keeps its last box and landmarks, and a velocity
// (pixels per second, from its last two frames). In a new frame, every
// track's box and landmarks are moved to the frame's time by that
// velocity, and faces and tracks are paired greedily, best first: by box
// overlap (IoU >= min_iou), then, among the pairs left, by the mean
// landmark distance in inter-ocular units (<= max_landmark_shift). A face
// left unpaired starts a new track; a track unpaired for more than
// `timeout` seconds ends. Ids count from 1 in the order tracks start.
class FaceTracker {
 public:
  explicit FaceTracker(TrackOptions options = {});

  // The face records of one frame at `time` seconds (later than the last
  // call's). Each record with a "box" gains "track": id and, with smooth
  // > 0 and a "pred" with "probs", "smooth": {"label", "probs"} (the
  // track's mean, probabilities rounded to 6 decimals). Records without a
  // box (an error) are left as they are.
  void update(std::vector<Record>& faces, double time);

  // Live tracks (for tests and progress).
  std::size_t live() const { return tracks_.size(); }

 private:
  struct Track {
    std::int64_t id = 0;
    double time = 0;  // of its last frame
    FaceBox box;
    double velocity[2] = {0, 0};  // of the box, px/s
    Shape landmarks;              // empty when the record had none
    std::vector<std::string> labels;
    std::vector<double> mean;  // smoothed probabilities, by labels
  };
  void smooth(Track& track, Record& face, double dt, bool first) const;
  TrackOptions options_;
  std::vector<Track> tracks_;
  std::int64_t next_id_ = 1;
};

}  // namespace edan
