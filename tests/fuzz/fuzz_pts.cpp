// Fuzz target: 300-W .pts files. parse_pts either returns exactly the
// expected number of finite points or throws RecordError.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "edan/dataset.hpp"
#include "edan/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (std::size_t expected : {std::size_t{68}, std::size_t{3}}) {
    try {
      auto s = edan::parse_pts(text, expected);
      if (s.size() != expected) std::abort();
      for (const auto& p : s)
        if (!std::isfinite(p.x) || !std::isfinite(p.y)) std::abort();
      edan::pts_to_pixel_centres(s, 1);
    } catch (const edan::RecordError&) {
    }
  }
  return 0;
}
