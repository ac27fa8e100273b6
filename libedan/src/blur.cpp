#include "edan/blur.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "edan/model.hpp"

namespace edan {

namespace {

torch::Tensor as_square_batch(const torch::Tensor& images) {
  if (!images.defined() || images.numel() == 0)
    throw std::invalid_argument("radial_power_spectrum: no images");
  auto x = images.dim() == 4 && images.size(1) == 1 ? images.squeeze(1) : images;
  if (x.dim() != 3 || x.size(1) != x.size(2))
    throw std::invalid_argument("radial_power_spectrum: expected [N,1,S,S] or [N,S,S] images");
  return x;
}

}  // namespace

std::vector<double> radial_power_spectrum(const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  auto x = as_square_batch(images);
  const std::int64_t n = x.size(0), s = x.size(1), half = s / 2;
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  auto i = torch::arange(s, opts);
  auto w1 = 0.5 - 0.5 * torch::cos(2 * M_PI * (i + 0.5) / s);
  auto window = w1.unsqueeze(1) * w1.unsqueeze(0);
  // Frequency index -> radius bin; those beyond S/2 go to bin S/2+1, dropped.
  auto f = torch::where(i < (s + 1) / 2, i, i - s);
  auto radius = torch::sqrt(f.unsqueeze(1).pow(2) + f.unsqueeze(0).pow(2)).round().to(torch::kLong);
  radius = torch::where(radius <= half, radius, torch::full_like(radius, half + 1)).flatten();

  auto power = torch::zeros({s, s}, opts);
  constexpr std::int64_t kChunk = 1024;  // bounds the FFT's memory
  for (std::int64_t b = 0; b < n; b += kChunk) {
    auto c = x.narrow(0, b, std::min(kChunk, n - b)).to(torch::kDouble);
    c = c - c.mean({1, 2}, /*keepdim=*/true);
    c = c / c.pow(2).mean({1, 2}, /*keepdim=*/true).sqrt().clamp_min(1e-12);
    auto spectrum = torch::fft::fft2(c * window);
    power += torch::abs(spectrum).pow(2).sum(0);
  }
  power /= static_cast<double>(n);
  auto sums = torch::zeros({half + 2}, opts).index_add_(0, radius, power.flatten());
  auto counts = torch::zeros({half + 2}, opts)
                    .index_add_(0, radius, torch::ones({s * s}, opts));
  auto mean = (sums / counts.clamp_min(1)).narrow(0, 0, half + 1).contiguous();
  return {mean.data_ptr<double>(), mean.data_ptr<double>() + half + 1};
}

BlurEstimate estimate_relative_blur(const torch::Tensor& sharp, const torch::Tensor& blurred) {
  torch::NoGradGuard no_grad;
  const auto a = as_square_batch(sharp), b = as_square_batch(blurred);
  if (a.size(1) != b.size(1))
    throw std::invalid_argument("estimate_relative_blur: the two batches differ in side (" +
                                std::to_string(a.size(1)) + " and " + std::to_string(b.size(1)) +
                                ")");
  const auto target = radial_power_spectrum(b);
  const auto half = static_cast<std::int64_t>(target.size()) - 1;

  // Noise floor: median power over the highest quarter of radii.
  std::vector<double> top(target.end() - std::max<std::int64_t>(1, half / 4 + 1), target.end());
  std::nth_element(top.begin(), top.begin() + top.size() / 2, top.end());
  const double floor = top[top.size() / 2];
  BlurEstimate e;
  e.first_radius = 2;
  e.last_radius = 1;
  while (e.last_radius + 1 <= half && target[e.last_radius + 1] > 20 * floor) ++e.last_radius;
  if (e.last_radius - e.first_radius + 1 < 2)
    throw std::invalid_argument(
        "estimate_relative_blur: the blurred images have no detail above their noise floor "
        "beyond the lowest frequencies; nothing to compare");

  // At most kMaxSharp sharp images, evenly spread: the search blurs them
  // about 60 times.
  constexpr std::int64_t kMaxSharp = 2048;
  auto kept = a.size(0) <= kMaxSharp
                  ? a
                  : a.index_select(0, torch::linspace(0, a.size(0) - 1, kMaxSharp,
                                                       torch::TensorOptions().dtype(torch::kDouble))
                                          .round()
                                          .to(torch::kLong));
  auto sharp_pixels = kept.unsqueeze(1).to(torch::kFloat);
  // rms of the log-spectrum difference, up to a constant factor (the offset
  // is the mean difference).
  auto misfit = [&](double sigma) {
    const auto p = radial_power_spectrum(blur_images(sharp_pixels, sigma));
    std::vector<double> d;
    for (auto r = e.first_radius; r <= e.last_radius; ++r)
      d.push_back(std::log(target[r]) - std::log(std::max(p[r], 1e-300)));
    double mean = 0;
    for (double v : d) mean += v / static_cast<double>(d.size());
    double ss = 0;
    for (double v : d) ss += (v - mean) * (v - mean);
    return std::sqrt(ss / static_cast<double>(d.size()));
  };
  // A grid of 0.2 px over 0..8, then 0.02 px around its best point.
  auto search = [&](double from, double to, double step) {
    double best = std::numeric_limits<double>::infinity();
    for (int k = 0; from + k * step <= to + 1e-9; ++k) {
      const double sigma = from + k * step, rms = misfit(sigma);
      if (rms < best) {
        best = rms;
        e.sigma = sigma;
        e.residual = rms;
      }
    }
  };
  search(0, 8, 0.2);
  search(std::max(0.0, e.sigma - 0.2), std::min(8.0, e.sigma + 0.2), 0.02);
  return e;
}

}  // namespace edan
