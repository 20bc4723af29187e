#pragma once
// Reading pictures the way the reference does with PIL: Image.open(path).convert('RGB').
#include <string>

#include "data/image.h"
#include "qalign/media_budget.h"

namespace qalign::data {

// Decodes a still image to 8-bit RGB. Grey is replicated, alpha dropped (not composited), and
// 16-bit samples reduced as PIL does: colour and grey+alpha keep the high byte, plain 16-bit grey
// (PIL mode "I") is clipped to 255. EXIF orientation is ignored, as PIL's open() ignores it.
// Missing, empty, truncated, corrupt or oversized files throw qalign::Error naming the path: the
// file size is checked against `budget` before reading, and the header (every format qalign reads)
// against PIL's pixel limit, `budget`'s decoded bytes and the JPEG scan limit before decoding.
Image decode_image(const std::string& path, const MediaBudget& budget = {});

}  // namespace qalign::data
