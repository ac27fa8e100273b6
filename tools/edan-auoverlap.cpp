// edan-auoverlap: do the most activated landmarks of Grad-CAM maps match the
// landmarks of each emotion's EMFACS action units? (EmotionalDAN Table 5)
#include "edan/cli.hpp"
#include "edan/emfacs.hpp"
#include "edan/error.hpp"

int main(int argc, char** argv) {
  edan::cli::Tool tool{"edan-auoverlap",
                       "Compare the most activated landmarks of gradcam records with the "
                       "landmarks of each emotion's EMFACS action units."};
  edan::AuOverlapOptions opt;
  std::string format = "json";
  bool table = false;
  tool.add_flag({"--table"}, "print the emotion -> action units -> landmarks table and exit",
                &table);
  tool.add({"--au-table"}, "T", "paper or emfacs (default: paper)", &opt.table);
  tool.add({"--group-by"}, "G",
           "class (gradcam.class, the emotion the map is for) or label (default: class)",
           &opt.group_by);
  tool.add_flag({"--per-image"}, "also the distribution of each image's own overlap per emotion",
                &opt.per_image);
  tool.add({"-f", "--format"}, "F", "json or markdown (default: json)", &format);
  tool.add_output();
  if (auto rc = tool.parse(argc, argv)) return *rc;
  return tool.run([&] {
    auto fmt = edan::parse_report_format(format);
    if (table) {
      edan::write_emfacs_table(tool.out(), edan::parse_au_table(opt.table), fmt);
      return edan::kExitOk;
    }
    edan::AuOverlap overlap(opt);
    std::size_t n = 0;
    tool.for_each_input([&](edan::Record& r) {
      ++n;
      auto why = overlap.add(r);
      if (why.empty()) return;
      tool.warn("record " + std::to_string(n) + ": skipped: " + why);
    });
    overlap.write(tool.out(), fmt);
    return overlap.skipped() ? edan::kExitSomeFailed : edan::kExitOk;
  });
}
