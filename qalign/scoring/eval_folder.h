#pragma once
// Who owns a `qalign eval --out` folder. job.json there records the job whose predictions the
// folder holds (model, LoRA, tokenizer and their files, task, prompt, readout, dtype, data files,
// image folder): a run resumes only that job, and refuses a folder of another job, or one
// holding files qalign did not write, naming the folder, what differs and the flag to override.
#include <nlohmann/json.hpp>
#include <string>

namespace qalign::scoring {

// name -> "SIZE bytes, modified TIME" of a file, or of each regular file directly in a folder;
// {} when the path does not exist. A name that is not UTF-8 is keyed with its odd bytes as \xHH. Size and mtime rather
// than a hash: one stat per file, where hashing would read gigabytes of weights (and a safetensors header names shapes,
// not values, so two fine-tunes share it); any rewrite of the weights (training, export, a copy) moves the mtime.
nlohmann::ordered_json file_stamps(const std::string& path);

// Makes `out` this job's: creates it, resumes it when it holds this job (or a job that scored
// nothing yet), or with `overwrite` deletes the files qalign wrote there and starts afresh.
// Fails when it holds another job's predictions (without `overwrite`) or files qalign did not
// write (with or without).
void claim_eval_folder(const std::string& out, const nlohmann::ordered_json& job, bool overwrite);

}  // namespace qalign::scoring
