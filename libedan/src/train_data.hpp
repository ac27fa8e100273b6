#pragma once
// Private to the training code: the parts of loading and checking a run's
// data and options that the loop (train.cpp) uses beyond edan/train.hpp.
#include <vector>

#include "edan/model.hpp"
#include "edan/shape.hpp"
#include "edan/train.hpp"

namespace edan {

// Throws UsageError naming the first option of `opt` out of its range.
void check_options(const TrainOptions& opt);

// The landmarks of the samples of `set` that have them, in order.
std::vector<Shape> training_shapes(const TrainingSet& set);

// Sets meta.input_mean and meta.input_std to the mean and standard deviation
// of the pixels of `set` (in [0,1]; the std at least 1e-3).
void set_input_statistics(const TrainingSet& set, ModelMeta& meta);

}  // namespace edan
