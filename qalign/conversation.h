#pragma once
// Conversation templates of the authors' conversation.py, and the supervised training text built
// from a label-file conversation exactly as train_mem.py does it: preprocess_multimodal (the
// placeholder normalisation), preprocess_v1 (ids and the loss mask) and
// DataCollatorForSupervisedDataset (right padding).
//
// Shapes: B = samples in a batch, L = longest sample (ids, -200 placeholders included).
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "qalign/tokenizer.h"

namespace qalign {

// Label value whose position the loss ignores.
constexpr int64_t kIgnoreIndex = -100;

// SeparatorStyle TWO (with system text) / TWO_NO_SYS: roles alternate USER, ASSISTANT; a user
// turn ends with `sep`, an assistant turn with `sep2`.
struct ConversationTemplate {
  std::string system;  // written first, followed by `sep`, when with_system
  bool with_system = true;
  std::string user = "USER";
  std::string assistant = "ASSISTANT";
  std::string sep = " ";
  std::string sep2 = "</s>";
};

// conv_vicuna_v1: what training uses (`--version v1`).
const ConversationTemplate& vicuna_v1_template();
// conv_mplug_owl2: what the benchmark scripts (iqa/iaa/vqa_eval.py) build prompts with.
const ConversationTemplate& mplug_owl2_template();

// Conversation.get_prompt: messages alternate user, assistant, starting with the user; an empty
// message is an open turn, written "ROLE:" with no separator.
std::string render_conversation(const ConversationTemplate& tmpl, const std::vector<std::string>& messages);

// One turn of a label file's "conversations": from is "human" or "gpt".
struct Turn {
  std::string from;
  std::string value;
};

// preprocess_multimodal: every turn holding "<|image|>" loses all of them, is stripped, and gets
// "<|image|>\n" in front (so 8 video placeholders, or SPAQ's merged questions, become one).
std::vector<Turn> normalize_image_placeholders(std::vector<Turn> turns);

struct SupervisedSample {
  std::string prompt;              // the vicuna_v1 text that was tokenised
  std::vector<int64_t> input_ids;  // with kImageTokenIndex where the image goes
  std::vector<int64_t> labels;     // input_ids, kIgnoreIndex up to and including "ASSISTANT:"
  // Upstream's length check failed (it printed "tokenization mismatch"): every label is ignored.
  bool tokenization_mismatch = false;
};

// LazySupervisedDataset.__getitem__ + preprocess_v1 for one sample. With has_image the turns are
// normalised first and tokenised with tokenizer_image_token; without, the text is truncated to
// model_max_length as upstream does. `model_max_length` is the training value (2048 in the
// authors' scripts), which also bounds upstream's mismatch check.
SupervisedSample build_supervised_sample(const Tokenizer& tokenizer, std::vector<Turn> turns, bool has_image,
                                         int64_t model_max_length);

struct SupervisedBatch {
  torch::Tensor input_ids;       // [B, L] int64, right-padded with pad_id
  torch::Tensor labels;          // [B, L] int64, right-padded with kIgnoreIndex
  torch::Tensor attention_mask;  // [B, L] bool, input_ids != pad_id
};

// DataCollatorForSupervisedDataset: pad to the longest sample, then cut to model_max_length.
SupervisedBatch collate_supervised(const std::vector<SupervisedSample>& samples, int64_t pad_id,
                                   int64_t model_max_length);

}  // namespace qalign
