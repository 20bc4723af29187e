#pragma once
// The options `qalign score` and `qalign eval` share, checked the same way before any file is read.
#include <string>

namespace qalign::scoring {

// dtype float32 | bfloat16, device cpu | cuda (and a visible GPU), batch size at least 1; a bad
// one fails naming its flag.
void check_run_options(const std::string& dtype, const std::string& device, int batch_size);

}  // namespace qalign::scoring
