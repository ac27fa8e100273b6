#pragma once
// Private to the training code: the types that its three parts (train_data,
// train_checkpoint and the loop in train.cpp) share, below all of them.
#include <torch/torch.h>

#include <boost/json.hpp>
#include <cstdint>

#include "edan/train.hpp"

namespace edan {

struct Batch {
  torch::Tensor images, landmarks, has_landmarks, labels, targets;
};

// Sums over samples, turned into metrics at the end.
struct Tally {
  double nme = 0, nme_io = 0, ce = 0;
  std::int64_t n = 0, with_landmarks = 0, with_labels = 0, with_hard_labels = 0, correct = 0;

  void add(const LossTerms& t, const torch::Tensor& pred, const Batch& b,
           const torch::Tensor& logits) {
    n += b.images.size(0);
    with_landmarks += t.with_landmarks;
    with_labels += t.with_labels;
    nme += t.nme.item<double>() * static_cast<double>(t.with_landmarks);
    ce += t.ce.item<double>() * static_cast<double>(t.with_labels);
    if (t.with_landmarks > 0) {
      auto idx = b.has_landmarks.nonzero().squeeze(1);
      nme_io += sample_nme(pred.index_select(0, idx), b.landmarks.index_select(0, idx),
                           NmeNorm::kInterOcular)
                    .sum()
                    .item<double>();
    }
    auto mask = b.labels >= 0;
    with_hard_labels += mask.sum().item<std::int64_t>();
    correct += (logits.argmax(1).eq(b.labels) & mask).sum().item<std::int64_t>();
  }
  // Accuracy over the samples with a hard label (a soft target alone, as a
  // FER+ tie, trains but has no single right answer).
  double accuracy() const {
    return static_cast<double>(correct) / static_cast<double>(with_hard_labels);
  }
  double mean_nme() const { return with_landmarks ? nme / static_cast<double>(with_landmarks) : 0; }
  double mean_ce() const { return with_labels ? ce / static_cast<double>(with_labels) : 0; }
  // The inter-ocular NME; only meaningful with landmarks (with_landmarks > 0).
  double mean_nme_io() const { return nme_io / static_cast<double>(with_landmarks); }
  double loss(double alpha, double beta) const { return alpha * mean_nme() + beta * mean_ce(); }
  boost::json::object to_json(double alpha, double beta) const {
    boost::json::object o;
    o["loss"] = loss(alpha, beta);
    o["accuracy"] = with_hard_labels ? boost::json::value(accuracy()) : boost::json::value(nullptr);
    o["nme"] = with_landmarks ? boost::json::value(mean_nme()) : boost::json::value(nullptr);
    o["nme_io"] = with_landmarks ? boost::json::value(mean_nme_io()) : boost::json::value(nullptr);
    o["samples"] = n;
    return o;
  }
  boost::json::object state() const {
    return {{"nme", nme},
            {"nme_io", nme_io},
            {"ce", ce},
            {"n", n},
            {"with_landmarks", with_landmarks},
            {"with_labels", with_labels},
            {"with_hard_labels", with_hard_labels},
            {"correct", correct}};
  }
  static Tally from_state(const boost::json::object& o) {
    Tally t;
    t.nme = o.at("nme").to_number<double>();
    t.nme_io = o.at("nme_io").to_number<double>();
    t.ce = o.at("ce").to_number<double>();
    t.n = o.at("n").to_number<std::int64_t>();
    t.with_landmarks = o.at("with_landmarks").to_number<std::int64_t>();
    t.with_labels = o.at("with_labels").to_number<std::int64_t>();
    t.correct = o.at("correct").to_number<std::int64_t>();
    t.with_hard_labels = o.at("with_hard_labels").to_number<std::int64_t>();
    return t;
  }
};

}  // namespace edan
