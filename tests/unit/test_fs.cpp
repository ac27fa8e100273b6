#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "edan/error.hpp"
#include "edan/fs.hpp"

namespace fs = std::filesystem;

namespace {
// A fresh directory under the system temporary directory.
fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("edan-test-fs-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
}  // namespace

TEST(Fs_WriteFileAtomic, writesAndReplacesLeavingNoTemporary) {
  fs::path d = fresh_dir("write");
  std::string path = (d / "sub" / "a.txt").string();
  edan::write_file_atomic(path, "one");
  edan::write_file_atomic(path, "two", /*durable=*/true);
  EXPECT_EQ(slurp(path), "two");
  EXPECT_EQ(std::distance(fs::directory_iterator(d / "sub"), fs::directory_iterator{}), 1);
  fs::remove_all(d);
}

TEST(Fs_WriteFileAtomic, aDirectoryInTheWayIsAFatalErrorNamingThePath) {
  fs::path d = fresh_dir("dir");
  fs::create_directories(d / "x");
  std::string path = (d / "x").string();
  try {
    edan::write_file_atomic(path, "data");
    FAIL() << "no error";
  } catch (const edan::FatalError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(d), fs::directory_iterator{}), 1);  // only x
  fs::remove_all(d);
}

TEST(Fs_CheckWritable, acceptsANewFileAndLeavesNothing) {
  fs::path d = fresh_dir("ok");
  EXPECT_NO_THROW(edan::check_writable((d / "new" / "m.edan").string()));
  EXPECT_TRUE(fs::is_directory(d / "new"));
  EXPECT_TRUE(fs::is_empty(d / "new"));
  fs::remove_all(d);
}

TEST(Fs_CheckWritable, refusesADirectory) {
  fs::path d = fresh_dir("isdir");
  try {
    edan::check_writable(d.string());
    FAIL() << "no error";
  } catch (const edan::FatalError& e) {
    EXPECT_EQ(std::string(e.what()), d.string() + ": is a directory");
  }
  fs::remove_all(d);
}
