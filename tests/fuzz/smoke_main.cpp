// A bounded fuzz run for the default test suite (no libFuzzer needed; built
// with AddressSanitizer + UndefinedBehaviorSanitizer): every corpus file as
// is, then random mutations of them (byte flips, insertions of grammar
// tokens, truncations, splices) for a fixed number of iterations or seconds.
// The long coverage-guided run is scripts/fuzz.sh (libFuzzer, clang).
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {
// The input being run, printed to standard error when a property traps (or
// the sanitizers abort) so that the failure can be reproduced.
const std::string* g_current = nullptr;
extern "C" void print_current_input(int sig) {
  if (g_current) {
    static const char head[] = "\nfuzz smoke: the input that failed (between the lines):\n-----\n";
    (void)!write(2, head, sizeof head - 1);
    (void)!write(2, g_current->data(), g_current->size());
    static const char tail[] = "\n-----\n";
    (void)!write(2, tail, sizeof tail - 1);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}
}  // namespace

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR... [--iterations N] [--seconds S] [--seed X]\n", argv[0]);
    return 2;
  }
  long iterations = 20000, seconds = 60;
  uint64_t seed = 1;
  std::vector<std::string> corpus;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--iterations" && i + 1 < argc) iterations = std::stol(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc) seconds = std::stol(argv[++i]);
    else if (a == "--seed" && i + 1 < argc) seed = std::stoull(argv[++i]);
    else
      for (const auto& e : fs::recursive_directory_iterator(a)) {
        if (!e.is_regular_file()) continue;
        auto ext = e.path().extension();
        if (ext != ".qos" && ext != ".json" && !e.path().parent_path().filename().string().starts_with("corpus")) continue;
        std::ifstream in(e.path(), std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        corpus.push_back(ss.str());
      }
  }
  if (corpus.empty()) corpus.push_back("policy p { link 1mbit; class a { default; } }");
  for (int sig : {SIGILL, SIGABRT, SIGSEGV, SIGTRAP}) signal(sig, print_current_input);
  for (const auto& c : corpus) g_current = &c, LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(c.data()), c.size());

  static const std::vector<std::string> tokens = {
      "policy", "link", "scheduler", "set", "class", "rule", "priority", "weight", "quantum", "rate", "burst",
      "default", "drop", "ip", "ip6", "saddr", "daddr", "tcp", "udp", "icmp", "icmpv6", "sport", "dport", "proto",
      "dscp", "rank", "bands", "pifo", "{", "}", ";", ",", "->", "!=", "@", "=", "(", ")", "-", "/", ".", ":", "::",
      "#", "\n", "\t", "\r", " ", "0", "65535", "65536", "99999999999999999999999", "1.5", "mbit", "kb", "mbps",
      "10.0.0.0/8", "255.255.255.255/33", "2001:db8::/129", "ef", "af41", "min(", "max(", "class.priority", "pkt.len",
      "\xff", "\x00", std::string(300, 'a'),
      // the packet notation and policy test files
      "expect", ">", "[", "]", ":443", "frag", "vlan", "4095", "[2001:db8::1]:80", "192.168.1.5:50000", "# c\n"};
  std::mt19937_64 rng(seed);
  auto t0 = std::chrono::steady_clock::now();
  long n = 0;
  for (; n < iterations; ++n) {
    if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(seconds)) break;
    std::string s = corpus[rng() % corpus.size()];
    int edits = 1 + int(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
      switch (rng() % 6) {
        case 0: if (!s.empty() && pos < s.size()) s[pos] = char(rng()); break;
        case 1: s.insert(pos, tokens[rng() % tokens.size()]); break;
        case 2: if (pos < s.size()) s.erase(pos, 1 + rng() % 16); break;
        case 3: s.resize(pos); break;
        case 4: {
          const std::string& o = corpus[rng() % corpus.size()];
          size_t from = o.empty() ? 0 : rng() % o.size();
          s.insert(pos, o.substr(from, 1 + rng() % 64));
          break;
        }
        default: s.insert(pos, " " + tokens[rng() % tokens.size()] + " "); break;
      }
    }
    g_current = &s;
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  std::printf("fuzz smoke: %zu corpus files, %ld mutated inputs, no crash\n", corpus.size(), n);
  return 0;
}
