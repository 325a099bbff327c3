#pragma once
// Tests that run the real binaries: a shell command's standard output.
#include <string>

namespace qt_support {

// Runs `cmd` with /bin/sh; returns its standard output, and the exit code in
// *code (128 + the signal when a signal ended it).
std::string shell(const std::string& cmd, int* code = nullptr);

}  // namespace qt_support
