#include "edan/augment.hpp"

#include <cmath>
#include <stdexcept>

#include "edan/shape.hpp"

namespace edan {
namespace {
constexpr double kPi = 3.14159265358979323846;

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0,1) from 53 random bits (no library distribution, whose
// output is implementation-defined).
double uniform01(std::uint64_t& state) {
  return static_cast<double>(splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
}
double uniform(std::uint64_t& state, double range) { return (2 * uniform01(state) - 1) * range; }

bool is_identity(const Augmentation& a) {
  return !a.flip && a.angle == 0 && a.scale == 1 && a.dx == 0 && a.dy == 0;
}
}  // namespace

std::uint64_t mix_seed(std::initializer_list<std::uint64_t> parts) {
  std::uint64_t state = 0x5DEECE66Dull;
  for (auto p : parts) {
    state ^= p;
    state = splitmix64(state);
  }
  return state;
}

Augmentation draw_augmentation(const AugmentConfig& c, std::int64_t size, std::uint64_t seed) {
  std::uint64_t s = seed;
  Augmentation a;
  a.flip = uniform01(s) < c.flip;
  a.angle = uniform(s, c.rotation);
  a.scale = 1 + uniform(s, c.scale);
  a.dx = uniform(s, c.shift) * static_cast<double>(size);
  a.dy = uniform(s, c.shift) * static_cast<double>(size);
  a.brightness = uniform(s, c.brightness);
  a.contrast = 1 + uniform(s, c.contrast);
  return a;
}

std::array<double, 6> augmentation_matrix(const Augmentation& a, std::int64_t size) {
  const double c = (static_cast<double>(size) - 1) / 2;
  // Flip: x -> 2c - x.
  const double fx = a.flip ? -1 : 1, fb = a.flip ? 2 * c : 0;
  const double th = a.angle * kPi / 180;
  // Screen y points down, so a counter-clockwise turn on screen is -th.
  const double r00 = a.scale * std::cos(th), r01 = a.scale * std::sin(th);
  const double r10 = -a.scale * std::sin(th), r11 = a.scale * std::cos(th);
  // p' = R (F p - c) + c + d, F p = (fx*x + fb, y).
  std::array<double, 6> m{};
  m[0] = r00 * fx;
  m[1] = r01;
  m[2] = r00 * (fb - c) + r01 * (-c) + c + a.dx;
  m[3] = r10 * fx;
  m[4] = r11;
  m[5] = r10 * (fb - c) + r11 * (-c) + c + a.dy;
  return m;
}

void apply_augmentations(torch::Tensor& images, torch::Tensor& landmarks,
                         const std::vector<Augmentation>& augs) {
  if (images.dim() != 4 || images.size(1) != 1 || images.size(2) != images.size(3))
    throw std::invalid_argument("apply_augmentations: images must be [N,1,S,S]");
  const std::int64_t n = images.size(0), size = images.size(2);
  if (static_cast<std::int64_t>(augs.size()) != n)
    throw std::invalid_argument("apply_augmentations: one augmentation per image needed");
  if (landmarks.defined() && (landmarks.dim() != 3 || landmarks.size(0) != n ||
                              landmarks.size(1) != 68 || landmarks.size(2) != 2))
    throw std::invalid_argument("apply_augmentations: landmarks must be [N,68,2]");

  bool any_geometry = false;
  auto fwd = torch::zeros({n, 2, 3}, torch::kFloat64);
  auto inv = torch::zeros({n, 2, 3}, torch::kFloat64);
  auto fa = fwd.accessor<double, 3>();
  auto ia = inv.accessor<double, 3>();
  std::vector<std::int64_t> flips;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto& a = augs[static_cast<std::size_t>(i)];
    any_geometry = any_geometry || !is_identity(a);
    if (a.flip) flips.push_back(i);
    auto m = augmentation_matrix(a, size);
    double det = m[0] * m[4] - m[1] * m[3];
    if (det == 0) throw std::invalid_argument("apply_augmentations: singular augmentation");
    for (int k = 0; k < 6; ++k) fa[i][k / 3][k % 3] = m[k];
    // Inverse of [A t]: [A^-1, -A^-1 t].
    double i00 = m[4] / det, i01 = -m[1] / det, i10 = -m[3] / det, i11 = m[0] / det;
    ia[i][0][0] = i00;
    ia[i][0][1] = i01;
    ia[i][0][2] = -(i00 * m[2] + i01 * m[5]);
    ia[i][1][0] = i10;
    ia[i][1][1] = i11;
    ia[i][1][2] = -(i10 * m[2] + i11 * m[5]);
  }

  if (any_geometry) {
    // Each output pixel p samples the input at inv·p; grid_sample wants that
    // position in [-1,1] with align_corners (pixel centres at ±1 ends).
    auto opts = torch::TensorOptions().dtype(torch::kFloat64);
    auto coords = torch::arange(size, opts);
    auto gy = coords.view({size, 1}).expand({size, size});
    auto gx = coords.view({1, size}).expand({size, size});
    auto p = torch::stack({gx, gy, torch::ones({size, size}, opts)}, -1)
                 .view({1, size * size, 3});           // [1,P,3]
    auto src = torch::matmul(p, inv.transpose(1, 2));  // [N,P,2]
    auto grid = (src * (2.0 / static_cast<double>(size - 1)) - 1.0)
                    .view({n, size, size, 2})
                    .to(images.scalar_type());
    images = torch::nn::functional::grid_sample(images, grid,
                                                torch::nn::functional::GridSampleFuncOptions()
                                                    .mode(torch::kBilinear)
                                                    .padding_mode(torch::kBorder)
                                                    .align_corners(true));
    if (landmarks.defined()) {
      auto pts = landmarks.to(torch::kFloat64);
      auto moved = torch::matmul(pts, fwd.narrow(2, 0, 2).transpose(1, 2)) +
                   fwd.narrow(2, 2, 1).transpose(1, 2);
      if (!flips.empty()) {
        const auto& mirror = mirror_indices();
        auto perm = torch::empty({68}, torch::kLong);
        for (int k = 0; k < 68; ++k) perm[k] = mirror[static_cast<std::size_t>(k)];
        auto idx = torch::tensor(flips, torch::kLong);
        moved.index_copy_(0, idx, moved.index_select(0, idx).index_select(1, perm));
      }
      landmarks = moved.to(landmarks.scalar_type());
    }
  }

  std::vector<double> bright, contrast;
  bool any_photo = false;
  for (const auto& a : augs) {
    bright.push_back(a.brightness);
    contrast.push_back(a.contrast);
    any_photo = any_photo || a.brightness != 0 || a.contrast != 1;
  }
  if (any_photo) {
    auto b = torch::tensor(bright, torch::kFloat64).view({n, 1, 1, 1}).to(images.scalar_type());
    auto k = torch::tensor(contrast, torch::kFloat64).view({n, 1, 1, 1}).to(images.scalar_type());
    images = ((images - 0.5) * k + 0.5 + b).clamp(0.0, 1.0);
  }
}

}  // namespace edan
