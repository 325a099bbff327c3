// qosrun: the command table. Each command registers itself from its own file
// (see qosrun/cli.hpp); this file only parses, sets up verbosity and runs.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "qosc/version.hpp"
#include "qosrun/cli.hpp"
#include "qosrun/loader.hpp"
#include "qosrun/stats.hpp"

int main(int argc, char** argv) {
  using namespace qosrun::cli;
  CLI::App app{"qosrun: load, attach and inspect QoS policies compiled by qosc", "qosrun"};
  app.set_version_flag("--version", std::string("qosrun ") + qosc::kVersion);
  app.fallthrough();   // global flags may follow the command name
  Globals globals;
  app.add_flag("-v,--verbose", globals.verbosity, "more output; -vv adds libbpf's messages and full verifier logs");

  CommandTable table(app, globals);
  register_classify(table);
  register_attach(table);
  register_supervise(table);
  register_stats(table);
  register_hosts(table);
  // More commands register here (one function per command, see qosrun/cli.hpp).

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitError;
  }
  qosrun::set_libbpf_verbosity(globals.verbosity);
  return table.dispatch();
}
