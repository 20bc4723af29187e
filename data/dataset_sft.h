#pragma once
// Scored records turned into training conversation records (SPEC §3.6, §6, §11.1): each sample
// asks one of the task's question phrasings and answers with the level its MOS gets from a
// labeler; DeQA-style labelers add the level probabilities.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "qalign/label_files.h"
#include "qalign/prompts.h"
#include "qalign/syllabus.h"

namespace qalign::data {

struct SftOptions {
  Task task = Task::kQuality;
  Media media = Media::kImage;
  uint64_t seed = 0;  // picks each sample's question (draw_for_sample(seed, index, questions))
};

struct SftResult {
  // In input order: {"id", "image", "conversations", "gt_score"} and, for soft targets,
  // "level_probs" (excellent … bad) and "std".
  nlohmann::ordered_json records = nlohmann::ordered_json::array();
  size_t dropped = 0;  // samples the labeler left out (score outside the range)
};

// The question list of the training files: IQA (9), VQA (8), IAA (5); aesthetics of video has
// none and throws naming `source`.
const std::vector<std::string>& sft_questions(Task task, Media media, const std::string& source);

// The human turn as the authors write it: the question, "\n", then one "<|image|>" (8 for video).
std::string sft_question_turn(const std::string& question, Media media);

// Ids are kept when they already read "<name>-><mos>", else written "<image>-><mos_text>".
// A labeler that needs_std() requires "std" on every record (error names `source` and the index).
SftResult make_sft_records(const std::vector<ScoredRecord>& records, const Labeler& labeler, const SftOptions& options,
                           const std::string& source);

}  // namespace qalign::data
