#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <any>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli_fixtures.hpp"
#include "edan/cli.hpp"
#include "edan/error.hpp"

namespace fs = std::filesystem;

namespace {
using edan::test::parse;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("edan-cli-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name, const std::string& text) const {
    auto p = (path / name).string();
    std::ofstream(p) << text;
    return p;
  }
};

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST(Cli_Parse, typedOptionsAndDefaults) {
  edan::cli::Tool tool{"edan-test", "test"};
  int batch = 32;
  double alpha = 0.4;
  std::string model;
  std::vector<std::int64_t> widths{1, 2};
  bool flag = false;
  tool.add({"--batch"}, "N", "batch", &batch);
  tool.add({"--alpha"}, "A", "alpha", &alpha);
  tool.add({"-m", "--model"}, "FILE", "model", &model);
  tool.add({"--widths"}, "LIST", "widths", &widths);
  tool.add_flag({"--flag"}, "a flag", &flag);
  EXPECT_FALSE(parse(
      tool, {"--batch", "8", "--alpha=0.25", "-m", "x.edan", "--widths", "8,16,32", "--flag"}));
  EXPECT_EQ(batch, 8);
  EXPECT_DOUBLE_EQ(alpha, 0.25);
  EXPECT_EQ(model, "x.edan");
  EXPECT_EQ(widths, (std::vector<std::int64_t>{8, 16, 32}));
  EXPECT_TRUE(flag);
  EXPECT_EQ(tool.inputs(), std::vector<std::string>{"-"});
}

TEST(Cli_Parse, usageErrorsAreExit2) {
  {
    edan::cli::Tool tool{"edan-test", "test"};
    EXPECT_EQ(parse(tool, {"--nope"}), edan::kExitUsage);
  }
  {
    edan::cli::Tool tool{"edan-test", "test"};
    int batch = 1;
    tool.add({"--batch"}, "N", "batch", &batch);
    EXPECT_EQ(parse(tool, {"--batch", "many"}), edan::kExitUsage);
  }
  {
    edan::cli::Tool tool{"edan-test", "test"};
    tool.add_shard();
    EXPECT_EQ(parse(tool, {"--shard", "3/2"}), edan::kExitUsage);
  }
  {
    edan::cli::Tool tool{"edan-test", "test"};
    std::vector<std::string> dirs;
    tool.positional("DIR...", &dirs, 1);
    EXPECT_EQ(parse(tool, {}), edan::kExitUsage);
  }
}

TEST(Cli_Parse, noPrefixGuessingAndASuggestion) {
  edan::cli::Tool tool{"edan-test", "test"};
  std::string dir;
  tool.add_output();
  tool.add({"--out-dir"}, "DIR", "a directory", &dir);
  testing::internal::CaptureStderr();
  EXPECT_EQ(parse(tool, {"--out", "x"}), edan::kExitUsage);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("did you mean --output or --out-dir?"), std::string::npos) << err;
  edan::cli::Tool exact{"edan-test", "test"};
  exact.add_output();
  EXPECT_FALSE(parse(exact, {"--output", "x"}));
  edan::cli::Tool prefix{"edan-test", "test"};
  prefix.add_output();
  testing::internal::CaptureStderr();
  EXPECT_EQ(parse(prefix, {"--outp=x"}), edan::kExitUsage);
  testing::internal::GetCapturedStderr();
}

TEST(Cli_Parse, helpAndVersionExit0) {
  edan::cli::Tool a{"edan-test", "test"};
  testing::internal::CaptureStdout();
  EXPECT_EQ(parse(a, {"--help"}), 0);
  std::string help = testing::internal::GetCapturedStdout();
  EXPECT_NE(help.find("Usage: edan-test"), std::string::npos);
  EXPECT_NE(help.find("--quiet"), std::string::npos);
  edan::cli::Tool b{"edan-test", "test"};
  testing::internal::CaptureStdout();
  EXPECT_EQ(parse(b, {"-V"}), 0);
  EXPECT_NE(testing::internal::GetCapturedStdout().find("edan"), std::string::npos);
}

namespace {
// The record loop with fn on each record (with --batch 1, fn's exception is
// that record's).
int map_each(edan::cli::Tool& tool, const std::function<void(edan::Record&)>& fn) {
  return tool.map_batches([&](std::vector<edan::Record*>& batch) {
    for (auto* r : batch) fn(*r);
  });
}
}  // namespace

TEST(Cli_MapBatches, errorsBecomeRecordsAndExit1) {
  TempDir dir;
  auto in =
      dir.file("in.jsonl", "{\"n\":1}\n{\"n\":2}\n{\"n\": 4,\n{\"n\":3,\"error\":\"earlier\"}\n");
  auto out = (dir.path / "out.jsonl").string();
  edan::cli::Tool tool{"edan-test", "test"};
  tool.add_output();
  tool.add_batch(1);
  ASSERT_FALSE(parse(tool, {"-o", out, in}));
  int rc = tool.run([&] {
    return map_each(tool, [](edan::Record& r) {
      if (r.at("n").as_int64() == 2) throw edan::RecordError("two is bad");
      r["seen"] = true;
    });
  });
  EXPECT_EQ(rc, edan::kExitSomeFailed);
  EXPECT_EQ(slurp(out),
            "{\"n\":1,\"seen\":true}\n"
            "{\"n\":2,\"error\":\"two is bad\"}\n"
            "{\"error\":\"" +
                in +
                ":3: invalid JSON: incomplete JSON\",\"line\":3}\n"
                "{\"n\":3,\"error\":\"earlier\"}\n");
}

TEST(Cli_MapBatches, fatalErrorIsExit3AndLeavesNoOutput) {
  TempDir dir;
  auto in = dir.file("in.jsonl", "{\"n\":1}\n");
  auto out = (dir.path / "out.jsonl").string();
  edan::cli::Tool tool{"edan-test", "test"};
  tool.add_output();
  ASSERT_FALSE(parse(tool, {"-o", out, in}));
  testing::internal::CaptureStderr();
  int rc = tool.run(
      [&] { return map_each(tool, [](edan::Record&) { throw edan::FatalError("model broke"); }); });
  EXPECT_NE(testing::internal::GetCapturedStderr().find("edan-test: model broke"),
            std::string::npos);
  EXPECT_EQ(rc, edan::kExitFatal);
  EXPECT_FALSE(fs::exists(out));
}

TEST(Cli_MapBatches, keepsOrderAndBatches) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 10; ++i) text += "{\"n\":" + std::to_string(i) + "}\n";
  auto in = dir.file("in.jsonl", text);
  auto out = (dir.path / "out.jsonl").string();
  edan::cli::Tool tool{"edan-test", "test"};
  tool.add_output();
  tool.add_batch(4);
  ASSERT_FALSE(parse(tool, {"-o", out, in}));
  std::vector<std::size_t> sizes;
  int rc = tool.run([&] {
    return tool.map_batches([&](std::vector<edan::Record*>& batch) {
      sizes.push_back(batch.size());
      for (auto* r : batch) (*r)["b"] = sizes.size();
      if (sizes.size() == 2) edan::set_error(*batch[1], "bad one");
    });
  });
  EXPECT_EQ(rc, edan::kExitSomeFailed);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{4, 4, 2}));
  std::ifstream f(out);
  std::string line;
  int i = 0;
  while (std::getline(f, line)) {
    EXPECT_NE(line.find("\"n\":" + std::to_string(i)), std::string::npos) << line;
    EXPECT_EQ(line.find("error") != std::string::npos, i == 5) << line;
    ++i;
  }
  EXPECT_EQ(i, 10);
}

TEST(Cli_Shard, slicesPartitionTheInput) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 7; ++i) text += "{\"n\":" + std::to_string(i) + "}\n";
  auto in = dir.file("in.jsonl", text);
  std::vector<std::int64_t> seen;
  for (int k = 1; k <= 3; ++k) {
    edan::cli::Tool tool{"edan-test", "test"};
    tool.add_shard();
    ASSERT_FALSE(parse(tool, {"--shard", std::to_string(k) + "/3", in}));
    tool.for_each_input([&](edan::Record& r) { seen.push_back(r.at("n").as_int64()); });
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(Cli_FlatMapBatches, recordsExpandInOrderAndNoneIsLost) {
  TempDir dir;
  auto in = dir.file("in.jsonl", "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
  auto out = (dir.path / "out.jsonl").string();
  edan::cli::Tool tool{"edan-test", "test"};
  tool.add_output();
  ASSERT_FALSE(parse(tool, {"-o", out, in}));
  int rc = tool.run([&] {
    return tool.flat_map_batches([](std::vector<edan::Record*>&) -> std::any { return {}; },
                                 [](std::vector<edan::Record*>& batch, std::any&) {
                                   edan::cli::Tool::Replacements outs(batch.size());
                                   for (std::size_t i = 0; i < batch.size(); ++i) {
                                     const auto n = batch[i]->at("n").as_int64();
                                     if (n == 1) outs[i].assign(2, *batch[i]);  // two faces
                                     if (n == 3) edan::set_error(*batch[i], "no face");
                                   }
                                   return outs;  // n 2: an empty list, the record itself
                                 });
  });
  EXPECT_EQ(rc, edan::kExitSomeFailed);
  EXPECT_EQ(slurp(out), "{\"n\":1}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3,\"error\":\"no face\"}\n");
}

TEST(Cli_Inputs, foldersAndImageFilesBecomeImageRecords) {
  TempDir dir;
  fs::create_directories(dir.path / "photos" / "b");
  const std::string png("\x89PNG\r\n\x1A\n", 8), jpg("\xFF\xD8\xFF\xE0", 4);
  dir.file("photos/b/2.png", png);
  dir.file("photos/a.JPG", jpg);
  dir.file("photos/notes.txt", "not an image");
  dir.file("photos/b/named.png", "{\"image\":\"x\"}\n");  // a name is not content
  auto single = dir.file("one.jpeg.bak", jpg);
  auto records = dir.file("in.jsonl", "{\"crop\":\"c.png\"}\n");
  const std::string photos = (dir.path / "photos").string();
  edan::cli::Tool tool{"edan-test", "test"};
  ASSERT_FALSE(parse(tool, {photos, single, records}));
  std::vector<std::string> seen;
  testing::internal::CaptureStderr();
  tool.for_each_input([&](edan::Record& r) { seen.push_back(edan::to_line(r)); });
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "{\"image\":\"" + photos + "/a.JPG\"}",
                      "{\"image\":\"" + photos + "/b/2.png\"}",
                      "{\"image\":\"" + single + "\"}",
                      "{\"crop\":\"c.png\"}",
                  }));
  // Files that are not images are named, not silently dropped.
  EXPECT_NE(err.find(photos + ": 2 files are not an image and not read (b/named.png, ...)"),
            std::string::npos)
      << err;
}

TEST(Cli_Run, aSummaryOfFailedRecordsOnStderr) {
  TempDir dir;
  auto in = dir.file("in.jsonl", "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n");
  edan::cli::Tool tool{"edan-test", "test"};
  tool.add_output();
  tool.add_batch(1);
  ASSERT_FALSE(parse(tool, {"-o", (dir.path / "out.jsonl").string(), in}));
  testing::internal::CaptureStderr();
  int rc = tool.run([&] {
    return map_each(tool, [](edan::Record& r) {
      const auto n = r.at("n").as_int64();
      if (n == 2 || n == 3)
        throw edan::RecordError("f" + std::to_string(n) + ".png: no face found");
      if (n == 4) throw edan::RecordError("f4.png: cannot decode");
    });
  });
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, edan::kExitSomeFailed);
  EXPECT_EQ(err,
            "edan-test: 3 of 4 records written with an error (2 no face found, 1 cannot decode)\n");
}
