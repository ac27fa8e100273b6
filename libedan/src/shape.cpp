#include "edan/shape.hpp"

#include <cmath>
#include <stdexcept>

namespace edan {

Shape Similarity::apply(const Shape& s) const {
  Shape out;
  out.reserve(s.size());
  for (const auto& p : s) out.push_back(apply(p));
  return out;
}

Similarity Similarity::inverse() const {
  double d = a * a + b * b;
  if (d == 0) throw std::domain_error("singular similarity transform");
  // Inverse of [a -b; b a] is [a b; -b a] / d.
  Similarity inv;
  inv.a = a / d;
  inv.b = -b / d;
  inv.tx = -(inv.a * tx - inv.b * ty);
  inv.ty = -(inv.b * tx + inv.a * ty);
  return inv;
}

double Similarity::scale() const { return std::sqrt(a * a + b * b); }

}  // namespace edan
