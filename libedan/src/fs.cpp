#include "edan/fs.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "edan/error.hpp"
#include "edan/version.hpp"

namespace edan {
namespace fs = std::filesystem;

namespace {
std::string errno_text() { return std::strerror(errno); }

// Writes all of bytes to fd; on failure closes fd and throws FatalError
// naming `path`.
void write_all(int fd, std::string_view bytes, const std::string& path) {
  for (std::size_t done = 0; done < bytes.size();) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string why = errno_text();
      ::close(fd);
      throw FatalError(path + ": write error: " + why);
    }
    done += static_cast<std::size_t>(n);
  }
}
}  // namespace

std::string data_file_path(const std::string& relative) {
  // One place only: next to the running program, so an installed program
  // never finds a build tree's files, nor another prefix's.
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec)
    throw FatalError("cannot locate the running program (/proc/self/exe) to find " + relative);
  return (exe.parent_path() / kDataDirFromBin / relative).lexically_normal().string();
}

void make_dirs(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw FatalError(path + ": cannot create directory: " + ec.message());
}

void check_writable(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw FatalError(path + ": is a directory");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    // /dev/null, a FIFO: written in place (write_file_atomic), nothing beside it.
    if (::access(path.c_str(), W_OK) != 0)
      throw FatalError(path + ": cannot write: " + errno_text());
    return;
  }
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) make_dirs(parent.string());
  std::string probe = temp_path_for(path);
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw FatalError(path + ": cannot write: " + errno_text());
  ::close(fd);
  std::remove(probe.c_str());
}

std::string temp_path_for(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(counter++);
}

namespace {
// The names of the live temporary files, for the signal handler: it may run
// on any thread at any moment, so a slot is claimed and emptied with one
// atomic exchange (whoever empties it owns the string) and the handler only
// calls unlink(), which is async-signal-safe.
constexpr std::size_t kTempSlots = 256;
constexpr std::size_t kNoSlot = kTempSlots;
std::atomic<char*> g_temp_slots[kTempSlots];

extern "C" void remove_temps_and_die(int sig) {
  for (auto& slot : g_temp_slots)
    if (char* p = slot.exchange(nullptr)) ::unlink(p);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
}  // namespace

TempFile::TempFile(std::string path) : path_(std::move(path)), slot_(kNoSlot) {
  char* copy = ::strdup(path_.c_str());
  if (!copy) return;
  for (std::size_t i = 0; i < kTempSlots; ++i) {
    char* expected = nullptr;
    if (g_temp_slots[i].compare_exchange_strong(expected, copy)) {
      slot_ = i;
      return;
    }
  }
  std::free(copy);  // a full table: this file is left behind by a signal
}

TempFile::~TempFile() {
  if (!path_.empty()) ::unlink(path_.c_str());
  release();
}

void TempFile::release() {
  if (slot_ != kNoSlot) std::free(g_temp_slots[slot_].exchange(nullptr));
  slot_ = kNoSlot;
  path_.clear();
}

void install_signal_cleanup() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    struct sigaction sa {};
    sa.sa_handler = remove_temps_and_die;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, nullptr);
  }
}

FileLock::FileLock(const std::string& target, std::string what) : path_(target + ".lock") {
  if (what.empty()) what = target;
  // /dev/null or a FIFO is not replaced by a run, and nothing is created
  // beside it (in /dev).
  struct stat existing {};
  if (::stat(target.c_str(), &existing) == 0 && !S_ISREG(existing.st_mode)) return;
  // A holder removes the file before it lets go, so the file locked here may
  // have lost its name meanwhile: locked only once it is still the one named.
  for (int attempt = 0; attempt < 16; ++attempt) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw FatalError(target + ": cannot write: " + errno_text() + " (its lock " + path_ + ")");
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      char pid[32] = {0};
      ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
      ::close(fd_);
      fd_ = -1;
      if (err != EWOULDBLOCK) throw FatalError(path_ + ": cannot lock: " + std::strerror(err));
      std::string holder = n > 0 ? std::string(pid, static_cast<std::size_t>(n)) : "";
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      throw FatalError(what + " is in use by another run" +
                       (holder.empty() ? "" : " (pid " + holder + ")") + ", which holds " + path_ +
                       ": wait for it to end, or write elsewhere");
    }
    struct stat held {
    }, named{};
    if (::fstat(fd_, &held) == 0 && ::stat(path_.c_str(), &named) == 0 &&
        held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
      name_.emplace(path_);
      const std::string pid = std::to_string(getpid()) + "\n";
      if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
        // The pid only improves the other run's message.
      }
      return;
    }
    ::close(fd_);
    fd_ = -1;
  }
  throw FatalError(path_ + ": cannot lock: the file keeps being replaced");
}

FileLock::~FileLock() {
  // Removed while still locked (see the constructor), then let go.
  if (name_) name_.reset();
  if (fd_ >= 0) ::close(fd_);
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

void rename_into_place(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    std::string why = errno_text();
    std::remove(from.c_str());
    throw FatalError(to + ": cannot rename into place: " + why);
  }
}

void write_file_atomic(const std::string& path, std::string_view bytes, bool durable) {
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) make_dirs(parent.string());
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
    // /dev/null, a FIFO: written as it is; a rename would replace it.
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw FatalError(path + ": cannot write: " + errno_text());
    write_all(fd, bytes, path);
    ::close(fd);
    return;
  }
  TempFile tmp(temp_path_for(path));
  int fd = ::open(tmp.path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw FatalError(path + ": cannot write: " + errno_text());
  write_all(fd, bytes, path);
  if ((durable && ::fsync(fd) != 0) || ::close(fd) != 0) {
    std::string why = errno_text();
    if (durable) ::close(fd);
    throw FatalError(path + ": write error: " + why);
  }
  rename_into_place(tmp.path(), path);
  tmp.release();
  if (durable) {
    // The rename itself lives in the directory.
    std::string dir = parent.empty() ? "." : parent.string();
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
}

std::vector<std::string> list_files(const std::string& dir,
                                    const std::function<bool(std::string_view)>& keep) {
  {
    std::error_code ec;
    if (!fs::exists(dir, ec)) throw FatalError(dir + ": no such file or directory");
    if (!fs::is_directory(dir, ec)) throw FatalError(dir + ": not a directory");
  }
  std::vector<std::string> out;
  // Symlinked folders are followed (a dataset assembled from links); a link
  // back to a folder above it would never end, and is an error naming it.
  std::vector<std::pair<dev_t, ino_t>> above;
  std::function<void(const fs::path&)> walk = [&](const fs::path& folder) {
    struct stat st {};
    if (::stat(folder.c_str(), &st) != 0)
      throw FatalError(folder.generic_string() + ": cannot read: " + std::strerror(errno));
    const std::pair<dev_t, ino_t> id{st.st_dev, st.st_ino};
    if (std::find(above.begin(), above.end(), id) != above.end())
      throw FatalError(folder.generic_string() +
                       ": a symbolic link to a folder above it (the walk would not end)");
    above.push_back(id);
    std::error_code ec;
    fs::directory_iterator it(folder, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      std::error_code fec;
      if (it->is_directory(fec)) {
        walk(it->path());
      } else if (it->is_regular_file(fec)) {
        std::string rel = it->path().lexically_relative(dir).generic_string();
        if (keep(rel)) out.push_back(std::move(rel));
      }
    }
    if (ec) throw FatalError(folder.generic_string() + ": cannot read: " + ec.message());
    above.pop_back();
  };
  walk(fs::path(dir));
  std::sort(out.begin(), out.end());
  return out;
}

std::string join_path(std::string_view dir, std::string_view rel) {
  if (dir.empty() || dir == ".") return std::string(rel);
  std::string out(dir);
  if (out.back() != '/') out += '/';
  return out + std::string(rel);
}

bool image_signature(std::string_view head) {
  const auto n = head.size();
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(head[i]); };
  auto starts = [&](std::initializer_list<unsigned char> magic, std::size_t at = 0) {
    if (n < at + magic.size()) return false;
    std::size_t i = at;
    for (unsigned char m : magic)
      if (b(i++) != m) return false;
    return true;
  };
  return starts({0xFF, 0xD8, 0xFF}) ||                                        // JPEG
         starts({0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}) ||             // PNG
         starts({'B', 'M'}) ||                                                // BMP
         starts({'I', 'I', 0x2A, 0x00}) || starts({'M', 'M', 0x00, 0x2A}) ||  // TIFF
         (n >= 3 && b(0) == 'P' && b(1) >= '1' && b(1) <= '6' &&              // PNM
          (b(2) == ' ' || b(2) == '\n' || b(2) == '\r' || b(2) == '\t')) ||
         (starts({'R', 'I', 'F', 'F'}) && starts({'W', 'E', 'B', 'P'}, 8));  // WebP
}

bool has_image_signature(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; only a regular
  // file is read.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  char head[12];
  ssize_t n = 0;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) n = ::read(fd, head, sizeof head);
  ::close(fd);
  return n > 0 && image_signature(std::string_view(head, static_cast<std::size_t>(n)));
}

}  // namespace edan
