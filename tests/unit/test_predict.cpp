#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <opencv2/core.hpp>
#include <string>

#include "edan/detect.hpp"
#include "edan/error.hpp"
#include "edan/image.hpp"
#include "edan/predict.hpp"
#include "fixtures.hpp"

namespace {

using edan::test::ring_shape;

edan::Predictor tiny_predictor(edan::EmotionalDan* handle = nullptr,
                               edan::PredictOptions options = {}) {
  torch::manual_seed(3);
  edan::LoadedModel m;
  m.meta.config = edan::preset_config("small");
  m.meta.config.size = 32;
  m.meta.config.widths = {4, 4, 8, 8};
  m.meta.config.fc = 16;
  m.meta.config.labels = {"negative", "positive", "neutral"};
  m.meta.mean_shape = ring_shape(32);
  m.model = edan::EmotionalDan(m.meta.config, m.meta.mean_shape);
  m.meta.input_mean = 0.3;
  m.meta.input_std = 0.2;
  if (handle) *handle = m.model;
  return edan::Predictor(std::move(m), torch::kCPU, options);
}

class Predict_Annotate : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("edan-test-predict-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string png(const std::string& name, int side, int value) {
    auto path = (dir_ / name).string();
    edan::write_png(path, cv::Mat(side, side, CV_8U, cv::Scalar(value)));
    return path;
  }
  std::filesystem::path dir_;
};

}  // namespace

TEST(Predict_SetPrediction, namesProbsAndReplacesInPlace) {
  edan::Record r;
  r["image"] = "a.png";
  r["pred"] = "old";
  r["label"] = "happy";
  edan::Shape lm(68, {1.234567, 2.0});
  edan::set_prediction(r, {"negative", "positive", "neutral"}, 1, {0.1, 0.7000004, 0.2}, lm);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ((r.begin() + 1)->key(), "pred");  // kept its place
  const auto& p = r.at("pred").as_object();
  EXPECT_EQ(p.at("label").as_string(), "positive");
  EXPECT_DOUBLE_EQ(p.at("probs").at("positive").as_double(), 0.7);
  EXPECT_EQ(p.at("probs").as_object().size(), 3u);
  EXPECT_DOUBLE_EQ(p.at("landmarks").as_array()[0].as_array()[0].as_double(), 1.23);
  EXPECT_EQ(p.at("landmarks").as_array().size(), 68u);
  EXPECT_THROW(edan::set_prediction(r, {"a", "b"}, 0, {1.0}, lm), std::invalid_argument);
}

TEST(Predict_Predictor, predictMatchesTheModel) {
  edan::EmotionalDan model{nullptr};
  auto pred = tiny_predictor(&model);
  auto pixels = torch::rand({3, 1, 32, 32});
  auto out = pred.predict(pixels);
  ASSERT_EQ(out.size(), 3u);
  for (const auto& f : out) {
    ASSERT_EQ(f.probs.size(), 3u);
    EXPECT_NEAR(f.probs[0] + f.probs[1] + f.probs[2], 1.0, 1e-6);
    EXPECT_EQ(f.landmarks.size(), 68u);
    int best = static_cast<int>(std::max_element(f.probs.begin(), f.probs.end()) - f.probs.begin());
    EXPECT_EQ(f.label, best);
  }
  // Same as running the network by hand on input normalised as (x-0.3)/0.2.
  torch::NoGradGuard ng;
  model->eval();
  auto ref = model->forward((pixels - 0.3) / 0.2);
  auto probs = torch::softmax(ref.logits, 1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(out[i].probs[2], probs[i][2].item<double>(), 1e-5);
    EXPECT_NEAR(out[i].landmarks[30].y, ref.landmarks[1][i][30][1].item<double>(), 1e-3);
  }
}

TEST(Predict_ForwardChunk, firstBlockOfAChunkFitsIn16MiB) {
  unsetenv("EDAN_FORWARD_CHUNK");
  auto c = edan::preset_config("dan");  // 112 px, 64 channels: 3.06 MiB a face
  EXPECT_EQ(edan::forward_chunk(c), 5);
  c = edan::preset_config("paper");  // 224 px: 12.25 MiB a face
  EXPECT_EQ(edan::forward_chunk(c), 1);
  c.size = 448;  // more than 16 MiB a face: still one
  EXPECT_EQ(edan::forward_chunk(c), 1);
  c.size = 48;
  c.widths = {32, 64, 128, 256};  // the default model
  EXPECT_EQ(edan::forward_chunk(c), 56);
  setenv("EDAN_FORWARD_CHUNK", "3", 1);
  EXPECT_EQ(edan::forward_chunk(c), 3);
  setenv("EDAN_FORWARD_CHUNK", "0", 1);
  EXPECT_THROW(edan::forward_chunk(c), edan::UsageError);
  setenv("EDAN_FORWARD_CHUNK", "4x", 1);
  EXPECT_THROW(edan::forward_chunk(c), edan::UsageError);
  unsetenv("EDAN_FORWARD_CHUNK");
}

TEST(Predict_Predictor, chunkedForwardGivesTheSameOutputs) {
  unsetenv("EDAN_FORWARD_CHUNK");
  auto whole = tiny_predictor();
  setenv("EDAN_FORWARD_CHUNK", "2", 1);  // 5 faces: chunks of 2, 2 and 1
  auto chunked = tiny_predictor();       // the same weights (seeded)
  unsetenv("EDAN_FORWARD_CHUNK");
  auto pixels = torch::rand({5, 1, 32, 32});
  auto a = whole.predict(pixels);
  auto b = chunked.predict(pixels);
  ASSERT_EQ(b.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(a[i].label, b[i].label);
    for (std::size_t k = 0; k < 3; ++k) EXPECT_NEAR(a[i].probs[k], b[i].probs[k], 1e-6);
    for (std::size_t k = 0; k < 68; ++k)
      EXPECT_NEAR(a[i].landmarks[k].x, b[i].landmarks[k].x, 1e-4);
  }
}

TEST(Predict_Predictor, flipAveragesTheFaceAndItsMirrorImage) {
  auto plain = tiny_predictor();
  edan::PredictOptions options;
  options.flip = true;
  auto flip = tiny_predictor(nullptr, options);  // the same weights (seeded)
  auto pixels = torch::rand({2, 1, 32, 32});
  auto a = plain.predict(pixels);
  auto b = plain.predict(pixels.flip({3}));
  auto f = flip.predict(pixels);
  auto g = flip.predict(pixels.flip({3}));
  ASSERT_EQ(f.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    // A random face and its mirror image score differently...
    EXPECT_GT(std::abs(a[i].probs[0] - b[i].probs[0]), 1e-6);
    // ...and --flip gives their mean, to both of them.
    for (std::size_t k = 0; k < 3; ++k) {
      EXPECT_NEAR(f[i].probs[k], 0.5 * (a[i].probs[k] + b[i].probs[k]), 1e-6);
      EXPECT_NEAR(g[i].probs[k], f[i].probs[k], 1e-6);
    }
    // Landmarks: the mean of the face's and the mirror's mapped back, so the
    // mirror image's are the mirror of the face's.
    auto back = edan::mirror_shape(b[i].landmarks, 32);
    auto mirrored = edan::mirror_shape(g[i].landmarks, 32);
    for (std::size_t k = 0; k < 68; ++k) {
      EXPECT_NEAR(f[i].landmarks[k].x, 0.5 * (a[i].landmarks[k].x + back[k].x), 1e-4);
      EXPECT_NEAR(f[i].landmarks[k].y, 0.5 * (a[i].landmarks[k].y + back[k].y), 1e-4);
      EXPECT_NEAR(mirrored[k].x, f[i].landmarks[k].x, 1e-4);
      EXPECT_NEAR(mirrored[k].y, f[i].landmarks[k].y, 1e-4);
    }
  }
}

TEST_F(Predict_Annotate, mapsLandmarksToTheFileAndKeepsGoingOnErrors) {
  auto pred = tiny_predictor();
  auto small = png("small.png", 32, 128);
  auto large = png("large.png", 64, 128);  // same face at twice the size
  std::vector<edan::Record> records(4);
  records[0]["crop"] = small;
  records[1]["crop"] = (dir_ / "missing.png").string();
  records[2]["crop"] = large;
  records[3]["other"] = 1;
  std::vector<edan::Record*> batch;
  for (auto& r : records) batch.push_back(&r);
  pred.annotate(batch);
  ASSERT_TRUE(records[0].contains("pred"));
  ASSERT_TRUE(records[2].contains("pred"));
  ASSERT_TRUE(records[1].contains("error"));
  EXPECT_NE(std::string(records[1].at("error").as_string()).find("missing.png"), std::string::npos);
  EXPECT_FALSE(records[1].contains("pred"));
  ASSERT_TRUE(records[3].contains("error"));
  const auto& a = records[0].at("pred").as_object();
  const auto& b = records[2].at("pred").as_object();
  EXPECT_EQ(a.at("probs"), b.at("probs"));  // a uniform image resizes to itself
  // Model pixel centre x maps to (x + 0.5) * 2 - 0.5 in the 64-pixel file.
  for (std::size_t i = 0; i < 68; i += 17) {
    double xa = a.at("landmarks").as_array()[i].as_array()[0].to_number<double>();
    double xb = b.at("landmarks").as_array()[i].as_array()[0].to_number<double>();
    EXPECT_NEAR(xb, (xa + 0.5) * 2 - 0.5, 0.03);
  }
}

TEST_F(Predict_Annotate, detectsTheFaceWhenNoCrop) {
  edan::PredictOptions whole;
  whole.detector = "none";  // the whole image is the face
  auto pred = tiny_predictor(nullptr, whole);
  edan::Record r, c;
  r["image"] = png("face.png", 32, 90);
  c["crop"] = r["image"];
  std::vector<edan::Record*> batch{&r, &c};
  auto expanded = pred.annotate(batch);
  ASSERT_TRUE(r.contains("pred")) << edan::to_line(r);
  const auto& p = r.at("pred").as_object();
  // edan-crop's fields, at the top level as edan-crop writes them.
  EXPECT_EQ(boost::json::serialize(r.at("box")), "[0,0,32,32]");
  EXPECT_EQ(r.at("face").as_int64(), 0);
  EXPECT_FALSE(p.contains("box"));
  EXPECT_FALSE(c.contains("box"));
  // One face each: nothing to expand.
  ASSERT_EQ(expanded.size(), 2u);
  EXPECT_TRUE(expanded[0].empty() && expanded[1].empty());
  // A uniform image crops to itself: the same face as the crop record.
  EXPECT_EQ(p.at("probs"), c.at("pred").at("probs"));
}

TEST_F(Predict_Annotate, noFaceIsAnErrorUnlessSmallOrFallbackFull) {
  // haar finds no face in a uniform image. By default (--fallback small) a
  // small image is taken whole, a larger one is an error.
  auto pred = tiny_predictor();
  edan::Record r, tiny;
  r["image"] = png("blank.png", edan::kSmallImageSide + 1, 90);
  tiny["image"] = png("tiny.png", 48, 90);
  std::vector<edan::Record*> batch{&r, &tiny};
  pred.annotate(batch);
  ASSERT_TRUE(r.contains("error"));
  EXPECT_NE(std::string(r.at("error").as_string()).find("blank.png"), std::string::npos);
  ASSERT_TRUE(tiny.contains("pred")) << edan::to_line(tiny);
  EXPECT_TRUE(tiny.at("fallback").as_bool());
  EXPECT_EQ(boost::json::serialize(tiny.at("box")), "[0,0,48,48]");
  edan::PredictOptions none;
  none.fallback = edan::Fallback::kNone;
  auto strict = tiny_predictor(nullptr, none);
  edan::Record t2;
  t2["image"] = tiny["image"];
  std::vector<edan::Record*> batch3{&t2};
  strict.annotate(batch3);
  EXPECT_TRUE(t2.contains("error")) << edan::to_line(t2);
  edan::PredictOptions full;
  full.fallback = edan::Fallback::kFull;
  auto pred2 = tiny_predictor(nullptr, full);
  edan::Record q;
  q["image"] = png("blank.png", edan::kSmallImageSide + 1, 90);
  std::vector<edan::Record*> batch2{&q};
  pred2.annotate(batch2);
  ASSERT_TRUE(q.contains("pred")) << edan::to_line(q);
  EXPECT_TRUE(q.at("fallback").as_bool());
}

TEST_F(Predict_Annotate, mapsCropLandmarksThroughTheCropGeometry) {
  auto pred = tiny_predictor();
  edan::Record plain, mapped;
  plain["crop"] = png("crop.png", 32, 70);
  mapped["crop"] = plain["crop"];
  // Source -> crop: x' = 2x + 10, y' = 2y + 20, so source = (crop - t) / 2.
  edan::CropGeometry g;
  g.to_crop = {2, 0, 10, 20};
  g.size = 32;
  edan::set_crop_geometry(mapped, g);
  std::vector<edan::Record*> batch{&plain, &mapped};
  pred.annotate(batch);
  const auto& a = plain.at("pred").at("landmarks").as_array();
  const auto& b = mapped.at("pred").at("landmarks").as_array();
  for (std::size_t i = 0; i < 68; i += 11) {
    double cx = a[i].as_array()[0].to_number<double>(), cy = a[i].as_array()[1].to_number<double>();
    EXPECT_NEAR(b[i].as_array()[0].to_number<double>(), (cx - 10) / 2, 0.011);
    EXPECT_NEAR(b[i].as_array()[1].to_number<double>(), (cy - 20) / 2, 0.011);
  }
}
