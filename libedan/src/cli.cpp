#include "edan/cli.hpp"

#include <malloc.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <boost/program_options.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "edan/error.hpp"
#include "edan/fs.hpp"
#include "edan/version.hpp"

namespace edan::cli {
namespace po = boost::program_options;

struct Tool::Option {
  std::vector<std::string> names;  // as declared: "-o", "--output"
  std::string metavar, help, default_text;
  bool flag = false;
  std::function<void(const std::string&)> set;
  bool* flag_target = nullptr;

  std::string long_name() const {
    for (const auto& n : names)
      if (n.rfind("--", 0) == 0) return n.substr(2);
    return names.front().substr(1);
  }
  std::string po_name() const {
    std::string s = long_name();
    for (const auto& n : names)
      if (n.size() == 2 && n[0] == '-' && n[1] != '-') s += "," + n.substr(1);
    return s;
  }
};

struct Tool::Impl {
  std::FILE* out = stdout;
  std::optional<TempFile> tmp;   // --output's temporary file, renamed on success
  std::string partial;           // with --resume: the output so far, kept when interrupted
  std::optional<FileLock> lock;  // on --output, for the whole run
  boost::json::array command;    // the arguments, to tell that a resumed run is the same
  std::size_t skip = 0;          // with --resume: inputs done by the earlier runs
  std::size_t done = 0;          // inputs done in all, as last saved or to be saved
  std::uint64_t done_bytes = 0;  // the length of their output
  double last_saved = 0;
  std::unique_ptr<RecordWriter> writer;
  mutable double last_progress = 0;
  mutable bool progress_shown = false;
  std::map<std::string, std::size_t> reasons;  // of the records written with an error
  double write_seconds = 0;                    // in write() and its flushes
};

namespace {
template <typename T>
std::string to_text(const T& v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

template <typename T>
T parse_number(const std::string& opt, const std::string& s) {
  std::istringstream in(s);
  T v{};
  in >> v;
  if (in.fail() || !in.eof()) throw UsageError("invalid value '" + s + "' for --" + opt);
  return v;
}

double now_seconds() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}
}  // namespace

Tool::Tool(std::string name, std::string summary, std::string positional_usage)
    : name_(std::move(name)),
      summary_(std::move(summary)),
      positional_usage_(std::move(positional_usage)),
      impl_(std::make_unique<Impl>()) {
  // A closed pipe shows up as EPIPE on write, which ends the run quietly.
  std::signal(SIGPIPE, SIG_IGN);
  // Every batch allocates and frees tensors of a few MB. glibc's defaults
  // (a threshold that moves, and trimming the heap top past 128 KB) hand that
  // memory back to the kernel after each batch and fault it in again on the
  // next: measured on 1,000 48-px crops at one thread, 453k minor page faults
  // and 3.0 s of system time in 8.75 s, against 42k and 0.37 s in 3.62 s with
  // these two settings. Blocks below 32 MiB come from the heap, which is kept.
  // Larger ones (glibc's highest threshold is 32 MiB) would still be mapped
  // and unmapped on every batch: the dan preset's first activation at batch
  // 32 is 103 MB, and 128 faces at batch 32 took 5.53 s with 1.70 s of system
  // time and 999k page faults, against 4.80 s at batch 8. So no block is
  // mapped on its own (the main heap grows instead; a thread's arena still
  // maps what does not fit its heaps): 4.64 s, 0.30 s, 202k.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // Likewise a file size limit (ulimit -f, a full quota): the write fails
  // with EFBIG and the run ends with a clear error and exit 3, instead of
  // the kernel's SIGXFSZ killing the process half-way through a file.
  std::signal(SIGXFSZ, SIG_IGN);
  // Ctrl-C or a kill removes the temporary files of unfinished outputs.
  install_signal_cleanup();
  positional_ = &default_inputs_;
  add_flag({"-q", "--quiet"}, "no warnings or progress on stderr", &quiet_);
}

Tool::~Tool() {
  if (impl_->out != stdout) std::fclose(impl_->out);
}

#define EDAN_ADD_OPTION(Type)                                                                     \
  void Tool::add(std::initializer_list<const char*> names, const char* metavar, const char* help, \
                 Type* target) {                                                                  \
    auto o = std::make_unique<Option>();                                                          \
    o->names.assign(names.begin(), names.end());                                                  \
    o->metavar = metavar;                                                                         \
    o->help = help;                                                                               \
    o->default_text = to_text(*target);                                                           \
    std::string opt = o->long_name();                                                             \
    o->set = [target, opt](const std::string& s) { *target = parse_number<Type>(opt, s); };       \
    options_.push_back(std::move(o));                                                             \
  }
EDAN_ADD_OPTION(int)
EDAN_ADD_OPTION(std::int64_t)
EDAN_ADD_OPTION(double)
#undef EDAN_ADD_OPTION

void Tool::add(std::initializer_list<const char*> names, const char* metavar, const char* help,
               std::string* target) {
  auto o = std::make_unique<Option>();
  o->names.assign(names.begin(), names.end());
  o->metavar = metavar;
  o->help = help;
  o->default_text = *target;
  o->set = [target](const std::string& s) { *target = s; };
  options_.push_back(std::move(o));
}

void Tool::add(std::initializer_list<const char*> names, const char* metavar, const char* help,
               std::vector<std::int64_t>* target) {
  auto o = std::make_unique<Option>();
  o->names.assign(names.begin(), names.end());
  o->metavar = metavar;
  o->help = help;
  for (std::size_t i = 0; i < target->size(); ++i)
    o->default_text += (i ? "," : "") + std::to_string((*target)[i]);
  std::string opt = o->long_name();
  o->set = [target, opt](const std::string& s) {
    target->clear();
    std::istringstream in(s);
    std::string item;
    while (std::getline(in, item, ',')) target->push_back(parse_number<std::int64_t>(opt, item));
    if (target->empty()) throw UsageError("--" + opt + " needs a comma-separated list");
  };
  options_.push_back(std::move(o));
}

void Tool::add_flag(std::initializer_list<const char*> names, const char* help, bool* target) {
  auto o = std::make_unique<Option>();
  o->names.assign(names.begin(), names.end());
  o->help = help;
  o->flag = true;
  o->flag_target = target;
  options_.push_back(std::move(o));
}

void Tool::positional(const char* metavar, std::vector<std::string>* target, std::size_t min,
                      std::size_t max) {
  positional_ = target;
  pos_min_ = min;
  pos_max_ = max;
  if (positional_usage_ == "[FILE]...") positional_usage_ = metavar;
}

void Tool::epilog(std::string text) { epilog_ = std::move(text); }

void Tool::add_output() {
  add({"-o", "--output"}, "FILE", "write records to FILE instead of stdout (written atomically)",
      &output_);
}
void Tool::add_threads(ThreadDefault by) {
  threads_by_ = by;
  add({"--threads"}, "N",
      by == ThreadDefault::idle_cores
          ? "worker threads; 0 = the cores that are idle when the run starts (default: 0)"
          : "worker threads; 0 = all cores (default: 0)",
      &threads_);
}
void Tool::add_device() { add({"--device"}, "DEV", "compute device: cpu or cuda", &device_); }
void Tool::add_seed() { add({"--seed"}, "N", "random seed", &seed_); }
void Tool::add_batch(int default_batch) {
  batch_ = default_batch;
  add({"--batch"}, "N", "records per batch", &batch_);
}
void Tool::add_resume() {
  add_flag({"--resume"},
           "with -o FILE: keep the output of an interrupted run (FILE.partial) and, run "
           "again, go on from the next input",
           &resume_);
}
void Tool::add_shard() {
  add({"--shard"}, "K/N",
      "process only the K-th of N interleaved slices of the input (1-based; "
      "records outside the slice are not written)",
      &shard_);
}

namespace {
// The cores this process may run on (a container, taskset or batch
// scheduler may allow fewer than the machine has).
int allowed_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

// The machine's busy and total CPU time so far (/proc/stat, in ticks). Time
// of niced processes does not count as busy: they yield to this one.
bool cpu_ticks(double& busy, double& total) {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user, nice, system, idle, iowait, irq, softirq, steal = 0;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq) || cpu != "cpu")
    return false;
  in >> steal;
  busy = user + system + irq + softirq + steal;
  total = busy + nice + idle + iowait;
  return true;
}
}  // namespace

int Tool::threads() const {
  if (threads_ > 0) return threads_;
  if (resolved_threads_ == 0) resolved_threads_ = default_threads();
  return resolved_threads_;
}

int busy_cores() {
  // Over 50 ms, during which this process sleeps.
  double busy0, total0, busy1, total1;
  if (!cpu_ticks(busy0, total0)) return 0;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!cpu_ticks(busy1, total1) || total1 <= total0) return 0;
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  const double busy =
      (busy1 - busy0) / (total1 - total0) * static_cast<double>(online > 0 ? online : 1);
  return static_cast<int>(std::lround(busy));
}

int Tool::default_threads() const {
  const int allowed = allowed_cores();
  // edan-train: its results depend on the thread count, which must not follow the load.
  if (threads_by_ == ThreadDefault::all_cores || allowed == 1) return allowed;
  // OpenMP threads that share a core with other work wait for each other at
  // every parallel region, so a run on more threads than there are idle
  // cores is slower than one on fewer (bench/threads-under-load.sh).
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  const int idle = static_cast<int>(online > 0 ? online : allowed) - busy_cores();
  return std::clamp(idle, 1, allowed);
}

std::vector<std::string> Tool::inputs() const {
  if (default_inputs_.empty()) return {"-"};
  return default_inputs_;
}

std::string Tool::usage_line() const {
  return "Usage: " + name_ + " [OPTION]... " + positional_usage_;
}

std::string Tool::help_text() const {
  std::ostringstream s;
  s << usage_line() << "\n" << summary_ << "\n\nOptions:\n";
  auto row = [&](const std::string& left, const std::string& right) {
    s << "  " << left;
    if (left.size() < 24)
      s << std::string(24 - left.size(), ' ');
    else
      s << "\n" << std::string(26, ' ');
    s << right << "\n";
  };
  for (const auto& o : options_) {
    std::string left;
    for (std::size_t i = 0; i < o->names.size(); ++i) left += (i ? ", " : "") + o->names[i];
    if (!o->flag) left += " " + o->metavar;
    std::string right = o->help;
    if (!o->flag && !o->default_text.empty() && right.find("default") == std::string::npos)
      right += " (default: " + o->default_text + ")";
    row(left, right);
  }
  row("-h, --help", "show this help and exit");
  row("-V, --version", "show the version and exit");
  if (!epilog_.empty()) s << "\n" << epilog_ << "\n";
  s << "\nExit status: 0 all records fine, 1 some records failed, 2 usage error,\n"
       "3 fatal error (model, I/O). See man "
    << name_ << ".\n";
  return s.str();
}

std::string Tool::suggestion(const std::string& given) const {
  // "--out-dir" -> the declared long options it begins, e.g. --output, --out-dir.
  std::string stem = given.substr(0, given.find('='));
  if (stem.rfind("--", 0) != 0 || stem.size() < 3) return "";
  std::vector<std::string> matches;
  for (const auto& o : options_)
    for (const auto& n : o->names)
      if (n.size() > stem.size() && n.rfind(stem, 0) == 0) matches.push_back(n);
  if (matches.empty()) return "";
  std::string text = "; did you mean ";
  for (std::size_t i = 0; i < matches.size(); ++i)
    text += (i == 0 ? "" : i + 1 == matches.size() ? " or " : ", ") + matches[i];
  return text + "?";
}

std::optional<int> Tool::parse(int argc, char** argv) {
  po::options_description desc;
  for (const auto& o : options_) {
    if (o->flag)
      desc.add_options()(o->po_name().c_str(), po::bool_switch());
    else
      desc.add_options()(o->po_name().c_str(), po::value<std::string>());
  }
  desc.add_options()("help,h", po::bool_switch())("version,V", po::bool_switch())(
      "positional-args", po::value<std::vector<std::string>>());
  po::positional_options_description pos;
  pos.add("positional-args", -1);
  // The command as --resume compares it: without the options that do not
  // change the output (-q, --threads), so a continued run may differ in them.
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "-q" || a == "--quiet" || a.rfind("--threads=", 0) == 0) continue;
    if (a == "--threads") {
      ++i;
      continue;
    }
    impl_->command.emplace_back(a);
  }
  try {
    po::variables_map vm;
    po::store(
        po::command_line_parser(argc, argv)
            .options(desc)
            .positional(pos)
            // No prefix guessing: --out-dir must not silently mean --output.
            .style(po::command_line_style::unix_style ^ po::command_line_style::allow_guessing)
            .run(),
        vm);
    if (vm["help"].as<bool>()) {
      std::fputs(help_text().c_str(), stdout);
      return kExitOk;
    }
    if (vm["version"].as<bool>()) {
      std::printf("%s (edan) %s\n", name_.c_str(), kVersion);
      return kExitOk;
    }
    for (const auto& o : options_) {
      const auto& v = vm[o->long_name()];
      if (v.empty()) continue;
      if (o->flag) {
        if (v.as<bool>()) *o->flag_target = true;
      } else {
        o->set(v.as<std::string>());
      }
    }
    std::vector<std::string> args;
    if (vm.count("positional-args")) args = vm["positional-args"].as<std::vector<std::string>>();
    if (args.size() < pos_min_) throw UsageError("missing " + positional_usage_);
    if (args.size() > pos_max_) throw UsageError("too many arguments: '" + args[pos_max_] + "'");
    *positional_ = args;
    if (!shard_.empty()) {
      auto slash = shard_.find('/');
      if (slash == std::string::npos) throw UsageError("--shard must be K/N, e.g. 2/8");
      shard_k_ = parse_number<std::size_t>("shard", shard_.substr(0, slash));
      shard_n_ = parse_number<std::size_t>("shard", shard_.substr(slash + 1));
      if (shard_n_ == 0 || shard_k_ == 0 || shard_k_ > shard_n_)
        throw UsageError("--shard " + shard_ + ": need 1 <= K <= N");
      shard_k_ -= 1;
    }
    if (resume_ && (output_.empty() || output_ == "-"))
      throw UsageError("--resume needs -o FILE (the output of a run that can be continued)");
    if (batch_ < 1) throw UsageError("--batch must be at least 1");
    if (threads_ < 0) throw UsageError("--threads must be 0 (all cores) or more");
    if (device_ != "cpu" && device_.rfind("cuda", 0) != 0)
      throw UsageError("--device must be cpu or cuda (got '" + device_ + "')");
  } catch (const po::unknown_option& e) {
    std::fprintf(stderr, "%s: %s%s\nTry '%s --help' for more information.\n", name_.c_str(),
                 e.what(), suggestion(e.get_option_name()).c_str(), name_.c_str());
    return kExitUsage;
  } catch (const po::error& e) {
    std::fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", name_.c_str(), e.what(),
                 name_.c_str());
    return kExitUsage;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", name_.c_str(), e.what(),
                 name_.c_str());
    return kExitUsage;
  }
  return std::nullopt;
}

namespace {
std::string pos_path(const std::string& partial) { return partial + ".pos"; }
}  // namespace

std::FILE* Tool::out() {
  if (!impl_->writer) {
    if (!output_.empty() && output_ != "-") {
      // Found now rather than at the final rename, after all the work.
      struct stat st {};
      const bool exists = ::stat(output_.c_str(), &st) == 0;
      if (exists && S_ISDIR(st.st_mode)) throw FatalError(output_ + ": is a directory");
      // /dev/null, /dev/stdout, a FIFO: written as it is, never replaced.
      const bool in_place = exists && !S_ISREG(st.st_mode);
      if (in_place && resume_) throw UsageError("--resume needs -o FILE to be a regular file");
      impl_->lock.emplace(output_);  // not for /dev/null or a FIFO (FileLock)
      if (resume_) {
        open_partial();
      } else {
        if (!in_place) impl_->tmp.emplace(temp_path_for(output_));
        impl_->out = std::fopen(in_place ? output_.c_str() : impl_->tmp->path().c_str(), "wb");
        if (!impl_->out) {
          impl_->out = stdout;
          throw FatalError(output_ + ": cannot write: " + std::strerror(errno));
        }
      }
    }
    impl_->writer = std::make_unique<RecordWriter>(
        impl_->out, impl_->out == stdout ? std::string("stdout") : output_);
  }
  return impl_->out;
}

void Tool::open_partial() {
  const std::string partial = output_ + ".partial";
  // What an earlier run saved: the inputs it had done and the length of
  // their output. Without it, nothing of FILE.partial is known complete.
  std::size_t bytes = 0;
  std::ifstream pos_in(pos_path(partial));
  std::string pos_text((std::istreambuf_iterator<char>(pos_in)), std::istreambuf_iterator<char>());
  struct stat st {};
  const bool have_partial = ::stat(partial.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  if (!pos_text.empty() && have_partial) {
    Record pos = parse_line(pos_text, 1, pos_path(partial));
    auto inputs = get_number(pos, "inputs"), length = get_number(pos, "bytes");
    const auto* command = pos.if_contains("command");
    if (has_error(pos) || !inputs || !length || *inputs < 0 || *length < 0 ||
        static_cast<double>(st.st_size) < *length)
      throw FatalError(pos_path(partial) + ": damaged; remove " + partial + " and " +
                       pos_path(partial) + " to start over");
    if (!command || *command != boost::json::value(impl_->command))
      throw FatalError(partial + " was written by another command (" +
                       (command ? to_text(*command) : std::string("unknown")) +
                       "): run that command again with --resume, or remove " + partial +
                       " to start over");
    impl_->skip = impl_->done = static_cast<std::size_t>(*inputs);
    bytes = static_cast<std::size_t>(*length);
  }
  // The records kept count as written (their errors in the exit status).
  if (bytes > 0) {
    std::ifstream in(partial, std::ios::binary);
    std::string line;
    std::size_t read = 0, line_no = 0;
    while (read < bytes && std::getline(in, line)) {
      read += line.size() + 1;
      count(parse_line(line, ++line_no, partial));
    }
  }
  if (::truncate(partial.c_str(), static_cast<off_t>(bytes)) != 0 && have_partial)
    throw FatalError(partial + ": cannot truncate: " + std::strerror(errno));
  impl_->out = std::fopen(partial.c_str(), bytes > 0 ? "ab" : "wb");
  if (!impl_->out) {
    impl_->out = stdout;
    throw FatalError(partial + ": cannot write: " + std::strerror(errno));
  }
  std::fseek(impl_->out, 0, SEEK_END);
  impl_->done_bytes = bytes;
  impl_->partial = partial;
  if (impl_->skip > 0)
    warn("resuming " + output_ + ": " + std::to_string(impl_->skip) + " input record" +
         (impl_->skip == 1 ? "" : "s") + " already done, " + std::to_string(written_) +
         " output record" + (written_ == 1 ? "" : "s") + " kept");
}

void Tool::inputs_done(std::size_t n) {
  if (!impl_->writer) return;
  const double start = now_seconds();
  impl_->writer->flush();
  impl_->write_seconds += now_seconds() - start;
  if (impl_->partial.empty()) return;
  impl_->done = impl_->skip + n;
  impl_->done_bytes = static_cast<std::uint64_t>(ftello(impl_->out));
  // At most once a second: a run interrupted redoes at most that much.
  if (now_seconds() - impl_->last_saved >= 1.0) save_position();
}

void Tool::save_position() {
  if (impl_->partial.empty()) return;
  Record pos;
  pos["inputs"] = impl_->done;
  pos["bytes"] = impl_->done_bytes;
  pos["command"] = impl_->command;
  write_file_atomic(pos_path(impl_->partial), to_line(pos) + "\n");
  impl_->last_saved = now_seconds();
}

int Tool::run(const std::function<int()>& body) {
  int rc;
  struct EndProgress {
    const Impl& impl;
    ~EndProgress() {
      if (impl.progress_shown) std::fputs("\r\033[K", stderr);
    }
  } end_progress{*impl_};
  try {
    rc = body();
    out();
    impl_->writer->flush();
    if (failed_) warn(failure_summary());
    if (impl_->out != stdout) {
      std::FILE* f = impl_->out;
      impl_->out = stdout;
      if (std::fclose(f) != 0) throw FatalError(output_ + ": write error: " + std::strerror(errno));
      if (impl_->tmp) {
        rename_into_place(impl_->tmp->path(), output_);
        impl_->tmp->release();
      } else if (!impl_->partial.empty()) {
        rename_into_place(impl_->partial, output_);
        std::remove(pos_path(impl_->partial).c_str());
      }
    }
    return rc;
  } catch (const BrokenPipe&) {
    return kExitOk;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", name_.c_str(), e.what(),
                 name_.c_str());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name_.c_str(), e.what());
    keep_partial();
    return kExitFatal;
  }
}

void Tool::keep_partial() {
  if (impl_->partial.empty()) return;
  try {
    save_position();
    error("the output so far is kept in " + impl_->partial +
          ": run the same command again to go on from input record " +
          std::to_string(impl_->done + 1));
  } catch (const std::exception& e) {
    error(e.what());
  }
}

bool Tool::shard_keeps(std::size_t index) const { return index % shard_n_ == shard_k_; }

void Tool::count(const Record& r) {
  ++written_;
  if (!has_error(r)) return;
  ++failed_;
  // The reason without the file it names: the text after the last ": ".
  std::string reason = "error";
  if (const auto* e = r.if_contains("error"); e && e->is_string()) {
    std::string_view text = e->as_string();
    auto colon = text.rfind(": ");
    reason = std::string(colon == std::string_view::npos ? text : text.substr(colon + 2));
  }
  auto& reasons = impl_->reasons;
  if (reasons.size() < 64 || reasons.count(reason)) ++reasons[reason];
}

std::string Tool::failure_summary() const {
  if (!failed_) return "";
  std::vector<std::pair<std::size_t, std::string>> top;
  for (const auto& [reason, n] : impl_->reasons) top.emplace_back(n, reason);
  std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::string s = std::to_string(failed_) + " of " + std::to_string(written_) + " record" +
                  (written_ == 1 ? "" : "s") + " written with an error (";
  for (std::size_t i = 0; i < top.size() && i < 3; ++i)
    s += (i ? ", " : "") + std::to_string(top[i].first) + " " + top[i].second;
  if (top.size() > 3) s += ", ...";
  return s + ")";
}

void Tool::write(const Record& r) {
  out();
  const double start = now_seconds();
  impl_->writer->write(r);
  impl_->write_seconds += now_seconds() - start;
  count(r);
}

double Tool::write_seconds() const { return impl_->write_seconds; }

void Tool::emit(const Record& r) { write(r); }

void Tool::flush() {
  out();
  impl_->writer->flush();
}

void Tool::for_each_input(const std::function<void(Record&)>& fn) {
  const bool to_file = !output_.empty() && output_ != "-";
  for (const auto& path : inputs())
    if (to_file && path != "-" && same_file(path, output_))
      throw UsageError(path + ": is also the output (-o " + output_ +
                       "), which would replace it: write the output elsewhere");
  // With --resume, what an earlier run did is known before the first input.
  if (resume_) out();
  std::size_t index = 0, delivered = 0;
  auto deliver = [&](Record& r) {
    if (!shard_keeps(index++)) return;
    if (delivered++ < impl_->skip) return;  // done by an earlier run (--resume)
    fn(r);
  };
  auto image_record = [&](const std::string& image) {
    Record r;
    r["image"] = image;
    deliver(r);
  };
  for (const auto& path : inputs()) {
    struct stat st {};
    const bool named = path != "-" && ::stat(path.c_str(), &st) == 0;
    if (named && S_ISDIR(st.st_mode)) {
      // A folder: its images, found by content, recursively, in byte order.
      std::vector<std::string> others;
      std::size_t images = 0;
      for (const auto& rel : list_files(path, [](std::string_view) { return true; })) {
        const std::string file = join_path(path, rel);
        if (has_image_signature(file)) {
          ++images;
          image_record(file);
        } else {
          others.push_back(rel);
        }
      }
      if (images == 0 && others.empty()) warn(path + ": no image in this folder");
      if (!others.empty())
        warn(path + ": " + std::to_string(others.size()) + " file" +
             (others.size() == 1 ? " is" : "s are") + " not an image and not read (" +
             others.front() + (others.size() > 1 ? ", ..." : "") + ")");
      continue;
    }
    if (named && S_ISREG(st.st_mode) && has_image_signature(path)) {
      image_record(path);
      continue;
    }
    std::FILE* f = stdin;
    if (path != "-") {
      f = std::fopen(path.c_str(), "rb");
      if (!f) throw FatalError(path + ": cannot open: " + std::strerror(errno));
    }
    RecordReader reader(f, path == "-" ? "<stdin>" : path);
    Record r;
    try {
      while (reader.next(r)) deliver(r);
    } catch (...) {
      if (f != stdin) std::fclose(f);
      throw;
    }
    if (f != stdin) std::fclose(f);
  }
}

int Tool::map_batches(const std::function<void(std::vector<Record*>&)>& fn) {
  return map_batches({}, [&](std::vector<Record*>& live, std::any&) { fn(live); });
}

int Tool::map_batches(const std::function<std::any(std::vector<Record*>&)>& prepare,
                      const std::function<void(std::vector<Record*>&, std::any&)>& process) {
  return flat_map_batches(prepare, [&](std::vector<Record*>& live, std::any& prepared) {
    process(live, prepared);
    return Replacements{};
  });
}

int Tool::flat_map_batches(
    const std::function<std::any(std::vector<Record*>&)>& prepare,
    const std::function<Replacements(std::vector<Record*>&, std::any&)>& process,
    std::size_t batch) {
  struct Batch {
    std::vector<Record> records;
    std::vector<Record*> live;  // into records (a moved vector keeps its buffer)
    std::any prepared;
    Replacements replaced;  // per live record: what is written in its place
  };
  // Runs a step on the live records of a batch; a record-level exception
  // marks them all (the step's results are then dropped).
  auto guarded = [](Batch& b, const std::function<void()>& step) {
    if (!b.live.empty() && !guard_records(b.live, step)) b.live.clear();
  };
  const std::size_t batch_size = batch > 0 ? batch : static_cast<std::size_t>(batch_);
  struct Stop {};  // the reader was told to stop
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Batch> ready;
  bool reader_done = false, stop = false;
  std::exception_ptr reader_error;
  std::thread reader([&] {
    try {
      std::vector<Record> records;
      auto push = [&] {
        Batch b;
        b.records = std::move(records);
        records.clear();
        for (auto& r : b.records)
          if (!has_error(r)) b.live.push_back(&r);
        if (prepare) guarded(b, [&] { b.prepared = prepare(b.live); });
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return ready.empty() || stop; });
        if (stop) throw Stop{};
        ready.push_back(std::move(b));
        changed.notify_all();
      };
      for_each_input([&](Record& r) {
        records.push_back(std::move(r));
        if (records.size() >= batch_size) push();
      });
      if (!records.empty()) push();
    } catch (const Stop&) {
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      reader_error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mutex);
    reader_done = true;
    changed.notify_all();
  });
  auto join_reader = [&] {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    changed.notify_all();
    reader.join();
  };
  std::size_t n = 0;
  try {
    for (;;) {
      Batch b;
      {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return !ready.empty() || reader_done; });
        if (ready.empty()) break;
        b = std::move(ready.front());
        ready.pop_front();
        changed.notify_all();
      }
      guarded(b, [&] { b.replaced = process(b.live, b.prepared); });
      if (!b.replaced.empty() && b.replaced.size() != b.live.size())
        throw std::logic_error("flat_map_batches: one list of records per live record");
      for (std::size_t i = 0, j = 0; i < b.records.size(); ++i) {
        const bool live = j < b.live.size() && b.live[j] == &b.records[i];
        if (live && !b.replaced.empty() && !b.replaced[j].empty()) {
          for (const auto& o : b.replaced[j]) write(o);
        } else {
          write(b.records[i]);
        }
        if (live) ++j;
      }
      n += b.records.size();
      inputs_done(n);
      progress(std::to_string(n) + " records");
    }
  } catch (...) {
    join_reader();
    throw;
  }
  join_reader();
  if (reader_error) std::rethrow_exception(reader_error);
  return failed_ ? kExitSomeFailed : kExitOk;
}

int Tool::generate(const std::function<void()>& fn) {
  fn();
  return failed_ ? kExitSomeFailed : kExitOk;
}

void Tool::warn(const std::string& msg) const {
  if (!quiet_) error(msg);
}

void Tool::note(const std::string& msg) const { warn(msg); }

void Tool::error(const std::string& msg) const {
  if (impl_->progress_shown) std::fputs("\r\033[K", stderr);
  impl_->progress_shown = false;
  std::fprintf(stderr, "%s: %s\n", name_.c_str(), msg.c_str());
}

void Tool::progress(const std::string& status) const {
  if (quiet_ || !isatty(STDERR_FILENO)) return;
  double t = now_seconds();
  if (t - impl_->last_progress < 0.25) return;
  impl_->last_progress = t;
  impl_->progress_shown = true;
  std::fprintf(stderr, "\r%s: %s\033[K", name_.c_str(), status.c_str());
  std::fflush(stderr);
}

}  // namespace edan::cli
