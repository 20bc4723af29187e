#pragma once
// Reading pictures the way the reference does with PIL: Image.open(path).convert('RGB').
#include <string>

#include "data/image.h"

namespace qalign::data {

// Decodes a still image to 8-bit RGB. Grey is replicated, alpha dropped (not composited), and
// 16-bit samples reduced as PIL does: colour and grey+alpha keep the high byte, plain 16-bit grey
// (PIL mode "I") is clipped to 255. EXIF orientation is ignored, as PIL's open() ignores it.
// Missing, empty, truncated, corrupt or oversized files throw qalign::Error naming the path.
Image decode_image(const std::string& path);

}  // namespace qalign::data
