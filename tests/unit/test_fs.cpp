#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
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
  fs::path d =
      fs::temp_directory_path() / ("edan-test-fs-" + std::to_string(getpid()) + "-" + name);
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

TEST(Fs_HasImageSignature, decidesByContentNotByName) {
  fs::path d = fresh_dir("magic");
  auto put = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(d / name, std::ios::binary) << bytes;
    return (d / name).string();
  };
  EXPECT_TRUE(edan::has_image_signature(put("a.dat", "\xFF\xD8\xFF\xE0rest")));   // JPEG
  EXPECT_TRUE(edan::has_image_signature(put("b", "\x89PNG\r\n\x1A\nrest")));      // PNG
  EXPECT_TRUE(edan::has_image_signature(put("c.txt", "BM....")));                 // BMP
  EXPECT_TRUE(edan::has_image_signature(put("d", std::string("II*\0....", 8))));  // TIFF
  EXPECT_TRUE(edan::has_image_signature(put("e", std::string("MM\0*....", 8))));  // TIFF
  EXPECT_TRUE(edan::has_image_signature(put("f", "P5\n48 48\n255\n")));           // PNM
  EXPECT_TRUE(
      edan::has_image_signature(put("g", std::string("RIFF\x10\0\0\0WEBPVP8 ", 16))));  // WebP
  EXPECT_FALSE(edan::has_image_signature(put("h.jpg", "{\"image\":\"x.png\"}\n")));     // records
  EXPECT_FALSE(edan::has_image_signature(put("i.png", "")));
  EXPECT_FALSE(edan::has_image_signature(put("j", std::string("RIFF\x10\0\0\0WAVEfmt ", 16))));
  EXPECT_FALSE(edan::has_image_signature(put("k", "P7 is not PNM")));
  EXPECT_FALSE(edan::has_image_signature((d / "missing.png").string()));
  fs::remove_all(d);
}

TEST(Fs_ListFiles, recursiveSortedRelative) {
  fs::path d = fresh_dir("list");
  fs::create_directories(d / "b" / "c");
  for (const char* f : {"z.txt", "b/c/y.png", "b/a.jpg", "B.png"}) std::ofstream(d / f) << "x";
  auto all = edan::list_files(d.string(), [](std::string_view) { return true; });
  EXPECT_EQ(all, (std::vector<std::string>{"B.png", "b/a.jpg", "b/c/y.png", "z.txt"}));
  EXPECT_EQ(edan::join_path(d.string(), all[1]), (d / "b/a.jpg").string());
  EXPECT_THROW(edan::list_files((d / "z.txt").string(), [](std::string_view) { return true; }),
               edan::FatalError);
  fs::remove_all(d);
}

TEST(Fs_TempFile, removedUnlessReleased) {
  fs::path d = fresh_dir("temp");
  const std::string a = (d / "a.tmp").string(), b = (d / "b.tmp").string();
  {
    edan::TempFile ta(a), tb(b);
    std::ofstream(a) << "x";
    std::ofstream(b) << "y";
    tb.release();
    EXPECT_TRUE(fs::exists(a));
  }
  EXPECT_FALSE(fs::exists(a));
  EXPECT_TRUE(fs::exists(b));
  fs::remove_all(d);
}

TEST(Fs_TempFile, aSignalRemovesTheLiveTemporariesAndKillsWithThatSignal) {
  fs::path d = fresh_dir("signal");
  const std::string live = (d / "live.tmp").string(), kept = (d / "kept.tmp").string();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    edan::install_signal_cleanup();
    edan::TempFile t(live), k(kept);
    std::ofstream(live) << "x";
    std::ofstream(kept) << "y";
    k.release();
    raise(SIGTERM);
    _exit(0);  // not reached
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  EXPECT_FALSE(fs::exists(live));
  EXPECT_TRUE(fs::exists(kept));
  fs::remove_all(d);
}

TEST(Fs_FileLock, aSecondHolderFailsAtOnceNamingTheFirst) {
  fs::path d = fresh_dir("lock");
  const std::string target = (d / "m.edan").string(), path = target + ".lock";
  {
    edan::FileLock first(target, "the model m.edan");
    EXPECT_TRUE(fs::exists(path));
    try {
      edan::FileLock second(target, "the model m.edan");
      ADD_FAILURE() << "locked twice";
    } catch (const edan::FatalError& e) {
      EXPECT_NE(std::string(e.what()).find("the model m.edan is in use by another run (pid " +
                                           std::to_string(getpid()) + ")"),
                std::string::npos)
          << e.what();
    }
    EXPECT_TRUE(fs::exists(path));  // the failed attempt leaves the holder's file
  }
  EXPECT_FALSE(fs::exists(path));
  edan::FileLock again(target);  // free once let go
  EXPECT_TRUE(fs::exists(path));
  fs::remove_all(d);
}

TEST(Fs_SameFile, followsLinksAndNeedsBothToExist) {
  fs::path d = fresh_dir("same");
  const std::string a = (d / "a").string(), l = (d / "l").string(), b = (d / "b").string();
  std::ofstream(a) << "x";
  std::ofstream(b) << "x";
  fs::create_symlink(a, l);
  EXPECT_TRUE(edan::same_file(a, l));
  EXPECT_FALSE(edan::same_file(a, b));
  EXPECT_FALSE(edan::same_file(a, (d / "none").string()));
  fs::remove_all(d);
}
