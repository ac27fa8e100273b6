// edan-eval: score prediction records (classification and landmarks).
#include <cstdio>

#include "edan/cli.hpp"
#include "edan/eval.hpp"
#include "edan/plot.hpp"

int main(int argc, char** argv) {
  edan::cli::Tool tool{"edan-eval",
                       "Score prediction records: accuracy, F1, confusion matrix, landmark NME."};
  edan::EvalOptions opt;
  std::string format = "json", plots;
  tool.add({"--classes"}, "N",
           "score in the 3-, 6-, 7- or 8-class set (default: the model's classes)", &opt.classes);
  tool.add({"--group-by"}, "FIELD", "one summary per value of FIELD (e.g. dataset), plus overall",
           &opt.group_by);
  tool.add({"--baseline"}, "VALUE",
           "with --group-by: compare each group with this one on the same records (paired)",
           &opt.baseline);
  tool.add({"--format"}, "FMT", "json, markdown or tsv", &format);
  tool.add({"--plots"}, "DIR", "write confusion-matrix and error-curve PNGs into DIR", &plots);
  tool.add({"--bootstrap"}, "N", "resamples for a 95% bootstrap CI of accuracy; 0 = none",
           &opt.bootstrap);
  tool.add_seed();
  tool.add({"--threshold"}, "E", "error threshold of the AUC and failure rate", &opt.threshold);
  tool.add_output();
  tool.epilog(
      "Examples:\n"
      "  edan-predict -m m.edan test.jsonl | edan-eval --format markdown\n"
      "  edan-eval --classes 3 --group-by dataset --plots figs/ preds.jsonl");
  if (auto rc = tool.parse(argc, argv)) return *rc;
  return tool.run([&] {
    opt.seed = tool.seed();
    const auto fmt = edan::parse_report_format(format);
    edan::Evaluator evaluator(opt);
    tool.for_each_input([&](edan::Record& r) { evaluator.add(r); });
    const auto report = evaluator.finish();
    edan::write_text(tool.out(), edan::format_report(report, fmt), /*flush=*/true);
    if (!plots.empty()) edan::write_report_plots(report, plots);
    if (auto n = report.problems())
      tool.warn(std::to_string(n) +
                " record(s) skipped for an error or a missing or bad field "
                "(see the skip report)");
    return report.exit_status();
  });
}
