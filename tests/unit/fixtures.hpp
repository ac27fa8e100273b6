#pragma once
// Small inputs shared by the unit tests.
#include <cmath>

#include "edan/model.hpp"
#include "edan/shape.hpp"

namespace edan::test {

// 68 distinct, non-collinear points on a wavy ring inside a size×size frame.
inline Shape ring_shape(double size) {
  Shape s;
  for (int i = 0; i < 68; ++i) {
    double a = 2 * M_PI * i / 68.0;
    double r = size * (0.25 + 0.1 * ((i % 5) / 4.0));
    s.push_back({size / 2 + r * std::cos(a), size / 2 + r * std::sin(a)});
  }
  return s;
}

// A tiny model configuration (S=32, widths 4/4/8/8, fc 16) for fast tests.
inline ModelConfig tiny_config(std::int64_t stages = 2) {
  auto c = preset_config("small");
  c.size = 32;
  c.widths = {4, 4, 8, 8};
  c.fc = 16;
  c.stages = stages;
  return c;
}

}  // namespace edan::test
