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
