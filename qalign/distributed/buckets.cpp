#include "qalign/distributed/buckets.h"

#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

namespace qalign::distributed {

BucketLayout layout_buckets(const std::vector<torch::Tensor>& params, int64_t bucket_bytes) {
  BucketLayout out;
  out.bucket_of.resize(params.size());
  out.slot_of.resize(params.size());
  int64_t bytes = 0;
  for (size_t k = params.size(); k-- > 0;) {
    const int64_t size = params[k].numel() * 4;
    if (out.buckets.empty() || (bytes > 0 && bytes + size > bucket_bytes)) {
      out.buckets.emplace_back();
      bytes = 0;
    }
    auto& b = out.buckets.back();
    out.bucket_of[k] = out.buckets.size() - 1;
    out.slot_of[k] = b.params.size();
    b.offsets.push_back(b.numel);
    b.params.push_back(k);
    b.numel += params[k].numel();
    bytes += size;
  }
  return out;
}

std::vector<std::shared_ptr<torch::autograd::Node>> hook_gradients(const std::vector<torch::Tensor>& params,
                                                                   const std::function<void(size_t)>& on_ready) {
  std::vector<std::shared_ptr<torch::autograd::Node>> nodes;
  for (size_t k = 0; k < params.size(); ++k) {
    auto acc = torch::autograd::impl::grad_accumulator(params[k]);
    acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [on_ready, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          on_ready(k);
          return outputs;
        }));
    nodes.push_back(std::move(acc));
  }
  return nodes;
}

}  // namespace qalign::distributed
