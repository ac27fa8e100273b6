// edan-crop: detect, landmark, align and crop faces; one record per face.
#include "edan/cli.hpp"
#include "edan/detect.hpp"
#include "edan/error.hpp"
#include "edan/programs.hpp"

int main(int argc, char** argv) {
  edan::cli::Tool tool{"edan-crop",
                       "Detect faces in each record's image and write aligned grayscale crops."};
  edan::CropOptions opt;
  std::string out_dir, fallback = "small";
  tool.add({"--out-dir"}, "DIR", "directory the crops are written under (required)", &out_dir);
  tool.add({"--detector"}, "NAME",
           "face detector: blazeface, blazeface-front, haar, haar-default, haar-alt, haar-alt2, "
           "lbp, lbp-improved, dlib, none (default: blazeface)",
           &opt.detector);
  tool.add({"--landmarks"}, "METHOD",
           "fit 68 landmarks: dlib, or none (default: none; a record's own landmarks are "
           "always used)",
           &opt.landmarks);
  tool.add_flag({"--refit"}, "with --landmarks dlib, fit landmarks even for records that have some",
                &opt.refit);
  std::string frame = "landmarks";
  tool.add({"--frame"}, "BY",
           "what frames a face: landmarks, or detector (for a record with landmarks, the "
           "detected face that matches them; landmarks, the record's or fitted, are carried "
           "into its crop) (default: landmarks)",
           &frame);
  tool.add({"--size"}, "N", "side of the square crops in pixels", &opt.size);
  edan::add_fallback_option(tool, &fallback);
  tool.add({"--max-faces"}, "N", "keep the N largest faces of each image; 0 = all", &opt.max_faces);
  tool.add_threads();
  tool.add_output();
  tool.add_resume();
  if (auto rc = tool.parse(argc, argv)) return *rc;
  return tool.run([&] {
    opt.fallback = edan::parse_fallback(fallback);
    if (frame != "landmarks" && frame != "detector")
      throw edan::UsageError("--frame must be landmarks or detector (got '" + frame + "')");
    opt.frame_by_detector = frame == "detector";
    if (opt.landmarks == "none") opt.landmarks.clear();
    return edan::crop_stream(tool, opt, out_dir);
  });
}
