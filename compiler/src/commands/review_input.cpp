// The policy the review commands read: see review_commands.hpp.
#include <iostream>

#include "cli_io.hpp"
#include "review_commands.hpp"

namespace qosc::cli {

std::optional<ReviewInput> read_reviewed_policy(const std::string& path, bool color) {
  std::string err;
  auto text = read_input(path, &err);
  if (!text) {
    usage_error(err);
    return std::nullopt;
  }
  auto file = std::make_unique<SourceFile>(path == "-" ? "<stdin>" : path, std::move(*text));
  Diagnostics diags(file.get());
  auto policy = review_policy(*file, diags);
  if (!policy) {
    diags.print(std::cerr, color);
    return std::nullopt;
  }
  return ReviewInput{std::move(file), std::move(*policy)};
}

}  // namespace qosc::cli
