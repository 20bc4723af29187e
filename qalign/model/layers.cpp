#include "qalign/model/layers.h"

#include <optional>
#include <vector>

#include "qalign/model/lora.h"
#include "qalign/model/quantized_weight.h"

namespace qalign::model {

namespace {
thread_local bool skip_init = false, no_storage = false;
thread_local bool meta_linear_weights = false;
bool materialised(const torch::TensorOptions& opts) { return opts.device().type() != torch::kMeta; }

// A tensor of `shape` whose values all share one element (NoStorageGuard), else a new one of
// `shape` filled with `value` (or left uninitialised without a value).
torch::Tensor parameter_values(c10::IntArrayRef shape, const torch::TensorOptions& opts,
                               std::optional<double> value = std::nullopt) {
  if (no_storage) {
    auto t = torch::zeros({}, opts);
    return t.set_(t.storage(), 0, shape, std::vector<int64_t>(shape.size(), 0));
  }
  return value ? torch::full(shape, *value, opts) : torch::empty(shape, opts);
}
}  // namespace

SkipInitGuard::SkipInitGuard() : ThreadFlagGuard(skip_init) {}
NoStorageGuard::NoStorageGuard() : ThreadFlagGuard(no_storage) {}
MetaLinearWeightsGuard::MetaLinearWeightsGuard() : ThreadFlagGuard(meta_linear_weights) {}

torch::Tensor normal_parameter(torch::nn::Module& m, const std::string& name, c10::IntArrayRef shape,
                               const torch::TensorOptions& opts) {
  auto t = parameter_values(shape, opts);
  if (materialised(opts) && !skip_init && !no_storage) {
    torch::NoGradGuard g;
    t.normal_(0.0, kInitStd);
  }
  return m.register_parameter(name, t);
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, const torch::TensorOptions& opts) {
  weight = normal_parameter(*this, "weight", {out, in}, meta_linear_weights ? opts.device(torch::kMeta) : opts);
  if (with_bias) bias = register_parameter("bias", parameter_values({out}, opts, 0.0));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  auto y = quantized ? quantized->matmul(x) : torch::linear(x, weight, bias);
  if (quantized && bias.defined()) y = y + bias;
  return lora ? y + lora->delta(x, is_training()) : y;
}

torch::Tensor LinearImpl::forward_rows(const torch::Tensor& x, const torch::Tensor& rows) {
  if (quantized || lora) return forward(x).index_select(-1, rows);  // neither is split by rows here
  return torch::linear(x, weight.index_select(0, rows), bias.defined() ? bias.index_select(0, rows) : bias);
}

void LinearImpl::use_quantized(std::shared_ptr<QuantizedWeight> q) {
  quantized = std::move(q);
  parameters_.erase("weight");
  weight = torch::Tensor();
}

void LinearImpl::set_weight(const torch::Tensor& w) {
  TORCH_CHECK(w.sizes() == weight.sizes(), "set_weight: shape ", w.sizes(), ", expected ", weight.sizes());
  auto t = w;
  t.set_requires_grad(weight.requires_grad());  // as register_parameter made the one it replaces
  weight = parameters_["weight"] = t;
}

LayerNormImpl::LayerNormImpl(int64_t dim, double eps_, const torch::TensorOptions& opts) : eps(eps_) {
  weight = register_parameter("weight", parameter_values({dim}, opts, 1.0));
  bias = register_parameter("bias", parameter_values({dim}, opts, 0.0));
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, const torch::TensorOptions& opts) : eps(eps_) {
  weight = register_parameter("weight", parameter_values({dim}, opts, 1.0));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  const auto x32 = x.to(torch::kFloat32);
  const auto normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

EmbeddingImpl::EmbeddingImpl(int64_t num, int64_t dim, const torch::TensorOptions& opts) {
  weight = normal_parameter(*this, "weight", {num, dim}, opts);
}

}  // namespace qalign::model
