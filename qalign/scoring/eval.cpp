// `qalign eval` (qalign/scoring/eval.h): the test files scored, resumably, and the reports.
#include "qalign/scoring/eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/base/utf8.h"
#include "qalign/io/csv.h"
#include "qalign/io/lora_folder.h"
#include "qalign/label_files.h"
#include "qalign/metrics.h"
#include "qalign/preprocessor_config.h"
#include "qalign/scorer.h"
#include "qalign/scoring/eval_folder.h"
#include "qalign/scoring/records.h"
#include "qalign/scoring/run_options.h"

namespace qalign::scoring {

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

struct Prediction {
  std::string dataset;
  size_t index = 0;  // record position in the dataset's file: duplicates of a path stay distinct
  std::string image;
  double gt_score = 0, score = 0, score01 = 0;
};

ordered_json to_json(const Prediction& p) {
  return {{"dataset", p.dataset},   {"index", p.index}, {"image", p.image},
          {"gt_score", p.gt_score}, {"score", p.score}, {"score01", p.score01}};
}

// The rows a previous run left. An unreadable last line is what an interrupted write leaves:
// it is dropped (and the file rewritten without it); an unreadable line before it is an error.
std::vector<Prediction> read_predictions(const std::string& path) {
  std::vector<Prediction> rows;
  if (!fs::exists(path)) return rows;
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  std::string kept;
  for (size_t i = 0; i < lines.size(); ++i) {
    try {
      const auto j = nlohmann::json::parse(lines[i]);
      rows.push_back({j.at("dataset").get<std::string>(), j.at("index").get<size_t>(), j.at("image").get<std::string>(),
                      j.at("gt_score").get<double>(), j.at("score").get<double>(), j.at("score01").get<double>()});
      kept += lines[i] + "\n";
    } catch (const nlohmann::json::exception& e) {
      if (i + 1 < lines.size()) fail(path, "line " + std::to_string(i + 1), e.what());
      log::warn(path, ": dropping a torn last line left by an interrupted run");
      io::write_file_atomic(path, kept);
    }
  }
  return rows;
}

std::string number(double v, int digits = 4) {
  if (!std::isfinite(v)) return "undefined";
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

ordered_json json_number(double v) { return std::isfinite(v) ? ordered_json(v) : ordered_json(nullptr); }

void write_reports(const std::string& out, const std::vector<std::string>& datasets,
                   const std::map<std::string, std::vector<Prediction>>& by_dataset, bool lower_is_better) {
  ordered_json results = ordered_json::object();
  std::string csv = "dataset,index,image,gt_score,score,score01\n";
  std::string md =
      "| dataset | n | SRCC | PLCC | KRCC | PLCC (logistic) | RMSE (logistic) |\n"
      "|---|---:|---:|---:|---:|---:|---:|\n";
  std::printf("%-24s %6s %7s %7s %7s %9s %9s\n", "dataset", "n", "srcc", "plcc", "krcc", "plcc_log", "rmse_log");
  for (const auto& name : datasets) {
    const auto& rows = by_dataset.at(name);
    std::vector<double> pred, gt;
    for (const auto& p : rows) {
      pred.push_back(p.score);
      gt.push_back(p.gt_score);
      csv += io::csv_field(p.dataset) + "," + std::to_string(p.index) + "," + io::csv_field(p.image) + "," +
             python_float_text(p.gt_score) + "," + python_float_text(p.score) + "," + python_float_text(p.score01) +
             "\n";
    }
    auto a = metrics::agreement(pred, gt);
    // DMOS: report magnitudes as the authors do. The fitted curve already turns the sign round.
    if (lower_is_better) {
      a.srcc = -a.srcc;
      a.plcc = -a.plcc;
      a.krcc = -a.krcc;
    }
    results[name] = {{"n", a.n},
                     {"srcc", json_number(a.srcc)},
                     {"plcc", json_number(a.plcc)},
                     {"krcc", json_number(a.krcc)},
                     {"plcc_logistic", json_number(a.plcc_logistic)},
                     {"rmse_logistic", json_number(a.rmse_logistic)}};
    if (!a.undefined.empty()) {
      results[name]["undefined"] = a.undefined;
      log::warn(name, ": SRCC, PLCC and KRCC are undefined (null in results.json): ", a.undefined);
    }
    md += "| " + name + " | " + std::to_string(a.n) + " | " + number(a.srcc) + " | " + number(a.plcc) + " | " +
          number(a.krcc) + " | " + number(a.plcc_logistic) + " | " + number(a.rmse_logistic) + " |\n";
    std::printf("%-24s %6zu %7s %7s %7s %9s %9s\n", name.c_str(), a.n, number(a.srcc).c_str(), number(a.plcc).c_str(),
                number(a.krcc).c_str(), number(a.plcc_logistic).c_str(), number(a.rmse_logistic).c_str());
  }
  io::write_file_atomic((fs::path(out) / "results.json").string(), results.dump(2) + "\n");
  io::write_file_atomic((fs::path(out) / "predictions.csv").string(), csv);
  io::write_file_atomic((fs::path(out) / "results.md").string(), md);
}

std::string absolute(const std::string& path) {
  return path.empty() ? path : fs::weakly_canonical(fs::absolute(path)).string();
}

// A path as job.json holds it: JSON is text, so a name that is not UTF-8 has its odd bytes as \xHH.
std::string recorded(const std::string& path) { return utf8_escaped(absolute(path)); }

// The job a folder's predictions belong to: what changes a score, so resuming reuses only its own.
ordered_json job_record(const EvalJob& o) {
  ordered_json data = ordered_json::array(), data_files = ordered_json::object();
  for (const auto& f : o.data) {
    data.push_back(recorded(f));
    data_files.update(file_stamps(absolute(f)));
  }
  // An empty path stamps nothing: the model folder's stamps already cover its own tokenizer.
  auto stamps = [](const std::string& path) { return path.empty() ? ordered_json::object() : file_stamps(path); };
  ordered_json job = {{"model", recorded(o.model)},
                      {"model weights", stamps(absolute(o.model))},
                      {"LoRA", recorded(o.lora)},
                      {"LoRA weights", stamps(absolute(o.lora))},
                      {"tokenizer", recorded(o.tokenizer)},
                      {"tokenizer files", stamps(absolute(o.tokenizer))},
                      {"task", o.task},
                      {"prompt", o.prompt},
                      {"readout", o.readout},
                      {"dtype", o.dtype},
                      {"data", data},
                      {"data files", data_files},
                      {"image folder", recorded(o.image_folder)}};
  // Quantised scores differ from float ones; float jobs keep the record earlier runs wrote.
  if (o.quantize.mode != "none") job["quantize"] = {{"mode", o.quantize.mode}, {"group_size", o.quantize.group_size}};
  if (o.quantize.mode != "none" && o.quantize.vision) job["quantize"]["vision"] = true;
  return job;
}

}  // namespace

int evaluate(const EvalJob& o, const PixelLoader& load) {
  const Task task = parse_task(o.task, "--task", "task");
  const PromptStyle style = parse_prompt_style(o.prompt, "--prompt", "prompt");
  check_run_options(o.dtype, o.device, o.batch_size);
  model::check_quantize_options(o.quantize, o.device);

  // Read every file first, so a malformed one fails before any model time is spent.
  std::vector<std::string> datasets;
  std::map<std::string, std::vector<ScoredRecord>> records;
  std::map<std::string, std::string> files;
  for (const auto& file : o.data) {
    const auto name = dataset_name(file);
    if (records.count(name)) fail(file, "", "two --data files are both named \"" + name + "\"");
    datasets.push_back(name);
    files[name] = file;
    records[name] = read_scored_records(file, o.image_folder);
    check_enough_items(file, records[name].size(), records[name].size());
  }

  claim_eval_folder(o.out, job_record(o), o.overwrite);
  const std::string jsonl = (fs::path(o.out) / "predictions.jsonl").string();
  std::map<std::string, std::vector<Prediction>> by_dataset;
  std::map<std::string, std::vector<bool>> done;
  for (const auto& name : datasets) done[name].assign(records[name].size(), false);
  size_t resumed = 0;
  for (auto& p : read_predictions(jsonl)) {
    if (!records.count(p.dataset)) continue;  // a dataset this run does not ask for
    const auto& recs = records[p.dataset];
    if (p.index >= recs.size() || recs[p.index].image != p.image)
      fail(jsonl, p.dataset + "[" + std::to_string(p.index) + "]",
           "does not match the data file (" + p.image + "); the file changed since: use another --out");
    if (done[p.dataset][p.index]) continue;
    done[p.dataset][p.index] = true;
    by_dataset[p.dataset].push_back(std::move(p));
    ++resumed;
  }
  if (resumed) log::info("resuming: ", resumed, " items already scored in ", jsonl);

  auto loaded = io::load_pretrained_with_lora(
      o.model, o.lora, o.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32,
      o.device == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU), o.quantize);
  Scorer scorer(loaded, Tokenizer(o.tokenizer.empty() ? o.model : o.tokenizer), style,
                parse_readout(o.readout, "--readout"));
  check_preprocessor_config(o.model, scorer.image_size());
  std::ofstream append(jsonl, std::ios::app);
  if (!append) fail(jsonl, "", "cannot open for appending");
  size_t failed = 0;
  for (const auto& name : datasets) {
    const auto& recs = records[name];
    log::info(name, ": ", recs.size(), " items, ", recs.size() - by_dataset[name].size(), " to score");
    size_t scored = 0, batches = 0;
    failed +=
        score_records(scorer, recs, done[name], o.batch_size, task, load, [&](const std::vector<ItemScore>& batch) {
          for (const auto& s : batch) {
            const auto& r = recs[s.index];
            Prediction p{name, s.index, r.image, r.mos, s.score, s.score01};
            append << to_json(p).dump() << "\n";
            by_dataset[name].push_back(std::move(p));
          }
          append.flush();
          if (!append) fail(jsonl, "", "write failed (disk full?)");
          scored += batch.size();
          if (++batches % 10 == 0) log::info(name, ": scored ", scored, " this run");
        });
    log::info(name, ": scored ", scored, " this run");
    std::sort(by_dataset[name].begin(), by_dataset[name].end(),
              [](const Prediction& a, const Prediction& b) { return a.index < b.index; });
  }
  for (const auto& name : datasets) check_enough_items(files[name], by_dataset[name].size(), records[name].size());
  write_reports(o.out, datasets, by_dataset, o.lower_is_better);
  log::info("wrote ", (fs::path(o.out) / "results.json").string(), ", results.md, predictions.jsonl, predictions.csv");
  if (failed)
    log::error(failed, " items could not be scored; their datasets are reported without them (rerun to retry)");
  return failed ? 1 : 0;
}

}  // namespace qalign::scoring
