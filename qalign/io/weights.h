#pragma once
// Moving weights between a model and a checkpoint, by the checkpoint's parameter names.
#include <torch/torch.h>

#include <string>

#include "qalign/io/state_dict.h"
#include "qalign/model/owl2.h"
#include "qalign/model/quantize.h"

namespace qalign::io {

// Parameters and persistent buffers by their full names.
StateDict state_dict(const torch::nn::Module& m);

// Copies every tensor of `sd` into `m` (cast to the model's dtype and device). A missing,
// unexpected or wrongly shaped tensor is an error naming `source` and the tensor; buffers the
// reference recomputes (rotary inv_freq) are skipped.
void load_state_dict(torch::nn::Module& m, const StateDict& sd, const std::string& source);

// config.json of a Hugging Face model folder, once its weights are known to hold every tensor of
// the model it describes with the right shape (an error names the file and tensor otherwise).
model::ModelConfig checked_config(const std::string& dir);

// config.json + weights of a Hugging Face model folder. With `quantize`, the linears it names are
// quantised as their weights are read (io::LoadTarget): the same model as quantize_linears after a
// plain load, bitwise, without ever holding those layers in floats.
model::Owl2ForCausalLM load_pretrained(const std::string& dir, torch::Dtype dtype = torch::kFloat32,
                                       torch::Device device = torch::kCPU, const model::QuantizeOptions& quantize = {});

// The same model with no parameter storage (model::NoStorageGuard: every parameter has its shape
// and dtype, not its values), its buffers loaded: a ZeRO-3 rank reads its own chunks of the
// parameters from the weights itself (io::WeightReader::read_into), never the whole model.
model::Owl2ForCausalLM load_without_storage(const std::string& dir, torch::Dtype dtype = torch::kFloat32,
                                            torch::Device device = torch::kCPU);

}  // namespace qalign::io
