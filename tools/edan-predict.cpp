// edan-predict: classify the emotion of each face record and fit its landmarks.
#include "edan/cli.hpp"
#include "edan/predict.hpp"

int main(int argc, char** argv) {
  edan::cli::Tool tool{"edan-predict",
                       "Predict the emotion and 68 landmarks of each face record."};
  edan::PredictOptions opt;
  tool.add({"-m", "--model"}, "FILE", "model file (default: $EDAN_MODEL, else the shipped model)",
           &opt.model);
  tool.add_batch(32);
  tool.add_threads();
  tool.add_device();
  tool.add_shard();
  tool.add_output();
  tool.epilog("Example:\n  edan-crop --out crops photos.jsonl | edan-predict > scored.jsonl");
  if (auto rc = tool.parse(argc, argv)) return *rc;
  return tool.run([&] {
    opt.threads = tool.threads();
    opt.device = tool.device();
    auto predictor = edan::Predictor::load(opt);
    return tool.map_batches([&](std::vector<edan::Record*>& batch) { predictor.annotate(batch); });
  });
}
