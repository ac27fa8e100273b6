// The inference path: BatchNorm folding (prepare_for_inference), the
// Predictor built on it, and the thread default.
#include <gtest/gtest.h>
#include <sched.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "edan/image.hpp"
#include "edan/model.hpp"
#include "edan/predict.hpp"
#include "fixtures.hpp"

namespace {

using edan::test::ring_shape;
using edan::test::tiny_config;

// Gives every BatchNorm of a model statistics and affine parameters far from
// their initial values (1, 0, 0, 1), so that folding has something to do.
void randomise_batchnorms(edan::EmotionalDan& model) {
  torch::NoGradGuard no_grad;
  for (auto& m : model->modules(/*include_self=*/false)) {
    auto* bn = m->as<torch::nn::BatchNorm2d>();
    if (!bn) continue;
    auto c = bn->weight.size(0);
    bn->weight.copy_(torch::rand({c}) + 0.5);
    bn->bias.copy_(torch::randn({c}) * 0.3);
    bn->running_mean.copy_(torch::randn({c}) * 0.2);
    bn->running_var.copy_(torch::rand({c}) * 2 + 0.1);
  }
}

edan::EmotionalDan trained_like_model(std::int64_t stages = 2) {
  torch::manual_seed(11);
  edan::EmotionalDan model(tiny_config(stages), ring_shape(32));
  randomise_batchnorms(model);
  model->eval();
  return model;
}

// |a - b| <= tol * max(1, |b|) everywhere.
void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tol) {
  ASSERT_EQ(a.sizes(), b.sizes());
  auto bound = b.abs().clamp_min(1.0) * tol;
  auto excess = ((a - b).abs() - bound).max().item<double>();
  EXPECT_LE(excess, 0.0) << "max |a-b| = " << (a - b).abs().max().item<double>();
}

}  // namespace

TEST(Model_FoldBatchnorm, handComputedWeightsAndBias) {
  torch::manual_seed(1);
  edan::DanStage stage(tiny_config(1), 0);
  torch::NoGradGuard no_grad;
  auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(stage->named_children()["bn1a"]);
  ASSERT_TRUE(bn);
  bn->weight.fill_(2.0);
  bn->bias.fill_(1.0);
  bn->running_mean.fill_(0.5);
  bn->running_var.fill_(3.0);
  auto w = stage->conv("conv1a")->weight.clone();
  stage->eval();
  stage->fold_batchnorm();
  EXPECT_TRUE(stage->folded());
  // scale = 2 / sqrt(3 + 1e-5); bias = 1 - 0.5 * scale.
  const double scale = 2.0 / std::sqrt(3.0 + 1e-5);
  auto folded = stage->conv("conv1a")->weight;
  EXPECT_TRUE(folded.is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::allclose(folded, w * scale, /*rtol=*/1e-6, /*atol=*/1e-7));
  // A constant input 0.25 gives at an interior pixel of channel c
  // relu(scale * 0.25 * sum(w[c]) + 1 - 0.5 * scale): the folded bias.
  auto out = stage->forward(torch::full({1, 1, 32, 32}, 0.25), {"conv1a"});
  auto act = out.activations.at("conv1a");
  for (std::int64_t c = 0; c < act.size(1); ++c) {
    double v = scale * 0.25 * w[c].sum().item<double>() + 1 - 0.5 * scale;
    EXPECT_NEAR(act[0][c][10][10].item<double>(), std::max(v, 0.0), 1e-5);
  }
  stage->fold_batchnorm();  // idempotent: the weights are not scaled twice
  EXPECT_TRUE(torch::allclose(stage->conv("conv1a")->weight, w * scale, 1e-6, 1e-7));
}

TEST(Model_FoldBatchnorm, foldedStageEqualsEvalStage) {
  torch::manual_seed(2);
  auto model = trained_like_model(1);
  auto x = torch::randn({5, 1, 32, 32});
  torch::NoGradGuard no_grad;
  auto ref = model->stage(0)->forward(x, {"conv2b"});
  auto copy = edan::prepare_for_inference(model);
  auto got = copy->stage(0)->forward(x, {"conv2b"});
  expect_close(got.offsets, ref.offsets, 1e-5);
  expect_close(got.features, ref.features, 1e-5);
  expect_close(got.logits, ref.logits, 1e-5);
  expect_close(got.activations.at("conv2b"), ref.activations.at("conv2b"), 1e-5);
}

TEST(Model_PrepareForInference, equalsEvalForwardAndLeavesTheModelAlone) {
  auto model = trained_like_model(2);
  auto before = model->stage(1)->conv("conv3a")->weight.clone();
  auto copy = edan::prepare_for_inference(model);
  EXPECT_FALSE(model->stage(0)->folded());
  EXPECT_TRUE(copy->stage(0)->folded());
  EXPECT_TRUE(copy->stage(1)->folded());
  EXPECT_FALSE(copy->is_training());
  EXPECT_TRUE(torch::equal(model->stage(1)->conv("conv3a")->weight, before));
  torch::manual_seed(4);
  auto x = torch::randn({6, 1, 32, 32});
  torch::NoGradGuard no_grad;
  auto ref = model->forward(x);
  auto got = copy->forward(x);
  ASSERT_EQ(got.landmarks.size(), 2u);
  expect_close(got.landmarks[0], ref.landmarks[0], 1e-5);
  expect_close(got.landmarks[1], ref.landmarks[1], 1e-5);
  expect_close(got.logits, ref.logits, 1e-5);
  expect_close(torch::softmax(got.logits, 1), torch::softmax(ref.logits, 1), 1e-5);
  // Running only the first stage works on the copy too.
  expect_close(copy->forward(x, 1).logits, model->forward(x, 1).logits, 1e-5);
}

TEST(Model_PrepareForInference, batchOfOneEqualsItsRowInALargerBatch) {
  // A batch of one takes oneDNN directly (LibTorch's own choice for it is
  // another convolution); the results must not depend on the batch size.
  auto copy = edan::prepare_for_inference(trained_like_model(2));
  torch::manual_seed(5);
  auto x = torch::randn({4, 1, 32, 32});
  torch::NoGradGuard no_grad;
  auto all = copy->forward(x);
  for (std::int64_t i = 0; i < 4; ++i) {
    auto one = copy->forward(x.narrow(0, i, 1));
    expect_close(one.landmarks[1], all.landmarks[1].narrow(0, i, 1), 1e-5);
    expect_close(one.logits, all.logits.narrow(0, i, 1), 1e-5);
  }
}

TEST(Model_PrepareForInference, foldedStageRefusesTraining) {
  auto copy = edan::prepare_for_inference(trained_like_model(1));
  copy->train();
  EXPECT_THROW(copy->forward(torch::zeros({2, 1, 32, 32})), std::logic_error);
}

TEST(Model_SetThreads, zeroMeansTheCoresThisProcessMayUse) {
  int before = torch::get_num_threads();
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  edan::set_threads(0);
  EXPECT_EQ(torch::get_num_threads(), CPU_COUNT(&set));
  edan::set_threads(before);
}

TEST(Predict_Predictor, foldedPredictionEqualsTheEvalModel) {
  auto model = trained_like_model(2);
  edan::LoadedModel loaded;
  loaded.meta.config = model->config();
  loaded.meta.mean_shape = ring_shape(32);
  loaded.meta.input_norm = "image";
  loaded.model = model;
  edan::Predictor predictor(std::move(loaded), torch::kCPU);
  EXPECT_FALSE(model->stage(0)->folded());  // the caller's model is untouched
  torch::manual_seed(6);
  auto pixels = torch::rand({3, 1, 32, 32});
  auto out = predictor.predict(pixels);
  torch::NoGradGuard no_grad;
  auto mean = pixels.mean({1, 2, 3}, true);
  auto std = pixels.std({1, 2, 3}, false, true);
  auto ref = model->forward((pixels - mean) / std);
  auto probs = torch::softmax(ref.logits, 1);
  for (std::int64_t i = 0; i < 3; ++i) {
    for (std::int64_t c = 0; c < probs.size(1); ++c)
      EXPECT_NEAR(out[static_cast<std::size_t>(i)].probs[static_cast<std::size_t>(c)],
                  probs[i][c].item<double>(), 1e-5);
    for (std::int64_t k = 0; k < 68; k += 17)
      EXPECT_NEAR(out[static_cast<std::size_t>(i)].landmarks[static_cast<std::size_t>(k)].x,
                  ref.landmarks[1][i][k][0].item<double>(), 1e-4);
  }
}

TEST(Predict_Annotate, reusedInputBufferGivesTheSameAnswersForEveryBatchSize) {
  auto dir = std::filesystem::temp_directory_path() /
             ("edan-test-inference-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::vector<std::string> files;
  for (int i = 0; i < 3; ++i) {
    cv::Mat img(32, 32, CV_8U);
    cv::randu(img, 0, 256);
    files.push_back((dir / ("f" + std::to_string(i) + ".png")).string());
    edan::write_png(files.back(), img);
  }
  edan::LoadedModel loaded;
  loaded.meta.config = tiny_config(2);
  loaded.meta.mean_shape = ring_shape(32);
  loaded.model = trained_like_model(2);
  edan::Predictor predictor(std::move(loaded), torch::kCPU);
  auto run = [&](std::vector<int> which) {
    std::vector<edan::Record> records(which.size());
    std::vector<edan::Record*> batch;
    for (std::size_t i = 0; i < which.size(); ++i) {
      records[i]["crop"] = files[static_cast<std::size_t>(which[i])];
      batch.push_back(&records[i]);
    }
    predictor.annotate(batch);
    return records;
  };
  auto three = run({0, 1, 2});
  auto one = run({2});  // smaller than the buffer
  auto again = run({0, 1, 2});
  EXPECT_EQ(boost::json::serialize(one[0]), boost::json::serialize(three[2]));
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_EQ(boost::json::serialize(again[i]), boost::json::serialize(three[i]));
  std::filesystem::remove_all(dir);
}
