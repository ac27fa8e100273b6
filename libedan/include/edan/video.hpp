#pragma once
// Emotion over time from a video file or a camera: every face of every
// processed frame predicted, tracked from frame to frame and smoothed per
// track; optionally an annotated copy of the video (boxes, track ids, top
// emotion, probability bars). edan-predict --video / --camera.
#include <functional>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "edan/predict.hpp"
#include "edan/record.hpp"
#include "edan/track.hpp"

namespace edan {

// Where predict_video reads frames from, and what it does with them.
struct VideoSource {
  std::string file;  // a video file OpenCV can read, or
  int camera = -1;   // a camera index (when file is empty)
  int every = 1;     // process every K-th frame (1 = all)
  // At most this many frames per second of video time (0 = no limit): a
  // frame is processed only when it starts a new 1/max_fps slot.
  double max_fps = 0;
  // Read the file at its own frame rate, as a camera delivers frames:
  // frames that arrive while the previous one is still being processed are
  // dropped, so that processing never falls behind (a camera is always
  // read this way).
  bool realtime = false;
  // Also emit a record for a processed frame without a face:
  //   {"video"|"camera", "frame", "time", "faces": 0, "rate"}.
  bool empty_frames = false;
  // Write the processed frames, annotated, to this video file (empty =
  // none): .avi as MJPEG (OpenCV's own writer), another extension through
  // FFmpeg ('mp4v').
  std::string annotate;
  TrackOptions track;
  // -q: FFmpeg's and OpenCV's own messages (a damaged frame, a short read)
  // are silenced too, not only edan's.
  bool quiet = false;
};

// Throws UsageError when the source cannot be used as given: --camera
// below 0 (other than the default -1), --every below 1, --max-fps below 0,
// negative track timeout or smoothing, record FILE arguments beside
// --video/--camera (they would be ignored), or video-only options
// (--empty-frames, --annotate-video, --realtime, --max-fps) without them.
void check_video_source(const VideoSource& source, bool record_arguments);

// Reads frames from a video file or camera and emits, in frame order, one
// record per face per processed frame:
//   {"video": FILE | "camera": N, "frame": i, "time": seconds, "faces": n,
//    "face": j, "track": id, "box": [x, y, w, h], "score": s,
//    "pred": {...}, "smooth": {"label", "probs"}, "rate": fps}
// "frame" counts from 0 over all frames read; "time" is frame / the
// source's fps (seconds since the start for a camera, or when the file
// reports no frame rate); "faces" is the number of faces in the frame;
// "track" and "smooth" come from a FaceTracker (edan/track.hpp); "rate" is
// the frames processed per second of wall-clock time, over the last second
// or so (what this machine sustains). A frame without a face emits nothing,
// or {"faces": 0} with empty_frames. `progress`, when given, is called
// about once a second with a short status line. Throws FatalError when the
// source cannot be opened or the annotated video cannot be written. A file
// that ends before the frame count it declares gets an error record
// naming the last frame read (so the run exits 1).
void predict_video(Predictor& predictor, const VideoSource& source,
                   const std::function<void(const Record&)>& emit,
                   const std::function<void(const std::string&)>& progress = {});

// Draws the faces of one frame onto a BGR image, as in the paper's
// Figure 7: each face's box in its track's colour, "#track label p" above
// it (the smoothed label when the record has one), and under it one bar
// per emotion class, 30 px for a probability of 1. Records without a "box" are
// skipped.
void draw_faces(cv::Mat& bgr, const std::vector<Record>& faces);

}  // namespace edan
