// `qosc explain POLICY PACKET`: the class a packet gets and why
// (analysis/explain.cpp).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>

#include "cli_io.hpp"
#include "review_commands.hpp"
#include "qosc/packet_notation.hpp"
#include "qosc/review.hpp"

namespace qosc::cli {

int run_explain(int argc, char** argv) {
  CLI::App app{"qosc explain: the class a packet gets, the rule that decides it and why earlier rules do not",
               "qosc explain"};
  std::string policy_path, color = "auto";
  std::vector<std::string> words;
  bool verbose = false;
  app.add_option("POLICY", policy_path, "policy file (.qos or .json)")->required();
  app.add_option("PACKET", words,
                 "a packet: PROTO SRC > DST [dscp NAME|N] [vlan N] [frag], e.g. "
                 "'udp 192.168.1.5:50000 > 203.0.113.9:3074 dscp ef' (quote it: '>' is the shell's)")
      ->required();
  app.add_flag("-v,--verbose", verbose, "every failed match of every earlier rule, with the rule's text");
  app.add_option("--color", color, "colour diagnostics: auto, always, never")->check(CLI::IsMember({"auto", "always", "never"}));
  app.footer("Example:\n  qosc explain examples/gaming.qos 'udp 192.168.1.5:50000 > 203.0.113.9:3074 dscp ef'");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) ? kUserError : kOk;
  }
  const bool colour = use_color(color);
  auto input = read_reviewed_policy(policy_path, colour);
  if (!input) return kUserError;
  const ReviewedPolicy* policy = &input->policy;
  std::string packet_text;
  for (const auto& w : words) packet_text += (packet_text.empty() ? "" : " ") + w;
  SourceFile packet_file("<packet>", packet_text);
  Diagnostics pdiags(&packet_file);
  auto packet = parse_packet_notation(packet_file, pdiags);
  if (!packet) {
    pdiags.print(std::cerr, colour);
    return kUserError;
  }
  std::cout << render_explanation(*policy, *packet, explain(*policy, packet->fields), verbose);
  return kOk;
}

}  // namespace qosc::cli
