// edan-gradcam: class-specific Grad-CAM maps of each face record, their
// overlays, and the mean maps per class over frontal faces.
#include "edan/cli.hpp"
#include "edan/error.hpp"
#include "edan/gradcam.hpp"
#include "edan/predict.hpp"
#include "edan/programs.hpp"

int main(int argc, char** argv) {
  edan::cli::Tool tool{"edan-gradcam",
                       "Write the Grad-CAM map of an emotion class for each face record."};
  edan::GradCamOptions opt;
  edan::FaceSourceFlags face_flags(tool, &opt.model, &opt.detector);
  tool.add({"--out-dir"}, "DIR", "where the maps and overlays are written (required)", &opt.out);
  tool.add({"--layer"}, "NAME", "convolution of the last stage: conv4a, conv4b, ... conv1a",
           &opt.layer);
  tool.add({"--class"}, "C", "pred (the predicted class), label (the record's) or a class name",
           &opt.cls);
  tool.add({"--mean"}, "DIR", "also write the mean maps per class over frontal faces to DIR",
           &opt.mean);
  tool.add({"--frontal-eps"}, "PX",
           "frontal: both outer eye corners this close to their mean (default: 0.05 x crop size)",
           &opt.frontal_eps);
  tool.add({"--top-k"}, "K", "landmarks in top_landmarks and in red in the grid", &opt.top_k);
  tool.add_batch(16);
  tool.add_threads();
  tool.add_device();
  tool.add_output();
  tool.add_resume();
  tool.epilog(
      "Example:\n  edan-crop --out-dir crops faces.jsonl | edan-gradcam --out-dir cams --mean means"
      " | edan-auoverlap -f markdown");
  if (auto rc = tool.parse(argc, argv)) return *rc;
  return tool.run([&] {
    if (tool.resuming() && !opt.mean.empty())
      throw edan::UsageError("--resume with --mean: the mean maps need every face in one run");
    opt.fallback = face_flags.fallback();
    opt.threads = tool.threads();
    opt.device = tool.device();
    edan::GradCam cam(opt);
    int rc = tool.map_batches([&](std::vector<edan::Record*>& batch) { cam.annotate(batch); });
    auto summary = cam.finish();
    if (!summary.empty())
      tool.warn("mean maps of " + std::to_string(summary["frontal"].to_number<long>()) + " of " +
                std::to_string(summary["faces"].to_number<long>()) + " faces in " + opt.mean);
    return rc;
  });
}
