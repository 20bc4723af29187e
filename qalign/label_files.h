#pragma once
// Readers for the authors' label files (SPEC §11): training conversation records and scored test
// records, each a JSON array of objects. Paths are kept as written and also resolved against an
// image folder (train_mem.py's --image_folder, the eval scripts' data root). A malformed record
// throws qalign::Error naming the file, the record index and the field: "FILE: [12].image: ...".
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qalign/conversation.h"

namespace qalign {

// A training sample (§11.1): what LazySupervisedDataset reads.
struct TrainingRecord {
  std::string id;                   // "" when absent
  std::vector<std::string> images;  // as written: one path, several (one multi-image sample) or none (text only)
  std::vector<std::string> paths;   // the same resolved against the image folder
  std::vector<Turn> conversations;  // alternating human, gpt
  std::optional<double> gt_score;   // the record's gt_score (number or numeric string)
  // gt_score, or the MOS after "->" in the id when that parses; what the syllabus labels.
  std::optional<double> mos;
  // "level_probs" (excellent … bad, as `make-sft --soft-labels` and DeQA-Score write them): the
  // sample's soft target; empty when the record has none.
  std::vector<double> level_probs;

  bool has_image() const { return !images.empty(); }
  // A single path that is a video (decoded at 1 fps instead of read as a picture), by the rule
  // every command uses (is_video_path: the file's leading bytes, else its extension); opens it.
  bool is_video() const;
  // The same judged by the name alone, without opening the file: for estimates over every record
  // (the memory plan), where opening a million files would cost minutes.
  bool named_as_video() const;
};

// A scored sample in any of the four test shapes (§11.2): path from "image", else "img_path";
// MOS from "gt_score" (number or string), else from the id after "->" (KADID).
struct ScoredRecord {
  std::string id;     // "" when absent
  std::string image;  // as written
  std::string path;   // resolved against the image folder
  double mos = 0;
  // The MOS as the source writes it, for "<image>-><mos>" ids: the string gt_score, the id's text
  // when it denotes the same number, else the number as Python's json module writes it.
  std::string mos_text;
  std::optional<double> std;  // raters' standard deviation, when the record has "std"
  // Whether `path` is a video, by the rule every command uses (is_video_path); opens the file.
  bool is_video() const;
};

// Label files are read record by record; the bound keeps a mistaken path (a dump, a video) from
// filling memory: 1 GiB is about four million records of the authors' training files.
constexpr uint64_t kMaxLabelFileBytes = 1ull << 30;

// A JSON array read from `file` (errors name the file and the parser's position).
nlohmann::json read_json_array(const std::string& file);

std::vector<TrainingRecord> parse_training_records(const nlohmann::json& array, const std::string& source,
                                                   const std::string& image_folder = "");
std::vector<TrainingRecord> read_training_records(const std::string& file, const std::string& image_folder = "");

std::vector<ScoredRecord> parse_scored_records(const nlohmann::json& array, const std::string& source,
                                               const std::string& image_folder = "");
std::vector<ScoredRecord> read_scored_records(const std::string& file, const std::string& image_folder = "");

// `rel` under `folder` (os.path.join: an absolute `rel`, or an empty folder, leaves it as is).
std::string resolve_path(const std::string& folder, const std::string& rel);
// The text after the last "->" of an id, or nullopt when there is none.
std::optional<std::string> mos_text_of_id(const std::string& id);
// A MOS written as text; whitespace around it is allowed, anything else that is not a finite
// number throws naming `source` and `field`.
double parse_mos(const std::string& text, const std::string& source, const std::string& field);
// repr(float) of Python, which json.dump writes: shortest round-trip digits, "77.3836206897",
// "5.0", "1e-05", "1e+16".
std::string python_float_text(double value);

}  // namespace qalign
