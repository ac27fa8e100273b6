// Placeholder removed once real tools exist.
#include "edan/cli.hpp"
int main(int argc, char** argv) {
  edan::cli::Tool tool{"edan-echo", "Echo records."};
  tool.add_output();
  if (auto rc = tool.parse(argc, argv)) return *rc;
  return tool.run([&] { return tool.map_records([](edan::Record&) {}); });
}
