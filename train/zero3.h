#pragma once
// ZeRO stage 3: the parameters themselves are partitioned. The model is cut into units: each ViT
// encoder layer and each LLaMA decoder layer, and the vision embeddings, the vision tower's final
// norm, the visual abstractor, embed_tokens, the final norm, lm_head and score_head. Each unit's
// frozen parameters are flattened together, its trainable ones in pieces of about a gradient
// bucket (so that their gradients can be bucketed by size, train/zero3_buckets.h), each padded to a
// multiple of the world size W, and rank r keeps the r-th of W equal chunks of each, in the compute
// dtype (2P/W bytes in bf16). Between uses a parameter keeps its shape but no storage (a zero-stride view of one
// element).
//
// A unit is all-gathered just before its forward and freed when the next one in the schedule is
// reached; the next `prefetch` units' gathers are issued ahead so they overlap compute. Every unit
// runs checkpointed (activation checkpointing is implied): backward gathers it again, recomputes
// it and differentiates that. Its gradients go through ZeroShards as stage 2's do (reduce-scattered
// per micro-batch, in buckets of at most ddp_bucket_cap_mb, into the owned float32 chunks), and
// after the optimizer step the owned master chunks are copied into the owned parameter chunks: no
// parameter all-gather.
//
// Collectives stay in step on every rank: gathers use a communicator of their own, and every rank
// walks the same schedule (the units in forward order, then in reverse for backward), gathering
// and dropping the units its batch does not use (a text-only batch skips the vision tower).
#include <torch/torch.h>

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
  // `trainable`: the trainable parameters' names, in the order ZeroShards is given them;
  // `bucket_bytes`: of float32 gradient per bucket (ddp_bucket_cap_mb).
  // The model stays whole until release_all(); build ZeroShards (with trainable_layout()) first.
  Zero3Params(distributed::ProcessGroup& group, model::Owl2ForCausalLM& m, const std::vector<std::string>& trainable,
              int64_t prefetch, int64_t bucket_bytes);
  ~Zero3Params();
  Zero3Params(const Zero3Params&) = delete;
  Zero3Params& operator=(const Zero3Params&) = delete;

  // ZeroShards' buckets (train/zero3_buckets.h): the units' trainable parameters, last unit first
  // (the order backward delivers gradients); indices into `trainable`.
  GradientLayout trainable_layout() const;
  // Frees every parameter's storage, keeping the owned chunks; installs the gathering runners.
  // `zero` (built with trainable_layout()) receives the gradients.
  void release_all(ZeroShards& zero);

  // Around each micro-batch, on every rank: begin, then end_forward once the loss is computed
  // and end_backward after backward (or both, with no compute, for a rank with nothing to do).
  void begin_micro();
  void end_forward();
  void end_backward();

  // After the optimizer step: the updated owned master chunks into the owned parameter chunks.
  void take_masters(const ZeroShards& zero);

  // Every unit gathered for as long as the guard lives (saving, evaluation, loading); on a
  // `write_back` guard the owned chunks take the parameters' values when it ends.
  class Whole {
   public:
    Whole(Zero3Params& z, bool write_back);
    ~Whole();
    Whole(const Whole&) = delete;
    Whole& operator=(const Whole&) = delete;

   private:
    Zero3Params& z_;
    bool write_back_;
  };

  // Bytes of the owned parameter chunks, and the most units gathered at once during a forward.
  int64_t shard_bytes() const;
  int64_t peak_gathered_in_forward() const { return peak_forward_; }
  int64_t gathered_bytes_peak() const { return peak_gathered_bytes_; }

 private:
  struct Part {
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
    torch::Tensor shard;  // owned chunks [padded / W], compute dtype
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
  // f(parameter, its first element owned, where in the shard, how many) for this rank's ranges.
  template <typename F>
  void for_each_owned(const Part& part, F f) const;
  torch::Tensor run(torch::nn::Module& m, const model::BlockForward& f, const torch::Tensor& h);
  void use(size_t unit, bool recompute);
  void visit(int64_t position);
  void issue(size_t unit);
  void install(size_t unit);
  void release(size_t unit);
  void write_back(size_t unit);
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
  int64_t prefetch_ = 1;
  bool backward_ = false, whole_ = false;
  int64_t cursor_ = -1;  // the schedule position reached (forward: unit index; backward: from the last unit)
  int64_t peak_forward_ = 0, gathered_bytes_ = 0, peak_gathered_bytes_ = 0;
};

}  // namespace qalign::train
