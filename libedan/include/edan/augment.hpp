#pragma once
// Training-time data augmentation: one random affine map per sample (optional
// horizontal flip, small rotation, scale and shift) applied to the image and
// its landmarks together, then brightness/contrast. Batched in LibTorch.
//
// The random draws never touch a global generator: each sample's parameters
// are a pure function of a 64-bit seed, so that a resumed training run sees
// exactly the batches an uninterrupted one would.
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace edan {

// Ranges of the random augmentation (uniform within ±range).
struct AugmentConfig {
  double flip = 0.5;        // probability of a horizontal flip
  double rotation = 10.0;   // max |angle|, degrees
  double scale = 0.08;      // max relative change of size
  double shift = 0.05;      // max shift, as a fraction of the crop side
  double brightness = 0.1;  // max |offset| added to pixels in [0,1]
  double contrast = 0.2;    // max relative change of contrast about 0.5
};

// One sample's augmentation. The default value is the identity.
struct Augmentation {
  bool flip = false;
  double angle = 0;  // degrees, counter-clockwise on screen
  double scale = 1;
  double dx = 0, dy = 0;  // pixels
  double brightness = 0;
  double contrast = 1;
};

// Mixes integers into one well-spread 64-bit seed (splitmix64 chain), so
// that seeds such as (seed, stage, epoch, index) give independent streams.
std::uint64_t mix_seed(std::initializer_list<std::uint64_t> parts);

// Draws an augmentation for a size×size crop from `config` (shifts in
// pixels); a pure function of its arguments.
Augmentation draw_augmentation(const AugmentConfig& config, std::int64_t size, std::uint64_t seed);

// The 2×3 pixel-space affine matrix [m00 m01 m02; m10 m11 m12] (row-major)
// that maps a point of the original size×size crop to the augmented crop:
// first the flip x -> size-1-x (pixel centres at integers), then rotation and
// scaling about the crop centre, then the shift.
std::array<double, 6> augmentation_matrix(const Augmentation& a, std::int64_t size);

// Applies augs[i] to sample i, in place.
//   images:    [N,1,S,S] float, pixels in [0,1] (resampled bilinearly, the
//              border pixels repeated outside; then brightness/contrast,
//              clamped to [0,1]).
//   landmarks: [N,68,2] crop pixels, moved with the same matrix; a flip also
//              reorders them with edan::mirror_indices() so that point 36
//              stays the outer corner of the eye on the image's left. May be
//              an undefined tensor (no landmarks).
// Throws std::invalid_argument when the sizes disagree.
void apply_augmentations(torch::Tensor& images, torch::Tensor& landmarks,
                         const std::vector<Augmentation>& augs);

}  // namespace edan
