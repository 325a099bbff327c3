// Golden diagnostics: every tests/frontend/golden/*.qos is run through the
// real `qosc check` and its whole output (stderr + exit code) must equal the
// .err file next to it. To refresh after an intended change:
//   QOSC_UPDATE_GOLDEN=1 ctest -R Golden     (then review `git diff`)
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "shell.hpp"

namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

using qt_support::shell;

// Runs `qosc check NAME` in the golden directory (so file names in messages
// are relative and stable); returns stderr+stdout and the exit code. A first
// line `# qosc check --strict` adds those options.
std::string run_check(const std::string& name) {
  int code = 0;
  std::string first;
  std::getline(std::ifstream(fs::path(QOSC_GOLDEN_DIR) / name) >> std::ws, first);
  const std::string marker = "# qosc check ";
  const std::string extra = first.rfind(marker, 0) == 0 ? first.substr(marker.size()) + " " : "";
  std::string out = shell("cd '" + std::string(QOSC_GOLDEN_DIR) + "' && '" + QOSC_BIN + "' check --color never " + extra + "'" +
                              name + "' 2>&1",
                          &code);
  return out + "[exit " + std::to_string(code) + "]\n";
}

std::vector<std::string> golden_inputs() {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(QOSC_GOLDEN_DIR))
    if (e.path().extension() == ".qos") v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

class Golden : public testing::TestWithParam<std::string> {};

TEST_P(Golden, DiagnosticsMatch) {
  const std::string name = GetParam();
  fs::path expected = fs::path(QOSC_GOLDEN_DIR) / (fs::path(name).stem().string() + ".err");
  std::string got = run_check(name);
  if (std::getenv("QOSC_UPDATE_GOLDEN")) {
    std::ofstream(expected, std::ios::binary) << got;
    GTEST_SKIP() << "updated " << expected;
  }
  ASSERT_TRUE(fs::exists(expected)) << "no " << expected << "; run with QOSC_UPDATE_GOLDEN=1 and review the result";
  EXPECT_EQ(read(expected), got) << "qosc check " << name;
  // The kind of file decides the exit code, whatever the .err says.
  if (name.rfind("ok_", 0) == 0) {
    EXPECT_NE(got.find("[exit 0]"), std::string::npos);
  }
  if (name.rfind("syn_", 0) == 0) {
    EXPECT_NE(got.find("[exit 1]"), std::string::npos);
  }
  EXPECT_EQ(got.find("internal"), std::string::npos) << "bad input must never look like a crash";
}

INSTANTIATE_TEST_SUITE_P(Files, Golden, testing::ValuesIn(golden_inputs()), [](const testing::TestParamInfo<std::string>& p) {
  std::string s = fs::path(p.param).stem().string();
  std::replace_if(s.begin(), s.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
  return s;
});

// Every shipped example is clean (no errors; exit 0).
TEST(Examples, CheckClean) {
  for (const auto& e : fs::directory_iterator(QOSC_EXAMPLES_DIR)) {
    if (e.path().extension() != ".qos") continue;
    std::string cmd = std::string("'") + QOSC_BIN + "' check --color never '" + e.path().string() + "' 2>&1";
    FILE* f = popen(cmd.c_str(), "r");
    ASSERT_NE(f, nullptr);
    std::string out;
    std::array<char, 4096> buf{};
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
    int st = pclose(f);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << e.path() << ":\n" << out;
    EXPECT_EQ(out.find("error"), std::string::npos) << out;
  }
}

}  // namespace

// `qosc -o` onto something that is not a regular file writes into it and
// leaves it what it was (it once renamed a temporary file over /dev/null).
// A FIFO stands in for /dev/null so that a regression cannot damage the
// machine running the tests.
TEST(Driver, OutputOntoAFifoWritesIntoIt) {
  const fs::path dir = fs::temp_directory_path() / ("qosc-driver-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path fifo = dir / "out.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string policy = std::string(QOSC_EXAMPLES_DIR) + "/gaming.qos";
  const std::string cmd = "'" + std::string(QOSC_BIN) + "' '" + policy + "' -o '" + fifo.string() + "' 2>&1 & timeout 20 cat '" +
                          fifo.string() + "' | head -c 4 | od -An -c; wait";
  const std::string out = shell(cmd);
  EXPECT_NE(out.find("E   L   F"), std::string::npos) << out;   // the object came through the FIFO
  struct stat st {};
  ASSERT_EQ(lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO was replaced";
  size_t left = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++left;
  EXPECT_EQ(left, 1u) << "a temporary file was left next to the FIFO";
  fs::remove_all(dir);
}
