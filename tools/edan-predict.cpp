// edan-predict: classify the emotion of each face record and fit its landmarks.
#include "edan/cli.hpp"
#include "edan/error.hpp"
#include "edan/predict.hpp"

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
  tool.add({"--stages"}, "K",
           "run only the first K stages, predicting with stage K's head (default: all)",
           &opt.stages);
  tool.add_flag({"--flip"},
                "also predict each face mirrored left-right and average the two (twice the work)",
                &opt.flip);
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
  return tool.run([&] {
    opt.fallback = face_flags.fallback();
    opt.all_faces = edan::parse_faces_option(faces);
    opt.threads = tool.threads();
    opt.device = tool.device();
    edan::check_video_source(video, tool.has_arguments());
    video.quiet = tool.quiet();
    auto predictor = edan::Predictor::load(opt);
    if (!video.file.empty() || video.camera >= 0)
      return tool.generate([&] {
        edan::predict_video(predictor, video, [&](const edan::Record& r) { tool.emit(r); });
      });
    return edan::annotate_records(tool, predictor);
  });
}
