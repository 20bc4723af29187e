#pragma once
// ZeRO stage 3: the parameters themselves are partitioned. The model is cut into units
// (train/zero3_units.h): each ViT encoder layer and each LLaMA decoder layer, and the vision
// embeddings, the vision tower's final norm, the visual abstractor, embed_tokens, the final norm,
// lm_head and score_head. Each unit's frozen parameters are flattened together, its trainable ones
// in pieces of about a gradient bucket (so that their gradients can be bucketed by size,
// train/zero3_buckets.h), each padded to a multiple of the world size W, and rank r keeps the r-th
// of W equal chunks of each: the frozen ones in the compute dtype (2P/W bytes in bf16), the
// trained ones as ZeroShards' float32 master chunks alone, which a gather rounds to the compute
// dtype (what the optimizer step's copy into a bf16 chunk would hold; with the optimizer
// offloaded to the host the device keeps a chunk in the compute dtype too). So the state of a
// trained parameter is 16 bytes over W (gradient 4, masters 4, moments 8), not 18. Between uses
// a parameter keeps its shape but no storage (a zero-stride view of one element).
//
// A unit is all-gathered just before its forward and freed when the next one in the schedule is
// reached; the next `prefetch` units' gathers are issued ahead so they overlap compute. Every unit
// runs checkpointed (activation checkpointing is implied): backward gathers it again, recomputes
// it and differentiates that. Its gradients go through ZeroShards as stage 2's do (reduce-scattered
// per micro-batch, in buckets of at most ddp_bucket_cap_mb, into the owned float32 chunks); the
// optimizer step updates the owned masters, which the next gather reads: no parameter all-gather.
//
// No rank ever holds the whole model: each reads only its own ranges of each piece (from the
// checkpoint, or from parameters the run created whole); saving gathers one unit at a time and
// evaluation runs unit by unit as a forward in training does.
//
// Collectives stay in step on every rank: gathers use a communicator of their own, and every rank
// walks the same schedule (the units in forward order, then in reverse for backward), gathering
// and dropping the units its batch does not use (a text-only batch skips the vision tower).
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qalign/distributed/process_group.h"
#include "qalign/io/state_dict.h"
#include "qalign/model/owl2.h"
#include "train/zero.h"
#include "train/zero3_buckets.h"

namespace qalign::train {

class Zero3Params {
 public:
  // Fills `out` with elements [offset, offset + out.numel()) of parameter `name` flattened, or
  // returns false when it does not hold that parameter.
  using Source = std::function<bool(const std::string& name, int64_t offset, torch::Tensor out)>;
  // Whole tensors by parameter name, on every rank (a LoRA folder's); the model's own parameters
  // (those the run created whole: adapters, score head).
  static Source from_tensors(io::StateDict tensors);
  static Source from_model(model::Owl2ForCausalLM& m);

  // `trainable`: the trainable parameters' names, in the order ZeroShards is given them;
  // `bucket_bytes`: of float32 gradient per bucket (ddp_bucket_cap_mb). `source` holds every
  // parameter's values; this rank reads only its own chunks from it. Build ZeroShards (with
  // trainable_layout()) next, then release_all().
  Zero3Params(distributed::ProcessGroup& group, model::Owl2ForCausalLM& m, const std::vector<std::string>& trainable,
              int64_t prefetch, int64_t bucket_bytes, const Source& source);
  ~Zero3Params();
  Zero3Params(const Zero3Params&) = delete;
  Zero3Params& operator=(const Zero3Params&) = delete;

  // ZeroShards' buckets (train/zero3_buckets.h): the units' trainable parameters, last unit first
  // (the order backward delivers gradients); indices into `trainable`.
  GradientLayout trainable_layout() const;
  // The owned float32 master chunks from the owned parameter chunks (the parameters themselves
  // hold no values to take them from): take_masters' inverse. Nothing once release_all has left
  // the masters the only values.
  void give_masters(ZeroShards& zero) const;
  // Leaves every parameter without storage, keeping the owned chunks (the trained ones' only in
  // `zero`'s masters, unless those are offloaded); installs the gathering runners. `zero` (built
  // with trainable_layout(), given the masters) receives the gradients.
  void release_all(ZeroShards& zero);
  // The owned chunks of the parameters `source` holds take its values (a checkpoint resumed; the
  // masters too, where they are the values).
  void load(const Source& source);

  // Around each micro-batch, on every rank: begin, then end_forward once the loss is computed
  // and end_backward after backward (or both, with no compute, for a rank with nothing to do).
  void begin_micro();
  void end_forward();
  void end_backward();

  // After the optimizer step: the updated owned master chunks into the owned parameter chunks
  // (where those exist: offloaded masters).
  void take_masters(const ZeroShards& zero);

  // Saving, one unit at a time: every rank gathers the same units in the same order; between
  // gather(u) and drop(u) unit u's parameters hold their whole values.
  size_t unit_count() const { return units_.size(); }
  // The unit holding parameter `name`, or unit_count() for a name that is no parameter.
  size_t unit_of(const std::string& name) const;
  // Unit u's parameters by full name; with `trainable_only`, its trained ones alone.
  std::vector<std::pair<std::string, torch::Tensor>> unit_parameters(size_t u, bool trainable_only = false) const;
  void gather(size_t u);
  // gather(u) of the trained parameters alone: a LoRA save reads nothing of the frozen base (a
  // full-size decoder layer's 0.47 GB), whose parameters stay without storage until drop(u).
  void gather_trainable(size_t u);
  void drop(size_t u);

  // Evaluation while one lives: each rank runs its own forwards unit by unit, gathering each unit
  // before it runs and freeing it after, with no checkpointing. Every forward starts with a count
  // of the ranks still running one, so that a rank with fewer (or none) walks the same gathers.
  class Evaluating {
   public:
    explicit Evaluating(Zero3Params& z);
    ~Evaluating();
    Evaluating(const Evaluating&) = delete;
    Evaluating& operator=(const Evaluating&) = delete;
    // Once this rank has run its forwards (of one file, before the ranks combine scores): it
    // walks the others' gathers until every rank is done.
    void finish();

   private:
    Zero3Params& z_;
  };

  // Bytes of the owned parameter chunks, and the most units gathered at once during a forward.
  int64_t shard_bytes() const;
  int64_t peak_gathered_in_forward() const { return peak_forward_; }
  int64_t gathered_bytes_peak() const { return peak_gathered_bytes_; }

 private:
  struct Part {
    std::vector<std::string> names;
    std::vector<torch::Tensor> params;
    std::vector<int64_t> trainable_index;  // for the trainable part: indices into `trainable`
    std::vector<int64_t> offsets;          // each parameter's first element in `flat`
    // Runs of parameters flattened and padded to a multiple of W, one after another in `flat`;
    // rank r owns the r-th of W equal chunks of each, one after another in `shard`.
    struct Piece {
      size_t first = 0, end = 0;  // parameters
      int64_t offset = 0, padded = 0, shard_offset = 0;
    };
    std::vector<Piece> pieces;
    int64_t numel = 0, padded = 0;
    torch::Tensor shard;  // owned chunks [padded / W], compute dtype; none where the masters are the values
    torch::Tensor flat;   // while gathered or in flight
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
  };
  struct Unit {
    std::string name;
    torch::nn::Module* module = nullptr;
    Part trainable, frozen;
    int state = 0;  // 0 released, 1 in flight, 2 gathered
  };
  static void lay_out(Part& part, const std::vector<ZeroPieceRun>& runs, int64_t world);
  // The gradient buckets of every unit's trainable pieces.
  void cut_buckets(int64_t bucket_bytes);
  // f(master columns, piece, its first owned column, how many) for unit u's trainable pieces,
  // bucket by bucket: where each owned column of a piece sits among `zero`'s master chunks.
  template <typename F>
  void for_each_master_block(const ZeroShards& zero, size_t u, F f) const;
  // Unit u's owned trained chunk [padded / W] into `zero`'s masters, and back (rounded to its dtype).
  void masters_from_chunk(const ZeroShards& zero, size_t u, const torch::Tensor& chunk) const;
  void chunk_from_masters(const ZeroShards& zero, size_t u, const torch::Tensor& chunk) const;
  // f(parameter, its first element owned, where in the shard, how many) for this rank's ranges.
  template <typename F>
  void for_each_owned(const Part& part, F f) const;
  torch::Tensor run(torch::nn::Module& m, const model::BlockForward& f, const torch::Tensor& h);
  void use(size_t unit, bool recompute);
  void visit(int64_t position);
  void issue(size_t unit, bool with_frozen = true);
  void install(size_t unit);
  void release(size_t unit);
  // This rank's owned ranges of `part` from `source` (for_each_owned); `every`: each parameter
  // must be in it.
  void fill(Part& part, const Source& source, bool every);
  bool start_pass(bool running);
  void end_pass();
  size_t unit_at(int64_t position) const;
  int64_t gathered_now() const;

  distributed::ProcessGroup& group_;
  ZeroShards* zero_ = nullptr;
  std::vector<Zero3Bucket> buckets_;  // ZeroShards' buckets, in its order
  std::vector<size_t> unit_of_bucket_;
  std::vector<int64_t> bucket_of_unit_;  // each unit's last ZeroShards bucket, or -1
  c10::intrusive_ptr<c10d::Backend> gathers_;
  model::Owl2ForCausalLM model_;
  std::vector<Unit> units_;                             // in forward order
  std::vector<size_t> forward_order_, backward_order_;  // the schedules, as unit indices
  std::map<const torch::nn::Module*, size_t> unit_of_;
  std::map<std::string, size_t> unit_of_parameter_;
  int64_t prefetch_ = 1;
  int64_t gather_block_bytes_;  // the largest Gloo all-gather: one gradient bucket
  bool backward_ = false, evaluating_ = false;
  int64_t cursor_ = -1;  // the schedule position reached (forward: unit index; backward: from the last unit)
  int64_t peak_forward_ = 0, gathered_bytes_ = 0, peak_gathered_bytes_ = 0;
};

}  // namespace qalign::train
