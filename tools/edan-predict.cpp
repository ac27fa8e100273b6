// edan-predict: classify the emotion of each face record and fit its landmarks.
#include <chrono>

#include "edan/cli.hpp"
#include "edan/error.hpp"
#include "edan/predict.hpp"
#include "edan/programs.hpp"
#include "edan/video.hpp"

int main(int argc, char** argv) {
  edan::cli::Tool tool{"edan-predict", "Predict the emotion and 68 landmarks of each face record."};
  edan::PredictOptions opt;
  edan::VideoSource video;
  std::string faces = "all";
  edan::FaceSourceFlags face_flags(tool, &opt.model, &opt.detector);
  tool.add({"--faces"}, "WHICH",
           "faces of a photo (records without a crop) or frame: all, one record each, or "
           "largest (default: all)",
           &faces);
  tool.add({"--video"}, "FILE", "read the frames of a video file instead of records", &video.file);
  tool.add({"--camera"}, "N", "read the frames of camera N instead of records", &video.camera);
  tool.add({"--every"}, "K", "with --video/--camera, process every K-th frame", &video.every);
  tool.add({"--max-fps"}, "F",
           "with --video/--camera, process at most F frames per second of video, dropping the "
           "others (0 = no limit)",
           &video.max_fps);
  tool.add_flag({"--realtime"},
                "read --video at its own frame rate, as a camera: frames that arrive while one "
                "is processed are dropped, never queued (a camera is always read so)",
                &video.realtime);
  tool.add({"--track-timeout"}, "S",
           "a face unseen for more than S seconds loses its track id; seen again, it gets a "
           "new one",
           &video.track.timeout);
  tool.add({"--smooth"}, "S",
           "time constant, in seconds, of each track's exponential mean of the probabilities "
           "(\"smooth\"; 0 = off)",
           &video.track.smooth);
  tool.add_flag({"--empty-frames"},
                "also write a record for a processed frame without a face (\"faces\": 0)",
                &video.empty_frames);
  tool.add({"--annotate-video"}, "FILE",
           "also write the processed frames with boxes, track ids, emotion and probability "
           "bars (.avi: MJPEG)",
           &video.annotate);
  tool.add({"--stages"}, "K",
           "run only the first K stages, predicting with stage K's head (default: all)",
           &opt.stages);
  tool.add_flag({"--flip"},
                "also predict each face mirrored left-right and average the two (twice the work)",
                &opt.flip);
  bool timings = false;
  tool.add_flag({"--timings"},
                "at the end, write where the time went on stderr, as one JSON object (see "
                "TIMINGS in the man page)",
                &timings);
  tool.add_batch(32);
  tool.add_threads();
  tool.add_device();
  tool.add_shard();
  tool.add_output();
  tool.add_resume();
  tool.epilog(
      "Examples:\n  edan-predict photos/ > scored.jsonl\n"
      "  edan-crop --out-dir crops photos.jsonl | edan-predict > scored.jsonl");
  if (auto rc = tool.parse(argc, argv)) return *rc;
  const auto start = std::chrono::steady_clock::now();
  auto since_start = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  return tool.run([&] {
    opt.fallback = face_flags.fallback();
    opt.all_faces = edan::parse_faces_option(faces);
    opt.threads = tool.threads();
    opt.device = tool.device();
    edan::check_video_source(video, tool.has_arguments());
    video.quiet = tool.quiet();
    auto predictor = edan::Predictor::load(opt);
    const double load_s = since_start();
    if (!video.file.empty() || video.camera >= 0)
      return tool.generate([&] {
        edan::predict_video(
            predictor, video,
            [&](const edan::Record& r) {
              // A video's error (its early end) is said at once, not only counted.
              if (edan::has_error(r)) tool.warn(r.at("error").as_string().c_str());
              tool.emit(r);
              tool.flush();  // a live consumer (an alert rule) sees each frame at once
            },
            [&](const std::string& status) { tool.progress(status); });
      });
    const int rc = edan::annotate_records(tool, predictor);
    if (timings)
      edan::write_timings(predictor.timings(), since_start(), load_s, tool.write_seconds(),
                          tool.name());
    return rc;
  });
}
