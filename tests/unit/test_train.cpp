#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>
#include <string>

#include "edan/augment.hpp"
#include "edan/error.hpp"
#include "edan/model.hpp"
#include "edan/train.hpp"

namespace {

std::filesystem::path temp_root() {
  return std::filesystem::temp_directory_path() / ("edan-test-train-" + std::to_string(getpid()));
}

std::string temp_dir(const std::string& name) {
  auto dir = temp_root() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// This process's temporary folders go with it.
struct RemoveTempRoot : ::testing::Environment {
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(temp_root(), ec);
  }
};
const auto* const kRemoveTempRoot = ::testing::AddGlobalTestEnvironment(new RemoveTempRoot);

// A synthetic face of class cls (0 smile, 1 frown, 2 open mouth) on a
// size×size crop, with a random similarity jitter drawn from `seed`.
edan::Shape synthetic_shape(int cls, double size, std::uint64_t seed) {
  edan::Shape s = edan::schematic_shape(size);
  const double d = 0.07 * size;
  for (int i : {48, 54, 60, 64}) s[i].y += cls == 0 ? -d : cls == 1 ? d : 0;
  if (cls == 2)
    for (int i : {55, 56, 57, 58, 59, 65, 66, 67}) s[i].y += 1.5 * d;
  auto u = [&](int k) {
    return static_cast<double>(edan::mix_seed({seed, static_cast<std::uint64_t>(k)}) >> 11) /
               9007199254740992.0 * 2 -
           1;
  };
  const double angle = 0.12 * u(1), scale = 1 + 0.08 * u(2);
  const double c = (size - 1) / 2;
  edan::Similarity t{scale * std::cos(angle), scale * std::sin(angle), 0, 0};
  t.tx = c - (t.a * c - t.b * c) + 1.5 * u(3);
  t.ty = c - (t.b * c + t.a * c) + 1.5 * u(4);
  return t.apply(s);
}

cv::Mat draw_face(const edan::Shape& s, int size, std::uint64_t seed) {
  cv::Mat img(size, size, CV_8U, cv::Scalar(40 + static_cast<int>(seed % 30)));
  auto poly = [&](int from, int to, bool closed) {
    std::vector<cv::Point> pts;
    for (int i = from; i <= to; ++i)
      pts.emplace_back(static_cast<int>(std::lround(s[i].x)),
                       static_cast<int>(std::lround(s[i].y)));
    cv::polylines(img, pts, closed, cv::Scalar(230), 1, cv::LINE_AA);
  };
  poly(0, 16, false);
  poly(17, 21, false);
  poly(22, 26, false);
  poly(27, 30, false);
  poly(31, 35, false);
  poly(36, 41, true);
  poly(42, 47, true);
  poly(48, 59, true);
  poly(60, 67, true);
  return img;
}

// n faces, classes cycling 0,1,2, as an in-memory training set.
edan::TrainingSet synthetic_set(int n, int size, std::uint64_t seed) {
  edan::TrainingSet set;
  set.images = torch::empty({n, size, size}, torch::kUInt8);
  set.landmarks = torch::empty({n, 68, 2}, torch::kFloat32);
  set.has_landmarks = torch::ones({n}, torch::kBool);
  set.labels = torch::empty({n}, torch::kLong);
  for (int i = 0; i < n; ++i) {
    const int cls = i % 3;
    auto s = synthetic_shape(cls, size, seed * 1000 + static_cast<std::uint64_t>(i));
    cv::Mat img = draw_face(s, size, static_cast<std::uint64_t>(i));
    std::memcpy(set.images[i].data_ptr<std::uint8_t>(), img.data,
                static_cast<std::size_t>(size * size));
    for (int k = 0; k < 68; ++k) {
      set.landmarks[i][k][0] = s[k].x;
      set.landmarks[i][k][1] = s[k].y;
    }
    set.labels[i] = cls;
    set.subjects.push_back("s" + std::to_string(i));
  }
  return set;
}

edan::TrainOptions tiny_options(const std::string& dir) {
  edan::TrainOptions o;
  o.output = dir + "/model.edan";
  o.size = 32;
  o.widths = {8, 16, 16, 32};
  o.classes = "3";
  o.batch = 16;
  // 1 unless EDAN_TEST_THREADS says otherwise (CTest's test_train_threads2):
  // the results must not hang on one thread count's summation order.
  const char* threads = std::getenv("EDAN_TEST_THREADS");
  o.threads = threads ? std::atoi(threads) : 1;
  o.seed = 7;
  return o;
}

edan::TrainReporter silent() { return {}; }

}  // namespace

TEST(Train_TriangularLr, handComputedValues) {
  // base 0.001, max 0.006, step 4: up over 0..4, down over 4..8, repeat.
  EXPECT_DOUBLE_EQ(edan::triangular_lr(0, 0.001, 0.006, 4), 0.001);
  EXPECT_DOUBLE_EQ(edan::triangular_lr(2, 0.001, 0.006, 4), 0.0035);
  EXPECT_DOUBLE_EQ(edan::triangular_lr(4, 0.001, 0.006, 4), 0.006);
  EXPECT_DOUBLE_EQ(edan::triangular_lr(6, 0.001, 0.006, 4), 0.0035);
  EXPECT_DOUBLE_EQ(edan::triangular_lr(8, 0.001, 0.006, 4), 0.001);
  EXPECT_DOUBLE_EQ(edan::triangular_lr(9, 0.001, 0.006, 4), 0.00225);
  EXPECT_DOUBLE_EQ(edan::triangular_lr(12, 0.001, 0.006, 4), 0.006);
  EXPECT_THROW(edan::triangular_lr(1, 0.001, 0.006, 0), std::invalid_argument);
}

TEST(Train_JointLoss, masksMissingTargets) {
  // Truth: eye points 36–41 at (0,0), 42–47 at (10,0): eye-centre distance 10.
  auto truth = torch::zeros({3, 68, 2});
  truth.narrow(1, 42, 6).select(2, 0).fill_(10);
  auto pred = truth.clone();
  pred[0] += torch::tensor({3.0f, 4.0f});  // every point 5 px off: NME 0.5
  pred[1] += 1000;                         // sample 1 has no landmarks: ignored
  auto has = torch::tensor({true, false, true});
  auto labels = torch::tensor({-1, 0, 1}, torch::kLong);  // sample 0 unlabelled
  auto logits = torch::tensor({{100.0f, -100.0f}, {0.0f, 0.0f}, {0.0f, std::log(3.0f)}});
  auto t = edan::joint_loss(pred, truth, has, logits, labels, 0.4, 0.6);
  EXPECT_EQ(t.with_landmarks, 2);
  EXPECT_EQ(t.with_labels, 2);
  EXPECT_NEAR(t.nme.item<double>(), 0.25, 1e-6);           // (0.5 + 0) / 2
  const double ce = (std::log(2.0) - std::log(0.75)) / 2;  // p = 1/2 and 3/4
  EXPECT_NEAR(t.ce.item<double>(), ce, 1e-6);
  EXPECT_NEAR(t.total.item<double>(), 0.4 * 0.25 + 0.6 * ce, 1e-6);

  // No labels at all: the emotion term is 0, the landmark term stays.
  auto none = torch::full({3}, -1, torch::kLong);
  auto u = edan::joint_loss(pred, truth, has, logits, none, 0.4, 0.6);
  EXPECT_EQ(u.with_labels, 0);
  EXPECT_NEAR(u.total.item<double>(), 0.4 * 0.25, 1e-6);
}

TEST(Train_JointLoss, softTargetsAreTheVoteCrossEntropy) {
  auto truth = torch::zeros({3, 68, 2});
  auto has = torch::tensor({false, false, false});
  auto logits = torch::tensor({{0.0f, 0.0f}, {0.0f, std::log(3.0f)}, {5.0f, 1.0f}});
  // Sample 0: half and half; sample 1: one-hot on class 1; sample 2: none.
  auto targets = torch::tensor({{0.5f, 0.5f}, {0.0f, 1.0f}, {0.0f, 0.0f}});
  auto t = edan::joint_loss(truth, truth, has, logits, targets, 0.4, 0.6);
  EXPECT_EQ(t.with_labels, 2);
  // -(0.5 log 1/2 + 0.5 log 1/2) = log 2; -log 3/4.
  const double ce = (std::log(2.0) - std::log(0.75)) / 2;
  EXPECT_NEAR(t.ce.item<double>(), ce, 1e-6);
  EXPECT_NEAR(t.total.item<double>(), 0.6 * ce, 1e-6);
  // A one-hot row gives the hard label's cross-entropy.
  auto hard = edan::joint_loss(truth, truth, has, logits.narrow(0, 1, 1),
                               torch::tensor({1}, torch::kLong), 0.4, 0.6);
  auto soft = edan::joint_loss(truth, truth, has, logits.narrow(0, 1, 1), targets.narrow(0, 1, 1),
                               0.4, 0.6);
  EXPECT_NEAR(hard.ce.item<double>(), soft.ce.item<double>(), 1e-6);
  EXPECT_THROW(edan::joint_loss(truth, truth, has, logits, torch::zeros({3, 5}), 0.4, 0.6),
               std::invalid_argument);
}

TEST(Train_JointLoss, classWeightsGiveTheWeightedMean) {
  auto truth = torch::zeros({3, 68, 2});
  auto has = torch::tensor({false, false, false});
  auto logits = torch::tensor({{0.0f, 0.0f}, {0.0f, std::log(3.0f)}, {5.0f, 1.0f}});
  auto targets = torch::tensor({{0.5f, 0.5f}, {0.0f, 1.0f}, {0.0f, 0.0f}});
  auto weight = torch::tensor({3.0f, 1.0f});
  auto t = edan::joint_loss(truth, truth, has, logits, targets, 0.4, 0.6, weight);
  // Masses: class 0 gets 3 * 0.5, class 1 gets 1 * 0.5 + 1 * 1.
  const double ce = (1.5 * std::log(2.0) + 0.5 * std::log(2.0) - std::log(0.75)) / 3;
  EXPECT_NEAR(t.ce.item<double>(), ce, 1e-6);
  // Hard labels: the same weighted mean (sample 2 unlabelled).
  auto hard = edan::joint_loss(truth, truth, has, logits, torch::tensor({0, 1, -1}, torch::kLong),
                               0.4, 0.6, weight);
  EXPECT_NEAR(hard.ce.item<double>(), (3 * std::log(2.0) - std::log(0.75)) / 4, 1e-6);
  // Every weight 1: the plain loss.
  auto ones = edan::joint_loss(truth, truth, has, logits, targets, 0.4, 0.6, torch::ones({2}));
  auto plain = edan::joint_loss(truth, truth, has, logits, targets, 0.4, 0.6);
  EXPECT_NEAR(ones.ce.item<double>(), plain.ce.item<double>(), 1e-6);
}

TEST(Train_ClassWeights, balancedEqualisesTheMassAndKeepsTheMean) {
  edan::TrainingSet set;
  // Masses: class 0 3.5, class 1 0.5, class 2 0 (never a target).
  set.targets = torch::tensor({{1.0f, 0.0f, 0.0f},
                               {1.0f, 0.0f, 0.0f},
                               {1.0f, 0.0f, 0.0f},
                               {0.5f, 0.5f, 0.0f},
                               {0.0f, 0.0f, 0.0f}});
  auto w = edan::class_weights(set, 3, 1.0);
  const double mass[] = {3.5, 0.5};
  EXPECT_NEAR(mass[0] * w[0].item<double>(), mass[1] * w[1].item<double>(), 1e-5);
  EXPECT_NEAR(mass[0] * w[0].item<double>() + mass[1] * w[1].item<double>(), 4.0, 1e-5);
  EXPECT_EQ(w[2].item<double>(), 0.0);
  auto r = edan::class_weights(set, 3, 0.5);  // sqrt: w1 / w0 = sqrt(7)
  EXPECT_NEAR(r[1].item<double>() / r[0].item<double>(), std::sqrt(7.0), 1e-4);
  // Hard labels count 1 each; a set without labels weighs all alike.
  edan::TrainingSet hard;
  hard.labels = torch::tensor({0, 0, 0, 1, -1}, torch::kLong);
  auto h = edan::class_weights(hard, 2, 1.0);
  EXPECT_NEAR(3 * h[0].item<double>(), 1 * h[1].item<double>(), 1e-5);
  edan::TrainingSet none;
  none.labels = torch::full({2}, -1, torch::kLong);
  EXPECT_TRUE(torch::equal(edan::class_weights(none, 2, 1.0), torch::ones({2})));
  EXPECT_THROW(edan::class_weights(set, 4, 1.0), std::invalid_argument);
}

TEST(Train_ClassWeights, aCapHoldsTheRareClassAndKeepsTheMean) {
  edan::TrainingSet set;  // masses 3.5 and 0.5: balanced gives 4/7 and 4
  set.targets = torch::tensor({{1.0f, 0.0f}, {1.0f, 0.0f}, {1.0f, 0.0f}, {0.5f, 0.5f}});
  auto w = edan::class_weights(set, 2, 1.0, 2.0);
  EXPECT_NEAR(w[1].item<double>(), 2.0, 1e-6);
  EXPECT_NEAR(3.5 * w[0].item<double>() + 0.5 * w[1].item<double>(), 4.0, 1e-5);  // mean 1
  // Masses 8, 1, 1: both rare classes capped, the common one takes the rest.
  edan::TrainingSet three;
  three.labels = torch::tensor({0, 0, 0, 0, 0, 0, 0, 0, 1, 2}, torch::kLong);
  auto t = edan::class_weights(three, 3, 1.0, 2.0);
  EXPECT_NEAR(t[1].item<double>(), 2.0, 1e-6);
  EXPECT_NEAR(t[2].item<double>(), 2.0, 1e-6);
  EXPECT_NEAR(t[0].item<double>(), 0.75, 1e-6);
  // Under the cap nothing changes; a cap below the mean cannot hold.
  EXPECT_TRUE(
      torch::allclose(edan::class_weights(set, 2, 1.0, 5.0), edan::class_weights(set, 2, 1.0)));
  EXPECT_THROW(edan::class_weights(set, 2, 1.0, 0.5), std::invalid_argument);
}

TEST(Train_SampleNme, interOcularUsesOuterCorners) {
  auto truth = torch::zeros({1, 68, 2});
  truth[0][45][0] = 20;   // outer corners 20 apart
  auto pred = truth + 2;  // every point (2,2) off: error 2√2
  auto io = edan::sample_nme(pred, truth, edan::NmeNorm::kInterOcular);
  EXPECT_NEAR(io.item<double>(), 2 * std::sqrt(2.0) / 20, 1e-6);
}

TEST(Train_SplitBySubject, noSubjectOnBothSides) {
  std::vector<std::string> subjects;
  for (auto [name, count] :
       std::vector<std::pair<std::string, int>>{{"A", 5}, {"B", 3}, {"", 4}, {"C", 2}, {"D", 6}})
    for (int i = 0; i < count; ++i) subjects.push_back(name);
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    auto split = edan::split_by_subject(subjects, 0.25, seed);
    EXPECT_EQ(split.train.size() + split.val.size(), subjects.size());
    EXPECT_GE(split.val.size(), 5u);
    EXPECT_FALSE(split.train.empty());
    std::set<std::string> train_subjects, val_subjects;
    for (auto i : split.train) train_subjects.insert(subjects[i]);
    for (auto i : split.val) val_subjects.insert(subjects[i]);
    for (const auto& s : val_subjects)
      if (!s.empty()) EXPECT_EQ(train_subjects.count(s), 0u) << "subject " << s;
    EXPECT_TRUE(std::is_sorted(split.val.begin(), split.val.end()));
    auto again = edan::split_by_subject(subjects, 0.25, seed);
    EXPECT_EQ(again.val, split.val);
  }
  auto none = edan::split_by_subject(subjects, 0, 1);
  EXPECT_EQ(none.train.size(), subjects.size());
  EXPECT_TRUE(none.val.empty());
}

TEST(Augment_Apply, flipMirrorsImageAndLandmarks) {
  const int s = 8;
  auto images = torch::rand({1, 1, s, s});
  const auto original = images.clone();
  edan::Shape shape = edan::schematic_shape(s);
  auto lm = torch::empty({1, 68, 2});
  for (int k = 0; k < 68; ++k) {
    lm[0][k][0] = shape[k].x;
    lm[0][k][1] = shape[k].y;
  }
  edan::Augmentation flip;
  flip.flip = true;
  edan::apply_augmentations(images, lm, {flip});
  EXPECT_TRUE(torch::allclose(images, original.flip({3}), 1e-5, 1e-5));
  auto mirrored = edan::mirror_shape(shape, s);
  for (int k = 0; k < 68; ++k) {
    EXPECT_NEAR(lm[0][k][0].item<double>(), mirrored[k].x, 1e-5) << k;
    EXPECT_NEAR(lm[0][k][1].item<double>(), mirrored[k].y, 1e-5) << k;
  }
}

TEST(Augment_Apply, quarterTurnMovesPixelsAndPointsTogether) {
  // 90° counter-clockwise on screen about the centre: (x,y) -> (y, S-1-x).
  const int s = 6;
  auto images = torch::zeros({1, 1, s, s});
  images[0][0][1][4] = 1;  // pixel x=4, y=1
  auto lm = torch::zeros({1, 68, 2});
  lm[0][0][0] = 4;
  lm[0][0][1] = 1;
  edan::Augmentation turn;
  turn.angle = 90;
  edan::apply_augmentations(images, lm, {turn});
  EXPECT_NEAR(lm[0][0][0].item<double>(), 1, 1e-5);
  EXPECT_NEAR(lm[0][0][1].item<double>(), 1, 1e-5);  // S-1-4
  EXPECT_NEAR(images[0][0][1][1].item<double>(), 1, 1e-5);
  EXPECT_NEAR(images.sum().item<double>(), 1, 1e-5);
}

TEST(Augment_Draw, pureFunctionOfSeed) {
  edan::AugmentConfig c;
  auto a = edan::draw_augmentation(c, 64, 42), b = edan::draw_augmentation(c, 64, 42);
  auto d = edan::draw_augmentation(c, 64, 43);
  EXPECT_EQ(a.angle, b.angle);
  EXPECT_EQ(a.dx, b.dx);
  EXPECT_NE(a.angle, d.angle);
  EXPECT_LE(std::fabs(a.angle), c.rotation);
  EXPECT_LE(std::fabs(a.dx), c.shift * 64);
}

TEST(Train_LoadTrainingSet, decodesScalesAndCountsSkipped) {
  const std::string dir = temp_dir("load");
  cv::Mat img(40, 40, CV_8U, cv::Scalar(100));
  const std::string a = dir + "/a.png";  // relative paths are the current directory's
  cv::imwrite(a, img);
  edan::Shape shape = edan::schematic_shape(40);
  std::vector<edan::Record> records = {
      {{"crop", a}, {"landmarks", edan::shape_to_json(shape)}, {"subject", "x"}},
      {{"crop", a}, {"label", "HA"}},
      {{"crop", a}, {"label", "happy"}, {"error", "no face"}},
      {{"crop", a}},                                       // neither target
      {{"crop", dir + "/missing.png"}, {"label", "sad"}},  // unreadable
      {{"crop", a}, {"label", "surprise"}},                // dropped in 3 classes
      {{"crop", a}, {"label", "blah"}},                    // unknown label
  };
  edan::LoadReport report;
  auto set = edan::load_training_set(records, 32, edan::ClassSet::k3, report);
  EXPECT_EQ(set.size(), 2);
  EXPECT_EQ(report.read, 7u);
  EXPECT_EQ(report.kept, 2u);
  EXPECT_EQ(report.failed, 3u);
  EXPECT_EQ(report.unusable, 1u);
  EXPECT_EQ(report.dropped, 1u);
  EXPECT_EQ(report.messages.size(), 5u);
  EXPECT_EQ(set.images.size(1), 32);
  EXPECT_EQ(set.images[0][5][5].item<int>(), 100);
  // Scaled with the image: x' = (x + 0.5)·32/40 - 0.5.
  EXPECT_NEAR(set.landmarks[0][30][0].item<double>(), (shape[30].x + 0.5) * 0.8 - 0.5, 1e-4);
  EXPECT_TRUE(set.has_landmarks[0].item<bool>());
  EXPECT_FALSE(set.has_landmarks[1].item<bool>());
  EXPECT_EQ(set.labels[0].item<std::int64_t>(), -1);
  EXPECT_EQ(set.labels[1].item<std::int64_t>(), edan::class_index(edan::ClassSet::k3, "positive"));
  EXPECT_EQ(set.subjects[0], "x");
}

TEST(Train_LoadTrainingSet, softTargetsMappedIntoTheClassSet) {
  const std::string dir = temp_dir("soft");
  const std::string a = dir + "/a.png";
  cv::imwrite(a, cv::Mat(40, 40, CV_8U, cv::Scalar(100)));
  boost::json::object votes{{"neutral", 0.5}, {"happiness", 0.25}, {"contempt", 0.25}};
  std::vector<edan::Record> records = {
      {{"crop", a}, {"label", "neutral"}, {"target", votes}},
      {{"crop", a}, {"target", votes}},                                 // a tie: no label, a target
      {{"crop", a}, {"label", "sad"}},                                  // hard label only
      {{"crop", a}, {"target", boost::json::object{{"contempt", 1}}}},  // none in 7
      {{"crop", a}, {"target", boost::json::object{{"blah", 1}}}},      // unknown
      {{"crop", a}, {"target", boost::json::object{{"sad", -1}}}},      // negative
  };
  edan::LoadReport report;
  auto set = edan::load_training_set(records, 32, edan::ClassSet::k7, report);
  ASSERT_EQ(set.size(), 3);
  EXPECT_EQ(report.unusable, 1u);
  EXPECT_EQ(report.failed, 2u);
  const auto k7 = edan::ClassSet::k7;
  // contempt has no place in 7 classes: neutral 2/3, happy 1/3.
  EXPECT_NEAR(set.targets[0][edan::class_index(k7, "neutral")].item<double>(), 2.0 / 3, 1e-6);
  EXPECT_NEAR(set.targets[0][edan::class_index(k7, "happy")].item<double>(), 1.0 / 3, 1e-6);
  EXPECT_NEAR(set.targets[1].sum().item<double>(), 1.0, 1e-6);
  EXPECT_EQ(set.labels[0].item<std::int64_t>(), edan::class_index(k7, "neutral"));
  EXPECT_EQ(set.labels[1].item<std::int64_t>(), -1);
  EXPECT_EQ(set.targets[2][edan::class_index(k7, "sad")].item<double>(), 1.0);
  EXPECT_EQ(set.targets[2].sum().item<double>(), 1.0);
}

TEST(Train_TrainingMeanShape, placedWhereTheFacesAre) {
  // Two copies of one face shifted by ±2 px: the mean sits at the original.
  edan::Shape base = edan::schematic_shape(32);
  for (auto& p : base) {
    p.x = p.x * 0.5 + 3;
    p.y = p.y * 0.5 + 5;
  }
  edan::Shape left = base, right = base;
  for (auto& p : left) p.x -= 2;
  for (auto& p : right) p.x += 2;
  auto m = edan::training_mean_shape({left, right}, 32);
  for (int k = 0; k < 68; ++k) {
    EXPECT_NEAR(m[k].x, base[k].x, 1e-6);
    EXPECT_NEAR(m[k].y, base[k].y, 1e-6);
  }
  EXPECT_EQ(edan::training_mean_shape({}, 32).size(), 68u);
}

TEST(Train_TrainModel, epochsZeroWritesAnUntrainedModel) {
  const std::string dir = temp_dir("zero");
  auto o = tiny_options(dir);
  o.epochs = 0;
  edan::TrainingData data;
  data.train = synthetic_set(12, 32, 1);
  data.val = synthetic_set(3, 32, 2);
  auto r = edan::train_model(o, data, silent());
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.steps, 0);
  auto loaded = edan::load_model(o.output, torch::kCPU);
  EXPECT_EQ(loaded.meta.config.size, 32);
  EXPECT_EQ(loaded.meta.config.labels, edan::class_names(edan::ClassSet::k3));
  EXPECT_NEAR(loaded.meta.input_mean, r.meta.input_mean, 1e-9);
  EXPECT_EQ(loaded.meta.training.at("records").at("train").to_number<int>(), 12);
  EXPECT_NEAR(loaded.meta.mean_shape[36].x, r.meta.mean_shape[36].x, 1e-5);
}

TEST(Train_TrainModel, learnsSyntheticFaces) {
  const std::string dir = temp_dir("learn");
  auto o = tiny_options(dir);
  o.stages = 1;
  o.epochs = 20;
  o.patience = 20;
  o.val_fraction = 0;
  edan::TrainingData data;
  data.train = synthetic_set(240, 32, 3);  // 15 steps per epoch: 300 steps
  // 240 validation faces: one face is 0.4 points of accuracy, so that the
  // bound below measures learning, not the luck of a few faces.
  data.val = synthetic_set(240, 32, 4);
  auto r = edan::train_model(o, data, silent());
  ASSERT_EQ(r.log.size(), 20u);
  auto train = [&](std::size_t i, const char* key) {
    return r.log[i].at("train").at(key).to_number<double>();
  };
  auto val = [&](std::size_t i, const char* key) {
    return r.log[i].at("val").at(key).to_number<double>();
  };
  const std::size_t last = r.log.size() - 1;
  std::printf(
      "first epoch: loss %.4f acc %.3f nme %.4f; last: loss %.4f acc %.3f nme %.4f; "
      "val acc %.3f nme %.4f\n",
      train(0, "loss"), train(0, "accuracy"), train(0, "nme"), train(last, "loss"),
      train(last, "accuracy"), train(last, "nme"), val(last, "accuracy"), val(last, "nme"));
  // The training loss is measured under dropout and augmentation, and the
  // summation order moves one epoch's figure a lot (the last epoch: 0.425 on
  // 1 thread, 0.496 on 2, from 0.826): the mean of the last five epochs
  // against a bound that neither path comes near.
  double tail = 0;
  for (std::size_t i = last - 4; i <= last; ++i) tail += train(i, "loss") / 5;
  std::printf("mean training loss of the last 5 epochs: %.4f\n", tail);
  EXPECT_LT(tail, 0.75 * train(0, "loss"));
  // Chance is 1/3. Training accuracy is measured under dropout and
  // augmentation, so it stays below the validation accuracy. The bounds sit
  // far from both chance and what runs reach: the summation order alone
  // moves the validation accuracy a lot (0.854 on 1 thread, 0.963 on 2, on
  // the development machine; 0.833 was seen on another CPU with 60
  // validation faces), so learning, not one floating-point path, must decide
  // the outcome.
  EXPECT_GT(train(last, "accuracy"), 0.5);
  EXPECT_GT(val(last, "accuracy"), 0.7);
  EXPECT_LT(train(last, "nme"), train(0, "nme"));
}

TEST(Train_TrainModel, resumedRunEqualsUninterrupted) {
  const std::string dir = temp_dir("resume");
  edan::TrainingData data;
  data.train = synthetic_set(64, 32, 5);  // 4 steps per epoch
  data.val = synthetic_set(12, 32, 6);
  auto o = tiny_options(dir + "/a");
  o.epochs = 2;  // 2 stages x 2 epochs x 4 steps = 16 steps
  auto full = edan::train_model(o, data, silent());
  ASSERT_FALSE(full.stopped);
  ASSERT_EQ(full.steps, 16);

  auto b = tiny_options(dir + "/b");
  b.epochs = 2;
  b.max_steps = 6;  // inside stage 1, epoch 2
  auto part = edan::train_model(b, data, silent());
  EXPECT_TRUE(part.stopped);
  EXPECT_FALSE(std::filesystem::exists(b.output));
  b.resume = true;
  b.max_steps = 11;  // inside stage 2, epoch 1
  part = edan::train_model(b, data, silent());
  EXPECT_TRUE(part.stopped);
  b.max_steps = 0;
  auto resumed = edan::train_model(b, data, silent());
  ASSERT_FALSE(resumed.stopped);
  EXPECT_EQ(resumed.steps, 16);

  auto pa = full.model->named_parameters(true), pb = resumed.model->named_parameters(true);
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i)
    EXPECT_TRUE(torch::equal(pa[i].value(), pb[i].value())) << pa[i].key();
  auto ba = full.model->named_buffers(true), bb = resumed.model->named_buffers(true);
  for (std::size_t i = 0; i < ba.size(); ++i)
    EXPECT_TRUE(torch::equal(ba[i].value(), bb[i].value())) << ba[i].key();
  ASSERT_EQ(full.log.size(), resumed.log.size());
  for (std::size_t i = 0; i < full.log.size(); ++i)
    EXPECT_EQ(full.log[i].at("val").at("loss").to_number<double>(),
              resumed.log[i].at("val").at("loss").to_number<double>());
  EXPECT_EQ(full.meta.training.at("final"), resumed.meta.training.at("final"));

  // A resumed run may lower --epochs: stage 1 ends at once with its best
  // weights (6 steps done), stage 2 trains one epoch (4 steps).
  auto c = tiny_options(dir + "/c");
  c.epochs = 2;
  c.max_steps = 6;
  ASSERT_TRUE(edan::train_model(c, data, silent()).stopped);
  c.max_steps = 0;
  c.epochs = 1;
  c.resume = true;
  auto shortened = edan::train_model(c, data, silent());
  EXPECT_FALSE(shortened.stopped);
  EXPECT_EQ(shortened.steps, 10);
  EXPECT_EQ(shortened.meta.training.at("stages").as_array().size(), 2u);

  // A checkpoint of other options is refused.
  b.seed = 99;
  EXPECT_THROW(edan::train_model(b, data, silent()), edan::FatalError);
}
