#include "data/dataset_sft.h"

#include "data/dataset_random.h"
#include "qalign/base/error.h"
#include "qalign/tokenizer.h"

namespace qalign::data {

const std::vector<std::string>& sft_questions(Task task, Media media, const std::string& source) {
  if (task == Task::kQuality) return media == Media::kVideo ? vqa_questions() : iqa_questions();
  if (media == Media::kImage) return iaa_questions();
  fail(source, "task", "no training questions are known for the aesthetics of videos");
}

std::string sft_question_turn(const std::string& question, Media media) {
  std::string turn = question + "\n";
  for (int i = 0; i < (media == Media::kVideo ? 8 : 1); ++i) turn += kImageToken;
  return turn;
}

SftResult make_sft_records(const std::vector<ScoredRecord>& records, const Labeler& labeler, const SftOptions& options,
                           const std::string& source) {
  const auto& questions = sft_questions(options.task, options.media, source);
  SftResult out;
  for (size_t i = 0; i < records.size(); ++i) {
    const ScoredRecord& r = records[i];
    if (labeler.needs_std() && !r.std)
      fail(source, "[" + std::to_string(i) + "].std", "missing: soft labels need the raters' standard deviation");
    const auto target = labeler.label(r.mos, r.std);
    if (!target) {
      ++out.dropped;
      continue;
    }
    const std::string& question = questions[draw_for_sample(options.seed, i, questions.size())];
    nlohmann::ordered_json rec;
    rec["id"] = mos_text_of_id(r.id) ? r.id : r.image + "->" + r.mos_text;
    rec["image"] = r.image;
    rec["conversations"] = nlohmann::ordered_json::array(
        {{{"from", "human"}, {"value", sft_question_turn(question, options.media)}},
         {{"from", "gpt"}, {"value", training_answer(options.task, options.media, level_word(target->level))}}});
    rec["gt_score"] = r.mos;
    if (!target->probs.empty()) {
      rec["level_probs"] = target->probs;
      rec["std"] = *r.std;
    }
    out.records.push_back(std::move(rec));
  }
  return out;
}

}  // namespace qalign::data
