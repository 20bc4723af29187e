#pragma once
// Activation checkpointing (LibTorch has no torch.utils.checkpoint): a block runs under no_grad in
// the forward pass, keeping only its input; backward runs it again with grad and differentiates
// that. Memory drops from every intermediate of every layer to one tensor per layer, for one
// extra forward per layer. Installed per ViT encoder layer and per LLM decoder layer, as the
// authors' --gradient_checkpointing (and their ViT's own checkpointing) do.
//
// The block must compute the same thing twice: true here, every dropout of the model is 0.
#include <torch/torch.h>

#include <functional>

#include "qalign/model/layers.h"
#include "qalign/model/owl2.h"

namespace qalign::train {

// Called around each run of a block's forward: the first, and its recomputation in backward
// (ZeRO-3 gathers the block's parameters in `enter` and frees them in `leave`).
struct BlockScope {
  std::function<void(bool recompute)> enter;
  std::function<void()> leave;
};

// f(h) for `block`, with checkpointing when grad mode is on and h or a parameter of `block`
// requires grad; a plain call otherwise. Has the model::BlockRunner signature.
torch::Tensor checkpointed(torch::nn::Module& block, const model::BlockForward& f, const torch::Tensor& h);
torch::Tensor checkpointed(torch::nn::Module& block, const model::BlockForward& f, const torch::Tensor& h,
                           const BlockScope& scope);

// Installs (on = true) or removes checkpointing on the vision encoder and decoder layers.
void set_activation_checkpointing(model::Owl2ForCausalLM& m, bool on);

}  // namespace qalign::train
