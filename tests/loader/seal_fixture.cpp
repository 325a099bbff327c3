// seal_fixture OBJ: seals a hand-written fixture object in place with the
// digest qosc adds to every object it writes (qosc/object_digest.hpp), so the
// loader takes it as a qosc object. Build step of the loader fixtures.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "qosc/object_digest.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: seal_fixture OBJ\n");
    return 2;
  }
  std::vector<unsigned char> bytes;
  {
    std::ifstream in(argv[1], std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::string err;
  if (!qosc::add_object_digest(bytes, &err)) {
    std::fprintf(stderr, "seal_fixture: %s: %s\n", argv[1], err.c_str());
    return 1;
  }
  std::ofstream out(argv[1], std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return out ? 0 : 1;
}
