#pragma once
// How much blurrier one set of faces is than another, measured from their
// power spectra. For a model trained on blurred faces (this project's copy of
// FER2013: its training split is blurred, its test split is not), the blur
// to apply to sharp faces before prediction (ModelMeta::input_blur) can then
// be set from sharp faces that are not test data, without any label.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace edan {

// The mean power spectrum of [N,1,S,S] (or [N,S,S]) square images by integer
// radius: element r (0 <= r <= S/2) is the mean |FFT|^2 over the frequencies
// whose distance from zero, in cycles per image, rounds to r. Each image is
// first brought to zero mean and unit variance (so that contrast does not
// count) and multiplied by a Hann window (so that its borders do not).
// Throws std::invalid_argument for an empty or non-square batch.
std::vector<double> radial_power_spectrum(const torch::Tensor& images);

// The estimate and what it rests on.
struct BlurEstimate {
  double sigma = 0;  // pixels, at the images' side
  // The radii compared: 2 up to where the blurred images' power falls to 20
  // times their noise floor (the median power over the highest quarter of
  // radii, which is compression and quantisation noise once an image is
  // blurred).
  std::int64_t first_radius = 0, last_radius = 0;
  double residual = 0;  // rms of the log-spectrum difference at sigma
};

// The Gaussian sigma (pixels) which, applied with blur_images() to the
// `sharp` images, makes their radial power spectrum best match that of the
// `blurred` ones: least squares of the log spectra over the compared radii,
// up to a constant factor, searched over 0 to 8 pixels in steps of 0.2 and
// then of 0.02 about the best.
// Both batches are [N,1,S,S] with pixels in [0,1] and the same S; they need
// not show the same faces; at most 2,048 sharp images are used, evenly spread
// through the batch. Throws std::invalid_argument for batches of
// different sides or when fewer than two radii stand above the noise floor
// (the blurred images carry no detail to compare).
BlurEstimate estimate_relative_blur(const torch::Tensor& sharp, const torch::Tensor& blurred);

}  // namespace edan
