#pragma once
// A directory of a test's own under /tmp (/tmp/PREFIX-XXXXXX), removed with
// everything in it when the object goes: a fixture's member lives as long as
// its test, a static one as long as the test program.
#include <filesystem>
#include <string>

namespace qt_support {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // False when the directory could not be made (path() is then empty).
  bool ok() const { return !path_.empty(); }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::filesystem::path& p) const { return path_ / p; }

 private:
  std::filesystem::path path_;
};

}  // namespace qt_support
