#pragma once
// Files written so that a reader never sees a half-written one: every output
// (model, checkpoint, crop, map, report) goes to a temporary name in the same
// directory and is renamed into place once complete. Also: the files under a
// folder, and whether a file's content is an image.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edan {

// Writes bytes to path atomically (temporary file in the same directory,
// renamed into place once complete): a killed process or a full disk never
// leaves a partial file under `path`. With durable, the file and its
// directory are also fsync'ed before and after the rename, so that the file
// survives a power loss too (models, checkpoints: hours of work; crops and
// maps can be made again and skip the cost). Creates missing parent
// directories. Throws FatalError naming the path on any failure (the
// temporary file is removed). A path that exists and is not a regular file
// or a directory (/dev/null, a FIFO) is written as it is: a rename would
// replace the device.
void write_file_atomic(const std::string& path, std::string_view bytes, bool durable = false);

// Checks, before long work, that a file can later be written at `path`: it
// is not a directory and a file can be created beside it (its directory
// exists, or is created, and is writable). Leaves no file behind. Throws
// FatalError naming the path otherwise.
void check_writable(const std::string& path);

// The path of a data file shipped with edan (the default model, the
// BlazeFace detector), in the data directory next to the running program:
// bin/../share/edan/RELATIVE, the same in an installed tree, whatever its
// prefix, and in a build tree (CMakeLists.txt copies the files there). The
// file need not exist. Throws FatalError when the running program cannot be
// located.
std::string data_file_path(const std::string& relative);

// Creates a directory and its parents. Throws FatalError naming the path.
void make_dirs(const std::string& path);

// A temporary path beside `path` (same directory, unique to this process
// and call), for writers that need a file name (e.g. torch::save).
std::string temp_path_for(const std::string& path);

// Renames from -> to (same filesystem). Throws FatalError naming both.
void rename_into_place(const std::string& from, const std::string& to);

// A temporary file's name, kept in a process-wide table for as long as this
// object lives, so that SIGINT, SIGTERM or SIGHUP remove the file before the
// process dies (install_signal_cleanup). The destructor removes the file
// unless release() was called (after the rename that completes it).
class TempFile {
 public:
  explicit TempFile(std::string path);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  // The file is no longer temporary (renamed into place, or removed).
  void release();

 private:
  std::string path_;
  std::size_t slot_;  // in the table; none when released or the table was full
};

// Installs handlers for SIGINT, SIGTERM and SIGHUP (unless ignored, as under
// nohup) that remove every live TempFile and then die by the same signal, so
// the exit status still says which. Called once by every program (cli::Tool).
void install_signal_cleanup();

// An exclusive advisory lock (flock) on TARGET.lock, created if missing and
// removed when the lock is dropped, held for the object's life: a second
// process asking for the same lock fails at once. `what` names the locked
// work in the message, e.g. "the model out.edan" (default: the target).
// Throws FatalError naming the holder's pid when another process holds it,
// or naming the target when the lock file cannot be created. The kernel drops
// the lock of a process that dies, so a lock file left by a killed run does
// not block the next one. A target that exists and is not a regular file
// (/dev/null, a FIFO) is not locked: nothing is created beside it.
class FileLock {
 public:
  explicit FileLock(const std::string& target, std::string what = {});
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
  std::optional<TempFile> name_;  // once held: removed on a signal too
};

// True when both paths name the same existing file (after symlinks: the
// same device and inode). False when either does not exist.
bool same_file(const std::string& a, const std::string& b);

// --- reading ---------------------------------------------------------------------

// Paths of the regular files under `dir` (recursively, symlinked folders
// and files followed) for which keep(path) is true, relative to `dir`, sorted
// bytewise, with '/' separators. Throws FatalError naming `dir` when it does
// not exist or is not a directory, naming the unreadable subdirectory, or
// naming a symlinked folder that leads back to a folder above it.
std::vector<std::string> list_files(const std::string& dir,
                                    const std::function<bool(std::string_view)>& keep);

// `dir` joined with `rel` so that the result works from the current
// directory: "data/x.png" for ("data/", "x.png"); `rel` alone for dir ".".
std::string join_path(std::string_view dir, std::string_view rel);

// True when the file at `path` begins with the signature of an image format
// that edan decodes: JPEG, PNG, BMP, TIFF, PNM (P1-P6) or WebP. The content
// decides, not the extension; a file that cannot be read, or is not a
// regular file (a device, a FIFO: never opened for long), is not an image.
bool has_image_signature(const std::string& path);
// The same test on a file's first bytes (12 are enough).
bool image_signature(std::string_view head);

}  // namespace edan
