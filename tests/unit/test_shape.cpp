#include <gtest/gtest.h>

#include <cmath>

#include "edan/shape.hpp"

namespace {
edan::Shape sample_shape() {
  edan::Shape s;
  for (int i = 0; i < 68; ++i) s.push_back({std::cos(i * 0.37) * 20 + i * 0.3, std::sin(i * 0.91) * 15});
  return s;
}
}  // namespace

TEST(Shape_Similarity, recoversKnownTransform) {
  // Rotation by 30 degrees, scale 1.5, shift (10, -4).
  double th = M_PI / 6, k = 1.5;
  edan::Similarity t{k * std::cos(th), k * std::sin(th), 10, -4};
  auto from = sample_shape();
  auto to = t.apply(from);
  auto est = edan::estimate_similarity(from, to);
  EXPECT_NEAR(est.a, t.a, 1e-9);
  EXPECT_NEAR(est.b, t.b, 1e-9);
  EXPECT_NEAR(est.tx, 10, 1e-9);
  EXPECT_NEAR(est.ty, -4, 1e-9);
  EXPECT_NEAR(est.scale(), 1.5, 1e-9);
}

TEST(Shape_Similarity, inverseUndoes) {
  edan::Similarity t{0.8, -0.6, 3, 7};
  auto inv = t.inverse();
  auto p = inv.apply(t.apply(edan::Point2{5, -2}));
  EXPECT_NEAR(p.x, 5, 1e-12);
  EXPECT_NEAR(p.y, -2, 1e-12);
}

TEST(Shape_Mean, ofRotatedCopiesIsTheShapeInFrame) {
  auto base = sample_shape();
  std::vector<edan::Shape> set;
  for (int k = 0; k < 5; ++k) {
    double th = 0.1 * k, sc = 1 + 0.2 * k;
    set.push_back(edan::Similarity{sc * std::cos(th), sc * std::sin(th), 5.0 * k, -3.0 * k}.apply(base));
  }
  auto mean = edan::mean_shape(set, 100, 0.8);
  // The mean is a similarity image of the base shape...
  auto fit = edan::estimate_similarity(base, mean);
  auto mapped = fit.apply(base);
  for (int i = 0; i < 68; ++i) {
    EXPECT_NEAR(mapped[i].x, mean[i].x, 1e-6);
    EXPECT_NEAR(mapped[i].y, mean[i].y, 1e-6);
  }
  // ...placed centred with its larger side = 80 px.
  auto b = edan::bounding_box(mean);
  EXPECT_NEAR(std::max(b[2] - b[0], b[3] - b[1]), 80, 1e-6);
  EXPECT_NEAR((b[0] + b[2]) / 2, 50, 1e-6);
  EXPECT_NEAR((b[1] + b[3]) / 2, 50, 1e-6);
}

TEST(Shape_Nme, handComputed) {
  edan::Shape truth(68, {0, 0});
  truth[36] = {0, 0};
  truth[45] = {10, 0};
  edan::Shape pred = truth;
  for (auto& p : pred) p.x += 1;  // every point off by 1 px; inter-ocular 10
  EXPECT_NEAR(edan::nme(pred, truth), 0.1, 1e-12);
}

TEST(Shape_Mirror, isAnInvolution) {
  auto s = sample_shape();
  auto back = edan::mirror_shape(edan::mirror_shape(s, 64), 64);
  for (int i = 0; i < 68; ++i) {
    EXPECT_NEAR(back[i].x, s[i].x, 1e-9);
    EXPECT_DOUBLE_EQ(back[i].y, s[i].y);
  }
  const auto& m = edan::mirror_indices();
  EXPECT_EQ(m[36], 45);
  EXPECT_EQ(m[48], 54);
  EXPECT_EQ(m[30], 30);
  EXPECT_EQ(m[8], 8);
}
