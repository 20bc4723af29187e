// tokenizer_config.json: the input is the config of a tokenizer folder whose tokenizer.model is
// the tiny fixture's (8 KB, so a config that parses still loads quickly).
#include <filesystem>

#include "qalign/base/error.h"
#include "qalign/tokenizer.h"
#include "tests/fuzz/fuzz_input.h"

#ifndef QALIGN_TINY_TOKENIZER
#error "QALIGN_TINY_TOKENIZER (tests/fixtures/qalign-tiny/model/tokenizer.model) must be defined"
#endif

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::filesystem::copy_file(QALIGN_TINY_TOKENIZER, qalign::fuzz::scratch_dir() + "/tokenizer.model");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qalign::fuzz::write_input(data, size, "tokenizer_config.json");
  try {
    const qalign::Tokenizer tokenizer(qalign::fuzz::scratch_dir());
    // What every prompt goes through: special tokens are matched in the text.
    tokenizer.encode("<s>A photo</s> <unk>");
  } catch (const qalign::Error&) {
  }
  return 0;
}
