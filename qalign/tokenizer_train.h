#pragma once
// A small LLaMA-style tokenizer learned from Q-Align's own prompts, for models trained from
// scratch (the demo): SentencePiece BPE with byte fallback and LLaMA's special ids (unk 0, bos 1,
// eos 2, no pad), written as a Hugging Face tokenizer folder that qalign::Tokenizer loads.
#include <cstdint>
#include <string>
#include <vector>

namespace qalign {

// The text a prompt tokenizer learns from: every inference prompt (all styles, tasks, media), the
// training text of every question phrasing with every level word, split where the tokenizer
// splits it (at "<|image|>", "</s>" and newlines), so each sentence is a chunk it will encode.
std::vector<std::string> prompt_corpus();

// Trains on prompt_corpus() and writes `dir`/tokenizer.model, tokenizer_config.json (legacy
// false, add_bos_token, LlamaTokenizer) and special_tokens_map.json. The vocabulary has exactly
// `vocab_size` pieces (SentencePiece fails when the corpus cannot fill it). Throws qalign::Error
// naming the folder when training fails or when a level word does not come out as one piece.
// Returns the vocabulary size.
int64_t train_prompt_tokenizer(const std::string& dir, int64_t vocab_size = 512);

}  // namespace qalign
