// `qalign score` (qalign/scoring/job.h): the job on one rank, from its options to the merged file.
#include "qalign/scoring/job.h"

#include <limits.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/base/prefetch.h"
#include "qalign/config/limits.h"
#include "qalign/io/lora_folder.h"
#include "qalign/io/output_guard.h"
#include "qalign/media_type.h"
#include "qalign/preprocessor_config.h"
#include "qalign/scorer.h"
#include "qalign/scoring/inputs.h"
#include "qalign/scoring/job_record.h"
#include "qalign/scoring/parts.h"
#include "qalign/scoring/progress.h"
#include "qalign/scoring/rows.h"
#include "qalign/scoring/run_options.h"

namespace qalign::scoring {

namespace {

namespace fs = std::filesystem;

struct Input {
  int64_t index = 0;
  std::string path;
};

struct Decoded {
  Input input;
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
  Share(const InputSource& inputs, int rank, int world, const DoneSet* done)
      : next_(inputs()), rank_(rank), world_(world), done_(done) {}
  std::optional<Input> next() {
    while (auto path = next_()) {
      const int64_t index = seen_++;
      digest_.add(*path);
      if (index % world_ == rank_ && !(done_ && done_->contains(index))) return Input{index, std::move(*path)};
    }
    return std::nullopt;
  }
  int64_t seen() const { return seen_; }  // inputs read so far, every rank's
  const InputDigest& digest() const { return digest_; }

 private:
  NextInput next_;
  int rank_, world_;
  const DoneSet* done_;
  int64_t seen_ = 0;
  InputDigest digest_;
};

// Counts this rank's share on a thread, for the progress bar's total and ETA.
class ShareCounter {
 public:
  ShareCounter(const InputSource& inputs, int rank, int world, const DoneSet* done, Progress* progress)
      : thread_([=] {
          try {
            Share share(inputs, rank, world, done);
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

Decoded read_input(const Decoder& decode, Input& input, int64_t image_size) {
  Decoded d;
  d.input = std::move(input);
  if (d.input.path.size() >= PATH_MAX) {  // the system refuses it before any file is looked up
    d.error = d.input.path + ": the path is " + std::to_string(d.input.path.size()) +
              " bytes, over the system's limit of " + std::to_string(PATH_MAX - 1) + ": no file can be opened by it";
  } else {
    try {
      auto r = decode(d.input.path, image_size);
      d.media = r.media;
      d.pixels = std::move(r.pixels);
      d.decode_s = r.decode_s;
      d.preprocess_s = r.preprocess_s;
    } catch (const Error& e) {  // one bad file must not end a run over millions
      d.error = e.what();
    } catch (const std::exception& e) {  // OpenCV's or the allocator's, which do not name the file
      d.error = d.input.path + ": " + e.what();
    }
  }
  if (!d.error.empty()) d.media = is_video_path(d.input.path) ? Media::kVideo : Media::kImage;
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
      rows[at[b]] = scored_row(chunk[at[b]].input.path, task, media, s, static_cast<int64_t>(b));
  }
  for (size_t k = 0; k < chunk.size(); ++k)
    if (!chunk[k].error.empty()) rows[k] = failed_row(chunk[k].input.path, task, chunk[k].media, chunk[k].error);
  return rows;
}

// FILE.job.json: the job that wrote FILE (job_record.h), the inputs it read and FILE's size then,
// so that a rerun tells its own finished output from another job's or a file it must not touch.
std::string job_marker(const std::string& out) { return out + ".job.json"; }

// The marker of FILE when FILE is still what the job recorded in it wrote.
std::optional<nlohmann::ordered_json> finished_marker(const std::string& out) {
  std::error_code ec;
  if (!fs::exists(out, ec) || !fs::exists(job_marker(out), ec)) return std::nullopt;
  try {
    auto marker = nlohmann::ordered_json::parse(io::read_file(job_marker(out)));
    if (marker.at("bytes").get<uintmax_t>() != fs::file_size(out)) return std::nullopt;
    return marker;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

void record_written(const std::string& out, const nlohmann::ordered_json& job, const InputDigest& inputs) {
  const nlohmann::ordered_json marker = {{"job", job}, {"inputs", inputs.value()}, {"bytes", fs::file_size(out)}};
  io::write_file_atomic(job_marker(out), marker.dump(2) + "\n");
}

// Fails unless FILE, finished by an earlier run, holds the rows of this job and these inputs
// (read once more, for their digest), naming what differs.
void check_same_job(const std::string& out, const nlohmann::ordered_json& marker, const nlohmann::ordered_json& job,
                    const InputSource& inputs) {
  const std::string redo = "; --overwrite scores again, or give another --out";
  if (const auto d = first_difference(marker.value("job", nlohmann::ordered_json()), job))
    fail(out, "", "holds the rows of another job (" + d->field + ": " + d->there + " then, " + d->now + " now)" + redo);
  InputDigest digest;
  const NextInput next = inputs();
  while (auto name = next()) digest.add(*name);
  const auto then = marker.value("inputs", nlohmann::ordered_json()), now = digest.value();
  if (then == now) return;
  const std::string count = now["count"].dump();
  const std::string was = then.is_object() && then.contains("count") ? then["count"].dump() : "unrecorded";
  fail(out, "",
       "holds the rows of other inputs (" +
           (was == count ? count + " then and now, named otherwise" : was + " then, " + count + " now") +
           ": a folder or list changed since)" + redo);
}

// A process group of the launch as the job's Collective.
class GroupCollective : public Collective {
 public:
  GroupCollective(const distributed::LaunchEnv& env, std::chrono::seconds timeout)
      : group_(env, "gloo", timeout, torch::kCPU, {timeout, "--timeout"}) {}
  void barrier() override { group_.barrier(); }
  void allreduce_sum(torch::Tensor& t) override { group_.allreduce_sum(t); }

 private:
  distributed::ProcessGroup group_;
};

}  // namespace

InputSource input_stream(std::vector<std::string> args) {
  return [args = std::move(args)]() -> NextInput {
    auto stream = std::make_shared<InputStream>(args);
    return [stream] { return stream->next(); };
  };
}

Launch launch_from_environment() {
  return {[] { return distributed::read_launch_env([](const char* name) { return std::getenv(name); }); },
          [](const distributed::LaunchEnv& env, std::chrono::seconds timeout) {
            return std::make_shared<GroupCollective>(env, timeout);
          }};
}

int score(const ScoreJob& o, const InputSource& inputs, const Decoder& decode, const Launch& launch) {
  const Task task = parse_task(o.task, "--task", "task");
  const PromptStyle style = parse_prompt_style(o.prompt, "--prompt", "prompt");
  check_run_options(o.dtype, o.device, o.batch_size);
  model::check_quantize_options(o.quantize, o.device);
  config::check_worker_count(o.workers, "--workers", "");
  if (o.threshold && !std::isfinite(*o.threshold))
    fail("--threshold", "", "must be a finite score, got " + std::to_string(*o.threshold));
  if (!o.keep_list.empty() && !o.threshold) fail("--keep-list", "", "needs --threshold");
  if (!o.keep_list.empty() && !o.out.empty() &&
      fs::absolute(o.keep_list).lexically_normal() == fs::absolute(o.out).lexically_normal())
    fail("--keep-list", "", "is --out itself: give the list of kept inputs its own file");
  const std::optional<RowFormat> format = o.out.empty() ? std::nullopt : std::optional(row_format_of(o.out));

  const distributed::LaunchEnv env = launch.where ? launch.where() : distributed::LaunchEnv{};
  const int rank = env.rank, world = env.world_size;
  if (world > 1 && o.out.empty())
    fail("--out", "", "needed when scoring with several processes: each writes its share there");
  std::shared_ptr<Collective> group;
  if (world > 1) group = launch.join(env, std::chrono::seconds(o.timeout_s));
  auto barrier = [&] {
    if (group) group->barrier();
  };

  // Resumable output: what earlier runs of this command left in FILE.parts.
  const nlohmann::ordered_json job = format ? job_record(o) : nlohmann::ordered_json();
  const nlohmann::ordered_json& checked = rank == 0 ? job : without_stamps(job);
  const std::string folder = o.out.empty() ? "" : parts_folder(o.out);
  std::optional<DoneSet> done;
  std::unique_ptr<PartWriter> part;
  std::optional<io::OutputLock> lock;
  if (format) {
    if (rank == 0) lock.emplace(o.out);
    const bool resuming = fs::exists(folder);
    if (!o.overwrite && !resuming) {
      if (const auto marker = finished_marker(o.out)) {
        check_same_job(o.out, *marker, checked, inputs);
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
      check_or_record_job(folder, job);
      clean_parts(folder);
    }
    barrier();
    if (rank != 0) check_or_record_job(folder, checked);
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
  auto loaded = io::load_pretrained_with_lora(o.model, o.lora, dtype, device, o.quantize);
  Scorer scorer(loaded, Tokenizer(o.tokenizer.empty() ? o.model : o.tokenizer), style);
  const int64_t image_size = scorer.image_size();
  check_preprocessor_config(o.model, image_size);

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
  // Only a shown bar needs the total: the other ranks would read every input a second time for
  // nothing. A list read from a pipe can be read once only: the bar then counts without a total.
  std::optional<ShareCounter> counter;
  if (show_progress && can_read_twice(o.inputs))
    counter.emplace(inputs, rank, world, done_set, &progress);
  else
    progress.no_total();
  Share share(inputs, rank, world, done_set);
  OrderedPrefetch<Input, Decoded> prefetch([&] { return share.next(); },
                                           [&](Input& in) { return read_input(decode, in, image_size); }, o.workers,
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
      if (keep_list_exists && io::same_file(chunk[k].input.path, o.keep_list))
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
        lines += std::to_string(chunk[k].input.index) + "\t" + rows[k].dump() + "\n";
        continue;
      }
      const bool kept = o.threshold && rows[k]["score"].is_number() && rows[k]["score"].get<double>() >= *o.threshold;
      const auto keep_line = kept ? keep_list_line(rows[k]) : std::nullopt;
      if (rows_on_stdout) {
        if (o.json)
          std::cout << rows[k].dump() << "\n";
        else
          print_table_row(rows[k]);
      } else if (keep_line) {
        std::cout << *keep_line;
      }
      if (keep_line && keep_file) keep_file->write(keep_line->data(), keep_line->size());
    }
    if (part) part->append_chunk(lines);
    std::cout.flush();
    t.write += seconds_since(t0);
    progress.update(scored + failed);
  }
  progress.finish(scored + failed);
  const int64_t seen = share.seen();
  if (seen == 0) fail("INPUT", "", "no images or videos to score");
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
    if (failed) log::error(failed, " of ", seen, " inputs could not be scored");
    return failed ? 1 : 0;
  }
  const auto merged = merge_parts(folder, o.out, *format, share.digest(), o.threshold, o.keep_list);
  record_written(o.out, job, share.digest());
  fs::remove_all(folder);
  log::info("wrote ", merged.rows, " rows to ", o.out,
            o.threshold ? ", " + std::to_string(merged.kept) + " inputs at or above the threshold" : "");
  if (merged.failed)
    log::error(merged.failed, " of ", merged.rows, " inputs could not be scored: their rows carry the error");
  return merged.failed ? 1 : 0;
}

}  // namespace qalign::scoring
