#include "qalign/prompts.h"

#include "qalign/base/error.h"
#include "qalign/conversation.h"
#include "qalign/tokenizer.h"

namespace qalign {
namespace {

std::string repeat_placeholder(int placeholders) {
  if (placeholders < 1) fail("prompt", "placeholders", "must be at least 1");
  std::string out;
  for (int i = 0; i < placeholders; ++i) out += kImageToken;
  return out;
}

}  // namespace

std::string task_name(Task task) { return task == Task::kQuality ? "quality" : "aesthetics"; }

std::string media_name(Media media) { return media == Media::kImage ? "image" : "video"; }

std::string prompt_style_name(PromptStyle style) {
  switch (style) {
    case PromptStyle::kScorer:
      return "scorer";
    case PromptStyle::kModelScore:
      return "model_score";
    case PromptStyle::kEval:
      return "eval";
  }
  return "";
}

Task parse_task(const std::string& word, const std::string& source, const std::string& field) {
  for (Task t : {Task::kQuality, Task::kAesthetics})
    if (word == task_name(t)) return t;
  fail(source, field, "\"" + word + "\" is not a task (quality, aesthetics)");
}

Media parse_media(const std::string& word, const std::string& source, const std::string& field) {
  for (Media m : {Media::kImage, Media::kVideo})
    if (word == media_name(m)) return m;
  fail(source, field, "\"" + word + "\" is not a media type (image, video)");
}

PromptStyle parse_prompt_style(const std::string& word, const std::string& source, const std::string& field) {
  for (PromptStyle s : {PromptStyle::kScorer, PromptStyle::kModelScore, PromptStyle::kEval})
    if (word == prompt_style_name(s)) return s;
  fail(source, field, "\"" + word + "\" is not a prompt style (scorer, model_score, eval)");
}

std::string inference_prompt(PromptStyle style, Task task, Media media, int placeholders) {
  const std::string t = task_name(task), m = media_name(media);
  const std::string images = repeat_placeholder(placeholders);
  const std::string question = "How would you rate the " + t + " of this " + m + "?";
  switch (style) {
    case PromptStyle::kScorer:
      return "USER: " + question + "\n" + images + "\nASSISTANT: The " + t + " of the " + m + " is";
    case PromptStyle::kModelScore:
      return "USER: " + question + "\n" + images + "\nASSISTANT: The " + m + " of the " + t + " is";
    case PromptStyle::kEval: {
      const std::string user = task == Task::kAesthetics ? images + question : question + "\n" + images;
      return render_conversation(mplug_owl2_template(), {user, ""}) + " The " + t + " of the " + m + " is";
    }
  }
  return "";
}

std::string training_answer(Task task, Media media, const std::string& level_word) {
  return "The " + task_name(task) + " of the " + media_name(media) + " is " + level_word + ".";
}

const std::vector<std::string>& iqa_questions() {
  static const std::vector<std::string> q = {
      "How would you rate the quality of this image?",
      "What do you think about the quality of this image?",
      "What is your quality rating for this image?",
      "What's your opinion on the quality of this picture?",
      "Can you rate the quality of this picture?",
      "Could you evaluate the quality of this image?",
      "How do you assess the quality of this image?",
      "How would you judge the quality of this image?",
      "Rate the quality of this image.",
  };
  return q;
}

const std::vector<std::string>& vqa_questions() {
  static const std::vector<std::string> q = {
      "How would you rate the quality of this video?",  "What do you think about the quality of this video?",
      "What is your quality rating for this video?",    "What's your opinion on the quality of this video?",
      "Can you rate the quality of this video?",        "Could you evaluate the quality of this video?",
      "How would you judge the quality of this video?", "Rate the quality of this video.",
  };
  return q;
}

const std::vector<std::string>& iaa_questions() {
  static const std::vector<std::string> q = {
      "Can you evaluate the aesthetics of the image?", "Rate the aesthetics of this picture.",
      "How is the aesthetics of this image?",          "Can you rate the aesthetics of this picture?",
      "Please evaluate the aesthetics of the image.",
  };
  return q;
}

}  // namespace qalign
