#pragma once
// How much memory a model's weights take when scoring in each mode (qalign inspect, qalign plan),
// counted from its config on the meta device: nothing is allocated.
#include <string>
#include <vector>

#include "qalign/model/config.h"

namespace qalign::model {

struct ModeWeights {
  std::string mode;   // float32, bfloat16, int8, int8 + vision, int8dyn, int4 (group N)[ + vision], fp8
  std::string flags;  // the options that score in this mode
  int64_t bytes;
  // Of `bytes`, what a quantising load on the CPU reads from the memory-mapped checkpoint instead
  // of copying (row_read_tensors), of which scoring makes only the rows it reads resident. 0 for
  // float modes and fp8.
  int64_t mapped = 0;
};

// float32 and bfloat16, then each --quantize mode with the tensors it leaves in bfloat16 (int8
// and int4 also with --quantize-vision, where every layer's widths take it); int8 where every
// quantised layer's input is a multiple of 16; int4 at
// the largest group size (128, 64, 32) that divides every quantised layer's input, when one does;
// fp8 (a GPU's) when every quantised layer's widths are multiples of 16.
std::vector<ModeWeights> weight_bytes_per_mode(const ModelConfig& c);

}  // namespace qalign::model
