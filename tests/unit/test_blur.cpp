// Spectra and the relative-blur estimate (edan/blur.hpp).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "edan/blur.hpp"
#include "edan/model.hpp"

namespace {

// n images of side s: white noise about 0.5, then blurred by `sigma` pixels
// (the texture of a face photograph is not white, but the estimate only
// compares the two sets' spectra).
torch::Tensor noise_images(std::int64_t n, std::int64_t s, double sigma, std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto x = 0.5 + 0.2 * at::randn({n, 1, s, s}, gen);
  return edan::blur_images(x, sigma);
}

TEST(RadialPowerSpectrum, PeaksAtTheFrequencyOfAStripePattern) {
  const std::int64_t s = 32;
  auto x = torch::arange(s, torch::kFloat).view({1, 1, 1, s}).expand({2, 1, s, s});
  auto stripes = 0.5 + 0.4 * torch::cos(2 * M_PI * 5 * x / s);
  auto p = edan::radial_power_spectrum(stripes);
  ASSERT_EQ(p.size(), 17u);  // radii 0..16
  auto peak = std::max_element(p.begin() + 1, p.end()) - p.begin();
  EXPECT_EQ(peak, 5);
  // Zero mean: the window leaves little power at radius 0.
  EXPECT_LT(p[0], 0.05 * p[5]);
}

TEST(RadialPowerSpectrum, IgnoresContrastAndBrightness) {
  auto a = noise_images(8, 24, 1.0, 3);
  auto p = edan::radial_power_spectrum(a);
  auto q = edan::radial_power_spectrum(0.1 + 0.3 * a);
  for (std::size_t r = 0; r < p.size(); ++r) EXPECT_NEAR(q[r], p[r], 1e-6 * (1 + p[r])) << r;
}

TEST(RadialPowerSpectrum, RefusesEmptyAndNonSquareBatches) {
  EXPECT_THROW(edan::radial_power_spectrum(torch::zeros({0, 1, 8, 8})), std::invalid_argument);
  EXPECT_THROW(edan::radial_power_spectrum(torch::zeros({2, 1, 8, 9})), std::invalid_argument);
}

TEST(EstimateRelativeBlur, RecoversTheBlurBetweenTwoSetsOfDifferentImages) {
  // Sharp: 0.8 px of blur; blurred: other images with 0.8 px and then 2 px.
  // Blurring the sharp ones by 2 px makes them alike (Gaussians compose).
  auto sharp = noise_images(100, 48, 0.8, 1);
  auto blurred = edan::blur_images(noise_images(100, 48, 0.8, 2), 2.0);
  auto e = edan::estimate_relative_blur(sharp, blurred);
  EXPECT_NEAR(e.sigma, 2.0, 0.15);
  EXPECT_EQ(e.first_radius, 2);
  EXPECT_GT(e.last_radius, e.first_radius);
  EXPECT_LT(e.residual, 0.2);
}

TEST(EstimateRelativeBlur, FindsNoBlurBetweenAlikeSetsAndStopsAtTheNoiseFloor) {
  auto e = edan::estimate_relative_blur(noise_images(100, 32, 1.0, 1), noise_images(100, 32, 1.0, 2));
  EXPECT_LT(e.sigma, 0.2);
  // Heavily blurred and quantised to 8 bits: the fine detail is gone, below
  // the quantisation noise, and the compared radii end before it.
  auto blurred = (edan::blur_images(noise_images(100, 32, 1.0, 3), 2.5) * 255).round() / 255;
  auto q = edan::estimate_relative_blur(noise_images(100, 32, 1.0, 4), blurred);
  EXPECT_LT(q.last_radius, 16);
  EXPECT_NEAR(q.sigma, 2.5, 0.3);
}

TEST(EstimateRelativeBlur, RefusesMismatchedSidesAndImagesWithoutDetail) {
  EXPECT_THROW(edan::estimate_relative_blur(noise_images(4, 32, 1, 1), noise_images(4, 48, 1, 1)),
               std::invalid_argument);
  EXPECT_THROW(edan::estimate_relative_blur(noise_images(4, 32, 1, 1), torch::full({4, 1, 32, 32}, 0.5)),
               std::invalid_argument);
}

}  // namespace
