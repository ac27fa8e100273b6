#include "edan/fs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "edan/error.hpp"

namespace edan {

namespace {
std::string errno_text() { return std::strerror(errno); }
}  // namespace

void make_dirs(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw FatalError(path + ": cannot create directory: " + ec.message());
}

void check_writable(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw FatalError(path + ": is a directory");
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
  std::string tmp = temp_path_for(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw FatalError(path + ": cannot write: " + errno_text());
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string why = errno_text();
      ::close(fd);
      std::remove(tmp.c_str());
      throw FatalError(path + ": write error: " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  if ((durable && ::fsync(fd) != 0) || ::close(fd) != 0) {
    std::string why = errno_text();
    if (durable) ::close(fd);
    std::remove(tmp.c_str());
    throw FatalError(path + ": write error: " + why);
  }
  rename_into_place(tmp, path);
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

}  // namespace edan
