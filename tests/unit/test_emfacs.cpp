#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "edan/emfacs.hpp"
#include "edan/error.hpp"

using edan::AuTable;

namespace {

// 68 zeros with 1.0 at the given indices.
std::vector<double> hot(std::initializer_list<int> idx, double value = 1.0) {
  std::vector<double> v(68, 0.0);
  for (int i : idx) v[i] = value;
  return v;
}

std::vector<int> range(int first, int last) {
  std::vector<int> v;
  for (int i = first; i <= last; ++i) v.push_back(i);
  return v;
}

// A gradcam record as edan-gradcam writes it.
edan::Record gradcam_record(const std::string& layer, const std::string& cls,
                            const std::vector<double>& act, const std::string& label = "") {
  boost::json::object g;
  g["layer"] = layer;
  g["class"] = cls;
  boost::json::array a;
  for (double x : act) a.emplace_back(x);
  g["landmark_activation"] = std::move(a);
  edan::Record r;
  r["image"] = "x.png";
  if (!label.empty()) r["label"] = label;
  r["gradcam"] = std::move(g);
  return r;
}

}  // namespace

TEST(Emfacs_Table, sizesOfThePaperSets) {
  const auto& t = edan::emfacs_table(AuTable::kPaper);
  ASSERT_EQ(t.size(), 7u);
  std::vector<std::pair<std::string, std::size_t>> want{
      {"happy", 16},   {"sad", 22},   {"surprise", 23}, {"fear", 30},
      {"disgust", 14}, {"anger", 34}, {"contempt", 4}};
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(t[i].emotion, want[i].first);
    EXPECT_EQ(t[i].landmarks.size(), want[i].second) << t[i].emotion;
    EXPECT_EQ(t[i].in_paper, t[i].emotion != "contempt");
  }
}

TEST(Emfacs_Table, handCheckedEntries) {
  const auto* happy = edan::emfacs_entry(AuTable::kPaper, "happy");
  ASSERT_NE(happy, nullptr);
  EXPECT_EQ(happy->action_units, "6+12");
  std::vector<int> h{1, 2, 14, 15};
  for (int i = 48; i <= 59; ++i) h.push_back(i);
  EXPECT_EQ(happy->landmarks, h);

  const auto* disgust = edan::emfacs_entry(AuTable::kPaper, "disgust");
  ASSERT_NE(disgust, nullptr);
  std::vector<int> d = range(27, 35);
  for (int i = 55; i <= 59; ++i) d.push_back(i);
  EXPECT_EQ(disgust->landmarks, d);

  const auto* anger = edan::emfacs_entry(AuTable::kPaper, "anger");
  ASSERT_NE(anger, nullptr);
  std::vector<int> a = range(17, 26);
  for (int i = 36; i <= 59; ++i) a.push_back(i);
  EXPECT_EQ(anger->landmarks, a);

  EXPECT_EQ(edan::emfacs_entry(AuTable::kPaper, "neutral"), nullptr);
  EXPECT_EQ(edan::emfacs_entry(AuTable::kPaper, "happiness"), nullptr);  // canonical only
}

TEST(Emfacs_Table, emfacsSetsAreUnionsOfTheirActionUnits) {
  // happy = AU6 (cheek-level contour 1 2 14 15, lower lids 40 41 46 47) + AU12
  // (mouth corners 48 54 60 64).
  const auto* happy = edan::emfacs_entry(AuTable::kEmfacs, "happy");
  ASSERT_NE(happy, nullptr);
  EXPECT_EQ(happy->landmarks, (std::vector<int>{1, 2, 14, 15, 40, 41, 46, 47, 48, 54, 60, 64}));
  // sad = AU1 + AU4 (inner brows 20-23) + AU15 (mouth corners).
  const auto* sad = edan::emfacs_entry(AuTable::kEmfacs, "sad");
  EXPECT_EQ(sad->landmarks, (std::vector<int>{20, 21, 22, 23, 48, 54, 60, 64}));
  EXPECT_EQ(edan::emfacs_entry(AuTable::kEmfacs, "surprise")->landmarks.size(), 23u);
  EXPECT_EQ(edan::emfacs_entry(AuTable::kEmfacs, "anger")->landmarks.size(), 36u);
}

TEST(Emfacs_Table, everyIndexIsAValidUniqueSortedIbugPoint) {
  for (auto table : {AuTable::kPaper, AuTable::kEmfacs}) {
    for (const auto& e : edan::emfacs_table(table)) {
      std::set<int> s(e.landmarks.begin(), e.landmarks.end());
      EXPECT_EQ(s.size(), e.landmarks.size()) << e.emotion;
      EXPECT_TRUE(std::is_sorted(e.landmarks.begin(), e.landmarks.end())) << e.emotion;
      EXPECT_GE(e.landmarks.front(), 0);
      EXPECT_LT(e.landmarks.back(), 68);
    }
  }
  for (const auto& a : edan::action_units()) EXPECT_FALSE(a.landmarks.empty()) << a.number;
}

TEST(Emfacs_Table, parseNamesAndFormats) {
  EXPECT_EQ(edan::parse_au_table("paper"), AuTable::kPaper);
  EXPECT_EQ(edan::parse_au_table("emfacs"), AuTable::kEmfacs);
  EXPECT_THROW(edan::parse_au_table("facs"), edan::UsageError);
  EXPECT_EQ(edan::parse_report_format("markdown"), edan::ReportFormat::kMarkdown);
  EXPECT_THROW(edan::parse_report_format("csv"), edan::UsageError);
  std::string md = edan::emfacs_table_markdown(AuTable::kPaper);
  EXPECT_NE(md.find("| happy | 6+12 | 16 | 1, 2, 14, 15, 48-59 | 0.235 |"), std::string::npos)
      << md;
}

TEST(Emfacs_TopK, highestFirstTiesToLowerIndex) {
  auto v = hot({5, 9}, 2.0);
  v[3] = v[7] = 1.0;
  EXPECT_EQ(edan::top_k_landmarks(v, 3), (std::vector<int>{5, 9, 3}));
  EXPECT_EQ(edan::top_k_landmarks(v, 100).size(), 68u);
}

TEST(Emfacs_Overlap, handMadeActivation) {
  // Disgust (paper): k = 14. Activate 7 of its points and 7 others, highest
  // of all: the top 14 hold exactly 7 of the set -> 7/14.
  auto v = hot({27, 28, 29, 30, 31, 32, 33, 0, 1, 2, 3, 4, 5, 6});
  const auto& set = edan::emfacs_entry(AuTable::kPaper, "disgust")->landmarks;
  EXPECT_DOUBLE_EQ(edan::au_overlap(v, set), 0.5);
  // All of the set on top -> 1; none -> 0.
  std::vector<double> all(68, 0.0);
  for (int i : set) all[i] = 3.0;
  EXPECT_DOUBLE_EQ(edan::au_overlap(all, set), 1.0);
  std::vector<double> none(68, 1.0);
  for (int i : set) none[i] = 0.0;
  EXPECT_DOUBLE_EQ(edan::au_overlap(none, set), 0.0);
  // A flat map: ties go to the lower indices 0..13, of which none is in the set.
  EXPECT_DOUBLE_EQ(edan::au_overlap(std::vector<double>(68, 0.5), set), 0.0);
  EXPECT_THROW(edan::au_overlap(std::vector<double>(10, 0.0), set), std::invalid_argument);
  EXPECT_THROW(edan::au_overlap(v, {}), std::invalid_argument);
}

TEST(Emfacs_Chance, hypergeometricMean) {
  EXPECT_DOUBLE_EQ(edan::chance_overlap(16), 16.0 / 68.0);
  EXPECT_DOUBLE_EQ(edan::chance_overlap(34), 0.5);
  EXPECT_DOUBLE_EQ(edan::chance_overlap(68), 1.0);
  // Exhaustively for a small case: 2 of 4 points, set {0, 1}: of the 6 pairs,
  // 1 holds both, 4 hold one, 1 holds none -> E[hits] = (2 + 4) / 6 = 1, /k = 1/2.
  EXPECT_DOUBLE_EQ(edan::chance_overlap(2, 4), 0.5);
}

TEST(Emfacs_Mean, elementWise) {
  auto m = edan::mean_activation({{1, 2, 3}, {3, 2, 0}});
  EXPECT_EQ(m, (std::vector<double>{2, 2, 1.5}));
  EXPECT_THROW(edan::mean_activation({}), std::invalid_argument);
  EXPECT_THROW(edan::mean_activation({{1, 2}, {1}}), std::invalid_argument);
}

TEST(Emfacs_Describe, quartilesByLinearInterpolation) {
  auto d = edan::describe({4, 1, 3, 2});
  EXPECT_EQ(d.n, 4u);
  EXPECT_DOUBLE_EQ(d.mean, 2.5);
  EXPECT_DOUBLE_EQ(d.min, 1);
  EXPECT_DOUBLE_EQ(d.q1, 1.75);
  EXPECT_DOUBLE_EQ(d.median, 2.5);
  EXPECT_DOUBLE_EQ(d.q3, 3.25);
  EXPECT_DOUBLE_EQ(d.max, 4);
  EXPECT_THROW(edan::describe({}), std::invalid_argument);
}

TEST(Emfacs_AuOverlap, meanOverRecordsThenTopK) {
  edan::AuOverlap acc({"paper", "class", true});
  // Happy (k = 16). Record 1: 8 happy points and 8 others at 1. Record 2: all
  // 16 happy points at 1. Mean: those 8 happy points 1.0, the other 8 happy
  // points 0.5, the 8 others 0.5 -> ties to lower indices, the others
  // (0 3 4 5 6 7 8 9) win: 8/16.
  auto r1 = hot({1, 2, 14, 15, 48, 49, 50, 51, 0, 3, 4, 5, 6, 7, 8, 9});
  const auto& happy = edan::emfacs_entry(AuTable::kPaper, "happy")->landmarks;
  std::vector<double> r2(68, 0.0);
  for (int i : happy) r2[i] = 1.0;
  EXPECT_EQ(acc.add(gradcam_record("conv4a", "happy", r1)), "");
  EXPECT_EQ(acc.add(gradcam_record("conv4a", "happiness", r2)), "");  // alias
  EXPECT_EQ(acc.add(gradcam_record("conv4b", "happy", r2)), "");
  EXPECT_EQ(acc.add(gradcam_record("conv4a", "neutral", r2)), "");  // unscored, not an error
  EXPECT_EQ(acc.skipped(), 0u);

  auto rep = acc.report_json();
  EXPECT_EQ(rep["records"].to_number<int>(), 4);
  EXPECT_EQ(rep["scored"].to_number<int>(), 3);
  EXPECT_EQ(rep["unscored"].as_object()["neutral"].to_number<int>(), 1);
  const auto& layers = rep["layers"].as_array();
  ASSERT_EQ(layers.size(), 2u);
  const auto& a = layers[0].as_object();
  EXPECT_EQ(a.at("layer").as_string(), "conv4a");
  const auto& row = a.at("emotions").as_array()[0].as_object();
  EXPECT_EQ(row.at("n").to_number<int>(), 2);
  EXPECT_EQ(row.at("hits").to_number<int>(), 8);
  EXPECT_DOUBLE_EQ(row.at("overlap").as_double(), 0.5);
  EXPECT_DOUBLE_EQ(row.at("chance").as_double(), 16.0 / 68.0);
  // Per image: 0.5 and 1.0.
  const auto& pi = row.at("per_image").as_object();
  EXPECT_DOUBLE_EQ(pi.at("mean").as_double(), 0.75);
  EXPECT_DOUBLE_EQ(pi.at("median").as_double(), 0.75);
  EXPECT_DOUBLE_EQ(a.at("average").as_object().at("overlap").as_double(), 0.5);
  const auto& b = layers[1].as_object();
  EXPECT_DOUBLE_EQ(b.at("average").as_object().at("overlap").as_double(), 1.0);
}

TEST(Emfacs_AuOverlap, averageOverThePapersEmotionsOnly) {
  edan::AuOverlap acc({"paper", "class", false});
  const auto& sad = edan::emfacs_entry(AuTable::kPaper, "sad")->landmarks;
  std::vector<double> v(68, 0.0);
  for (int i : sad) v[i] = 1.0;
  acc.add(gradcam_record("conv4a", "sad", v));       // 1.0
  acc.add(gradcam_record("conv4a", "disgust", v));   // 0, see below
  acc.add(gradcam_record("conv4a", "contempt", v));  // reported, not averaged
  auto rep = acc.report_json();
  const auto& l = rep["layers"].as_array()[0].as_object();
  EXPECT_EQ(l.at("emotions").as_array().size(), 3u);
  const auto& avg = l.at("average").as_object();
  EXPECT_EQ(avg.at("emotions").to_number<int>(), 2);
  // Disgust: top 14 of v are the 14 lowest sad indices 17-26, 48-51: no
  // disgust point among them -> 0. Average (1 + 0) / 2.
  EXPECT_DOUBLE_EQ(avg.at("overlap").as_double(), 0.5);
  EXPECT_DOUBLE_EQ(avg.at("chance").as_double(), (22.0 / 68 + 14.0 / 68) / 2);
}

TEST(Emfacs_AuOverlap, skipsAreCountedWithReasons) {
  edan::AuOverlap acc({"paper", "label", false});
  edan::Record err;
  err["error"] = "boom";
  EXPECT_EQ(acc.add(err), "record has an error");
  edan::Record bare;
  bare["image"] = "b.png";
  EXPECT_EQ(acc.add(bare), "b.png: no gradcam");
  auto short_act = gradcam_record("conv4a", "happy", std::vector<double>(3, 1.0), "happy");
  EXPECT_NE(acc.add(short_act).find("3 values, expected 68"), std::string::npos);
  // group by label: a record without label is malformed.
  EXPECT_NE(acc.add(gradcam_record("conv4a", "happy", hot({1}))).find("label missing"),
            std::string::npos);
  EXPECT_NE(acc.add(gradcam_record("conv4a", "happy", hot({1}), "bored")).find("unknown emotion"),
            std::string::npos);
  EXPECT_EQ(acc.skipped(), 5u);
  auto rep = acc.report_json();
  const auto& s = rep["skipped"].as_object();
  EXPECT_EQ(s.at("error").to_number<int>(), 1);
  EXPECT_EQ(s.at("no_gradcam").to_number<int>(), 1);
  EXPECT_EQ(s.at("malformed").to_number<int>(), 3);
  EXPECT_THROW(edan::AuOverlap({"paper", "pred", false}), edan::UsageError);
}
