#pragma once
// The `qalign score` job: images and videos -> level probabilities and scores.
//
// Small jobs print rows on stdout. Large ones write --out FILE (JSON Lines or CSV) and may run
// under `qalign launch` (or torchrun, SLURM): rank r scores inputs r, r+W, r+2W, ... (a fixed
// split, so a restart finds the same shares), decoding on worker threads ahead of the model, and
// appends its rows to FILE.parts/; rank 0 merges them in input order once every rank is done.
// A restart of the same job (job_record.h: the options that change rows, the model's files, the
// inputs) skips every input that already has a row; another job's rows are refused, naming what
// differs. An input's problem (unreadable, a name over PATH_MAX, a name that is not UTF-8: see
// rows.h) is that input's row, never the end of the job.
//
// Inputs are taken in chunks of --batch-size; a chunk's images form one batch and its videos
// another (each video read at its own last position). Rows are appended a chunk at a time, so
// a resumed run starts on a chunk boundary and batches exactly as an uninterrupted one.
//
// The inputs, the decoder and the other ranks come in as arguments, so that a test can run the
// job in-process: ranks as threads, a decoder that counts or stops.
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qalign/distributed/process_group.h"
#include "qalign/model/quantize.h"
#include "qalign/scoring/decoded_input.h"

namespace qalign::scoring {

// The options of `qalign score`, as its command line spells them.
struct ScoreJob {
  std::string model, lora, tokenizer, task = "quality", dtype = "float32", device = "cpu", prompt = "scorer";
  int batch_size = 8, workers = 2, timeout_s = 3600;
  bool json = false, overwrite = false;
  std::string out, keep_list;
  std::optional<double> threshold;
  std::vector<std::string> inputs;  // as given (files, folders, @lists): recorded with the job
  model::QuantizeOptions quantize;
};

// The job's inputs in their fixed order. Each call of an InputSource starts a new reader from the
// first input: the job reads them twice when it shows progress (once on a thread, to count),
// unless an @list is a pipe (can_read_twice), and once more to check a finished FILE's inputs.
using NextInput = std::function<std::optional<std::string>()>;
using InputSource = std::function<NextInput()>;
// InputStream over `args`: files, folders (recursed), @lists.
InputSource input_stream(std::vector<std::string> args);

// What the ranks of a job do together.
class Collective {
 public:
  virtual ~Collective() = default;
  // Returns once every rank has called it.
  virtual void barrier() = 0;
  // Sums a CPU tensor over the ranks, in place.
  virtual void allreduce_sum(torch::Tensor& t) = 0;
};

// Where this process stands among the ranks and how it joins the others. Both are called once the
// options are checked, so that a bad option fails before anything waits for the other ranks.
struct Launch {
  std::function<distributed::LaunchEnv()> where;  // empty: a single process
  // Called when where() gives more than one rank.
  std::function<std::shared_ptr<Collective>(const distributed::LaunchEnv& env, std::chrono::seconds timeout)> join;
};
// The launcher's environment (distributed::read_launch_env) and a Gloo process group over it.
Launch launch_from_environment();

// Runs the job on this rank and returns the exit code: 0, or 1 when an input could not be
// scored. Errors in the options, the inputs or the output files throw qalign::Error.
int score(const ScoreJob& job, const InputSource& inputs, const Decoder& decode, const Launch& launch = {});

}  // namespace qalign::scoring
