#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "edan/metrics.hpp"

using edan::ClassSet;
using edan::ConfusionMatrix;
using edan::kOutside;
using edan::LabelSpace;
using edan::Prediction;

namespace {
ConfusionMatrix matrix(std::vector<std::string> labels, std::vector<std::pair<int, int>> pairs) {
  ConfusionMatrix cm(std::move(labels));
  for (auto [t, p] : pairs) cm.add(t, p);
  return cm;
}
Prediction probs(std::vector<std::pair<std::string, double>> p,
                 std::optional<std::string> label = std::nullopt) {
  return Prediction{std::move(label), std::move(p)};
}
Prediction label(std::string l) { return Prediction{std::move(l), {}}; }
}  // namespace

// --- confusion matrix and scores ----------------------------------------------

TEST(Metrics_Confusion, countsSupportAndColumns) {
  // truth neutral: 2 neutral, 1 happy; happy: 1 happy, 1 sad; sad: 1 sad.
  auto cm = matrix({"neutral", "happy", "sad"}, {{0, 0}, {0, 0}, {0, 1}, {1, 1}, {1, 2}, {2, 2}});
  EXPECT_EQ(cm.total(), 6u);
  EXPECT_EQ(cm.correct(), 4u);
  EXPECT_EQ(cm.count(0, 0), 2u);
  EXPECT_EQ(cm.count(1, 2), 1u);
  EXPECT_EQ(cm.support(0), 3u);
  EXPECT_EQ(cm.predicted(1), 2u);
  EXPECT_DOUBLE_EQ(cm.row_fraction(0, 0), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(cm.row_fraction(0, 1), 1.0 / 3.0);
  EXPECT_EQ(cm.outside_total(), 0u);
}

TEST(Metrics_Confusion, rejectsIndicesOutOfRange) {
  ConfusionMatrix cm({"a", "b"});
  EXPECT_THROW(cm.add(2, 0), std::out_of_range);
  EXPECT_THROW(cm.add(-1, 0), std::out_of_range);
  EXPECT_THROW(cm.add(0, 2), std::out_of_range);
  EXPECT_THROW(cm.add(0, -2), std::out_of_range);
  EXPECT_EQ(cm.total(), 0u);
}

TEST(Metrics_Classification, handComputedThreeClasses) {
  auto m = edan::classification_metrics(
      matrix({"neutral", "happy", "sad"}, {{0, 0}, {0, 0}, {0, 1}, {1, 1}, {1, 2}, {2, 2}}));
  EXPECT_EQ(m.n, 6u);
  EXPECT_EQ(m.correct, 4u);
  EXPECT_DOUBLE_EQ(*m.accuracy, 4.0 / 6.0);
  ASSERT_EQ(m.classes.size(), 3u);
  // precision: 2/2, 1/2, 1/2; recall: 2/3, 1/2, 1/1.
  EXPECT_DOUBLE_EQ(m.classes[0].precision, 1.0);
  EXPECT_DOUBLE_EQ(m.classes[1].precision, 0.5);
  EXPECT_DOUBLE_EQ(m.classes[2].precision, 0.5);
  EXPECT_DOUBLE_EQ(m.classes[0].recall, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.classes[1].recall, 0.5);
  EXPECT_DOUBLE_EQ(m.classes[2].recall, 1.0);
  // f1: 2*1*(2/3)/(5/3) = 0.8; 0.5; 2*0.5*1/1.5 = 2/3.
  EXPECT_DOUBLE_EQ(m.classes[0].f1, 0.8);
  EXPECT_DOUBLE_EQ(m.classes[1].f1, 0.5);
  EXPECT_NEAR(m.classes[2].f1, 2.0 / 3.0, 1e-15);
  EXPECT_EQ(m.classes[0].support, 3u);
  EXPECT_EQ(m.classes[2].predicted, 2u);
  // balanced: (2/3 + 1/2 + 1)/3 = 13/18; macro-F1: (4/5 + 1/2 + 2/3)/3 = 59/90.
  EXPECT_NEAR(*m.balanced_accuracy, 13.0 / 18.0, 1e-15);
  EXPECT_NEAR(*m.macro_f1, 59.0 / 90.0, 1e-15);
}

TEST(Metrics_Classification, classNeverPredictedHasPrecisionZeroFlagged) {
  // a -> b, b -> b: a is never predicted.
  auto m = edan::classification_metrics(matrix({"a", "b"}, {{0, 1}, {1, 1}}));
  EXPECT_FALSE(m.classes[0].precision_defined);
  EXPECT_DOUBLE_EQ(m.classes[0].precision, 0.0);
  EXPECT_TRUE(m.classes[0].recall_defined);
  EXPECT_DOUBLE_EQ(m.classes[0].recall, 0.0);
  EXPECT_DOUBLE_EQ(m.classes[0].f1, 0.0);
  EXPECT_TRUE(m.classes[1].precision_defined);
  EXPECT_DOUBLE_EQ(m.classes[1].precision, 0.5);
  EXPECT_DOUBLE_EQ(m.classes[1].f1, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(*m.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(*m.balanced_accuracy, 0.5);  // (0 + 1) / 2
  EXPECT_DOUBLE_EQ(*m.macro_f1, 1.0 / 3.0);     // (0 + 2/3) / 2
}

TEST(Metrics_Classification, emptyClassIsLeftOutOfMacroAverages) {
  // a -> a, a -> c, b -> b; c has no support but is predicted once.
  auto m = edan::classification_metrics(matrix({"a", "b", "c"}, {{0, 0}, {0, 2}, {1, 1}}));
  EXPECT_FALSE(m.classes[2].recall_defined);
  EXPECT_EQ(m.classes[2].support, 0u);
  EXPECT_TRUE(m.classes[2].precision_defined);
  EXPECT_DOUBLE_EQ(m.classes[2].precision, 0.0);
  EXPECT_DOUBLE_EQ(m.classes[2].f1, 0.0);
  EXPECT_DOUBLE_EQ(*m.accuracy, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(*m.balanced_accuracy, 0.75);  // (1/2 + 1) / 2, c left out
  EXPECT_DOUBLE_EQ(*m.macro_f1, 5.0 / 6.0);      // (2/3 + 1) / 2
}

TEST(Metrics_Classification, emptyRowNormalisesToZeros) {
  auto cm = matrix({"a", "b"}, {{0, 0}});
  EXPECT_DOUBLE_EQ(cm.row_fraction(1, 0), 0.0);
  EXPECT_DOUBLE_EQ(cm.row_fraction(1, 1), 0.0);
}

TEST(Metrics_Classification, singleRecord) {
  auto right = edan::classification_metrics(matrix({"a", "b"}, {{0, 0}}));
  EXPECT_EQ(right.n, 1u);
  EXPECT_DOUBLE_EQ(*right.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(*right.balanced_accuracy, 1.0);
  EXPECT_DOUBLE_EQ(*right.macro_f1, 1.0);
  EXPECT_FALSE(right.classes[1].precision_defined);
  EXPECT_FALSE(right.classes[1].recall_defined);

  auto wrong = edan::classification_metrics(matrix({"a", "b"}, {{0, 1}}));
  EXPECT_DOUBLE_EQ(*wrong.accuracy, 0.0);
  EXPECT_DOUBLE_EQ(*wrong.balanced_accuracy, 0.0);
  EXPECT_DOUBLE_EQ(*wrong.macro_f1, 0.0);
}

TEST(Metrics_Classification, noRecordsLeavesRatiosUndefined) {
  auto m = edan::classification_metrics(ConfusionMatrix({"a", "b"}));
  EXPECT_EQ(m.n, 0u);
  EXPECT_FALSE(m.accuracy);
  EXPECT_FALSE(m.balanced_accuracy);
  EXPECT_FALSE(m.macro_f1);
  EXPECT_EQ(m.classes.size(), 2u);
}

TEST(Metrics_Classification, predictionOutsideTheClassesIsWrong) {
  // negative -> (surprise: outside), positive -> positive.
  auto cm = matrix({"negative", "positive", "neutral"}, {{0, kOutside}, {1, 1}});
  EXPECT_EQ(cm.count(0, kOutside), 1u);
  EXPECT_EQ(cm.support(0), 1u);
  EXPECT_EQ(cm.outside_total(), 1u);
  EXPECT_DOUBLE_EQ(cm.row_fraction(0, kOutside), 1.0);
  auto m = edan::classification_metrics(cm);
  EXPECT_DOUBLE_EQ(*m.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(m.classes[0].recall, 0.0);
  EXPECT_EQ(m.classes[0].predicted, 0u);
}

// --- label spaces and prediction rules ---------------------------------------------

TEST(Metrics_LabelSpace, labelsThePredictionsUseInCanonicalOrder) {
  auto s = LabelSpace::of_labels({"anger", "happy", "neutral", "bogus"});
  EXPECT_EQ(s.labels, (std::vector<std::string>{"neutral", "happy", "anger"}));
  EXPECT_EQ(s.map("anger"), 2);
  EXPECT_EQ(s.map("sad"), kOutside);
}

TEST(Metrics_LabelSpace, threeClassMapping) {
  auto s = LabelSpace::of_set(ClassSet::k3);
  EXPECT_EQ(s.map("fear"), 0);
  EXPECT_EQ(s.map("anger"), 0);
  EXPECT_EQ(s.map("contempt"), 1);
  EXPECT_EQ(s.map("happy"), 1);
  EXPECT_EQ(s.map("neutral"), 2);
  EXPECT_EQ(s.map("surprise"), kOutside);
  EXPECT_EQ(s.map("negative"), 0);
}

TEST(Metrics_Resolve, threeClassSumsGroupProbabilities) {
  // neutral and surprise are the single largest, but the negative group
  // sums to 0.125 + 0.125 + 0.0625 = 0.3125 > neutral 0.25 > positive 0.1875.
  auto p = probs({{"neutral", 0.25},
                  {"happy", 0.125},
                  {"contempt", 0.0625},
                  {"sad", 0.125},
                  {"fear", 0.125},
                  {"disgust", 0.0625},
                  {"surprise", 0.25}},
                 "neutral");
  EXPECT_EQ(edan::resolve_prediction(p, LabelSpace::of_set(ClassSet::k3)), 0);
}

TEST(Metrics_Resolve, threeClassLeavesSurpriseOutOfTheArgmax) {
  auto p = probs({{"surprise", 0.5}, {"happy", 0.3}, {"sad", 0.2}}, "surprise");
  EXPECT_EQ(edan::resolve_prediction(p, LabelSpace::of_set(ClassSet::k3)), 1);  // positive
}

TEST(Metrics_Resolve, threeClassWithoutProbsMapsTheLabel) {
  auto k3 = LabelSpace::of_set(ClassSet::k3);
  EXPECT_EQ(edan::resolve_prediction(label("fear"), k3), 0);
  EXPECT_EQ(edan::resolve_prediction(label("contempt"), k3), 1);
  EXPECT_EQ(edan::resolve_prediction(label("neutral"), k3), 2);
  // A predicted surprise has no 3-class: it counts as wrong.
  EXPECT_EQ(edan::resolve_prediction(label("surprise"), k3), kOutside);
}

TEST(Metrics_Resolve, sixClassArgmaxOverTheSix) {
  auto k6 = LabelSpace::of_set(ClassSet::k6);
  auto p = probs({{"neutral", 0.5}, {"happy", 0.2}, {"sad", 0.3}}, "neutral");
  EXPECT_EQ(edan::resolve_prediction(p, k6), 1);  // sad, neutral ignored
}

TEST(Metrics_Resolve, sixClassWithoutProbsOutsideIsWrong) {
  auto k6 = LabelSpace::of_set(ClassSet::k6);
  EXPECT_EQ(edan::resolve_prediction(label("anger"), k6), 5);
  EXPECT_EQ(edan::resolve_prediction(label("neutral"), k6), kOutside);
  EXPECT_EQ(edan::resolve_prediction(label("contempt"), k6), kOutside);
}

TEST(Metrics_Resolve, sevenClassIgnoresContemptProbability) {
  auto p = probs({{"contempt", 0.6}, {"anger", 0.4}}, "contempt");
  EXPECT_EQ(edan::resolve_prediction(p, LabelSpace::of_set(ClassSet::k7)), 6);
}

TEST(Metrics_Resolve, tiesGoToTheFirstClass) {
  auto p = probs({{"happy", 0.5}, {"neutral", 0.5}});
  EXPECT_EQ(edan::resolve_prediction(p, LabelSpace::of_set(ClassSet::k7)), 0);
}

TEST(Metrics_Resolve, probsWithNothingInTheSpaceFallBackToTheLabel) {
  auto k3 = LabelSpace::of_set(ClassSet::k3);
  EXPECT_EQ(edan::resolve_prediction(probs({{"surprise", 1.0}}, "happy"), k3), 1);
  EXPECT_EQ(edan::resolve_prediction(probs({{"surprise", 1.0}}), k3), std::nullopt);
  EXPECT_EQ(edan::resolve_prediction(Prediction{}, k3), std::nullopt);
}

// --- bootstrap ----------------------------------------------------------------

TEST(Metrics_Quantile, linearInterpolation) {
  std::vector<double> v{4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(edan::quantile(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(edan::quantile(v, 1.0), 4.0);
  EXPECT_DOUBLE_EQ(edan::quantile(v, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(edan::quantile(v, 0.25), 1.75);
  EXPECT_THROW(edan::quantile({}, 0.5), std::invalid_argument);
  EXPECT_THROW(edan::quantile(v, 1.5), std::invalid_argument);
}

TEST(Metrics_Bootstrap, deterministicForASeedAndContainsTheAccuracy) {
  std::vector<bool> correct(50, false);
  for (int i = 0; i < 37; ++i) correct[i * 50 / 37] = true;  // 37 of 50 = 0.74
  auto a = edan::bootstrap_accuracy_ci(correct, 2000, 7);
  auto b = edan::bootstrap_accuracy_ci(correct, 2000, 7);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->low, b->low);
  EXPECT_EQ(a->high, b->high);
  EXPECT_LT(a->low, 0.74);
  EXPECT_GT(a->high, 0.74);
  // Binomial standard error sqrt(.74*.26/50) = 0.062: the 95% interval is
  // about 0.74 +- 0.12.
  EXPECT_NEAR(a->low, 0.62, 0.03);
  EXPECT_NEAR(a->high, 0.86, 0.03);
}

TEST(Metrics_Bootstrap, meanOfDifferences) {
  // 20 paired records: 6 better (+1), 2 worse (-1), 12 the same: +0.2.
  std::vector<double> d(20, 0.0);
  for (int i = 0; i < 6; ++i) d[i] = 1;
  d[6] = d[7] = -1;
  auto ci = edan::bootstrap_mean_ci(d, 2000, 3);
  ASSERT_TRUE(ci);
  EXPECT_LT(ci->low, 0.2);
  EXPECT_GT(ci->high, 0.2);
  // sd of d is sqrt(8/20 - 0.04) = 0.6, standard error 0.134: about +-0.26.
  EXPECT_NEAR(ci->low, -0.05, 0.06);
  EXPECT_NEAR(ci->high, 0.45, 0.06);
  // 0/1 values give exactly the accuracy interval for the same seed.
  std::vector<bool> c(20, false);
  for (int i = 0; i < 13; ++i) c[i] = true;
  auto a = edan::bootstrap_accuracy_ci(c, 500, 9);
  auto m = edan::bootstrap_mean_ci(std::vector<double>(c.begin(), c.end()), 500, 9);
  EXPECT_EQ(a->low, m->low);
  EXPECT_EQ(a->high, m->high);
}

TEST(Metrics_Bootstrap, degenerateInputs) {
  EXPECT_FALSE(edan::bootstrap_accuracy_ci({}, 100, 1));
  EXPECT_FALSE(edan::bootstrap_accuracy_ci({true, false}, 0, 1));
  auto all = edan::bootstrap_accuracy_ci(std::vector<bool>(10, true), 100, 1);
  ASSERT_TRUE(all);
  EXPECT_DOUBLE_EQ(all->low, 1.0);
  EXPECT_DOUBLE_EQ(all->high, 1.0);
  auto one = edan::bootstrap_accuracy_ci({false}, 100, 1);
  EXPECT_DOUBLE_EQ(one->low, 0.0);
  EXPECT_DOUBLE_EQ(one->high, 0.0);
  EXPECT_THROW(edan::bootstrap_accuracy_ci({true}, 10, 1, 1.0), std::invalid_argument);
}

// --- landmark error curves -------------------------------------------------------

TEST(Metrics_Ced, aucAndFailureOnHandMadeErrors) {
  std::vector<double> e{0.02, 0.04, 0.1};
  // (0.08-0.02) + (0.08-0.04) + 0 = 0.1; / (3 * 0.08) = 5/12.
  EXPECT_NEAR(*edan::ced_auc(e), 5.0 / 12.0, 1e-12);
  EXPECT_DOUBLE_EQ(*edan::failure_rate(e), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(edan::cumulative_fraction(e, 0.04), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(edan::cumulative_fraction(e, 0.039), 1.0 / 3.0);
}

TEST(Metrics_Ced, aucMatchesNumericalIntegrationOfTheCurve) {
  // DAN integrates the CED with the trapezoid rule on a fine grid.
  std::vector<double> e{0.011, 0.023, 0.0305, 0.047, 0.052, 0.069, 0.075, 0.081, 0.2};
  const int steps = 80000;
  double area = 0;
  for (int i = 0; i < steps; ++i) {
    double x0 = 0.08 * i / steps, x1 = 0.08 * (i + 1) / steps;
    area += (edan::cumulative_fraction(e, x0) + edan::cumulative_fraction(e, x1)) / 2 * (x1 - x0);
  }
  EXPECT_NEAR(*edan::ced_auc(e), area / 0.08, 1e-4);
}

TEST(Metrics_Ced, edgesOfTheThreshold) {
  EXPECT_DOUBLE_EQ(*edan::ced_auc({0.0, 0.0}), 1.0);
  // An error exactly at the threshold adds no area and is not a failure.
  EXPECT_DOUBLE_EQ(*edan::ced_auc({0.08}), 0.0);
  EXPECT_DOUBLE_EQ(*edan::failure_rate({0.08}), 0.0);
  EXPECT_DOUBLE_EQ(*edan::failure_rate({0.0801}), 1.0);
  EXPECT_FALSE(edan::ced_auc({}));
  EXPECT_FALSE(edan::failure_rate({}));
  EXPECT_THROW(edan::ced_auc({0.1}, 0.0), std::invalid_argument);
  // Another threshold: 0.1 -> (0.1-0.05)/0.1 = 0.5.
  EXPECT_DOUBLE_EQ(*edan::ced_auc({0.05}, 0.1), 0.5);
}

TEST(Metrics_ErrorStats, meanAucFailure) {
  auto s = edan::error_stats({0.02, 0.04, 0.1});
  EXPECT_EQ(s.n, 3u);
  EXPECT_NEAR(*s.mean, 0.16 / 3, 1e-15);
  EXPECT_NEAR(*s.auc, 5.0 / 12.0, 1e-12);
  EXPECT_DOUBLE_EQ(*s.failure_rate, 1.0 / 3.0);
  auto empty = edan::error_stats({});
  EXPECT_EQ(empty.n, 0u);
  EXPECT_FALSE(empty.mean);
  EXPECT_FALSE(empty.auc);
}
