#pragma once
// Error kinds shared by the library and the programs. The programs map them
// to exit statuses in one place (edan/cli.hpp):
//   RecordError -> the record gains "error", the stream goes on, exit 1
//   UsageError  -> one line plus "Try '<prog> --help'", exit 2
//   FatalError  -> message, exit 3 (model, I/O that stops the whole run)
// Any other std::exception escaping a per-record callback is treated as a
// RecordError.
#include <stdexcept>
#include <string>

namespace edan {

struct RecordError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct FatalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Exit statuses, documented in every man page.
inline constexpr int kExitOk = 0;
inline constexpr int kExitSomeFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitFatal = 3;

}  // namespace edan
