// edan-train: train an EmotionalDAN model, stage by stage, on face records.
#include "edan/cli.hpp"
#include "edan/train.hpp"

int main(int argc, char** argv) {
  edan::cli::Tool tool{"edan-train", "Train an EmotionalDAN model on face records."};
  edan::TrainOptions opt;
  tool.add({"-o", "--output"}, "MODEL", "the model file to write (required)", &opt.output);
  tool.add({"--preset"}, "NAME", "architecture: small, dan or paper", &opt.preset);
  tool.add({"--size"}, "S", "input crop side, overrides the preset (default: preset)", &opt.size);
  tool.add({"--widths"}, "W1,W2,W3,W4", "channels of the 4 conv blocks (default: preset)",
           &opt.widths);
  tool.add({"--stages"}, "N", "number of DAN stages (default: preset)", &opt.stages);
  tool.add({"--dropout"}, "P", "dropout after each pool (default: preset, 0.5)", &opt.dropout);
  tool.add({"--input-norm"}, "MODE",
           "dataset: by the training set's mean and std (default); image: each crop by its own; "
           "histeq: each crop's histogram equalised, then as image",
           &opt.input_norm);
  tool.add({"--classes"}, "N", "emotion classes: 7, 8 or 3", &opt.classes);
  tool.add({"--val"}, "FILE", "validation records (default: hold out --val-fraction)", &opt.val);
  tool.add({"--val-fraction"}, "F", "share of the input held out for validation, by subject",
           &opt.val_fraction);
  tool.add({"--alpha"}, "A", "weight of the landmark (NME) term", &opt.alpha);
  tool.add({"--beta"}, "B", "weight of the emotion (cross-entropy) term", &opt.beta);
  tool.add({"--class-weights"}, "MODE",
           "weights of the emotion term by class: none (default), balanced (1/frequency) "
           "or sqrt (1/sqrt(frequency))",
           &opt.class_weights);
  tool.add({"--class-weight-max"}, "W",
           "with --class-weights, no class weighs more than W times an average labelled "
           "record; the others are scaled up to keep that average (default: 0, no cap)",
           &opt.class_weight_max);
  tool.add({"--epochs"}, "N", "epochs per stage, at most; 0 writes an untrained model",
           &opt.epochs);
  tool.add({"--patience"}, "N", "evaluations without improvement before a stage ends",
           &opt.patience);
  tool.add({"--lr-base"}, "LR", "cyclical learning rate: lower bound", &opt.lr_base);
  tool.add({"--lr-max"}, "LR", "cyclical learning rate: upper bound", &opt.lr_max);
  tool.add({"--lr-step"}, "N", "iterations per half cycle (default: 0 = two epochs)", &opt.lr_step);
  tool.add({"--optimizer"}, "NAME", "sgd (momentum 0.9) or adam", &opt.optimizer);
  tool.add({"--stage-init"}, "HOW",
           "how a later stage starts: random, or previous (a copy of the stage before it; "
           "the landmark head always starts at zero)",
           &opt.stage_init);
  tool.add({"--init"}, "MODEL",
           "start from a trained model: its stages are kept, frozen, and training begins with "
           "the next",
           &opt.init);
  tool.add({"--init-stages"}, "K", "with --init, keep only its first K stages (0 = all)",
           &opt.init_stages);
  tool.add_flag({"--fine-tune"},
                "with --init, train its stages again from their weights (from stage 1 on) "
                "instead of freezing them",
                &opt.fine_tune);
  tool.add_flag({"--no-augment"}, "no flips, affine jitter or brightness/contrast changes",
                &opt.no_augment);
  tool.add({"--checkpoint"}, "FILE", "checkpoint file (default: MODEL.ckpt)", &opt.checkpoint);
  tool.add_flag({"--resume"}, "continue from the checkpoint of an interrupted run", &opt.resume);
  tool.add({"--log"}, "FILE", "write a JSON Lines training log, one object per evaluation",
           &opt.log);
  tool.add({"--max-steps"}, "N", "stop after N steps in all, checkpointed (default: 0 = no limit)",
           &opt.max_steps);
  tool.add_batch(32);
  tool.add_threads(edan::cli::Tool::ThreadDefault::all_cores);
  tool.add_device();
  tool.add_seed();
  tool.epilog("Stopped by SIGINT or SIGTERM: checkpoint written, exit 130 or 143.");
  if (auto rc = tool.parse(argc, argv)) return *rc;
  opt.batch = tool.batch();
  opt.threads = tool.threads();
  opt.device = tool.device();
  opt.seed = tool.seed();
  return tool.run([&] {
    edan::TrainOutputs outputs(opt, tool.inputs());
    std::vector<edan::Record> records;
    tool.for_each_input([&](edan::Record& r) { records.push_back(std::move(r)); });
    // A bar on stderr when it is a terminal, one line per evaluation; -q: none.
    edan::TrainReporter reporter{[&](const std::string& s) { tool.progress(s); },
                                 [&](const std::string& line) { tool.note(line); }};
    auto data = edan::prepare_training_data(opt, records, tool.inputs(), reporter.note);
    auto result = edan::train_model(opt, data, reporter);
    if (result.signal) return 128 + result.signal;
    return data.report.failed + data.report.unusable > 0 ? 1 : 0;
  });
}
