#include "edan/report.hpp"

#include <string>

#include "edan/error.hpp"

namespace edan {

ReportFormat parse_report_format(std::string_view name) {
  if (name == "json") return ReportFormat::kJson;
  if (name == "markdown" || name == "md") return ReportFormat::kMarkdown;
  if (name == "tsv") return ReportFormat::kTsv;
  throw UsageError("unknown format '" + std::string(name) + "' (expected json, markdown or tsv)");
}

}  // namespace edan
