#pragma once
// Shared by the cli::Tool unit tests (no LibTorch).
#include <optional>
#include <string>
#include <vector>

#include "edan/cli.hpp"

namespace edan::test {

// Runs tool.parse on a vector of arguments, as main would (argv[0] "edan-test").
inline std::optional<int> parse(edan::cli::Tool& tool, std::vector<std::string> args) {
  std::vector<char*> argv;
  static std::string prog = "edan-test";
  argv.push_back(prog.data());
  for (auto& a : args) argv.push_back(a.data());
  return tool.parse(static_cast<int>(argv.size()), argv.data());
}

}  // namespace edan::test
