#pragma once
// Formats of the summary reports that edan-eval and edan-auoverlap write.
#include <string_view>

namespace edan {

// json: one compact object on one line; markdown: tables for people;
// tsv: one header row and one row per group (edan-eval only).
enum class ReportFormat { kJson, kMarkdown, kTsv };

// Parses "json", "markdown" (or "md"), "tsv". Throws UsageError otherwise.
ReportFormat parse_report_format(std::string_view name);

}  // namespace edan
