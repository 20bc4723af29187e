// qalign score: images and videos -> level probabilities and scores.
//
// Small jobs print rows on stdout. Large ones write --out FILE (JSON Lines or CSV) and may run
// under `qalign launch` (or torchrun, SLURM): rank r scores inputs r, r+W, r+2W, ... (a fixed
// split, so a restart finds the same shares), decoding on worker threads ahead of the model, and
// appends its rows to FILE.parts/; rank 0 merges them in input order once every rank is done.
// A restart of the same command skips every input that already has a row.
//
// Inputs are taken in chunks of --batch-size; a chunk's images form one batch and its videos
// another (each video read at its own last position). Rows are appended a chunk at a time, so
// a resumed run starts on a chunk boundary and batches exactly as an uninterrupted one.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "data/image_decode.h"
#include "data/inputs.h"
#include "data/media_type.h"
#include "data/prefetch.h"
#include "data/preprocess.h"
#include "data/video.h"
#include "qalign/compat.h"
#include "qalign/config/limits.h"
#include "qalign/error.h"
#include "qalign/io/atomic_file.h"
#include "qalign/io/lora_folder.h"
#include "qalign/io/output_guard.h"
#include "qalign/log.h"
#include "qalign/scorer.h"
#include "tools/commands.h"
#include "tools/score_parts.h"
#include "tools/score_progress.h"
#include "tools/score_rows.h"
#include "train/process_group.h"

namespace qalign::tools {

namespace {

namespace fs = std::filesystem;

struct ScoreOptions {
  std::string model, lora, tokenizer, task = "quality", dtype = "float32", device = "cpu", prompt = "scorer";
  int batch_size = 8, workers = 2, timeout_s = 3600;
  bool json = false, overwrite = false;
  std::string out, keep_list;
  std::optional<double> threshold;
  std::vector<std::string> inputs;
};

struct Job {
  int64_t index = 0;
  std::string path;
};

struct Decoded {
  Job job;
  Media media = Media::kImage;
  torch::Tensor pixels;  // [F,3,S,S]
  std::string error;     // set when the input could not be read
  double decode_s = 0, preprocess_s = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The inputs this rank scores: every world-th from its rank on, less those already done.
class Share {
 public:
  Share(const std::vector<std::string>& args, int rank, int world, const DoneSet* done)
      : stream_(args), rank_(rank), world_(world), done_(done) {}
  std::optional<Job> next() {
    while (auto path = stream_.next()) {
      const int64_t index = seen_++;
      if (index % world_ == rank_ && !(done_ && done_->contains(index))) return Job{index, std::move(*path)};
    }
    return std::nullopt;
  }
  int64_t seen() const { return seen_; }  // inputs read so far, every rank's

 private:
  data::InputStream stream_;
  int rank_, world_;
  const DoneSet* done_;
  int64_t seen_ = 0;
};

// Counts this rank's share on a thread, for the progress bar's total and ETA.
class ShareCounter {
 public:
  ShareCounter(const std::vector<std::string>& args, int rank, int world, const DoneSet* done, Progress* progress)
      : thread_([=] {
          try {
            Share share(args, rank, world, done);
            int64_t n = 0;
            while (!stop_ && share.next()) ++n;
            if (!stop_) progress->set_total(n);
          } catch (const std::exception&) {
            // The scoring loop reads the same inputs and reports the error itself.
          }
        }) {}
  ~ShareCounter() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

Decoded decode(Job& job, int64_t image_size) {
  Decoded d;
  d.job = std::move(job);
  d.media = data::is_video_path(d.job.path) ? Media::kVideo : Media::kImage;
  try {
    auto t = std::chrono::steady_clock::now();
    if (d.media == Media::kVideo) {
      const auto frames = data::load_video_frames(d.job.path);
      d.decode_s = seconds_since(t);
      t = std::chrono::steady_clock::now();
      std::vector<torch::Tensor> pixels;
      for (const auto& f : frames) pixels.push_back(data::preprocess_image(f, image_size));
      d.pixels = torch::stack(pixels);
    } else {
      const auto image = data::decode_image(d.job.path);
      d.decode_s = seconds_since(t);
      t = std::chrono::steady_clock::now();
      d.pixels = data::preprocess_image(image, image_size).unsqueeze(0);
    }
    d.preprocess_s = seconds_since(t);
  } catch (const Error& e) {  // one bad file must not end a run over millions
    d.error = e.what();
    d.pixels = torch::Tensor();
  } catch (const std::exception& e) {  // OpenCV's or the allocator's, which do not name the file
    d.error = d.job.path + ": " + e.what();
    d.pixels = torch::Tensor();
  }
  return d;
}

void print_table_row(const nlohmann::ordered_json& row) {
  if (!row["error"].is_null()) return;  // already logged
  std::printf("%-40s %-5s %6.4f %6.4f  %-9s", row["input"].get<std::string>().c_str(),
              row["media"].get<std::string>().c_str(), row["score"].get<double>(), row["score01"].get<double>(),
              row["level"].is_null() ? "-" : row["level"].get<std::string>().c_str());
  if (!row["probs"].is_null())
    for (const char* w : kLevelWords) std::printf(" %.4f", row["probs"][w].get<double>());
  std::printf("\n");
}

// Rows of one chunk, in the chunk's order.
std::vector<nlohmann::ordered_json> score_chunk(Scorer& scorer, Task task, const std::vector<Decoded>& chunk) {
  std::vector<nlohmann::ordered_json> rows(chunk.size());
  for (const Media media : {Media::kImage, Media::kVideo}) {
    std::vector<size_t> at;
    std::vector<torch::Tensor> pixels;
    for (size_t k = 0; k < chunk.size(); ++k)
      if (chunk[k].error.empty() && chunk[k].media == media) {
        at.push_back(k);
        pixels.push_back(chunk[k].pixels);
      }
    if (at.empty()) continue;
    const auto s = scorer.score(pixels, task, media);
    for (size_t b = 0; b < at.size(); ++b)
      rows[at[b]] = scored_row(chunk[at[b]].job.path, task, media, s, static_cast<int64_t>(b));
  }
  for (size_t k = 0; k < chunk.size(); ++k)
    if (!chunk[k].error.empty()) rows[k] = failed_row(chunk[k].job.path, task, chunk[k].media, chunk[k].error);
  return rows;
}

nlohmann::ordered_json job_record(const ScoreOptions& o) {
  return {{"inputs", o.inputs}, {"model", o.model},   {"lora", o.lora},  {"tokenizer", o.tokenizer},
          {"task", o.task},     {"prompt", o.prompt}, {"dtype", o.dtype}};
}

// FILE.job.json: the command that wrote FILE, and FILE's size then, so that a rerun tells its own
// finished output from a file it must not touch.
std::string job_marker(const std::string& out) { return out + ".job.json"; }

bool written_by(const std::string& out, const nlohmann::ordered_json& job) {
  if (!fs::exists(out) || !fs::exists(job_marker(out))) return false;
  try {
    const auto marker = nlohmann::ordered_json::parse(io::read_file(job_marker(out)));
    return marker.at("job") == job && marker.at("bytes").get<uintmax_t>() == fs::file_size(out);
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

void record_written(const std::string& out, const nlohmann::ordered_json& job) {
  const nlohmann::ordered_json marker = {{"job", job}, {"bytes", fs::file_size(out)}};
  io::write_file_atomic(job_marker(out), marker.dump(2) + "\n");
}

int run_score(const ScoreOptions& o) {
  const Task task = parse_task(o.task, "--task", "task");
  const PromptStyle style = parse_prompt_style(o.prompt, "--prompt", "prompt");
  if (o.dtype != "float32" && o.dtype != "bfloat16")
    fail("--dtype", "", "expected float32 or bfloat16, got " + o.dtype);
  if (o.device != "cpu" && o.device != "cuda") fail("--device", "", "expected cpu or cuda, got " + o.device);
  if (o.device == "cuda" && !compat::cuda_available())
    fail("--device", "", "cuda requested but no CUDA device is visible");
  if (o.batch_size < 1) fail("--batch-size", "", "must be at least 1");
  config::check_worker_count(o.workers, "--workers", "");
  if (!o.keep_list.empty() && !o.threshold) fail("--keep-list", "", "needs --threshold");
  if (!o.keep_list.empty() && !o.out.empty() &&
      fs::absolute(o.keep_list).lexically_normal() == fs::absolute(o.out).lexically_normal())
    fail("--keep-list", "", "is --out itself: give the list of kept inputs its own file");
  const std::optional<RowFormat> format = o.out.empty() ? std::nullopt : std::optional(row_format_of(o.out));

  const auto env = train::read_launch_env([](const char* name) { return std::getenv(name); });
  const int rank = env.rank, world = env.world_size;
  if (world > 1 && o.out.empty())
    fail("--out", "", "needed when scoring with several processes: each writes its share there");
  std::unique_ptr<train::ProcessGroup> group;
  if (world > 1) group = std::make_unique<train::ProcessGroup>(env, "gloo", std::chrono::seconds(o.timeout_s));
  auto barrier = [&] {
    if (group) group->barrier();
  };

  // Resumable output: what earlier runs of this command left in FILE.parts.
  const std::string folder = o.out.empty() ? "" : parts_folder(o.out);
  std::optional<DoneSet> done;
  std::unique_ptr<PartWriter> part;
  std::optional<io::OutputLock> lock;
  if (format) {
    if (rank == 0) lock.emplace(o.out);
    const bool resuming = fs::exists(folder);
    if (!o.overwrite && !resuming) {
      if (written_by(o.out, job_record(o))) {
        if (rank == 0) log::info(o.out, " is complete: nothing to do; --overwrite scores again");
        return 0;
      }
      for (const auto& file : {o.out, o.keep_list})
        if (!file.empty() && fs::exists(file))
          fail(file, "",
               "exists and was not written by this command (no matching " + job_marker(o.out) +
                   "); --overwrite replaces it");
    }
    barrier();
    if (rank == 0) {
      if (o.overwrite) fs::remove_all(folder);
      fs::create_directories(folder);
      check_or_record_job(folder, job_record(o));
      clean_parts(folder);
    }
    barrier();
    if (rank != 0) check_or_record_job(folder, job_record(o));
    done = scan_parts(folder);
    if (rank == 0 && done->count() > 0)
      log::info("resuming: ", done->count(), " inputs already have a row in ", folder);
    part = std::make_unique<PartWriter>(part_file(folder, rank, world));
    barrier();  // every rank has read the parts before any appends
  }

  const auto dtype = o.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  const torch::Device device = o.device == "cuda"
                                   ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank))
                                   : torch::Device(torch::kCPU);
  Scorer scorer(io::load_pretrained_with_lora(o.model, o.lora, dtype, device),
                Tokenizer(o.tokenizer.empty() ? o.model : o.tokenizer), style);
  const int64_t image_size = scorer.image_size();
  data::check_preprocessor_config(o.model, image_size);

  // Kept inputs without --out go to --keep-list, or replace the rows on stdout.
  const bool rows_on_stdout = !format && !(o.threshold && o.keep_list.empty());
  std::optional<io::AtomicWriter> keep_file;
  if (!format && o.threshold && !o.keep_list.empty()) {
    if (fs::exists(o.keep_list) && !o.overwrite) fail(o.keep_list, "", "exists; --overwrite replaces it");
    keep_file.emplace(o.keep_list);
  }
  if (rows_on_stdout && !o.json)
    std::printf("%-40s %-5s %6s %6s  %-9s %s\n", "input", "media", "score", "0..1", "level",
                "p(excellent good fair poor bad)");

  const DoneSet* done_set = done ? &*done : nullptr;
  const bool show_progress = rank == 0 && (format || ::isatty(2));
  Progress progress(show_progress);
  // Only a shown bar needs the total: the other ranks would read every input a second time for nothing.
  std::optional<ShareCounter> counter;
  if (show_progress) counter.emplace(o.inputs, rank, world, done_set, &progress);
  Share share(o.inputs, rank, world, done_set);
  data::OrderedPrefetch<Job, Decoded> prefetch([&] { return share.next(); },
                                               [&](Job& j) { return decode(j, image_size); }, o.workers,
                                               2 * o.batch_size + o.workers);
  StageTimes t;
  int64_t scored = 0, failed = 0;
  const bool keep_list_exists = !o.keep_list.empty() && fs::exists(o.keep_list);  // only then can it be an input
  const auto start = std::chrono::steady_clock::now();
  for (bool more = true; more;) {
    std::vector<Decoded> chunk;
    auto t0 = std::chrono::steady_clock::now();
    while (static_cast<int>(chunk.size()) < o.batch_size) {
      auto d = prefetch.next();
      if (!d) {
        more = false;
        break;
      }
      chunk.push_back(std::move(*d));
    }
    t.wait += seconds_since(t0);
    if (chunk.empty()) break;
    t0 = std::chrono::steady_clock::now();
    const auto rows = score_chunk(scorer, task, chunk);
    t.model += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    std::string lines;
    for (size_t k = 0; k < chunk.size(); ++k) {
      if (keep_list_exists && io::same_file(chunk[k].job.path, o.keep_list))
        fail("--keep-list", "", o.keep_list + " is one of the inputs: the list of kept inputs would replace it");
      t.decode += chunk[k].decode_s;
      t.preprocess += chunk[k].preprocess_s;
      if (rows[k]["error"].is_null()) {
        ++scored;
      } else {  // undecodable, or a model that gave no finite score
        ++failed;
        log::error("skipped: ", rows[k]["error"].get<std::string>());
      }
      if (format) {
        lines += std::to_string(chunk[k].job.index) + "\t" + rows[k].dump() + "\n";
        continue;
      }
      const bool kept = o.threshold && rows[k]["score"].is_number() && rows[k]["score"].get<double>() >= *o.threshold;
      if (rows_on_stdout) {
        if (o.json)
          std::cout << rows[k].dump() << "\n";
        else
          print_table_row(rows[k]);
      } else if (kept) {
        std::cout << chunk[k].job.path << "\n";
      }
      if (kept && keep_file) {
        const std::string line = chunk[k].job.path + "\n";
        keep_file->write(line.data(), line.size());
      }
    }
    if (part) part->append_chunk(lines);
    std::cout.flush();
    t.write += seconds_since(t0);
    progress.update(scored + failed);
  }
  progress.finish(scored + failed);
  const int64_t inputs = share.seen();
  if (inputs == 0) fail("INPUT", "", "no images or videos to score");
  if (keep_file) keep_file->commit();
  if (part) part->close();

  // Every rank's figures, summed on rank 0.
  auto totals = torch::tensor(
      {static_cast<double>(scored), static_cast<double>(failed), t.decode, t.preprocess, t.model, t.wait, t.write},
      torch::kFloat64);
  if (group) group->allreduce_sum(totals);
  const double wall = seconds_since(start);
  if (rank != 0) return 0;
  const auto* v = totals.data_ptr<double>();
  const StageTimes sum{v[2], v[3], v[4], v[5], v[6]};
  log::info(summary_line(static_cast<int64_t>(v[0]), static_cast<int64_t>(v[1]), wall, sum, o.workers * world),
            world > 1 ? " (stage times summed over " + std::to_string(world) + " processes)" : "");
  if (!format) {
    if (failed) log::error(failed, " of ", inputs, " inputs could not be scored");
    return failed ? 1 : 0;
  }
  const auto merged = merge_parts(folder, o.out, *format, inputs, o.threshold, o.keep_list);
  record_written(o.out, job_record(o));
  fs::remove_all(folder);
  log::info("wrote ", merged.rows, " rows to ", o.out,
            o.threshold ? ", " + std::to_string(merged.kept) + " inputs at or above the threshold" : "");
  if (merged.failed)
    log::error(merged.failed, " of ", merged.rows, " inputs could not be scored: their rows carry the error");
  return merged.failed ? 1 : 0;
}

}  // namespace

Command add_score(CLI::App& app) {
  auto o = std::make_shared<ScoreOptions>();
  auto* cmd = app.add_subcommand("score", "Score images and videos (quality or aesthetics, 1-5 and 0-1)");
  cmd->add_option("--model", o->model, "Model folder (config.json + weights)")->required();
  cmd->add_option("--lora", o->lora, "LoRA folder (PEFT or the authors' layout) applied to --model and merged");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder (default: the model folder)");
  cmd->add_option("--task", o->task, "quality | aesthetics")->capture_default_str();
  cmd->add_option("--prompt", o->prompt, "scorer (the released scorer's prompt) | eval (the evaluation scripts')")
      ->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "Items per forward pass")->capture_default_str();
  cmd->add_option("--workers", o->workers, "Threads decoding and pre-processing ahead of the model (0: none)")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "float32 | bfloat16")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu | cuda (each process of a launch takes its local GPU)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "One JSON object per line on stdout");
  cmd->add_option("--out", o->out,
                  "Write the rows to FILE (.jsonl or .csv), resumably: rerunning the same command finishes the job")
      ->type_name("FILE");
  cmd->add_flag("--overwrite", o->overwrite, "With --out: start over, discarding earlier rows");
  cmd->add_option("--threshold", o->threshold, "Keep the inputs scoring at least T (1-5 scale)")->type_name("T");
  cmd->add_option("--keep-list", o->keep_list, "Where the kept inputs go, one per line (default: stdout)")
      ->type_name("FILE");
  cmd->add_option("--timeout", o->timeout_s, "Seconds a process waits for the others at the start and the end")
      ->capture_default_str();
  cmd->add_option("inputs", o->inputs, "Image or video files, folders (recursed), @list.txt (one path per line)")
      ->required();
  return {cmd, [o] { return run_score(*o); }};
}

}  // namespace qalign::tools
