#pragma once
// A tokenizer used with a model it did not come with (init's --tokenizer, bench's): every piece's
// id must be a row of the model's embedding, or the first lookup fails deep in LibTorch.
#include <string>

#include "qalign/model/config.h"
#include "qalign/tokenizer.h"

namespace qalign::tools {

// Fails naming `source` (the model's config or preset) and vocab_size when the tokenizer in
// `tokenizer_dir` has more pieces than the model has rows.
void check_tokenizer_fits(const Tokenizer& tokenizer, const std::string& tokenizer_dir,
                          const model::ModelConfig& config, const std::string& source);

}  // namespace qalign::tools
