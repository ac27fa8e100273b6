// Fuzz target: the file-name and folder parsers of edan-index (folders,
// jaffe, ckplus layouts) and the label names they rely on. Each parser
// returns a well-formed result or throws RecordError.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "edan/dataset.hpp"
#include "edan/error.hpp"
#include "edan/labels.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  edan::is_image_file(s);
  edan::canonical_split(s);
  if (auto l = edan::canonical_label(s))
    if (!edan::canonical_label(*l)) std::abort();  // canonical names are fixed points
  try {
    auto f = edan::parse_folder_label(s);
    if (!edan::canonical_label(f.label)) std::abort();
  } catch (const edan::RecordError&) {
  }
  try {
    auto j = edan::parse_jaffe_name(s);
    if (j.subject.empty() || !edan::canonical_label(j.label)) std::abort();
  } catch (const edan::RecordError&) {
  }
  try {
    auto c = edan::parse_ckplus_name(s);
    if (c.subject.empty() || c.sequence.empty() || c.frame < 0) std::abort();
  } catch (const edan::RecordError&) {
  }
  edan::join_path(s.substr(0, s.size() / 2), s.substr(s.size() / 2));
  return 0;
}
