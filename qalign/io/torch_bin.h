#pragma once
// PyTorch `.bin` state dicts as torch.save writes them: a zip holding data.pkl (a pickle) and
// one record per storage. torch::pickle_load cannot read them (it maps OrderedDict to None), so
// data.pkl is read by a restricted unpickler: only the opcodes and globals a state dict uses
// are accepted, anything else is an error naming it, and nothing is ever executed.
#include <string>

#include "qalign/io/state_dict.h"

namespace qalign::io {

StateDict load_torch_bin(const std::string& path);
// The same names, shapes and dtypes as tensors on the meta device, without reading tensor data.
StateDict list_torch_bin(const std::string& path);

// Writes `tensors` in torch.save's zip format (loadable with torch.load), atomically.
void save_torch_bin(const std::string& path, const StateDict& tensors);

}  // namespace qalign::io
