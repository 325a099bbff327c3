// `qosc diff`: reading both sides (files or git revisions) and printing.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "qosc/diff.hpp"
#include "qosc/frontend.hpp"

extern char** environ;

namespace qosc::analysis {
namespace {

// Runs git with `args` (no shell); its standard output into *out. Returns its
// exit status, or -1 when git could not be started.
int run_git(const std::vector<std::string>& args, std::string* out) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, pipefd[0]);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> argv_s = {"git"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, "git", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    return -1;
  }
  char buf[65536];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) out->append(buf, size_t(n));
  close(pipefd[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

std::optional<std::string> read_policy_spec(const std::string& spec, std::string* error) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (spec == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  const auto colon = spec.find(':');
  if (fs::exists(spec, ec) || colon == std::string::npos || colon == 0) {
    if (fs::is_directory(spec, ec)) {
      *error = fmt::format("{} is a directory, not a policy file", spec);
      return std::nullopt;
    }
    std::ifstream in(spec, std::ios::binary);
    if (!in) {
      *error = fmt::format("cannot open {}: {}", spec, std::strerror(errno));
      return std::nullopt;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // REV:PATH, PATH relative to the repository's top (as `git show` reads it).
  const std::string rev = spec.substr(0, colon), path = spec.substr(colon + 1);
  std::string out;
  int rc = run_git({"rev-parse", "--verify", "--quiet", rev + "^{commit}"}, &out);
  if (rc < 0) {
    *error = fmt::format("{}: cannot run git to read revision '{}'; is git installed?", spec, rev);
    return std::nullopt;
  }
  if (rc != 0) {
    out.clear();
    bool repo = run_git({"rev-parse", "--git-dir"}, &out) == 0;
    *error = repo ? fmt::format("{}: git does not know the revision '{}' (try `git log --oneline` or a branch name)", spec, rev)
                  : fmt::format("{}: not inside a git repository, so the revision '{}' cannot be read", spec, rev);
    return std::nullopt;
  }
  out.clear();
  if (run_git({"cat-file", "blob", rev + ":" + path}, &out) != 0) {
    *error = fmt::format("{}: revision '{}' has no file '{}' (paths are relative to the repository's top; "
                         "try `git ls-tree -r --name-only {}`)",
                         spec, rev, path, rev);
    return std::nullopt;
  }
  return out;
}

int run_diff_command(const DiffCommand& cmd, std::ostream& out, std::ostream& err) {
  constexpr int kSame = 0, kDiffer = 1, kError = 2;
  struct Side {
    std::unique_ptr<SourceFile> file;
    std::optional<ir::Policy> ir;
  };
  DiagnosticsReport report(cmd.diagnostics, err, cmd.color);
  auto load = [&](const std::string& spec) -> std::optional<Side> {
    std::string error;
    auto text = read_policy_spec(spec, &error);
    if (!text) {
      err << "qosc: error: " << error << "\n";
      return std::nullopt;
    }
    Side s;
    s.file = std::make_unique<SourceFile>(spec == "-" ? "<stdin>" : spec, std::move(*text));
    Diagnostics diags(s.file.get());
    FrontendResult fe = compile_frontend(*s.file, diags);
    if (!fe.ir || diags.has_errors()) {
      // Only the errors: warnings are `qosc check`'s business.
      Diagnostics errors(s.file.get());
      for (const auto& d : diags.all())
        if (d.severity == Severity::Error) errors.add(d);
      report.add(errors);
      return std::nullopt;
    }
    s.ir = std::move(fe.ir);
    return s;
  };
  auto a = load(cmd.old_spec);
  auto b = load(cmd.new_spec);
  if (!a || !b) {
    report.finish(err);
    return kError;
  }
  PolicyDiff d = diff_policies(*a->ir, *b->ir);
  if (cmd.json) out << to_json(d).dump(2) << "\n";
  else out << fmt::format("--- {}\n+++ {}\n", cmd.old_spec, cmd.new_spec) << to_text(d);
  return d.same() ? kSame : kDiffer;
}

}  // namespace qosc::analysis
