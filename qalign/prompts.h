#pragma once
// The exact prompt strings of the authors' scoring paths (SPEC §3.4) and the question phrasings
// of their training files (SPEC §3.6). The prompts end where the level word would follow, so the
// score is read at the last position.
#include <string>
#include <vector>

namespace qalign {

enum class Task { kQuality, kAesthetics };
enum class Media { kImage, kVideo };

// Which upstream code path's prompt to reproduce.
enum class PromptStyle {
  // evaluate/scorer.py (QAlignScorer & co.), the default:
  // "USER: How would you rate the {task} of this {media}?\n<|image|>\nASSISTANT: The {task} of
  // the {media} is"
  kScorer,
  // MPLUGOwl2LlamaForCausalLM.score(), verbatim: its .format() arguments are swapped, giving
  // "... ASSISTANT: The {media} of the {task} is".
  kModelScore,
  // evaluate/{iqa,vqa}_eval.py, the mplug_owl2 template: a space, not a newline, before
  // ASSISTANT; aesthetics follows iaa_eval.py, which puts the image first:
  // "USER: <|image|>How would you rate the aesthetics of this {media}? ASSISTANT: ..."
  kEval,
};

// "quality" / "aesthetics", "image" / "video", "scorer" / "model_score" / "eval".
std::string task_name(Task task);
std::string media_name(Media media);
std::string prompt_style_name(PromptStyle style);
// Parse those words; an unknown one throws naming `source` and `field`.
Task parse_task(const std::string& word, const std::string& source, const std::string& field);
Media parse_media(const std::string& word, const std::string& source, const std::string& field);
PromptStyle parse_prompt_style(const std::string& word, const std::string& source, const std::string& field);

// The prompt with `placeholders` consecutive "<|image|>" where the upstream code has one (the
// video label files carry 8; the scorers splice all frames at a single one).
std::string inference_prompt(PromptStyle style, Task task, Media media, int placeholders = 1);

// The answer of the training files: "The quality of the image is good."
std::string training_answer(Task task, Media media, const std::string& level_word);

// Questions of the training files, each followed there by "\n<|image|>" (8 for video).
const std::vector<std::string>& iqa_questions();  // 9: train_koniq/spaq/kadid
const std::vector<std::string>& vqa_questions();  // 8: LSVQ, "video" for "image"/"picture"
// 5 aesthetics phrasings from the paper's figure; train_ava.json was not available to check.
const std::vector<std::string>& iaa_questions();

}  // namespace qalign
