#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "edan/error.hpp"
#include "edan/eval.hpp"

namespace json = boost::json;

namespace {

edan::Report run(const std::vector<std::string>& lines, edan::EvalOptions opt = {}) {
  edan::Evaluator ev(std::move(opt));
  for (const auto& l : lines) ev.add(json::parse(l).as_object());
  return ev.finish();
}

edan::EvalOptions classes(const char* set) {
  edan::EvalOptions o;
  o.classes = set;
  return o;
}

std::size_t reason(const edan::SkipReport& s, const std::string& name) {
  for (const auto& [k, n] : s.reasons)
    if (k == name) return n;
  return 0;
}

// 68 points on a line: outer eye corners 36 and 45 are 9 apart, the eye
// centres (means of 36-41 and 42-47) 6 apart.
json::array line_shape(double shift) {
  json::array a;
  for (int i = 0; i < 68; ++i) a.push_back(json::array{i + shift, 0.0});
  return a;
}

std::string landmark_record(double shift) {
  json::object r;
  r["image"] = "x.png";
  r["landmarks"] = line_shape(0);
  json::object pred;
  pred["landmarks"] = line_shape(shift);
  r["pred"] = std::move(pred);
  return json::serialize(r);
}

}  // namespace

TEST(Eval_Classify, defaultClassesAreThoseThePredictionsUse) {
  auto rep = run({R"({"label":"happy","pred":{"label":"happy"}})",
                  R"({"label":"sad","pred":{"label":"happy"}})",
                  R"({"label":"anger","pred":{"probs":{"anger":0.9,"neutral":0.1}}})"});
  EXPECT_EQ(rep.labels, (std::vector<std::string>{"neutral", "happy", "anger"}));
  // sad is not a class the predictions use: skipped, not scored.
  EXPECT_EQ(rep.overall.metrics.n, 2u);
  EXPECT_DOUBLE_EQ(*rep.overall.metrics.accuracy, 1.0);
  EXPECT_EQ(reason(rep.overall.skipped, "truth_outside_classes"), 1u);
  EXPECT_EQ(rep.exit_status(), 0);
}

TEST(Eval_Classify, withoutProbsATruthNeverPredictedStillCounts) {
  // The model's classes are unknown without probs: sad is not skipped (which
  // would give 100%), it is scored, and wrong.
  auto rep = run({R"({"label":"happy","pred":{"label":"happy"}})",
                  R"({"label":"sad","pred":{"label":"happy"}})"});
  EXPECT_EQ(rep.labels, (std::vector<std::string>{"happy", "sad"}));
  EXPECT_EQ(rep.overall.metrics.n, 2u);
  EXPECT_DOUBLE_EQ(*rep.overall.metrics.accuracy, 0.5);
  ASSERT_EQ(rep.notes.size(), 1u);
  EXPECT_EQ(rep.notes[0], "never predicted: sad: precision undefined, counted as 0");
}

TEST(Eval_Classify, aliasesAreNormalised) {
  auto rep = run({R"({"label":"HA","pred":{"label":"happiness"}})",
                  R"({"label":"angry","pred":{"label":"AN"}})"},
                 classes("7"));
  EXPECT_DOUBLE_EQ(*rep.overall.metrics.accuracy, 1.0);
}

TEST(Eval_Skips, everyRecordIsAccountedFor) {
  auto rep = run(
      {R"({"label":"happy","pred":{"label":"happy"}})",
       R"({"label":"happy","error":"cannot decode"})", R"({"label":"happy"})",
       R"({"label":"happy","pred":{}})", R"({"label":"happy","pred":"happy"})",
       R"({"label":"happy","pred":{"label":"grumpy"}})",
       R"({"label":"happy","pred":{"probs":{"happy":"high"}}})",
       R"({"label":"grumpy","pred":{"label":"happy"}})", R"({"label":7,"pred":{"label":"happy"}})",
       R"({"image":"no-truth.png","pred":{"label":"happy"}})",
       R"({"label":"contempt","pred":{"label":"happy"}})"},
      classes("7"));
  const auto& s = rep.overall.skipped;
  EXPECT_EQ(rep.overall.records, 11u);
  EXPECT_EQ(rep.overall.metrics.n, 1u);
  EXPECT_EQ(rep.overall.records, rep.overall.metrics.n + s.total());
  EXPECT_EQ(reason(s, "error"), 1u);
  EXPECT_EQ(reason(s, "no_prediction"), 2u);
  EXPECT_EQ(reason(s, "bad_prediction"), 3u);
  EXPECT_EQ(reason(s, "unknown_label"), 1u);
  EXPECT_EQ(reason(s, "bad_truth"), 1u);
  EXPECT_EQ(reason(s, "no_truth"), 1u);
  EXPECT_EQ(reason(s, "truth_outside_classes"), 1u);
  EXPECT_EQ(rep.problems(), 9u);
  EXPECT_EQ(rep.exit_status(), 1);
  // Problems are listed first, in a fixed order.
  EXPECT_EQ(s.reasons.front().first, "error");
}

TEST(Eval_Skips, protocolExclusionsDoNotFail) {
  auto rep = run({R"({"label":"surprise","pred":{"label":"surprise"}})",
                  R"({"label":"happy","pred":{"label":"happy"}})"},
                 classes("3"));
  EXPECT_EQ(reason(rep.overall.skipped, "truth_surprise"), 1u);
  EXPECT_EQ(rep.overall.metrics.n, 1u);
  EXPECT_EQ(rep.exit_status(), 0);
}

TEST(Eval_ThreeClass, withAndWithoutProbs) {
  auto rep = run(
      {// probs: negative group 0.5 beats the single largest, neutral 0.4
       R"({"label":"sad","pred":{"label":"neutral","probs":{"neutral":0.4,"sad":0.25,"anger":0.25,"happy":0.1}}})",
       // no probs: contempt -> positive
       R"({"label":"happy","pred":{"label":"contempt"}})",
       // no probs: a predicted surprise is wrong
       R"({"label":"fear","pred":{"label":"surprise"}})",
       // probs: surprise left out, positive wins
       R"({"label":"neutral","pred":{"label":"surprise","probs":{"surprise":0.7,"happy":0.2,"neutral":0.1}}})"},
      classes("3"));
  const auto& cm = rep.overall.confusion;
  EXPECT_EQ(rep.labels, (std::vector<std::string>{"negative", "positive", "neutral"}));
  EXPECT_EQ(cm.count(0, 0), 1u);
  EXPECT_EQ(cm.count(1, 1), 1u);
  EXPECT_EQ(cm.count(0, edan::kOutside), 1u);
  EXPECT_EQ(cm.count(2, 1), 1u);
  EXPECT_DOUBLE_EQ(*rep.overall.metrics.accuracy, 0.5);
}

TEST(Eval_SixClass, neutralAndContemptTruthSkippedPredictionsRuled) {
  auto rep = run(
      {R"({"label":"neutral","pred":{"label":"neutral"}})",
       R"({"label":"contempt","pred":{"label":"contempt"}})",
       R"({"label":"sad","pred":{"label":"neutral","probs":{"neutral":0.6,"sad":0.3,"fear":0.1}}})",
       R"({"label":"sad","pred":{"label":"neutral"}})"},
      classes("6"));
  EXPECT_EQ(reason(rep.overall.skipped, "truth_outside_classes"), 2u);
  EXPECT_EQ(rep.overall.metrics.n, 2u);
  EXPECT_EQ(rep.overall.confusion.count(1, 1), 1u);               // argmax over the six
  EXPECT_EQ(rep.overall.confusion.count(1, edan::kOutside), 1u);  // label outside: wrong
  EXPECT_DOUBLE_EQ(*rep.overall.metrics.accuracy, 0.5);
}

TEST(Eval_Groups, oneSummaryPerGroupPlusOverall) {
  edan::EvalOptions o = classes("7");
  o.group_by = "dataset";
  auto rep = run({R"({"dataset":"ck","label":"happy","pred":{"label":"happy"}})",
                  R"({"dataset":"fer","label":"sad","pred":{"label":"happy"}})",
                  R"({"dataset":"ck","label":"sad","pred":{"label":"sad"}})",
                  R"({"label":"sad","pred":{"label":"sad"}})",
                  R"({"dataset":"fer","label":"sad","error":"x"})"},
                 o);
  ASSERT_EQ(rep.groups.size(), 3u);
  EXPECT_EQ(rep.groups[0].name, "ck");
  EXPECT_EQ(rep.groups[1].name, "fer");
  EXPECT_EQ(rep.groups[2].name, "(none)");
  EXPECT_DOUBLE_EQ(*rep.groups[0].metrics.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(*rep.groups[1].metrics.accuracy, 0.0);
  EXPECT_EQ(rep.groups[1].skipped.total(), 1u);
  EXPECT_EQ(rep.overall.records, 5u);
  EXPECT_EQ(rep.overall.metrics.n, 4u);
  EXPECT_DOUBLE_EQ(*rep.overall.metrics.accuracy, 0.75);
}

TEST(Eval_Landmarks, nmeAucFailureFromRecords) {
  // Shift 0.9: io 0.9/9 = 0.1, ip 0.9/6 = 0.15. Shift 0.18: io 0.02, ip 0.03.
  auto rep =
      run({landmark_record(0.9), landmark_record(0.18), R"({"landmarks":[[0,0]],"pred":{}})"});
  ASSERT_TRUE(rep.overall.landmarks);
  const auto& l = *rep.overall.landmarks;
  EXPECT_EQ(l.inter_ocular_stats.n, 2u);
  EXPECT_NEAR(*l.inter_ocular_stats.mean, 0.06, 1e-12);
  EXPECT_NEAR(*l.inter_pupil_stats.mean, 0.09, 1e-12);
  EXPECT_NEAR(*l.inter_ocular_stats.auc, (0.0 + 0.06) / (2 * 0.08), 1e-12);
  EXPECT_DOUBLE_EQ(*l.inter_ocular_stats.failure_rate, 0.5);
  EXPECT_EQ(reason(l.skipped, "bad_truth"), 1u);
  // The landmark records have no label: not a classification problem.
  EXPECT_EQ(reason(rep.overall.skipped, "no_label"), 3u);
  EXPECT_EQ(rep.problems(), 1u);
}

TEST(Eval_Bootstrap, intervalPerGroupWhenAsked) {
  edan::EvalOptions o = classes("7");
  o.bootstrap = 200;
  o.seed = 3;
  auto rep = run({R"({"label":"happy","pred":{"label":"happy"}})",
                  R"({"label":"sad","pred":{"label":"happy"}})"},
                 o);
  ASSERT_TRUE(rep.overall.accuracy_ci);
  EXPECT_LE(rep.overall.accuracy_ci->low, 0.5);
  EXPECT_GE(rep.overall.accuracy_ci->high, 0.5);
  auto again = run({R"({"label":"happy","pred":{"label":"happy"}})",
                    R"({"label":"sad","pred":{"label":"happy"}})"},
                   o);
  EXPECT_EQ(again.overall.accuracy_ci->low, rep.overall.accuracy_ci->low);
}

TEST(Eval_Options, badOptionsAreUsageErrors) {
  EXPECT_THROW(edan::Evaluator(classes("5")), edan::UsageError);
  edan::EvalOptions o;
  o.bootstrap = -1;
  EXPECT_THROW(edan::Evaluator{o}, edan::UsageError);
  EXPECT_THROW(edan::parse_report_format("xml"), edan::UsageError);
}

TEST(Eval_Json, summaryKeysAndConfusion) {
  auto rep =
      run({R"({"label":"happy","pred":{"label":"happy"}})",
           R"({"label":"fear","pred":{"label":"surprise"}})", R"({"label":"happy","error":"x"})"},
          classes("3"));
  auto j = edan::report_to_json(rep);
  EXPECT_EQ(j.at("class_set").as_string(), "3");
  EXPECT_EQ(j.at("records").as_uint64() + 0, 3u);
  EXPECT_EQ(j.at("n").as_uint64() + 0, 2u);
  EXPECT_DOUBLE_EQ(j.at("accuracy").as_double(), 0.5);
  const auto& conf = j.at("confusion").as_object();
  EXPECT_EQ(conf.at("labels").as_array().size(), 3u);
  ASSERT_EQ(conf.at("columns").as_array().size(), 4u);  // + other
  EXPECT_EQ(conf.at("columns").as_array()[3].as_string(), "other");
  EXPECT_EQ(conf.at("counts").as_array()[0].as_array()[3].as_uint64() + 0, 1u);
  EXPECT_DOUBLE_EQ(conf.at("row_normalized").as_array()[1].as_array()[1].as_double(), 1.0);
  EXPECT_EQ(j.at("skipped").at("reasons").at("error").as_uint64() + 0, 1u);
  EXPECT_EQ(j.at("per_class").as_array().size(), 3u);
  EXPECT_FALSE(j.contains("landmarks"));
}

TEST(Eval_Json, groupedLayout) {
  edan::EvalOptions o = classes("7");
  o.group_by = "dataset";
  auto j =
      edan::report_to_json(run({R"({"dataset":"a","label":"happy","pred":{"label":"happy"}})"}, o));
  EXPECT_EQ(j.at("group_by").as_string(), "dataset");
  EXPECT_EQ(j.at("groups").as_array()[0].at("group").as_string(), "a");
  EXPECT_DOUBLE_EQ(j.at("overall").at("accuracy").as_double(), 1.0);
  EXPECT_TRUE(j.at("overall").at("accuracy").is_double());
}

TEST(Eval_Formats, markdownAndTsvTables) {
  edan::EvalOptions o = classes("7");
  o.group_by = "dataset";
  auto rep = run({R"({"dataset":"ck","label":"happy","pred":{"label":"happy"}})",
                  R"({"dataset":"fer","label":"sad","pred":{"label":"happy"}})"},
                 o);
  auto md = edan::format_report(rep, edan::ReportFormat::kMarkdown);
  EXPECT_NE(md.find("| dataset | n | Acc. (%) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| ck | 1 | 100.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| **overall** | 2 | 50.0 |"), std::string::npos) << md;
  auto tsv = edan::format_report(rep, edan::ReportFormat::kTsv);
  EXPECT_EQ(tsv.substr(0, tsv.find('\n')).find("group\trecords\tn\taccuracy"), 0u);
  EXPECT_NE(tsv.find("\nfer\t1\t1\t0\t"), std::string::npos) << tsv;
  EXPECT_NE(tsv.find("\noverall\t2\t2\t0.5\t"), std::string::npos) << tsv;
  auto single = edan::format_report(run({R"({"label":"happy","pred":{"label":"happy"}})"}),
                                    edan::ReportFormat::kMarkdown);
  EXPECT_NE(single.find("### Confusion matrix"), std::string::npos);
  EXPECT_NE(single.find("| **happy** | 1 (100.0) | 1 |"), std::string::npos) << single;
}

TEST(Eval_Formats, landmarkOnlyRunShowsNoClassification) {
  auto rep = run({landmark_record(0.9), landmark_record(0.18)});
  EXPECT_TRUE(rep.labels.empty());
  EXPECT_EQ(rep.exit_status(), 0);
  auto md = edan::format_report(rep, edan::ReportFormat::kMarkdown);
  EXPECT_EQ(md.rfind("## Evaluation: landmarks\n", 0), 0u) << md;
  EXPECT_EQ(md.find("accuracy"), std::string::npos) << md;
  EXPECT_NE(md.find("| inter-ocular (corners 36, 45) | 2 | 6.00 | 37.50 | 50.00 |"),
            std::string::npos)
      << md;
}

TEST(Eval_Baseline, pairedDifferenceOnTheSameFaces) {
  edan::EvalOptions opt = classes("7");
  opt.group_by = "run";
  opt.baseline = "a";
  opt.bootstrap = 500;
  // a is right on c1-c3; b only on c1, and also scores c5, which a lacks.
  auto rec = [](const char* run, const char* crop, const char* pred) {
    return std::string(R"({"run":")") + run + R"(","crop":")" + crop +
           R"(","label":"happy","pred":{"label":")" + pred + R"("}})";
  };
  auto rep = run({rec("a", "c1", "happy"), rec("a", "c2", "happy"), rec("a", "c3", "happy"),
                  rec("a", "c4", "sad"), rec("b", "c4", "sad"), rec("b", "c3", "sad"),
                  rec("b", "c2", "sad"), rec("b", "c1", "happy"), rec("b", "c5", "happy")},
                 opt);
  ASSERT_EQ(rep.groups.size(), 2u);
  EXPECT_FALSE(rep.groups[0].vs_baseline);
  ASSERT_TRUE(rep.groups[1].vs_baseline);
  const auto& c = *rep.groups[1].vs_baseline;
  EXPECT_EQ(c.baseline, "a");
  EXPECT_EQ(c.n, 4u);  // c5 has no pair
  EXPECT_DOUBLE_EQ(c.accuracy, 0.25);
  EXPECT_DOUBLE_EQ(c.baseline_accuracy, 0.75);
  EXPECT_DOUBLE_EQ(c.difference, -0.5);
  // Per-face differences in key order c1..c4: 0, -1, -1, 0.
  auto ci = edan::bootstrap_mean_ci({0, -1, -1, 0}, 500, 1);
  ASSERT_TRUE(c.difference_ci);
  EXPECT_DOUBLE_EQ(c.difference_ci->low, ci->low);
  EXPECT_DOUBLE_EQ(c.difference_ci->high, ci->high);
  EXPECT_LT(c.difference_ci->low, -0.5);
  EXPECT_GE(c.difference_ci->low, -1.0);
  auto md = edan::format_report(rep, edan::ReportFormat::kMarkdown);
  EXPECT_NE(md.find("| b | 4 | 25.0 | 75.0 | -50.0 |"), std::string::npos) << md;
  auto js = edan::report_to_json(rep);
  EXPECT_DOUBLE_EQ(js.at("groups").as_array()[1].at("vs_baseline").at("difference").as_double(),
                   -0.5);
}

TEST(Eval_Baseline, pairedLandmarkDifferenceOnTheSameFaces) {
  edan::EvalOptions opt;
  opt.group_by = "run";
  opt.baseline = "s1";
  opt.bootstrap = 500;
  // Shift k gives inter-ocular NME k/9. s1: faces f1 0.9, f2 0.45; s2:
  // f1 0.45, f2 0.45, f3 0.09 (no pair in s1).
  auto rec = [](const char* run, const char* image, double shift) {
    auto r = json::parse(landmark_record(shift)).as_object();
    r["image"] = image;
    r["run"] = run;
    return json::serialize(r);
  };
  auto rep = run({rec("s1", "f1", 0.9), rec("s1", "f2", 0.45), rec("s2", "f2", 0.45),
                  rec("s2", "f1", 0.45), rec("s2", "f3", 0.09)},
                 opt);
  ASSERT_EQ(rep.groups.size(), 2u);
  ASSERT_TRUE(rep.groups[1].vs_baseline);
  const auto& c = *rep.groups[1].vs_baseline;
  EXPECT_EQ(c.lm_n, 2u);
  EXPECT_NEAR(c.nme, 0.05, 1e-12);
  EXPECT_NEAR(c.baseline_nme, 0.075, 1e-12);
  EXPECT_NEAR(c.nme_difference, -0.025, 1e-12);
  // Per-face differences in key order f1, f2: -0.05, 0.
  auto ci = edan::bootstrap_mean_ci({0.45 / 9 - 0.9 / 9, 0.0}, 500, 1);
  ASSERT_TRUE(c.nme_difference_ci);
  EXPECT_NEAR(c.nme_difference_ci->low, ci->low, 1e-12);
  EXPECT_NEAR(c.nme_difference_ci->high, ci->high, 1e-12);
  auto md = edan::format_report(rep, edan::ReportFormat::kMarkdown);
  EXPECT_NE(md.find("| s2 | 2 | 5.00 | 7.50 | -2.50 |"), std::string::npos) << md;
  auto js = edan::report_to_json(rep);
  const auto& l = js.at("groups").as_array()[1].at("vs_baseline").at("landmarks");
  EXPECT_EQ(l.at("n").to_number<std::uint64_t>(), 2u);
  EXPECT_NEAR(l.at("difference").as_double(), -0.025, 1e-12);
}

TEST(Eval_Baseline, needsGroupByAndAnExistingGroup) {
  edan::EvalOptions opt;
  opt.baseline = "a";
  EXPECT_THROW(edan::Evaluator{opt}, edan::UsageError);
  opt.group_by = "run";
  opt.baseline = "zzz";
  EXPECT_THROW(run({R"({"run":"a","label":"happy","pred":{"label":"happy"}})"}, opt),
               edan::UsageError);
}
