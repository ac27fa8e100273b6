#pragma once
// What edan's programs share beyond the command line itself: the options
// and record loops that wire the domain (edan/detect.hpp, edan/predict.hpp)
// to a cli::Tool. The domain headers do not include the CLI, so that a C++
// caller can use them without it; this header is the one place where the
// two meet.
#include <string>

#include "edan/cli.hpp"
#include "edan/detect.hpp"
#include "edan/predict.hpp"

namespace edan {

// --- options -------------------------------------------------------------------

// Declares --fallback MODE (none, small or full; see Fallback) on a program
// that detects faces, with its help text, once for every such program.
void add_fallback_option(cli::Tool& tool, std::string* mode);

// The options of every program that runs a model on face records
// (edan-predict, edan-gradcam), declared once on a cli::Tool:
// -m/--model FILE, --detector NAME, --fallback none|small|full.
class FaceSourceFlags {
 public:
  FaceSourceFlags(cli::Tool& tool, std::string* model, std::string* detector);
  // After parse: the --fallback mode. Throws UsageError for an unknown one.
  Fallback fallback() const;

 private:
  std::string fallback_ = "small";
};

// --faces: "all" -> true, "largest" -> false; UsageError otherwise.
bool parse_faces_option(const std::string& value);

// --- record loops ----------------------------------------------------------------

// edan-crop's stream: every input record of `tool` through crop_record, on
// tool's record loop (cli::Tool::flat_map_batches), each batch spread over
// tool.threads() workers (one FaceCropper each, sharing one Landmarker);
// output in input order, flushed per batch. Records arriving with an
// "error" pass through; a record that cannot be cropped gets its "error".
// Call inside tool.run(). Returns 0, or 1 when any output record has an
// error. Throws UsageError on bad options, FatalError when a model cannot
// be loaded or a crop cannot be written.
int crop_stream(cli::Tool& tool, const CropOptions& opt, const std::string& out_dir);

// edan-predict's stream: tool's record loop with predictor.read_faces on the
// reader thread, overlapped with the network (annotate) on this one.
// Returns the loop's exit status.
int annotate_records(cli::Tool& tool, Predictor& predictor);

// edan-predict --timings: one line on stderr, "NAME: timings {...}", with
// the seconds of the run (wall, from the program's start; load: model and
// threads), the Predictor's stages (read_s on the reader thread, overlapped;
// pack_s, forward_s, records_s on the main thread), write_s (serialising
// and writing the records, main thread), main_wait_s (the main thread's
// rest: waiting for the reader, start-up after load), batches, faces and
// faces_per_s (after load).
void write_timings(const PredictTimings& t, double wall, double load, double write,
                   const std::string& name);

}  // namespace edan
