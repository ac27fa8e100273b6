#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "edan/error.hpp"
#include "edan/gradcam.hpp"
#include "edan/model.hpp"
#include "fixtures.hpp"

namespace {

using edan::test::ring_shape;

using edan::test::tiny_config;

// An S=32 model with hand-set weights. In its last stage, conv4a channel 0
// = ReLU(x) and channel 1 = ReLU(-x) (x the normalised image, pooled 8× to
// 4×4); conv4b copies them; logit 0 = sum of the pooled channel 0, logit 1 =
// sum of the pooled channel 1, the other logits 0. With two stages, stage 1
// only outputs the mean shape shifted by (shift, 0), so that stage 2 sees the
// image warped by the translation (-shift, 0).
edan::EmotionalDan bright_dark_model(std::int64_t stages = 1, double shift = 0) {
  auto c = tiny_config(stages);
  c.widths = {2, 2, 2, 2};
  c.fc = 2;
  edan::EmotionalDan model(c, ring_shape(32));
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    p.value().zero_();
    if (p.key().find("bn") != std::string::npos && p.key().find(".weight") != std::string::npos)
      p.value().fill_(1);
  }
  for (auto& b : model->named_buffers())
    if (b.key().find("running_var") != std::string::npos) b.value().fill_(1);
  auto stage = model->stage(stages - 1);
  for (const char* name :
       {"conv1a", "conv1b", "conv2a", "conv2b", "conv3a", "conv3b", "conv4a", "conv4b"}) {
    auto w = stage->conv(name)->weight;
    if (std::string(name) == "conv1a") {  // channel 0 of the input: the image
      w[0][0][1][1] = 1;
      w[1][0][1][1] = -1;
    } else {
      w[0][0][1][1] = 1;
      w[1][1][1][1] = 1;
    }
  }
  auto params = model->named_parameters();
  const std::string last = "stage" + std::to_string(stages);
  auto fc1 = params[last + ".fc1.weight"];  // [2, 2*2*2], input flattened [c][y][x]
  fc1[0].slice(0, 0, 4).fill_(1);
  fc1[1].slice(0, 4, 8).fill_(1);
  auto emo = params[last + ".emotion.weight"];  // [7, 2]
  emo[0][0] = 1;
  emo[1][1] = 1;
  if (stages > 1) params["stage1.landmarks.bias"].view({68, 2}).select(1, 0).fill_(shift);
  model->eval();
  return model;
}

// Normalised image, 32×32: top-left quadrant +2 (bright), bottom-right -2
// (dark), the rest 0 (the training mean).
torch::Tensor bright_dark_image() {
  auto x = torch::zeros({1, 1, 32, 32});
  x.index_put_({0, 0, torch::indexing::Slice(0, 16), torch::indexing::Slice(0, 16)}, 2.0);
  x.index_put_({0, 0, torch::indexing::Slice(16, 32), torch::indexing::Slice(16, 32)}, -2.0);
  return x;
}

}  // namespace

TEST(GradCam_FromGradients, handComputedWeightsAndRelu) {
  // A^0 = [[1,2],[3,4]], A^1 = [[4,3],[2,1]];
  // grads: channel 0 all 1 (alpha_0 = 1), channel 1 [[0,-2],[-1,-1]] (alpha_1 = -1).
  // sum_k alpha_k A^k = [[-3,-1],[1,3]] -> ReLU [[0,0],[1,3]].
  auto a = torch::tensor({1., 2., 3., 4., 4., 3., 2., 1.}).view({1, 2, 2, 2});
  auto g = torch::tensor({1., 1., 1., 1., 0., -2., -1., -1.}).view({1, 2, 2, 2});
  auto map = edan::grad_cam_from_gradients(a, g);
  ASSERT_EQ(map.sizes(), (std::vector<std::int64_t>{1, 2, 2}));
  auto expected = torch::tensor({0., 0., 1., 3.}).view({1, 2, 2});
  EXPECT_TRUE(torch::equal(map, expected)) << map;
  EXPECT_THROW(edan::grad_cam_from_gradients(a, g.view({1, 2, 4})), std::invalid_argument);
}

TEST(GradCam_GradCam, mapLiesWhereTheScoreLooks) {
  // Two channels over a 4×4 grid: channel 0 lives in the top-left quadrant,
  // channel 1 in the bottom-right one.
  auto a = torch::zeros({2, 2, 4, 4});
  auto tl = torch::tensor({1., 2., 3., 4.}).view({2, 2});
  auto br = torch::tensor({5., 6., 7., 8.}).view({2, 2});
  using torch::indexing::Slice;
  for (int i = 0; i < 2; ++i) {
    a.index_put_({i, 0, Slice(0, 2), Slice(0, 2)}, tl);
    a.index_put_({i, 1, Slice(2, 4), Slice(2, 4)}, br);
  }
  a.requires_grad_(true);
  // Sample 0's score is the sum of channel 0 (gradient 1 on channel 0:
  // alpha = (1, 0)); sample 1's is 2 × channel 1 − channel 0 (alpha = (-1, 2)).
  auto s0 = a[0][0].sum();
  auto s1 = 2 * a[1][1].sum() - a[1][0].sum();
  auto map = edan::grad_cam(a, torch::stack({s0, s1}));
  auto expected0 = torch::zeros({4, 4});
  expected0.index_put_({Slice(0, 2), Slice(0, 2)}, tl);
  auto expected1 = torch::zeros({4, 4});
  expected1.index_put_({Slice(2, 4), Slice(2, 4)}, 2 * br);  // -tl is cut by the ReLU
  EXPECT_TRUE(torch::equal(map[0], expected0)) << map[0];
  EXPECT_TRUE(torch::equal(map[1], expected1)) << map[1];
}

TEST(GradCam_UpsampleMaps, bilinearPixelCentres) {
  // Output x samples input (x + 0.5)/2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped.
  auto m = torch::tensor({0., 1., 2., 3.}).view({1, 2, 2});
  auto up = edan::upsample_maps(m, 4);
  ASSERT_EQ(up.sizes(), (std::vector<std::int64_t>{1, 4, 4}));
  auto row0 = torch::tensor({0., 0.25, 0.75, 1.});
  EXPECT_TRUE(torch::allclose(up[0][0], row0)) << up;
  EXPECT_TRUE(torch::allclose(up[0][3], row0 + 2)) << up;
}

TEST(GradCam_SampleMap, bilinearAndClamped) {
  // map(x, y) = 3y + x on a 3×3 grid: bilinear reproduces it exactly inside.
  auto m = torch::tensor({0., 1., 2., 3., 4., 5., 6., 7., 8.}).view({3, 3});
  auto v = edan::sample_map(m, {{0, 0}, {2, 2}, {0.5, 0.5}, {1.25, 0}, {1, 1.5}, {-1, 5}, {9, -3}});
  std::vector<double> expected{0, 8, 2, 1.25, 5.5, 6, 2};
  ASSERT_EQ(v.size(), expected.size());
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_DOUBLE_EQ(v[i], expected[i]) << i;
}

TEST(GradCam_RankLandmarks, highestFirstTiesToLowerIndex) {
  EXPECT_EQ(edan::rank_landmarks({0.1, 0.5, 0.3, 0.5, 0.0}, 3), (std::vector<int>{1, 3, 2}));
  EXPECT_EQ(edan::rank_landmarks({0.2, 0.1}, 5), (std::vector<int>{0, 1}));
}

TEST(GradCam_ModelGradCam, syntheticModelPutsTheMapWhereTheLogitLooks) {
  auto model = bright_dark_model();
  auto x = bright_dark_image();
  auto cam = edan::model_grad_cam(model, torch::cat({x, x, x}), "conv4a", {0, 1, 2});
  ASSERT_EQ(cam.maps.sizes(), (std::vector<std::int64_t>{3, 32, 32}));
  // Logit 0 only sees the bright (top-left) quadrant: conv4a's 4×4 map is
  // non-zero in its top-left 2×2 cells; bilinear upsampling ×8 reaches up
  // to pixel 19 ((19 + 0.5)/8 - 0.5 < 2), no further.
  using torch::indexing::Slice;
  auto m0 = cam.maps[0], m1 = cam.maps[1];
  EXPECT_GT(m0.index({Slice(0, 16), Slice(0, 16)}).min().item<float>(), 0);
  EXPECT_EQ(m0.index({Slice(20, 32)}).abs().max().item<float>(), 0);
  EXPECT_EQ(m0.index({Slice(), Slice(20, 32)}).abs().max().item<float>(), 0);
  // Logit 1 only sees the dark (bottom-right) quadrant.
  EXPECT_GT(m1.index({Slice(16, 32), Slice(16, 32)}).min().item<float>(), 0);
  EXPECT_EQ(m1.index({Slice(0, 12)}).abs().max().item<float>(), 0);
  EXPECT_EQ(m1.index({Slice(), Slice(0, 12)}).abs().max().item<float>(), 0);
  // Logit 2 is constant: no gradient, no map.
  EXPECT_EQ(cam.maps[2].abs().max().item<float>(), 0);
  // Exact value inside the bright quadrant: alpha_0 × A^0. Each BN (eval,
  // mean 0, var 1) scales by bn = 1/sqrt(1 + 1e-5): A^0 = 2 bn^7 there
  // (seven conv-BN-ReLU). dlogit0/dA^0 is bn on one cell of the one bright
  // 2×2 pool window (max pooling passes the gradient to one element; the
  // ReLU stops it in the zero windows), so alpha_0 = bn/16.
  const double bn = 1 / std::sqrt(1 + 1e-5);
  const double a = 2 * std::pow(bn, 7);
  EXPECT_NEAR(m0[4][4].item<float>(), bn / 16 * a, 1e-6);
  EXPECT_EQ(cam.classes, (std::vector<int>{0, 1, 2}));
  // The landmarks head is zero: the landmarks are the mean shape.
  EXPECT_TRUE(torch::allclose(cam.landmarks[0], model->mean_shape().cpu()));
}

TEST(GradCam_ModelGradCam, laterStageMapsAreMappedBackToTheCrop) {
  // Stage 1 says the face is 8 px right of the mean shape, so stage 2 sees
  // the image moved 8 px left: its bright cells are conv4a's column 0 only,
  // and its map (before mapping back) is non-zero for x <= 11. Mapped back
  // (+8 px), the map covers x = 8..19 and rows 0..19 of the crop: over the
  // bright quadrant's right half, 0 left of x = 8 (outside stage 2's view)
  // and right of x = 19. Mapped the wrong way it would cover x = 0..3.
  auto model = bright_dark_model(/*stages=*/2, /*shift=*/8);
  auto cam = edan::model_grad_cam(model, bright_dark_image(), "conv4a", {0});
  using torch::indexing::Slice;
  auto m = cam.maps[0];
  EXPECT_GT(m.index({Slice(0, 16), Slice(8, 16)}).min().item<float>(), 0) << m;
  // "0" up to float rounding: the transform estimated in float32 is a
  // translation only to ~1e-7, which bilinear sampling lets leak.
  const float tol = 1e-5f * m.max().item<float>();
  EXPECT_LT(m.index({Slice(), Slice(0, 8)}).abs().max().item<float>(), tol) << m;
  EXPECT_LT(m.index({Slice(), Slice(20, 32)}).abs().max().item<float>(), tol) << m;
  EXPECT_LT(m.index({Slice(20, 32)}).abs().max().item<float>(), tol) << m;
  // The last stage's landmarks: stage 1's (mean + 8 px), mapped back.
  auto expected = model->mean_shape().cpu().clone();
  expected.select(1, 0).add_(8);
  EXPECT_TRUE(torch::allclose(cam.landmarks[0], expected, 1e-4, 1e-3));
}

TEST(GradCam_ModelGradCam, classSpecificOnARandomModel) {
  torch::manual_seed(3);
  edan::EmotionalDan model(tiny_config(2), ring_shape(32));
  // Move the BatchNorm running statistics off their defaults so that eval()
  // mode is exercised with non-trivial values.
  {
    torch::NoGradGuard no_grad;
    for (auto& b : model->named_buffers()) {
      if (b.key().find("running_mean") != std::string::npos) b.value().uniform_(-0.1, 0.1);
      if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 1.5);
    }
  }
  auto x = torch::randn({2, 1, 32, 32});
  auto a = edan::model_grad_cam(model, x, "conv4a", {0, 0});
  auto b = edan::model_grad_cam(model, x, "conv4a", {3, 3});
  EXPECT_FALSE(torch::allclose(a.maps[0], b.maps[0])) << "maps of classes 0 and 3 equal";
  EXPECT_TRUE(torch::allclose(a.logits, b.logits));  // same forward pass
  EXPECT_GE(a.maps.min().item<float>(), 0);
  // -1 = the predicted class.
  auto p = edan::model_grad_cam(model, x, "conv4b", {-1, -1});
  auto pred = p.logits.argmax(1);
  EXPECT_EQ(p.classes[0], pred[0].item<std::int64_t>());
  EXPECT_EQ(p.classes[1], pred[1].item<std::int64_t>());
  // Batched = one by one (each sample gets its own gradient).
  auto one = edan::model_grad_cam(model, x.slice(0, 1, 2), "conv4a", {3});
  EXPECT_TRUE(torch::allclose(one.maps[0], b.maps[1], 1e-4, 1e-6));
  // No parameter gradients accumulate; parameters still train afterwards.
  for (auto& q : model->parameters()) {
    EXPECT_FALSE(q.grad().defined());
    EXPECT_TRUE(q.requires_grad());
  }
  EXPECT_THROW(edan::model_grad_cam(model, x, "conv5a", {0, 0}), std::out_of_range);
  EXPECT_THROW(edan::model_grad_cam(model, x, "conv4a", {0}), std::invalid_argument);
  EXPECT_THROW(edan::model_grad_cam(model, x, "conv4a", {0, 7}), std::invalid_argument);
}

TEST(GradCam_ClassForRecord, predLabelAndNames) {
  const std::vector<std::string> seven{"neutral", "happy",   "sad",  "surprise",
                                       "fear",    "disgust", "anger"};
  const std::vector<std::string> three{"negative", "positive", "neutral"};
  edan::Record r{{"label", "HA"}};
  EXPECT_EQ(edan::class_for_record(r, "pred", seven), -1);
  EXPECT_EQ(edan::class_for_record(r, "label", seven), 1);
  EXPECT_EQ(edan::class_for_record(r, "label", three), 1);
  EXPECT_EQ(edan::class_for_record(r, "angry", seven), 6);
  EXPECT_THROW(edan::class_for_record(edan::Record{{"label", "contempt"}}, "label", seven),
               edan::RecordError);
  EXPECT_THROW(edan::class_for_record(edan::Record{}, "label", seven), edan::RecordError);
  EXPECT_THROW(edan::class_for_record(r, "bored", seven), edan::UsageError);
}
