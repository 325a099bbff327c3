#pragma once
// qosrun's command table. Each command lives in its own file and adds itself
// with one registration function (declared below, called from main.cpp):
//
//   void register_classify(CommandTable& t) {
//     auto opts = std::make_shared<ClassifyArgs>();
//     CLI::App* sub = t.add("classify", "run a capture through ...", [opts, &g = t.globals()] {
//       return run(*opts, g);            // exit code
//     });
//     sub->add_option("OBJ", opts->object, "...")->required();
//   }
//
// Global flags (-v/-vv, --version, -h) are handled by main.cpp and are
// accepted before or after the command name.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "qosrun/loader.hpp"

namespace qosrun::cli {

// Exit codes shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;     // the user's input or environment (bad file, not root ...)
inline constexpr int kExitInternal = 2;  // a bug in qosc/qosrun (e.g. the verifier rejected generated code)

// The exit code of a failed command: only qosc's own fault is exit 2.
inline int exit_code_for(const Error& e) { return e.kind == ErrorKind::QoscBug ? kExitInternal : kExitError; }

struct Globals {
  int verbosity = 0;   // -v: 1, -vv: 2 (libbpf's chatter and full verifier logs)
};

class CommandTable {
 public:
  CommandTable(CLI::App& app, Globals& globals) : app_(app), globals_(globals) {}

  CLI::App& app() { return app_; }
  Globals& globals() { return globals_; }

  // Adds a subcommand; `run` runs after parsing when it was chosen and returns the exit code.
  CLI::App* add(const std::string& name, const std::string& description, std::function<int()> run) {
    CLI::App* sub = app_.add_subcommand(name, description);
    commands_.push_back({sub, std::move(run)});
    return sub;
  }

  // What a command line without a subcommand runs (the foreground
  // `qosrun OBJ IFACE` form). Without one, such a command line prints help.
  void set_default(std::function<int()> run) { default_ = std::move(run); }
  bool has_default() const { return static_cast<bool>(default_); }

  // Call after app().parse(): runs the chosen command.
  int dispatch() const {
    for (const auto& c : commands_)
      if (c.sub->parsed()) return c.run();
    if (default_) return default_();
    std::fputs(app_.help().c_str(), stderr);
    return kExitError;
  }

 private:
  struct Command {
    CLI::App* sub;
    std::function<int()> run;
  };
  CLI::App& app_;
  Globals& globals_;
  std::vector<Command> commands_;
  std::function<int()> default_;
};

// One registration function per command (each in its own runtime/src file).
void register_classify(CommandTable& t);   // classify.cpp
void register_attach(CommandTable& t);     // attach_cmd.cpp: attach, detach, status, reload, `qosrun OBJ IFACE`
void register_supervise(CommandTable& t);  // adaptive_run.cpp: the adaptive rate's supervisor (started by attach)
void register_hosts(CommandTable& t);      // hosts_cmd.cpp: hosts apply, hosts show

}  // namespace qosrun::cli
