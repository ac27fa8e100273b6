// Tool::map_batches(prepare, process): the pipelined batch map that overlaps
// reading (prepare, on a reader thread) with computing (process).
#include <gtest/gtest.h>
#include <unistd.h>

#include <any>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_fixtures.hpp"
#include "edan/cli.hpp"
#include "edan/error.hpp"

namespace fs = std::filesystem;

namespace {

using edan::test::parse;

struct Files {
  fs::path dir;
  std::string in, out;
  explicit Files(int n) {
    dir = fs::temp_directory_path() /
          ("edan-pipeline-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir);
    in = (dir / "in.jsonl").string();
    out = (dir / "out.jsonl").string();
    std::ofstream f(in);
    for (int i = 0; i < n; ++i) f << "{\"n\":" << i << "}\n";
  }
  ~Files() { fs::remove_all(dir); }
  std::vector<std::string> lines() const {
    std::ifstream f(out);
    std::vector<std::string> v;
    for (std::string l; std::getline(f, l);) v.push_back(l);
    return v;
  }
};

}  // namespace

TEST(Cli_MapBatchesPipelined, keepsOrderAndHandsPrepareResultsToProcess) {
  Files files(10);
  edan::cli::Tool tool{"edan-test", "test"};
  tool.add_output();
  tool.add_batch(4);
  ASSERT_FALSE(parse(tool, {"-o", files.out, files.in}));
  const auto main_thread = std::this_thread::get_id();
  std::atomic<bool> prepared_elsewhere{true};
  std::vector<std::size_t> sizes;
  int rc = tool.run([&] {
    return tool.map_batches(
        [&](std::vector<edan::Record*>& batch) -> std::any {
          if (std::this_thread::get_id() == main_thread) prepared_elsewhere = false;
          return static_cast<std::int64_t>(batch.front()->at("n").as_int64() * 100);
        },
        [&](std::vector<edan::Record*>& batch, std::any& prepared) {
          sizes.push_back(batch.size());
          for (auto* r : batch) (*r)["p"] = std::any_cast<std::int64_t>(prepared);
        });
  });
  EXPECT_EQ(rc, edan::kExitOk);
  EXPECT_TRUE(prepared_elsewhere);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{4, 4, 2}));
  auto lines = files.lines();
  ASSERT_EQ(lines.size(), 10u);
  EXPECT_EQ(lines[0], "{\"n\":0,\"p\":0}");
  EXPECT_EQ(lines[5], "{\"n\":5,\"p\":400}");
  EXPECT_EQ(lines[9], "{\"n\":9,\"p\":800}");
}

TEST(Cli_MapBatchesPipelined, readingTheNextBatchOverlapsProcessing) {
  Files files(6);
  edan::cli::Tool tool{"edan-test", "test"};
  tool.add_output();
  tool.add_batch(2);
  ASSERT_FALSE(parse(tool, {"-o", files.out, files.in}));
  std::mutex m;
  std::condition_variable cv;
  int prepared = 0;
  bool overlapped = false;
  int rc = tool.run([&] {
    return tool.map_batches(
        [&](std::vector<edan::Record*>&) -> std::any {
          std::lock_guard<std::mutex> lock(m);
          ++prepared;
          cv.notify_all();
          return {};
        },
        [&](std::vector<edan::Record*>&, std::any&) {
          // The first batch waits for the second to be prepared meanwhile.
          std::unique_lock<std::mutex> lock(m);
          if (prepared < 2)
            overlapped = cv.wait_for(lock, std::chrono::seconds(5), [&] { return prepared >= 2; });
          else
            overlapped = true;
        });
  });
  EXPECT_EQ(rc, edan::kExitOk);
  EXPECT_TRUE(overlapped);
  EXPECT_EQ(files.lines().size(), 6u);
}

TEST(Cli_MapBatchesPipelined, errorsOfEitherStepMarkTheirBatchOnly) {
  Files files(6);
  edan::cli::Tool tool{"edan-test", "test"};
  tool.add_output();
  tool.add_batch(2);
  ASSERT_FALSE(parse(tool, {"-o", files.out, files.in}));
  std::vector<std::int64_t> processed;
  int rc = tool.run([&] {
    return tool.map_batches(
        [&](std::vector<edan::Record*>& batch) -> std::any {
          if (batch.front()->at("n").as_int64() == 2) throw edan::RecordError("cannot read");
          return {};
        },
        [&](std::vector<edan::Record*>& batch, std::any&) {
          processed.push_back(batch.front()->at("n").as_int64());
          if (batch.front()->at("n").as_int64() == 4) throw std::runtime_error("bad batch");
          for (auto* r : batch) (*r)["ok"] = true;
        });
  });
  EXPECT_EQ(rc, edan::kExitSomeFailed);
  EXPECT_EQ(processed, (std::vector<std::int64_t>{0, 4}));  // batch 2 never reached process
  auto lines = files.lines();
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[1], "{\"n\":1,\"ok\":true}");
  EXPECT_EQ(lines[3], "{\"n\":3,\"error\":\"cannot read\"}");
  EXPECT_EQ(lines[4], "{\"n\":4,\"error\":\"bad batch\"}");
}

TEST(Cli_MapBatchesPipelined, fatalErrorInEitherStepEndsTheRun) {
  for (int fatal_in_prepare = 0; fatal_in_prepare < 2; ++fatal_in_prepare) {
    Files files(40);
    edan::cli::Tool tool{"edan-test", "test"};
    tool.add_output();
    tool.add_batch(2);
    ASSERT_FALSE(parse(tool, {"-o", files.out, files.in}));
    testing::internal::CaptureStderr();
    int rc = tool.run([&] {
      return tool.map_batches(
          [&](std::vector<edan::Record*>& batch) -> std::any {
            if (fatal_in_prepare && batch.front()->at("n").as_int64() == 6)
              throw edan::FatalError("disk gone");
            return {};
          },
          [&](std::vector<edan::Record*>& batch, std::any&) {
            if (!fatal_in_prepare && batch.front()->at("n").as_int64() == 2)
              throw edan::FatalError("model broke");
          });
    });
    auto err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(rc, edan::kExitFatal);
    EXPECT_NE(err.find(fatal_in_prepare ? "disk gone" : "model broke"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(files.out));  // -o is written atomically: nothing on failure
  }
}

TEST(Cli_MapBatchesPipelined, missingInputIsFatal) {
  Files files(1);
  edan::cli::Tool tool{"edan-test", "test"};
  tool.add_batch(2);
  ASSERT_FALSE(parse(tool, {(files.dir / "missing.jsonl").string()}));
  testing::internal::CaptureStderr();
  int rc = tool.run([&] {
    return tool.map_batches([](std::vector<edan::Record*>&) -> std::any { return {}; },
                            [](std::vector<edan::Record*>&, std::any&) {});
  });
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, edan::kExitFatal);
}

TEST(Cli_FlatMapBatches, aRecordMayBecomeSeveralInItsPlace) {
  Files files(5);
  {
    std::ofstream f(files.in, std::ios::app);
    f << "{\"n\":5,\"error\":\"earlier\"}\n";
  }
  edan::cli::Tool tool{"edan-test", "test"};
  tool.add_output();
  tool.add_batch(4);
  ASSERT_FALSE(parse(tool, {"-q", "-o", files.out, files.in}));
  int rc = tool.run([&] {
    return tool.flat_map_batches([](std::vector<edan::Record*>&) -> std::any { return {}; },
                                 [](std::vector<edan::Record*>& live, std::any&) {
                                   edan::cli::Tool::Replacements out(live.size());
                                   for (std::size_t i = 0; i < live.size(); ++i) {
                                     const auto n = live[i]->at("n").as_int64();
                                     if (n == 1) continue;  // an empty list: the record itself
                                     for (std::int64_t k = 0; k < n; ++k) {
                                       edan::Record r = *live[i];
                                       r["face"] = k;
                                       out[i].push_back(r);
                                     }
                                   }
                                   return out;
                                 });
  });
  EXPECT_EQ(rc, edan::kExitSomeFailed);  // the record that arrived with an error
  EXPECT_EQ(files.lines(), (std::vector<std::string>{
                               "{\"n\":0}",  // 0 faces: an empty list, the record itself
                               "{\"n\":1}",
                               "{\"n\":2,\"face\":0}",
                               "{\"n\":2,\"face\":1}",
                               "{\"n\":3,\"face\":0}",
                               "{\"n\":3,\"face\":1}",
                               "{\"n\":3,\"face\":2}",
                               "{\"n\":4,\"face\":0}",
                               "{\"n\":4,\"face\":1}",
                               "{\"n\":4,\"face\":2}",
                               "{\"n\":4,\"face\":3}",
                               "{\"n\":5,\"error\":\"earlier\"}",
                           }));
}
