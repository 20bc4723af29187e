// qalign data make-sft | preview: build training label files from scored records, and show
// exactly what the trainer makes of a label file.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "data/dataset_sft.h"
#include "qalign/base/atomic_file.h"
#include "qalign/base/log.h"
#include "qalign/conversation.h"
#include "qalign/io/output_guard.h"
#include "qalign/label_files.h"
#include "qalign/soft_labels.h"
#include "qalign/syllabus.h"
#include "qalign/tokenizer.h"
#include "tools/commands.h"

namespace qalign::tools {

namespace {

struct MakeSftArgs {
  std::string input, out, task = "quality", media = "image", preset, soft, out_of_range = "drop";
  std::vector<double> range;
  uint64_t seed = 0;
  bool overwrite = false;
};

struct PreviewArgs {
  std::string data, tokenizer;
  bool json = false, collate = false;
  int64_t model_max_length = 2048;
};

// --range, else --preset, else from the data: the authors' order statistics for one-hot levels,
// DeQA-Score's min and max for soft ones.
MosRange choose_range(const MakeSftArgs& a, const std::vector<ScoredRecord>& records) {
  if (!a.range.empty()) return {a.range[0], a.range[1]};
  if (!a.preset.empty()) return preset_range(a.preset, "--preset", "");
  std::vector<double> scores;
  for (const auto& r : records) scores.push_back(r.mos);
  return a.soft.empty() ? order_statistic_range(scores, a.input) : min_max_range(scores, a.input);
}

int run_make_sft(const MakeSftArgs& a) {
  io::require_new_file(a.out, "--out", a.overwrite, {{"--input", a.input}});
  const auto records = read_scored_records(a.input);
  const MosRange range = choose_range(a, records);
  const OutOfRange policy = parse_out_of_range(a.out_of_range, "--out-of-range", "");
  std::unique_ptr<Labeler> labeler;
  if (a.soft.empty()) {
    labeler = std::make_unique<OneHotLabeler>(Syllabus(range, policy, "--range"));
  } else {
    SoftLabelOptions options;
    options.density = parse_density(a.soft, "--soft-labels", "");
    labeler = std::make_unique<SoftLabeler>(range, policy, options, "--range");
  }
  data::SftOptions options;
  options.task = parse_task(a.task, "--task", "");
  options.media = parse_media(a.media, "--media", "");
  options.seed = a.seed;
  const auto result = data::make_sft_records(records, *labeler, options, a.input);

  // One record per line: the authors' files are single-line arrays, this stays diffable.
  std::string text = "[";
  for (size_t i = 0; i < result.records.size(); ++i) text += (i ? ",\n" : "\n") + result.records[i].dump();
  text += "\n]\n";
  io::write_file_atomic(a.out, text);
  log::info("wrote ", result.records.size(), " records to ", a.out, " (range ", range.min, " … ", range.max, ", ",
            result.dropped, " dropped out of range)");
  return 0;
}

int run_preview(const PreviewArgs& a) {
  const Tokenizer tokenizer(a.tokenizer);
  const auto records = read_training_records(a.data);
  std::vector<SupervisedSample> samples;
  for (const auto& r : records) {
    samples.push_back(build_supervised_sample(tokenizer, r.conversations, r.has_image(), a.model_max_length));
    const auto& s = samples.back();
    if (s.tokenization_mismatch) log::warn(a.data, ": ", r.id, ": tokenization mismatch, every label ignored");
    if (a.json) {
      nlohmann::ordered_json line;
      line["id"] = r.id;
      line["prompt"] = s.prompt;
      line["input_ids"] = s.input_ids;
      line["labels"] = s.labels;
      line["tokenization_mismatch"] = s.tokenization_mismatch;
      std::cout << line.dump() << "\n";
    } else {
      std::cout << "# " << r.id << "\n"
                << s.prompt << "\ninput_ids: " << nlohmann::json(s.input_ids).dump()
                << "\nlabels: " << nlohmann::json(s.labels).dump() << "\n\n";
    }
  }
  if (a.collate && !samples.empty()) {
    const auto batch = collate_supervised(samples, tokenizer.pad_id(), a.model_max_length);
    const auto rows = [](const torch::Tensor& t) {
      const auto c = t.to(torch::kLong).contiguous();
      std::vector<std::vector<int64_t>> out(c.size(0));
      for (int64_t i = 0; i < c.size(0); ++i)
        out[i].assign(c[i].data_ptr<int64_t>(), c[i].data_ptr<int64_t>() + c.size(1));
      return out;
    };
    nlohmann::ordered_json b;
    b["input_ids"] = rows(batch.input_ids);
    b["labels"] = rows(batch.labels);
    b["attention_mask"] = rows(batch.attention_mask);
    std::cout << (a.json ? nlohmann::ordered_json{{"batch", b}}.dump() : "batch: " + b.dump()) << "\n";
  }
  return 0;
}

}  // namespace

Command add_data(CLI::App& app) {
  auto* cmd = app.add_subcommand("data", "Build training label files and preview what the trainer reads");
  cmd->require_subcommand(1);

  auto sft = std::make_shared<MakeSftArgs>();
  auto* make = cmd->add_subcommand("make-sft", "Turn scored records (any test-file shape) into training conversations");
  make->add_option("--input", sft->input,
                   "Scored records: JSON array with image|img_path and gt_score (or id \"…->MOS\")")
      ->required();
  make->add_option("--out", sft->out, "Training records to write (JSON array; a new file)")->required();
  make->add_flag("--overwrite", sft->overwrite, "Replace an existing --out file");
  make->add_option("--task", sft->task, "quality | aesthetics")->capture_default_str();
  make->add_option("--media", sft->media, "image | video (8 placeholders, video wording)")->capture_default_str();
  auto* range = make->add_option("--range", sft->range, "MIN MAX of the level scale")->expected(2);
  make->add_option("--preset", sft->preset, "Range of the authors' files: koniq | spaq | kadid")->excludes(range);
  make->add_option("--soft-labels", sft->soft, "DeQA-Score level probabilities from gt_score and std: pdf | cdf");
  make->add_option("--out-of-range", sft->out_of_range, "drop | clamp scores outside the range")->capture_default_str();
  make->add_option("--seed", sft->seed, "Seed of the per-sample question choice")->capture_default_str();

  auto pv = std::make_shared<PreviewArgs>();
  auto* preview = cmd->add_subcommand("preview", "Prompt, input_ids and labels per record, as the trainer builds them");
  preview->add_option("--data", pv->data, "Training records (JSON array)")->required();
  preview->add_option("--tokenizer", pv->tokenizer, "Tokenizer folder or tokenizer.model")->required();
  preview->add_flag("--json", pv->json,
                    "One JSON object per line: id, prompt, input_ids, labels, tokenization_mismatch");
  preview->add_flag("--collate", pv->collate, "Also print the padded batch of all records");
  preview->add_option("--model-max-length", pv->model_max_length, "Training model_max_length")->capture_default_str();

  return {cmd, [make, sft, pv]() { return make->parsed() ? run_make_sft(*sft) : run_preview(*pv); }};
}

}  // namespace qalign::tools
