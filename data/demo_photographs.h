#pragma once
// The photographs the demo set is made from, all from Debian 12's own packages: natural colour
// photographs only (logos, charts, renders, paintings, greyscale, pictures blurred on purpose and
// near-duplicate views left out; experiments/demo-ceiling/photograph-sources.md is the survey).
#include <string>
#include <vector>

namespace qalign::data {

struct DemoPhotograph {
  // Photographs of one subject (a building, an animal) share it; the split keeps a subject whole.
  std::string subject;
  std::string package;
  // A file, or ARCHIVE.rcc:/INNER for a file inside a Qt resource archive (data/qt_resource.h).
  std::string path;
  // As the package's /usr/share/doc/PACKAGE/copyright states it for the file.
  std::string licence;
};

// opencv-doc's 20 (installed by scripts/setup.sh for the tests too), then gcompris-qt-data's 131,
// lomiri-wallpapers-16.04's 13 and palapeli-data's 5 (installed by scripts/setup.sh --demo).
const std::vector<DemoPhotograph>& demo_photographs();

}  // namespace qalign::data
