#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "edan/error.hpp"
#include "edan/model.hpp"
#include "fixtures.hpp"

namespace {

using edan::test::ring_shape;

using edan::test::tiny_config;

std::string temp_file(const std::string& name) {
  auto dir =
      std::filesystem::temp_directory_path() / ("edan-test-model-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

}  // namespace

TEST(Model_PresetConfig, knownPresets) {
  auto p = edan::preset_config("paper");
  EXPECT_EQ(p.size, 224);
  EXPECT_EQ(p.widths, (std::vector<std::int64_t>{64, 128, 256, 512}));
  EXPECT_EQ(p.stages, 2);
  EXPECT_EQ(p.fc, 256);
  EXPECT_EQ(p.labels.size(), 7u);
  EXPECT_EQ(edan::preset_config("dan").size, 112);
  EXPECT_EQ(edan::preset_config("small").size, 48);
  EXPECT_THROW(edan::preset_config("huge"), edan::UsageError);
}

TEST(Model_CheckConfig, rejectsBadFields) {
  auto c = tiny_config();
  EXPECT_NO_THROW(edan::check_config(c));
  c.size = 40;
  EXPECT_THROW(edan::check_config(c), edan::UsageError);
  c = tiny_config();
  c.widths = {4, 4, 4};
  EXPECT_THROW(edan::check_config(c), edan::UsageError);
  c = tiny_config();
  c.stages = 0;
  EXPECT_THROW(edan::check_config(c), edan::UsageError);
  c = tiny_config();
  c.labels.clear();
  EXPECT_THROW(edan::check_config(c), edan::UsageError);
}

TEST(Model_EstimateTransforms, recoversKnownSimilarity) {
  // to = s R(θ) from + t with s = 2, θ = 30°, t = (5, -3).
  const double s = 2, th = M_PI / 6, a = s * std::cos(th), b = s * std::sin(th);
  auto from = edan::shape_to_tensor(ring_shape(20)).unsqueeze(0);
  auto fx = from.select(2, 0), fy = from.select(2, 1);
  auto to = torch::stack({a * fx - b * fy + 5, b * fx + a * fy - 3}, 2);
  auto t = edan::estimate_transforms(from, to.squeeze(0));
  ASSERT_EQ(t.sizes(), (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_NEAR(t[0][0][0].item<double>(), a, 1e-4);
  EXPECT_NEAR(t[0][0][1].item<double>(), -b, 1e-4);
  EXPECT_NEAR(t[0][0][2].item<double>(), 5, 1e-3);
  EXPECT_NEAR(t[0][1][0].item<double>(), b, 1e-4);
  EXPECT_NEAR(t[0][1][1].item<double>(), a, 1e-4);
  EXPECT_NEAR(t[0][1][2].item<double>(), -3, 1e-3);
  EXPECT_TRUE(torch::allclose(edan::apply_transforms(t, from), to, 1e-4, 1e-3));
}

TEST(Model_EstimateTransforms, batchedMatchesScalarEstimate) {
  auto a = ring_shape(30), b = ring_shape(50);
  for (auto& p : b) p = {0.9 * p.y + 3, -0.9 * p.x + 60 + 0.01 * p.x * p.x};
  auto from = torch::stack({edan::shape_to_tensor(a), edan::shape_to_tensor(b)});
  auto target = edan::shape_to_tensor(ring_shape(40));
  auto t = edan::estimate_transforms(from, target);
  auto ref = edan::estimate_similarity(b, ring_shape(40));
  EXPECT_NEAR(t[1][0][0].item<double>(), ref.a, 1e-4);
  EXPECT_NEAR(t[1][1][0].item<double>(), ref.b, 1e-4);
  EXPECT_NEAR(t[1][0][2].item<double>(), ref.tx, 1e-3);
  EXPECT_NEAR(t[1][1][2].item<double>(), ref.ty, 1e-3);
}

TEST(Model_InvertTransforms, composesToIdentity) {
  // [[2,-1,4],[1,2,-6]]: inverse linear part [[2,1],[-1,2]]/5, shift -(A^-1 t).
  auto t = torch::tensor({2.f, -1.f, 4.f, 1.f, 2.f, -6.f}).view({1, 2, 3});
  auto inv = edan::invert_transforms(t);
  auto expected = torch::tensor({0.4f, 0.2f, -0.4f, -0.2f, 0.4f, 3.2f}).view({1, 2, 3});
  EXPECT_TRUE(torch::allclose(inv, expected, 1e-6, 1e-6)) << inv;
  auto pts = torch::tensor({1.f, 2.f, -3.f, 7.f}).view({1, 2, 2});
  auto back = edan::apply_transforms(inv, edan::apply_transforms(t, pts));
  EXPECT_TRUE(torch::allclose(back, pts, 1e-5, 1e-5));
}

TEST(Model_WarpImages, identityIsIdentity) {
  auto img = torch::rand({2, 1, 16, 16});
  auto id = torch::tensor({1.f, 0.f, 0.f, 0.f, 1.f, 0.f}).view({1, 2, 3}).repeat({2, 1, 1});
  EXPECT_TRUE(torch::allclose(edan::warp_images(img, id), img, 1e-5, 1e-5));
}

TEST(Model_WarpImages, integerShiftMovesPixelExactly) {
  auto img = torch::zeros({1, 1, 16, 16});
  img[0][0][5][4] = 1;  // x = 4, y = 5
  // T moves points by (+3, +2): output (7, 7) samples input (4, 5).
  auto t = torch::tensor({1.f, 0.f, 3.f, 0.f, 1.f, 2.f}).view({1, 2, 3});
  auto out = edan::warp_images(img, t);
  EXPECT_NEAR(out[0][0][7][7].item<float>(), 1.f, 1e-5);
  EXPECT_NEAR(out.sum().item<float>(), 1.f, 1e-4);
  // Shifted in from outside: zeros.
  EXPECT_EQ(out[0][0][0][0].item<float>(), 0.f);
}

TEST(Model_WarpImages, halfPixelShiftIsBilinear) {
  auto img = torch::zeros({1, 1, 8, 8});
  img[0][0][3][3] = 1;
  auto t = torch::tensor({1.f, 0.f, 0.5f, 0.f, 1.f, 0.f}).view({1, 2, 3});
  auto out = edan::warp_images(img, t);
  EXPECT_NEAR(out[0][0][3][3].item<float>(), 0.5f, 1e-5);  // samples x = 2.5
  EXPECT_NEAR(out[0][0][3][4].item<float>(), 0.5f, 1e-5);  // samples x = 3.5
}

TEST(Model_LandmarkHeatmaps, handComputedValues) {
  auto lm = torch::full({1, 68, 2}, 1000.f);  // all far outside but one
  lm[0][0][0] = 10;
  lm[0][0][1] = 12;
  auto h = edan::landmark_heatmaps(lm, 32);
  ASSERT_EQ(h.sizes(), (std::vector<std::int64_t>{1, 1, 32, 32}));
  auto at = [&](int x, int y) { return h[0][0][y][x].item<float>(); };
  EXPECT_FLOAT_EQ(at(10, 12), 1.f);
  EXPECT_FLOAT_EQ(at(11, 12), 0.5f);
  EXPECT_FLOAT_EQ(at(10, 11), 0.5f);
  EXPECT_FLOAT_EQ(at(13, 16), 1.f / 6.f);  // offset (3, 4): distance 5
  EXPECT_FLOAT_EQ(at(18, 12), 1.f / 9.f);  // offset 8: last column of the patch
  EXPECT_EQ(at(19, 12), 0.f);              // offset 9: outside the 17×17 patch
  EXPECT_EQ(at(10, 21), 0.f);
  EXPECT_EQ(at(31, 31), 0.f);
}

TEST(Model_LandmarkHeatmaps, maxOverLandmarksAndSubpixel) {
  auto lm = torch::full({1, 68, 2}, -1000.f);
  lm[0][0][0] = 5;
  lm[0][0][1] = 5;
  lm[0][1][0] = 8;
  lm[0][1][1] = 5;
  lm[0][2][0] = 20.25f;  // patch centred on (20, 20)
  lm[0][2][1] = 20;
  auto h = edan::landmark_heatmaps(lm, 32);
  auto at = [&](int x, int y) { return h[0][0][y][x].item<float>(); };
  EXPECT_FLOAT_EQ(at(6, 5), 0.5f);  // distance 1 from the first, 2 from the second
  EXPECT_FLOAT_EQ(at(7, 5), 0.5f);  // 2 from the first, 1 from the second
  EXPECT_FLOAT_EQ(at(20, 20), 1.f / 1.25f);
  EXPECT_FLOAT_EQ(at(28, 20), 1.f / (1.f + 7.75f));
  EXPECT_EQ(at(29, 20), 0.f);
}

TEST(Model_LandmarkHeatmaps, loopAndTensorFormsAgree) {
  torch::manual_seed(5);
  auto lm = torch::rand({3, 68, 2}) * 44 - 6;  // some patches cross the border
  lm[1][3][0] = 12.5f;                         // a tie: rounds to even
  lm[1][3][1] = 7.5f;
  auto a = edan::landmark_heatmaps(lm, 32);
  auto b = edan::detail::landmark_heatmaps_vectorised(lm, 32);
  EXPECT_TRUE(torch::allclose(a, b, 1e-6, 1e-6));
  EXPECT_GT(a.sum().item<float>(), 10.f);
}

TEST(Model_DanStage, outputShapes) {
  auto c = tiny_config();
  edan::DanStage s1(c, 0), s2(c, 1);
  auto o1 = s1->forward(torch::rand({3, 1, 32, 32}), {"conv4a"});
  EXPECT_EQ(o1.offsets.sizes(), (std::vector<std::int64_t>{3, 68, 2}));
  EXPECT_EQ(o1.features.sizes(), (std::vector<std::int64_t>{3, 16}));
  EXPECT_EQ(o1.logits.sizes(), (std::vector<std::int64_t>{3, 7}));
  EXPECT_EQ(o1.activations.at("conv4a").sizes(), (std::vector<std::int64_t>{3, 8, 4, 4}));
  auto f = s2->feature_image(o1.features);
  EXPECT_EQ(f.sizes(), (std::vector<std::int64_t>{3, 1, 32, 32}));
  // Nearest ×2: 2×2 blocks of equal values.
  EXPECT_EQ(f[1][0][6][8].item<float>(), f[1][0][7][9].item<float>());
  auto o2 = s2->forward(torch::rand({3, 3, 32, 32}));
  EXPECT_EQ(o2.offsets.sizes(), (std::vector<std::int64_t>{3, 68, 2}));
  EXPECT_THROW(s1->feature_image(o1.features), std::logic_error);
  EXPECT_THROW(s1->conv("conv5a"), std::out_of_range);
  EXPECT_EQ(s1->conv("conv4b")->options.out_channels(), 8);
}

TEST(Model_EmotionalDan, forwardShapesAndStages) {
  auto c = tiny_config(2);
  c.labels = {"negative", "positive", "neutral"};
  edan::EmotionalDan m(c, ring_shape(32));
  m->eval();
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 1, 32, 32});
  auto out = m->forward(x);
  ASSERT_EQ(out.landmarks.size(), 2u);
  EXPECT_EQ(out.landmarks[1].sizes(), (std::vector<std::int64_t>{2, 68, 2}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<std::int64_t>{2, 3}));
  auto one = m->forward(x, 1);
  EXPECT_EQ(one.landmarks.size(), 1u);
  EXPECT_TRUE(torch::equal(one.landmarks[0], out.landmarks[0]));
  EXPECT_THROW(m->forward(x, 3), std::invalid_argument);
  EXPECT_THROW(edan::EmotionalDan(c, edan::Shape(5)), std::invalid_argument);
}

TEST(Model_EmotionalDan, stageTwoWithZeroDeltaKeepsStageOneLandmarks) {
  // With the second stage's landmark head at zero, Δ = 0: T^-1(T(l)) = l.
  edan::EmotionalDan m(tiny_config(2), ring_shape(32));
  m->eval();
  torch::NoGradGuard ng;
  auto head = m->stage(1)->named_parameters();
  head["landmarks.weight"].zero_();
  head["landmarks.bias"].zero_();
  auto out = m->forward(torch::randn({2, 1, 32, 32}));
  EXPECT_TRUE(torch::allclose(out.landmarks[1], out.landmarks[0], 1e-4, 1e-3));
}

TEST(Model_EmotionalDan, newLaterStageStartsAtPreviousLandmarks) {
  // No weights touched: a fresh stage 2 must not move stage 1's landmarks,
  // and its landmark head must still receive a gradient.
  edan::EmotionalDan m(tiny_config(2), ring_shape(32));
  m->eval();
  auto out = m->forward(torch::randn({2, 1, 32, 32}));
  EXPECT_TRUE(torch::allclose(out.landmarks[1], out.landmarks[0], 1e-4, 1e-3));
  EXPECT_FALSE(torch::allclose(out.landmarks[0], m->mean_shape().expand({2, -1, -1})));
  out.landmarks[1].sum().backward();
  auto head = m->stage(1)->named_parameters();
  EXPECT_GT(head["landmarks.weight"].grad().abs().sum().item<double>(), 0.0);
}

TEST(Model_EmotionalDan, warmStartCopiesThePreviousStage) {
  edan::EmotionalDan m(tiny_config(3), ring_shape(32));
  {
    torch::NoGradGuard ng;
    for (auto& p : m->stage(1)->parameters()) p.normal_();  // a "trained" stage 2
  }
  m->init_stage_from_previous(1);
  m->init_stage_from_previous(2);
  auto s1 = m->stage(0)->named_parameters(), s2 = m->stage(1)->named_parameters(),
       s3 = m->stage(2)->named_parameters();
  EXPECT_TRUE(torch::equal(s2["conv2b.weight"], s1["conv2b.weight"]));
  EXPECT_TRUE(torch::equal(s2["fc1.weight"], s1["fc1.weight"]));
  EXPECT_TRUE(torch::equal(s2["emotion.bias"], s1["emotion.bias"]));
  // conv1a: the image channel from stage 1, heatmap and feature channels 0.
  EXPECT_TRUE(torch::equal(s2["conv1a.weight"].narrow(1, 0, 1), s1["conv1a.weight"]));
  EXPECT_EQ(s2["conv1a.weight"].narrow(1, 1, 2).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(s2["landmarks.weight"].abs().sum().item<double>(), 0.0);
  // From a later stage, all three channels are copied.
  EXPECT_TRUE(torch::equal(s3["conv1a.weight"], s2["conv1a.weight"]));
  auto b1 = m->stage(0)->named_buffers(), b2 = m->stage(1)->named_buffers();
  EXPECT_TRUE(torch::equal(b2["bn1b.running_var"], b1["bn1b.running_var"]));
  m->eval();
  torch::NoGradGuard ng;
  auto out = m->forward(torch::randn({2, 1, 32, 32}));
  EXPECT_TRUE(torch::allclose(out.landmarks[1], out.landmarks[0], 1e-4, 1e-3));
  EXPECT_TRUE(torch::allclose(out.landmarks[2], out.landmarks[0], 1e-4, 1e-3));
  EXPECT_THROW(m->init_stage_from_previous(0), std::out_of_range);
  EXPECT_THROW(m->init_stage_from_previous(3), std::out_of_range);
}

TEST(Model_CopyWeights, copiesByNameAndRefusesAnotherArchitecture) {
  edan::EmotionalDan a(tiny_config(2), ring_shape(32)), b(tiny_config(2), ring_shape(32));
  {
    torch::NoGradGuard ng;
    for (auto& p : a->parameters()) p.normal_();
    for (auto& t : a->buffers())
      if (t.is_floating_point()) t.uniform_(0.5, 1.5);
  }
  // One stage into another model's stage of the same index.
  edan::copy_weights(*a->stage(0), *b->stage(0));
  auto pa = a->stage(0)->named_parameters(), pb = b->stage(0)->named_parameters();
  for (auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  EXPECT_TRUE(torch::equal(a->stage(0)->named_buffers()["bn1a.running_mean"],
                           b->stage(0)->named_buffers()["bn1a.running_mean"]));
  EXPECT_FALSE(torch::equal(a->stage(1)->named_parameters()["fc1.weight"],
                            b->stage(1)->named_parameters()["fc1.weight"]));
  // A whole model: equal outputs.
  edan::copy_weights(*a, *b);
  a->eval();
  b->eval();
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 1, 32, 32});
  EXPECT_TRUE(torch::equal(a->forward(x).logits, b->forward(x).logits));
  // Stage 2 has more input channels than stage 1; other widths differ too.
  EXPECT_THROW(edan::copy_weights(*a->stage(0), *b->stage(1)), std::invalid_argument);
  auto wide = tiny_config(2);
  wide.widths[3] *= 2;
  edan::EmotionalDan c(wide, ring_shape(32));
  try {
    edan::copy_weights(*a, *c);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("differs in shape"), std::string::npos) << e.what();
  }
}

TEST(Model_SaveLoad, roundTripGivesIdenticalOutputs) {
  auto c = tiny_config(2);
  c.labels = {"neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"};
  edan::EmotionalDan m(c, ring_shape(32));
  m->eval();
  edan::ModelMeta meta;
  meta.config = c;
  meta.mean_shape = ring_shape(32);
  meta.input_norm = "image";
  meta.input_mean = 0.4;
  meta.input_std = 0.2;
  meta.training["records"] = 12;
  meta.version = "0.1.0";
  auto path = temp_file("round.edan");
  edan::save_model(path, m, meta);
  auto loaded = edan::load_model(path, torch::kCPU);
  EXPECT_EQ(loaded.meta.config.labels, c.labels);
  EXPECT_EQ(loaded.meta.config.widths, c.widths);
  EXPECT_EQ(loaded.meta.input_mean, 0.4);
  EXPECT_EQ(loaded.meta.input_norm, "image");
  EXPECT_EQ(loaded.meta.training.at("records").as_int64(), 12);
  EXPECT_EQ(loaded.meta.mean_shape[7].x, meta.mean_shape[7].x);
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 1, 32, 32});
  auto a = m->forward(x), b = loaded.model->forward(x);
  EXPECT_TRUE(torch::equal(a.logits, b.logits));
  EXPECT_TRUE(torch::equal(a.landmarks[1], b.landmarks[1]));
  std::filesystem::remove(path);
}

TEST(Model_Meta, histeqReadBackAndAnInputBlurRefused) {
  edan::ModelMeta meta;
  meta.config = tiny_config(1);
  meta.mean_shape = ring_shape(32);
  meta.input_norm = "histeq";
  auto json = edan::meta_to_json(meta);
  EXPECT_EQ(edan::meta_from_json(json).input_norm, "histeq");
  // A file of an older edan that blurred faces before prediction cannot be
  // scored as meant: refused, saying why. A blur of 0 changed nothing.
  json["input_blur"] = 0.0;
  EXPECT_EQ(edan::meta_from_json(json).input_norm, "histeq");
  json["input_blur"] = 3.32;
  try {
    edan::meta_from_json(json);
    FAIL() << "a model with input_blur was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("'input_blur' is set"), std::string::npos) << e.what();
  }
  json["input_blur"] = 0.0;
  json["input_norm"] = "equalise";
  EXPECT_ANY_THROW(edan::meta_from_json(json));
}

TEST(Model_EqualizeHistograms, asOpenCvAndIdempotent) {
  // Four levels 10, 20, 30, 40 (x 1/255) with counts 1, 1, 1, 1: c0 = 1,
  // level v -> round(255 (c[v] - 1) / 3): 0, 85, 170, 255.
  auto img = torch::tensor({10.0f, 20.0f, 30.0f, 40.0f}).div(255).view({1, 1, 2, 2});
  auto eq = edan::equalize_histograms(img).mul(255).round();
  EXPECT_EQ(eq.flatten()[0].item<float>(), 0);
  EXPECT_EQ(eq.flatten()[1].item<float>(), 85);
  EXPECT_EQ(eq.flatten()[2].item<float>(), 170);
  EXPECT_EQ(eq.flatten()[3].item<float>(), 255);
  // Against cv::equalizeHist on a random image, and idempotent.
  cv::Mat m(24, 24, CV_8U);
  cv::randu(m, 40, 180);
  cv::Mat ref;
  cv::equalizeHist(m, ref);
  auto t = torch::from_blob(m.data, {1, 1, 24, 24}, torch::kUInt8).to(torch::kFloat).div(255);
  auto ours = edan::equalize_histograms(t);
  auto expected = torch::from_blob(ref.data, {1, 1, 24, 24}, torch::kUInt8).to(torch::kFloat);
  EXPECT_LE((ours.mul(255).round() - expected).abs().max().item<float>(), 1.0f);
  EXPECT_TRUE(torch::equal(edan::equalize_histograms(ours), ours));
  // A flat image becomes 0; each image of a batch by its own histogram.
  auto flat = torch::full({1, 1, 4, 4}, 0.5f);
  EXPECT_EQ(edan::equalize_histograms(flat).abs().max().item<float>(), 0.0f);
  auto both = edan::equalize_histograms(torch::cat({t, torch::full({1, 1, 24, 24}, 0.5f)}));
  EXPECT_TRUE(torch::equal(both[0], ours[0]));
  EXPECT_EQ(both[1].abs().max().item<float>(), 0.0f);
}

TEST(Model_Normalise, histeqMakesContrastIrrelevant) {
  edan::ModelMeta meta;
  meta.input_norm = "histeq";
  cv::Mat m(16, 16, CV_8U);
  cv::randu(m, 64, 128);
  auto t = torch::from_blob(m.data, {1, 1, 16, 16}, torch::kUInt8).to(torch::kFloat).div(255);
  // A contrast stretch that keeps every level distinct leaves the input the
  // network sees unchanged.
  auto a = edan::normalise_images(t, meta), b = edan::normalise_images(t * 2 - 0.25, meta);
  EXPECT_LT((a - b).abs().max().item<float>(), 1e-4f);
  EXPECT_NEAR(a.mean().item<float>(), 0.0f, 1e-4);
  EXPECT_NEAR(a.std(/*unbiased=*/false).item<float>(), 1.0f, 1e-3);
}

TEST(Model_Normalise, datasetAndPerImage) {
  edan::ModelMeta meta;
  meta.input_mean = 0.5;
  meta.input_std = 0.25;
  // Image 0: values 0.2 and 0.6 (mean 0.4, population std 0.2); image 1 flat.
  auto x = torch::full({2, 1, 2, 2}, 0.7f);
  x[0][0][0][0] = 0.2f;
  x[0][0][0][1] = 0.6f;
  x[0][0][1][0] = 0.2f;
  x[0][0][1][1] = 0.6f;
  auto d = edan::normalise_images(x, meta);
  EXPECT_NEAR(d[0][0][0][0].item<float>(), (0.2 - 0.5) / 0.25, 1e-6);
  EXPECT_NEAR(d[1][0][1][1].item<float>(), (0.7 - 0.5) / 0.25, 1e-6);
  meta.input_norm = "image";
  auto p = edan::normalise_images(x, meta);
  EXPECT_NEAR(p[0][0][0][0].item<float>(), -1.0, 1e-5);
  EXPECT_NEAR(p[0][0][1][1].item<float>(), 1.0, 1e-5);
  // A flat crop has no contrast to normalise: zeros, not NaN.
  EXPECT_TRUE(torch::equal(p[1], torch::zeros({1, 2, 2})));
  // Contrast and brightness changes give the same input.
  auto q = edan::normalise_images(x * 0.5 + 0.1, meta);
  EXPECT_TRUE(torch::allclose(q[0], p[0], 1e-5, 1e-5));
}

TEST(Model_LoadModel, badFilesAreFatalAndNamed) {
  auto expect_fatal = [](const std::string& path) {
    try {
      edan::load_model(path, torch::kCPU);
      ADD_FAILURE() << "no error for " << path;
    } catch (const edan::FatalError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  expect_fatal(temp_file("missing.edan"));
  auto text = temp_file("text.edan");
  std::ofstream(text) << "hello, not a model\n";
  expect_fatal(text);
  // A valid model file cut in half.
  edan::EmotionalDan m(tiny_config(1), ring_shape(32));
  edan::ModelMeta meta;
  meta.config = tiny_config(1);
  meta.mean_shape = ring_shape(32);
  auto good = temp_file("good.edan");
  edan::save_model(good, m, meta);
  auto size = std::filesystem::file_size(good);
  auto cut = temp_file("cut.edan");
  std::filesystem::copy_file(good, cut, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(cut, size / 2);
  expect_fatal(cut);
  // A torch archive without edan metadata.
  auto plain = temp_file("plain.pt");
  torch::serialize::OutputArchive archive;
  m->save(archive);
  archive.save_to(plain);
  expect_fatal(plain);
  std::filesystem::remove_all(std::filesystem::path(good).parent_path());
}

TEST(Model_ParseDevice, cpuAndErrors) {
  EXPECT_EQ(edan::parse_device("cpu"), torch::Device(torch::kCPU));
  EXPECT_THROW(edan::parse_device("tpu"), edan::UsageError);
  if (!torch::cuda::is_available()) {
    EXPECT_THROW(edan::parse_device("cuda"), edan::FatalError);
  } else {
    EXPECT_TRUE(edan::parse_device("cuda").is_cuda());
  }
}

TEST(Model_SetThreads, setsIntraOpThreads) {
  int before = torch::get_num_threads();
  edan::set_threads(1);
  EXPECT_EQ(torch::get_num_threads(), 1);
  edan::set_threads(before);
}

TEST(Model_DefaultModelPath, environmentOverrides) {
  setenv("EDAN_MODEL", "/some/where.edan", 1);
  EXPECT_EQ(edan::default_model_path(), "/some/where.edan");
  unsetenv("EDAN_MODEL");
}
