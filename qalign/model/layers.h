#pragma once
// The basic layers, written against explicit TensorOptions so that a model of any size can be
// built on the meta device (no memory) or directly in its target dtype. torch::nn's versions
// always allocate on the CPU in float32 first. Parameter names are PyTorch's ("weight", "bias").
#include <torch/torch.h>

#include <functional>

namespace qalign::model {

// How a stack of residual blocks calls each block: run(block, f, h) must return f(h), where f is
// the block's forward. Unset, the block is simply called; training installs activation
// checkpointing here (train/activation_checkpoint.h) so the model itself stays plain math.
using BlockForward = std::function<torch::Tensor(const torch::Tensor&)>;
using BlockRunner =
    std::function<torch::Tensor(torch::nn::Module& block, const BlockForward& f, const torch::Tensor& h)>;

// f(h) through `run` when one is installed. The model calls every parameter-holding part outside
// its repeated blocks (embeddings, norms, abstractor, output layers) this way too, so that ZeRO-3
// (train/zero3.h) can gather each part's parameters around its use.
inline torch::Tensor call_part(const BlockRunner& run, torch::nn::Module& part, const BlockForward& f,
                               const torch::Tensor& h) {
  return run ? run(part, f, h) : f(h);
}

// Parameters are drawn N(0, init_std) (HF's initializer_range) unless on the meta device.
constexpr double kInitStd = 0.02;

struct LoraAdapter;     // qalign/model/lora.h
class QuantizedWeight;  // qalign/model/quantized_weight.h

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias, const torch::TensorOptions& opts);
  // [..., in] -> [..., out]; plus the low-rank term when an adapter is attached (lora.h).
  torch::Tensor forward(const torch::Tensor& x);
  // [..., in] -> [..., rows.size(0)]: outputs `rows` only, from their weight rows alone (a readout
  // of five words of a 32 000-word output layer reads five rows of it).
  torch::Tensor forward_rows(const torch::Tensor& x, const torch::Tensor& rows);
  // From now on the product uses `q` (qalign/model/quantize.h): the float weight is dropped and
  // no longer a parameter, so its memory is freed and nothing trains or saves it.
  void use_quantized(std::shared_ptr<QuantizedWeight> q);
  // Replaces a weight built without storage (under a MetaLinearWeightsGuard) by `w`.
  void set_weight(const torch::Tensor& w);
  torch::Tensor weight, bias;
  std::shared_ptr<LoraAdapter> lora;
  std::shared_ptr<QuantizedWeight> quantized;
};
TORCH_MODULE(Linear);

class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& x) { return torch::layer_norm(x, {weight.size(0)}, weight, bias, eps); }
  torch::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm);

// LLaMA's RMSNorm: normalised in float32, cast back, then scaled (HF's order of operations).
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t num, int64_t dim, const torch::TensorOptions& opts);
  torch::Tensor forward(const torch::Tensor& ids) { return torch::embedding(weight, ids); }  // [B,T] -> [B,T,dim]
  torch::Tensor weight;
};
TORCH_MODULE(Embedding);

// Sets one of this thread's construction flags for its lifetime, then restores what it was.
class ThreadFlagGuard {
 public:
  ThreadFlagGuard(const ThreadFlagGuard&) = delete;
  ThreadFlagGuard& operator=(const ThreadFlagGuard&) = delete;

 protected:
  explicit ThreadFlagGuard(bool& flag) : flag_(flag), previous_(flag) { flag = true; }
  ~ThreadFlagGuard() { flag_ = previous_; }

 private:
  bool& flag_;
  bool previous_;
};

// While one is alive on this thread, normal_parameter leaves its values uninitialised: for a
// model whose every parameter is about to be loaded from a checkpoint (drawing 8 billion normals
// on the CPU takes minutes).
class SkipInitGuard : ThreadFlagGuard {
 public:
  SkipInitGuard();
};

// While one is alive on this thread, a Linear's weight is built on the meta device (shape and
// dtype, no storage): a loader that quantises weights as it reads them never holds the float
// weights of those layers all at once, and gives the others storage (set_weight).
class MetaLinearWeightsGuard : ThreadFlagGuard {
 public:
  MetaLinearWeightsGuard();
};

// While one is alive on this thread, every parameter is built without storage: it has its shape
// and dtype but one element behind all its values (a zero-stride tensor). For ZeRO-3
// (train/zero3.h), whose ranks read only their own chunk of each parameter from the checkpoint:
// the whole model is never allocated. (The meta device cannot be used there: a parameter built on
// it can never be given the CPU or GPU storage its chunks are gathered into.)
class NoStorageGuard : ThreadFlagGuard {
 public:
  NoStorageGuard();
};

// A parameter of `shape`, N(0, kInitStd) unless on the meta device or under a SkipInitGuard or a
// NoStorageGuard.
torch::Tensor normal_parameter(torch::nn::Module& m, const std::string& name, c10::IntArrayRef shape,
                               const torch::TensorOptions& opts);

}  // namespace qalign::model
