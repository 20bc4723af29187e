#include "train/activation_checkpoint.h"

#include <torch/csrc/autograd/custom_function.h>

namespace qalign::train {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Generator device_generator(const torch::Device& device) { return at::globalContext().defaultGenerator(device); }

torch::Tensor generator_state(const torch::Device& device) {
  auto gen = device_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(const torch::Device& device, const torch::Tensor& state) {
  auto gen = device_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// The block's forward, carried to backward through the context, with the generator state it
// started from: a block that draws random numbers (LoRA dropout) must draw the same ones when
// recomputed, as torch.utils.checkpoint's preserve_rng_state ensures.
struct Recompute : torch::CustomClassHolder {
  Recompute(model::BlockForward fn, torch::Device dev, BlockScope s)
      : f(std::move(fn)), device(dev), rng(generator_state(dev)), scope(std::move(s)) {}
  model::BlockForward f;
  torch::Device device;
  torch::Tensor rng;
  BlockScope scope;
  torch::Tensor run(const torch::Tensor& h, bool recompute) const {
    if (!scope.enter) return f(h);
    scope.enter(recompute);
    auto out = f(h);
    scope.leave();
    return out;
  }
};

// Inputs: the block's input h and its trainable parameters, so that backward can hand their
// gradients to the engine like any other node (no nested backward into .grad).
class Checkpoint : public torch::autograd::Function<Checkpoint> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const c10::intrusive_ptr<Recompute>& fn, const torch::Tensor& h,
                               torch::TensorList params) {
    ctx->saved_data["fn"] = c10::IValue::make_capsule(fn);
    variable_list saved{h};
    saved.insert(saved.end(), params.begin(), params.end());
    ctx->save_for_backward(saved);
    return fn->run(h, false);  // Function::apply runs this with grad mode off
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto fn = c10::static_intrusive_pointer_cast<Recompute>(ctx->saved_data["fn"].toCapsule());
    const auto saved = ctx->get_saved_variables();
    torch::AutoGradMode grad_on(true);
    const auto h = saved[0].detach().requires_grad_(saved[0].requires_grad());
    const auto resume_rng = generator_state(fn->device);
    set_generator_state(fn->device, fn->rng);
    if (fn->scope.enter) fn->scope.enter(true);
    const auto out = fn->f(h);
    set_generator_state(fn->device, resume_rng);
    variable_list wrt;
    if (h.requires_grad()) wrt.push_back(h);
    wrt.insert(wrt.end(), saved.begin() + 1, saved.end());
    const auto grads = torch::autograd::grad({out}, wrt, {grad_out[0]}, /*retain_graph=*/false,
                                             /*create_graph=*/false, /*allow_unused=*/true);
    if (fn->scope.leave) fn->scope.leave();
    variable_list result{torch::Tensor()};  // for fn, not a tensor
    size_t k = 0;
    result.push_back(h.requires_grad() ? grads[k++] : torch::Tensor());
    while (k < grads.size()) result.push_back(grads[k++]);
    return result;
  }
};

}  // namespace

torch::Tensor checkpointed(torch::nn::Module& block, const model::BlockForward& f, const torch::Tensor& h) {
  return checkpointed(block, f, h, BlockScope{});
}

torch::Tensor checkpointed(torch::nn::Module& block, const model::BlockForward& f, const torch::Tensor& h,
                           const BlockScope& scope) {
  std::vector<torch::Tensor> params;
  for (const auto& p : block.parameters())
    if (p.requires_grad()) params.push_back(p);
  auto fn = c10::make_intrusive<Recompute>(f, h.device(), scope);
  if (!torch::GradMode::is_enabled() || (!h.requires_grad() && params.empty())) return fn->run(h, false);
  return Checkpoint::apply(fn, h, torch::TensorList(params));
}

void set_activation_checkpointing(model::Owl2ForCausalLM& m, bool on) {
  const model::BlockRunner runner =
      on ? model::BlockRunner([](torch::nn::Module& block, const model::BlockForward& f, const torch::Tensor& h) {
        return checkpointed(block, f, h);
      })
         : model::BlockRunner();
  m->model->vision_model->run_block = runner;
  m->model->run_block = runner;
}

}  // namespace qalign::train
