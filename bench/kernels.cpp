// bench-kernels: the in-process figures of make bench (bench/run.sh), one
// JSON object on stdout.
//   bench-kernels peak [--n 2048] [--runs 5]
//       FP32 matrix multiply (torch::mm: OpenBLAS or oneDNN) of two n×n
//       matrices: the machine's measured FP32 peak, GFLOP/s per run.
//   bench-kernels body MODEL [--batch 8] [--runs 5] [--unfolded]
//       The stages' bodies (every stage's forward on a batch of random
//       inputs: convolutions, pools, fc layers) as edan-predict runs them
//       (prepare_for_inference), or --unfolded as the model file's eval mode
//       with channels-last weights (how edan predicted before folding);
//       GFLOP/s counting the 3×3 convolutions only.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "edan/cli.hpp"
#include "edan/error.hpp"
#include "edan/model.hpp"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Conv FLOPs (2 per multiply-add) of one face through every stage.
double conv_flops(const edan::ModelConfig& c) {
  double total = 0;
  for (std::int64_t stage = 0; stage < c.stages; ++stage) {
    double in = stage == 0 ? 1 : 3, side = static_cast<double>(c.size);
    for (int i = 0; i < 8; ++i) {
      double out = static_cast<double>(c.widths[static_cast<std::size_t>(i / 2)]);
      total += 2 * 9 * in * out * side * side;
      in = out;
      if (i % 2 == 1) side /= 2;
    }
  }
  return total;
}

// Calls fn repeatedly, `runs` times for at least `min_s` seconds each after
// one warm-up; returns work/second of each run.
template <class F>
std::vector<double> rates(F fn, double work, int runs, double min_s) {
  fn();
  std::vector<double> r;
  for (int i = 0; i < runs; ++i) {
    auto t = std::chrono::steady_clock::now();
    int reps = 0;
    do {
      fn();
      ++reps;
    } while (seconds_since(t) < min_s);
    r.push_back(work * reps / seconds_since(t));
  }
  return r;
}

std::string stats_json(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  char buf[160];
  std::snprintf(buf, sizeof buf, "{\"median\":%.2f,\"min\":%.2f,\"max\":%.2f,\"runs\":%zu}",
                v[v.size() / 2], v.front(), v.back(), v.size());
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  edan::cli::Tool tool{"bench-kernels", "In-process figures of make bench (JSON).",
                       "peak | body MODEL"};
  std::vector<std::string> args;
  std::int64_t n = 2048;
  int batch = 8, runs = 5;
  double min_s = 0.5;
  bool unfolded = false;
  tool.positional("peak | body MODEL", &args, 1, 2);
  tool.add({"--n"}, "N", "matrix side for peak", &n);
  tool.add({"--batch"}, "N", "faces per forward pass for body", &batch);
  tool.add({"--runs"}, "N", "timed runs", &runs);
  tool.add({"--min-seconds"}, "S", "shortest timed run", &min_s);
  tool.add_flag({"--unfolded"}, "body: the model file's eval mode, BatchNorm not folded",
                &unfolded);
  tool.add_threads();
  if (auto rc = tool.parse(argc, argv)) return *rc;
  return tool.run([&] {
    edan::set_threads(tool.threads());
    c10::InferenceMode inference;
    if (args[0] == "peak") {
      auto a = torch::rand({n, n}), b = torch::rand({n, n});
      auto c = torch::empty({n, n});
      auto r = rates([&] { torch::mm_out(c, a, b); }, 2.0 * n * n * n / 1e9, runs, min_s);
      std::printf("{\"what\":\"fp32 matmul %lldx%lld\",\"threads\":%d,\"gflops\":%s}\n",
                  static_cast<long long>(n), static_cast<long long>(n), torch::get_num_threads(),
                  stats_json(r).c_str());
      return 0;
    }
    if (args[0] != "body" || args.size() != 2) throw edan::UsageError("body needs MODEL");
    auto loaded = edan::load_model(args[1], torch::kCPU);
    auto model = loaded.model;
    if (unfolded) {
      for (auto& p : model->parameters())
        if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    } else {
      model = edan::prepare_for_inference(model);
    }
    const auto& cfg = model->config();
    std::vector<torch::Tensor> inputs;
    for (std::int64_t i = 0; i < model->num_stages(); ++i)
      inputs.push_back(torch::randn({batch, i == 0 ? 1 : 3, cfg.size, cfg.size})
                           .contiguous(torch::MemoryFormat::ChannelsLast));
    const double flops = conv_flops(cfg) * batch;
    auto r = rates(
        [&] {
          for (std::int64_t i = 0; i < model->num_stages(); ++i) model->stage(i)->forward(inputs[i]);
        },
        flops / 1e9, runs, min_s);
    std::vector<double> faces;
    for (double g : r) faces.push_back(g * 1e9 / flops * batch);
    std::printf(
        "{\"preset\":\"%s\",\"batch\":%d,\"folded\":%s,\"threads\":%d,"
        "\"conv_gflop_per_face\":%.4f,\"gflops\":%s,\"faces_per_s\":%s}\n",
        cfg.preset.c_str(), batch, unfolded ? "false" : "true", torch::get_num_threads(),
        conv_flops(cfg) / 1e9, stats_json(r).c_str(), stats_json(faces).c_str());
    return 0;
  });
}
