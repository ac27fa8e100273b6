#include "edan/video.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <thread>

#include "edan/error.hpp"
#include "edan/image.hpp"

namespace edan {

void check_video_source(const VideoSource& source, bool record_arguments) {
  const bool video = !source.file.empty() || source.camera >= 0;
  if (source.camera < -1) throw UsageError("--camera must be a camera index, 0 or more");
  if (source.every < 1) throw UsageError("--every must be at least 1");
  if (!(source.max_fps >= 0)) throw UsageError("--max-fps must be 0 (no limit) or more");
  if (!(source.track.timeout >= 0)) throw UsageError("--track-timeout must be 0 or more seconds");
  if (!(source.track.smooth >= 0)) throw UsageError("--smooth must be 0 (off) or more seconds");
  if (video && record_arguments)
    throw UsageError("--video and --camera read frames, not records: drop the FILE arguments");
  if (!video &&
      (source.empty_frames || !source.annotate.empty() || source.realtime || source.max_fps > 0))
    throw UsageError(
        "--empty-frames, --annotate-video, --realtime and --max-fps need --video FILE or "
        "--camera N");
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Opens the file or camera, with OpenCV's own attempts kept off stderr.
cv::VideoCapture open_source(const VideoSource& source, const std::string& name) {
  std::error_code ec;
  if (!source.file.empty() && !std::filesystem::is_regular_file(source.file, ec))
    throw FatalError(name + ": cannot open: no such file");
  // OpenCV reads this when its FFmpeg backend first starts (AV_LOG_QUIET).
  if (source.quiet) setenv("OPENCV_FFMPEG_LOGLEVEL", "-8", 1);
  // OpenCV's backends log every failed attempt on stderr; the error below
  // says it once. With quiet, OpenCV stays silent while frames are read too.
  auto level = cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  cv::VideoCapture cap;
  bool opened = false;
  try {
    opened = source.file.empty() ? cap.open(source.camera) : cap.open(source.file);
  } catch (const cv::Exception& e) {
    cv::utils::logging::setLogLevel(level);
    throw FatalError(name + ": cannot open: " + e.what());
  }
  if (!source.quiet) cv::utils::logging::setLogLevel(level);
  if (!opened || !cap.isOpened()) throw FatalError(name + ": cannot open as a video");
  return cap;
}

// Frames in reading order, each with its index and time. Direct: every
// frame, as fast as the consumer takes them. Live (a camera, or a file with
// realtime): a reader thread keeps only the newest frame, so a slow
// consumer skips frames instead of falling behind; a file is then read at
// its own frame rate.
class FrameSource {
 public:
  FrameSource(cv::VideoCapture& cap, bool live, bool pace, double fps)
      : cap_(cap), live_(live), pace_(pace), fps_(fps), start_(Clock::now()) {
    if (live_) reader_ = std::thread([this] { read_loop(); });
  }
  ~FrameSource() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    if (reader_.joinable()) reader_.join();
  }
  // The next frame to process; false at the end.
  bool next(cv::Mat& frame, std::int64_t& index, double& time) {
    if (!live_) {
      if (!cap_.read(frame)) return false;
      index = read_++;
      time = frame_time(index);
      return true;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return latest_index_ > taken_ || done_; });
    if (latest_index_ <= taken_) return false;
    cv::swap(frame, latest_);
    index = taken_ = latest_index_;
    time = latest_time_;
    return true;
  }
  // Frames read from the source so far.
  std::int64_t frames_read() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_ ? latest_index_ + 1 : read_;
  }

 private:
  double frame_time(std::int64_t index) const {
    return fps_ > 0 ? static_cast<double>(index) / fps_ : seconds_since(start_);
  }
  void read_loop() {
    cv::Mat frame;
    for (std::int64_t i = 0;; ++i) {
      if (pace_ && fps_ > 0)
        std::this_thread::sleep_until(start_ + std::chrono::duration_cast<Clock::duration>(
                                                   std::chrono::duration<double>(i / fps_)));
      bool ok = cap_.read(frame);
      std::lock_guard<std::mutex> lock(mutex_);
      if (!ok || stop_) {
        done_ = true;
        ready_.notify_all();
        return;
      }
      cv::swap(latest_, frame);
      latest_index_ = i;
      latest_time_ = frame_time(i);
      ready_.notify_all();
    }
  }
  cv::VideoCapture& cap_;
  const bool live_, pace_;
  const double fps_;
  const Clock::time_point start_;
  std::int64_t read_ = 0;  // direct
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  cv::Mat latest_;
  std::int64_t latest_index_ = -1, taken_ = -1;
  double latest_time_ = 0;
  bool done_ = false, stop_ = false;
  std::thread reader_;
};

// Processed frames per second of wall-clock time, over the last second.
class RateMeter {
 public:
  double tick() {
    const auto now = Clock::now();
    times_.push_back(now);
    while (times_.size() > 2 && now - times_.front() > std::chrono::seconds(1)) times_.pop_front();
    if (times_.size() < 2) return 0;
    const double span = std::chrono::duration<double>(now - times_.front()).count();
    return span > 0 ? (times_.size() - 1) / span : 0;
  }

 private:
  std::deque<Clock::time_point> times_;
};

cv::VideoWriter open_writer(const std::string& path, double fps, cv::Size size) {
  const bool avi = std::filesystem::path(path).extension() == ".avi";
  cv::VideoWriter w;
  try {
    if (avi)
      w.open(path, cv::CAP_OPENCV_MJPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), fps, size);
    else
      w.open(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('m', 'p', '4', 'v'), fps, size);
  } catch (const cv::Exception& e) {
    throw FatalError(path + ": cannot write the annotated video: " + e.what());
  }
  if (!w.isOpened())
    throw FatalError(path + ": cannot write the annotated video (.avi always works: MJPEG)");
  return w;
}

constexpr int kBarHeight = 30;  // px of a probability of 1 in draw_faces

cv::Scalar track_colour(std::int64_t track) {
  static const cv::Scalar colours[] = {{60, 180, 255}, {255, 160, 60}, {90, 220, 90},
                                       {220, 90, 220}, {80, 230, 230}, {240, 240, 240}};
  return colours[static_cast<std::size_t>(std::max<std::int64_t>(track, 0)) % std::size(colours)];
}

}  // namespace

void draw_faces(cv::Mat& bgr, const std::vector<Record>& faces) {
  for (const auto& r : faces) {
    const auto b = face_box(r);
    if (!b) continue;
    const cv::Rect rect(static_cast<int>(std::lround(b->x)), static_cast<int>(std::lround(b->y)),
                        static_cast<int>(std::lround(b->w)), static_cast<int>(std::lround(b->h)));
    std::int64_t track = 0;
    if (auto t = r.find("track"); t != r.end() && t->value().is_int64())
      track = t->value().as_int64();
    const cv::Scalar colour = track_colour(track);
    cv::rectangle(bgr, rect, colour, 2);
    // The smoothed prediction when there is one, else the frame's own.
    const Record* shown = nullptr;
    for (const char* key : {"smooth", "pred"})
      if (auto p = r.find(key); !shown && p != r.end() && p->value().is_object())
        shown = &p->value().as_object();
    if (!shown || !shown->contains("probs") || !shown->at("probs").is_object()) continue;
    const auto& probs = shown->at("probs").as_object();
    std::string label = shown->contains("label") && shown->at("label").is_string()
                            ? std::string(shown->at("label").as_string())
                            : "";
    double top = probs.contains(label) ? probs.at(label).to_number<double>() : 0;
    std::string text =
        (track > 0 ? "#" + std::to_string(track) + " " : "") + label + " " + fixed_decimals(top, 2);
    int baseline = 0;
    const auto ts = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, 0.5, 1, &baseline);
    const cv::Point org(rect.x, std::max(ts.height + 2, rect.y - 4));
    cv::rectangle(bgr, {org.x - 1, org.y - ts.height - 2}, {org.x + ts.width + 1, org.y + 3},
                  colour, cv::FILLED);
    cv::putText(bgr, text, org, cv::FONT_HERSHEY_SIMPLEX, 0.5, {0, 0, 0}, 1, cv::LINE_AA);
    // One bar per class under the box, as tall as its probability (30 px
    // for 1), its first two letters below it (one when the bars are narrow).
    const int n = static_cast<int>(probs.size());
    const int col = std::max(6, rect.width / std::max(n, 1));
    const int bottom = rect.y + rect.height + 4 + kBarHeight;
    int x = rect.x;
    for (const auto& kv : probs) {
      const double p = kv.value().is_number() ? kv.value().to_number<double>() : 0;
      const int h = static_cast<int>(std::lround(std::clamp(p, 0.0, 1.0) * kBarHeight));
      cv::rectangle(bgr, {x, bottom - kBarHeight, col - 2, kBarHeight}, {40, 40, 40}, cv::FILLED);
      if (h > 0)
        cv::rectangle(bgr, {x, bottom - h, col - 2, h},
                      kv.key() == label ? colour : cv::Scalar(170, 170, 170), cv::FILLED);
      cv::putText(bgr, std::string(kv.key().substr(0, col >= 14 ? 2 : 1)), {x, bottom + 10},
                  cv::FONT_HERSHEY_PLAIN, 0.7, {255, 255, 255}, 1, cv::LINE_AA);
      x += col;
    }
  }
}

void predict_video(Predictor& predictor, const VideoSource& source,
                   const std::function<void(const Record&)>& emit,
                   const std::function<void(const std::string&)>& progress) {
  check_video_source(source, false);
  const std::string name =
      source.file.empty() ? "camera " + std::to_string(source.camera) : source.file;
  cv::VideoCapture cap = open_source(source, name);
  const double fps = cap.get(cv::CAP_PROP_FPS);
  const bool camera = source.file.empty();
  const bool live = camera || source.realtime;
  // A camera's frames are timed by the clock; a file's by its frame rate.
  FrameSource frames(cap, live, /*pace=*/!camera, camera ? 0.0 : fps);
  FaceTracker tracker(source.track);
  RateMeter rate;
  cv::VideoWriter writer;
  const auto start = Clock::now();
  auto last_progress = start;
  std::int64_t processed = 0, last_slot = -1, index = 0;
  double time = 0;
  cv::Mat frame;
  while (frames.next(frame, index, time)) {
    if (index % source.every != 0 || frame.empty()) continue;
    if (source.max_fps > 0) {
      const auto slot = static_cast<std::int64_t>(std::floor(time * source.max_fps + 1e-9));
      if (slot == last_slot) continue;
      last_slot = slot;
    }
    cv::Mat gray = to_gray8(frame);
    if (!gray.isContinuous()) gray = gray.clone();
    auto faces = predictor.predict_frame(gray.data, gray.rows, gray.cols);
    tracker.update(faces, time);
    ++processed;
    const double now_rate = rate.tick();
    auto head = [&](Record& r) {
      if (camera)
        r["camera"] = source.camera;
      else
        r["video"] = source.file;
      r["frame"] = index;
      r["time"] = json_number(time, 1e-3);
      r["faces"] = static_cast<std::int64_t>(faces.size());
    };
    for (auto& face : faces) {
      Record r;
      head(r);
      for (auto& kv : face) r[kv.key()] = std::move(kv.value());
      r["rate"] = json_number(now_rate, 0.1);
      emit(r);
      face = std::move(r);
    }
    if (faces.empty() && source.empty_frames) {
      Record r;
      head(r);
      r["rate"] = json_number(now_rate, 0.1);
      emit(r);
    }
    if (!source.annotate.empty()) {
      if (!writer.isOpened()) {
        double out_fps = fps > 0 && !camera ? fps / source.every : 15;
        if (source.max_fps > 0) out_fps = std::min(out_fps, source.max_fps);
        writer = open_writer(source.annotate, out_fps, frame.size());
      }
      cv::Mat bgr = frame.channels() == 3 ? frame.clone() : cv::Mat();
      if (bgr.empty()) cv::cvtColor(gray, bgr, cv::COLOR_GRAY2BGR);
      draw_faces(bgr, faces);
      writer.write(bgr);
    }
    if (progress && Clock::now() - last_progress > std::chrono::seconds(1)) {
      last_progress = Clock::now();
      progress("frame " + std::to_string(index) + ", " + std::to_string(processed) +
               " processed, " + fixed_decimals(now_rate, 1) + " frames/s, " +
               std::to_string(tracker.live()) + " tracks");
    }
  }
  // OpenCV reports a damaged file's early end as the end: compare the frames
  // read with the count its container declares. The error record makes
  // the run exit 1.
  const std::int64_t read = frames.frames_read();
  const auto declared = static_cast<std::int64_t>(cap.get(cv::CAP_PROP_FRAME_COUNT));
  if (!camera && read < declared) {
    Record r;
    r["video"] = source.file;
    r["frame"] = read;
    set_error(r, "video ends after " + std::to_string(read) + " of the " +
                     std::to_string(declared) + " frames it declares (the last frame read is " +
                     (read > 0 ? std::to_string(read - 1) : std::string("none")) +
                     "): the file is truncated or damaged");
    emit(r);
  }
}

}  // namespace edan
