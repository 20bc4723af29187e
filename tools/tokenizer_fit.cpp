#include "tools/tokenizer_fit.h"

#include "qalign/base/error.h"

namespace qalign::tools {

void check_tokenizer_fits(const Tokenizer& tokenizer, const std::string& tokenizer_dir,
                          const model::ModelConfig& config, const std::string& source) {
  if (tokenizer.vocab_size() > config.vocab_size)
    fail(source, "vocab_size",
         std::to_string(config.vocab_size) + " is smaller than the tokenizer's " +
             std::to_string(tokenizer.vocab_size()) + " pieces (" + tokenizer_dir +
             "): give the tokenizer the model was made with (--tokenizer)");
}

}  // namespace qalign::tools
