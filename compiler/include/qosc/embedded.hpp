#pragma once
#include <cstddef>
#include <string_view>

namespace qosc {

// A file carried inside the binary (BPF headers, C templates).
struct EmbeddedFile {
  const char* path;   // virtual path, e.g. "bpf/bpf_helpers.h" or "templates/qos_parse.h"
  const char* data;
  std::size_t size;
  std::string_view text() const { return {data, size}; }
};

}  // namespace qosc
