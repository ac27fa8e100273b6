// edan-table: face records as a spreadsheet, one row per face (CSV or TSV).
#include <sstream>

#include "edan/cli.hpp"
#include "edan/error.hpp"
#include "edan/table.hpp"

int main(int argc, char** argv) {
  edan::cli::Tool tool{"edan-table",
                       "Write face records as a spreadsheet: one row per face, CSV or TSV."};
  std::string format = "csv", fields;
  bool no_header = false;
  edan::TableOptions opt;
  tool.add({"-f", "--format"}, "FMT", "csv (RFC 4180) or tsv (default: csv)", &format);
  tool.add_flag({"--landmarks"}, "add the 68 predicted landmarks, columns x0,y0 ... x67,y67",
                &opt.landmarks);
  tool.add({"--fields"}, "LIST",
           "also these top-level fields, comma-separated, as columns (e.g. dataset,split)",
           &fields);
  tool.add_flag({"--no-header"}, "no header row", &no_header);
  tool.add_output();
  tool.epilog(
      "Examples:\n"
      "  edan-predict photos/ | edan-table > faces.csv\n"
      "  edan-table --format tsv --landmarks scored.jsonl > faces.tsv");
  if (auto rc = tool.parse(argc, argv)) return *rc;
  return tool.run([&] {
    opt.separator = edan::parse_table_format(format);
    opt.header = !no_header;
    std::stringstream list(fields);
    for (std::string f; std::getline(list, f, ',');)
      if (!f.empty()) opt.fields.push_back(f);
    edan::TableWriter table(tool.out(), opt);
    tool.for_each_input([&](edan::Record& r) { table.add(r); });
    table.finish();
    if (table.errors())
      tool.warn(std::to_string(table.errors()) + " row(s) with an error (see the error column)");
    return table.errors() ? edan::kExitSomeFailed : edan::kExitOk;
  });
}
