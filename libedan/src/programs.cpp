#include "edan/programs.hpp"

#include <algorithm>
#include <any>
#include <atomic>
#include <cstdio>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include "edan/error.hpp"
#include "edan/record.hpp"

namespace edan {

// --- options -------------------------------------------------------------------

void add_fallback_option(cli::Tool& tool, std::string* mode) {
  tool.add({"--fallback"}, "MODE",
           "when no face is found: none (an error record), small (the whole image if its "
           "shorter side is at most 64 px, a face crop too small to detect; else an error), "
           "or full (the whole image) (default: small)",
           mode);
}

FaceSourceFlags::FaceSourceFlags(cli::Tool& tool, std::string* model, std::string* detector) {
  tool.add({"-m", "--model"}, "FILE", "model file (default: $EDAN_MODEL, else the shipped model)",
           model);
  tool.add({"--detector"}, "NAME",
           "face detector for records without a crop, as edan-crop's (default: blazeface)",
           detector);
  add_fallback_option(tool, &fallback_);
}

Fallback FaceSourceFlags::fallback() const { return parse_fallback(fallback_); }

bool parse_faces_option(const std::string& value) {
  if (value != "all" && value != "largest")
    throw UsageError("--faces must be all or largest (got '" + value + "')");
  return value == "all";
}

// --- record loops ----------------------------------------------------------------

int crop_stream(cli::Tool& tool, const CropOptions& opt, const std::string& out_dir) {
  if (out_dir.empty()) throw UsageError("--out-dir DIR is required (where the crops are written)");
  const std::size_t workers = static_cast<std::size_t>(std::max(1, tool.threads()));
  std::vector<FaceCropper> croppers;
  croppers.emplace_back(opt);
  for (std::size_t i = 1; i < workers; ++i) croppers.push_back(croppers.front().clone());

  // The workers take a batch's records in turn; a record that cannot be
  // cropped gets its error, and a FatalError stops every worker.
  auto crop_batch = [&](std::vector<Record*>& live, std::any&) {
    cli::Tool::Replacements outs(live.size());
    std::atomic<std::size_t> next{0};
    std::vector<std::exception_ptr> fatal(workers);
    auto work = [&](std::size_t w) {
      for (std::size_t i; (i = next++) < live.size();) {
        try {
          guard_records({live[i]}, [&] { outs[i] = crop_record(croppers[w], *live[i], out_dir); });
        } catch (...) {
          fatal[w] = std::current_exception();
          next = live.size();
        }
      }
    };
    std::vector<std::thread> pool;
    for (std::size_t w = 1; w < std::min(workers, live.size()); ++w) pool.emplace_back(work, w);
    work(0);
    for (auto& t : pool) t.join();
    for (auto& f : fatal)
      if (f) std::rethrow_exception(f);
    return outs;
  };
  // Small batches keep the output flowing (and memory bounded) while every
  // worker still has a few records to take.
  const std::size_t batch = workers == 1 ? 1 : 4 * workers;
  return tool.flat_map_batches({}, crop_batch, batch);
}

int annotate_records(cli::Tool& tool, Predictor& predictor) {
  using Faces = std::shared_ptr<Predictor::BatchFaces>;
  return tool.flat_map_batches(
      [&](std::vector<Record*>& batch) -> std::any { return predictor.read_faces(batch); },
      [&](std::vector<Record*>& batch, std::any& faces) {
        return predictor.annotate(batch, *std::any_cast<Faces&>(faces));
      });
}

void write_timings(const PredictTimings& t, double wall, double load, double write,
                   const std::string& name) {
  auto sec = [](double v) { return json_number(v, 1e-3); };
  const double run = wall - load;
  boost::json::object o{{"wall_s", sec(wall)},
                        {"load_s", sec(load)},
                        {"read_s", sec(t.read)},
                        {"pack_s", sec(t.pack)},
                        {"forward_s", sec(t.forward)},
                        {"records_s", sec(t.records)},
                        {"write_s", sec(write)},
                        {"main_wait_s", sec(run - t.pack - t.forward - t.records - write)},
                        {"batches", t.batches},
                        {"faces", t.faces},
                        {"faces_per_s", json_number(run > 0 ? t.faces / run : 0, 0.1)}};
  std::fprintf(stderr, "%s: timings %s\n", name.c_str(), to_line(o).c_str());
}

}  // namespace edan
