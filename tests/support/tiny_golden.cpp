#include "tests/support/tiny_golden.h"

#include <fstream>

#include "tests/support/fixtures.h"

namespace qalign::test {

const TinyGolden& tiny_golden() {
  static const TinyGolden g{io::SafetensorsFile::open(fixture("qalign-tiny/golden.safetensors")),
                            nlohmann::json::parse(std::ifstream(fixture("qalign-tiny/golden.json")))};
  return g;
}

}  // namespace qalign::test
