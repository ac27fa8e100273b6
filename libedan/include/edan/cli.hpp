#pragma once
// Option parsing, record streaming, diagnostics and exit statuses, once for
// every program. A program's main() declares its options on a Tool, calls
// parse(), then hands its per-record work to the record loop (map_batches).
//
//   edan::cli::Tool tool{"edan-shout", "Upper-case each record's label."};
//   tool.add_batch(64);
//   if (auto rc = tool.parse(argc, argv)) return *rc;
//   return tool.run([&] {
//     return tool.map_batches([](std::vector<edan::Record*>& batch) {
//       for (auto* r : batch) (*r)["label"] = shout(*edan::get_string(*r, "label"));
//     });
//   });
#include <any>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "edan/record.hpp"

namespace edan::cli {

class Tool {
 public:
  // name: program name (diagnostic prefix); summary: one line for --help.
  // positional_usage: shown after [OPTION]... in the usage line.
  Tool(std::string name, std::string summary, std::string positional_usage = "[FILE]...");
  ~Tool();

  // --- declaring options (each declared once; --help is built from these) --
  // The target's current value is the default shown in --help, unless the
  // help text already mentions "default".
  void add(std::initializer_list<const char*> names, const char* metavar, const char* help,
           std::string* target);
  void add(std::initializer_list<const char*> names, const char* metavar, const char* help,
           int* target);
  void add(std::initializer_list<const char*> names, const char* metavar, const char* help,
           std::int64_t* target);
  void add(std::initializer_list<const char*> names, const char* metavar, const char* help,
           double* target);
  // Comma-separated integers, e.g. --widths 16,32,64,128.
  void add(std::initializer_list<const char*> names, const char* metavar, const char* help,
           std::vector<std::int64_t>* target);
  // A flag without a value.
  void add_flag(std::initializer_list<const char*> names, const char* help, bool* target);
  // Positional arguments (default: input files, "-" or none = stdin).
  void positional(const char* metavar, std::vector<std::string>* target, std::size_t min = 0,
                  std::size_t max = SIZE_MAX);
  // Extra text for --help, after the options (e.g. examples).
  void epilog(std::string text);

  // Common options, same spelling everywhere.
  void add_output();  // -o/--output FILE: records to FILE (atomic) instead of stdout
  // --threads N. What 0 (the default) means: the cores idle when the run
  // starts (for programs whose results do not depend on the thread count),
  // or all cores this process may use (edan-train, whose results do).
  enum class ThreadDefault { idle_cores, all_cores };
  void add_threads(ThreadDefault by = ThreadDefault::idle_cores);
  void add_device();                  // --device cpu|cuda
  void add_seed();                    // --seed N
  void add_batch(int default_batch);  // --batch N
  void add_shard();                   // --shard K/N
  // --resume: with -o FILE, the output grows in FILE.partial (its progress in
  // FILE.partial.pos) and is kept when the run is interrupted; the same
  // command run again keeps the records of the inputs already done and goes
  // on from the next input. For programs whose output follows the input in
  // order (the record loop, or a generator that calls inputs_done).
  void add_resume();

  // Parses argv. Returns an exit status when the program should stop now
  // (--help, --version: 0; usage error: 2, after one line on stderr).
  std::optional<int> parse(int argc, char** argv);

  // --- after parse --------------------------------------------------------
  const std::string& name() const { return name_; }
  bool quiet() const { return quiet_; }
  int threads() const;  // resolved: 0 -> the cores, as add_threads says
  const std::string& device() const { return device_; }
  std::uint64_t seed() const { return static_cast<std::uint64_t>(seed_); }
  int batch() const { return batch_; }
  bool resuming() const { return resume_; }  // --resume was given
  // Were input arguments given (even "-")?
  bool has_arguments() const { return !default_inputs_.empty(); }
  // Input arguments; stdin ("-") when none were given. Each is read as
  //  - a folder: one record {"image": path} per image file under it
  //    (recursively, byte order; images are found by content, see
  //    has_image_signature; other files are named in one warning);
  //  - an image file (by content): one record {"image": path};
  //  - anything else: JSON Lines records, where a line that is not JSON is
  //    an image path.
  std::vector<std::string> inputs() const;

  // Runs body, mapping exceptions to exit statuses: UsageError -> 2,
  // FatalError and anything else -> 3, BrokenPipe -> 0 (quietly). Commits
  // the --output file only when body returned normally, then, when records
  // were written with an error, says how many and why in one line on stderr
  // (unless -q).
  int run(const std::function<int()>& body);

  // --- record streaming (call inside run) -----------------------------------
  // The record loop of every program that maps records (edan-crop,
  // edan-predict, edan-gradcam): ordered, batched and pipelined. A reader
  // thread reads the next batch of `batch` records (0: batch()) and runs
  // `prepare` on its live records (those without an "error"; e.g. decoding
  // images) while `process` runs on the current batch here, given what
  // prepare returned for it; at most one batch waits between them. process
  // returns, for each live record of its batch, the records written in its
  // place (one per face of a photo, say); an empty list, or no lists at
  // all, writes the record itself, so no record is lost. Records that
  // arrive with an "error" pass through untouched. An empty prepare is no
  // step at all. An exception from either step becomes the error of every
  // live record of the batch (guard_records, edan/record.hpp); FatalError
  // and a broken pipe end the run (the reader stops and is joined first).
  // Output order = input order, flushed and counted as done (inputs_done)
  // after each batch. prepare must not use
  // state that process uses without locking. Returns 0, or 1 when any
  // record written carries an error.
  using Replacements = std::vector<std::vector<Record>>;
  int flat_map_batches(const std::function<std::any(std::vector<Record*>&)>& prepare,
                       const std::function<Replacements(std::vector<Record*>&, std::any&)>& process,
                       std::size_t batch = 0);
  // The same loop, one record in and one out: process annotates each live
  // record in place, setting "error" on those it cannot do.
  int map_batches(const std::function<std::any(std::vector<Record*>&)>& prepare,
                  const std::function<void(std::vector<Record*>&, std::any&)>& process);
  // The same loop with nothing to prepare: fn gets each batch's live records.
  int map_batches(const std::function<void(std::vector<Record*>&)>& fn);
  // For generators (edan-index): fn writes records through emit().
  // Returns 0, or 1 when any emitted record carries an error.
  int generate(const std::function<void()>& fn);
  void emit(const Record& r);
  // Seconds spent so far serialising and writing records (for timings).
  double write_seconds() const;
  // Writes out the records emitted so far (for a live source: its reader
  // sees each record at once, not when a pipe's buffer fills).
  void flush();

  // Every input record, in order (for consumers such as edan-eval); returns
  // when the input ends. Records with errors are delivered too.
  void for_each_input(const std::function<void(Record&)>& fn);

  // Lines on stderr, prefixed "name: ", each first clearing a progress line
  // on show. warn() and note() (news, not trouble: what a long run is
  // doing) are silenced by -q; error() is not.
  void warn(const std::string& msg) const;
  void note(const std::string& msg) const;
  void error(const std::string& msg) const;
  // Progress on stderr, one line rewritten in place at most 4 times a
  // second, only when stderr is a terminal and not -q.
  void progress(const std::string& status) const;

  // The stream results go to (stdout or the --output temporary file).
  std::FILE* out();
  // Every output record of the first n inputs (counted as for_each_input
  // delivers them, in this run) is written and flushed: with --resume, a
  // run interrupted from now on goes on after them. The record loop calls
  // it after each batch. Flushes the output.
  void inputs_done(std::size_t n);

 private:
  struct Option;
  struct Impl;
  std::string usage_line() const;
  std::string help_text() const;
  // For an unknown option: "; did you mean --a or --b?" naming the declared
  // options it is a prefix of, or "" (options are never guessed).
  std::string suggestion(const std::string& given) const;
  bool shard_keeps(std::size_t index) const;
  int default_threads() const;  // what --threads 0 means (see add_threads)
  // --resume: opens FILE.partial, keeping the output of the inputs an earlier
  // run finished (its records counted) and skipping those inputs.
  void open_partial();
  // Writes FILE.partial.pos: the inputs done and the length of their output.
  void save_position();
  // After a fatal error: saves the position and says how to go on.
  void keep_partial();
  void write(const Record& r);
  void count(const Record& r);
  // "3 of 420 records written with an error (2 no face found, 1 ...)", the
  // line run() prints on stderr at the end (unless -q); "" when none.
  std::string failure_summary() const;

  std::string name_, summary_, positional_usage_, epilog_;
  std::vector<std::unique_ptr<Option>> options_;
  std::vector<std::string>* positional_ = nullptr;
  std::vector<std::string> default_inputs_;
  std::size_t pos_min_ = 0, pos_max_ = SIZE_MAX;
  std::string output_, device_ = "cpu", shard_;
  int threads_ = 0, batch_ = 32;
  ThreadDefault threads_by_ = ThreadDefault::idle_cores;
  mutable int resolved_threads_ = 0;  // what --threads 0 came to (measured once)
  std::int64_t seed_ = 1;
  bool quiet_ = false, resume_ = false;
  std::size_t shard_k_ = 0, shard_n_ = 1;
  std::size_t failed_ = 0, written_ = 0;
  std::unique_ptr<Impl> impl_;
};

// How many cores other processes keep busy now (measured over 50 ms from
// /proc/stat; niced processes do not count, since they yield). 0 when it
// cannot be read.
int busy_cores();

}  // namespace edan::cli
