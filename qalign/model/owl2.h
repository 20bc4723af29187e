#pragma once
// mPLUG-Owl2 for causal LM (SPEC.md §1): the LLaMA model extended with the vision encoder and
// the abstractor, whose tokens replace each image placeholder (-200) of the prompt.
// Parameter names are the Hugging Face checkpoint's: model.{vision_model, visual_abstractor,
// embed_tokens, layers, norm}, lm_head.
#include <torch/torch.h>

#include <optional>
#include <vector>

#include "qalign/model/abstractor.h"
#include "qalign/model/config.h"
#include "qalign/model/llama.h"
#include "qalign/model/vision_encoder.h"

namespace qalign::model {

constexpr int64_t kImageTokenIndex = -200;
constexpr int64_t kIgnoreIndex = -100;

// The sequence the LLM sees once the visual tokens are spliced in (B samples, L positions).
struct MultimodalInputs {
  torch::Tensor embeds;          // [B,L,E]
  torch::Tensor modality;        // [B,L] int64: 0 text (and padding), 1 visual
  torch::Tensor attention_mask;  // [B,L] bool
  torch::Tensor labels;          // [B,L] int64, -100 where not supervised; undefined when not training
  torch::Tensor last_index;      // [B] int64: each sample's last real position
  // has_inner_padding(attention_mask), known on the host (splice sets it), so the forward needs
  // no device synchronisation to choose between the causal kernel and a mask.
  std::optional<bool> inner_padding;
  // Worked out on the host by splice, so that the forward and the losses make no device
  // synchronisation (computed from modality and labels when absent: inputs built by hand).
  std::optional<ModalityRoute> route;  // which rows go through which multiway copy
  torch::Tensor supervised_rows;       // [S] int64: the rows of the shifted [B*(L-1)] labels that count
  torch::Tensor host_labels;           // labels on the host, where the losses find the level words
};

class Owl2ModelImpl : public torch::nn::Module {
 public:
  Owl2ModelImpl(const ModelConfig& c, const torch::TensorOptions& opts);

  // Pixels [N,3,S,S] -> visual tokens [N,Q+1,E], one block per image or frame.
  torch::Tensor encode_images(const torch::Tensor& pixels);

  // input_ids [B,T] holding at most one -200 each; visual[b] [V_b,E] goes in sample b's
  // placeholder (all frames of a video in order). attention_mask [B,T] and labels [B,T] are
  // optional (undefined). Padding follows the authors: (V_b - 1) trues prepended to the mask,
  // right-padding with zeros, false and -100.
  MultimodalInputs splice(const torch::Tensor& input_ids, const std::vector<torch::Tensor>& visual,
                          const torch::Tensor& attention_mask = {}, const torch::Tensor& labels = {});

  // -> final-normed hidden states [B,L,E]. With `hidden_states`, also every layer's input and
  // the final output, as HF's output_hidden_states gives them.
  torch::Tensor forward(const MultimodalInputs& in, std::vector<torch::Tensor>* hidden_states = nullptr);

  ModelConfig config;
  VisionEncoder vision_model{nullptr};
  VisualAbstractor visual_abstractor{nullptr};
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  RMSNorm norm{nullptr};
  BlockRunner run_block;  // how each decoder layer is called (see layers.h)
  // How the abstractor, embed_tokens, the final norm and the output layers are called.
  BlockRunner run_part;
};
TORCH_MODULE(Owl2Model);

class Owl2ForCausalLMImpl : public torch::nn::Module {
 public:
  explicit Owl2ForCausalLMImpl(const ModelConfig& c, const torch::TensorOptions& opts = {});
  // hidden [..., E] -> logits [..., V]
  torch::Tensor logits(const torch::Tensor& hidden) {
    return call_part(
        model->run_part, *lm_head, [this](const torch::Tensor& x) { return lm_head(x); }, hidden);
  }
  // hidden [..., E] -> the logits of the words `ids` [K] only: [..., K].
  torch::Tensor logits(const torch::Tensor& hidden, const torch::Tensor& ids) {
    return call_part(
        model->run_part, *lm_head, [this, ids](const torch::Tensor& x) { return lm_head->forward_rows(x, ids); },
        hidden);
  }
  // hidden [..., E] -> the regression head's score [...] (config.score_head).
  torch::Tensor score(const torch::Tensor& hidden) {
    return call_part(
               model->run_part, *score_head, [this](const torch::Tensor& x) { return score_head(x); }, hidden)
        .squeeze(-1);
  }
  // Decoder output at each sample's last real position -> [B,E].
  torch::Tensor last_hidden(const MultimodalInputs& in);
  // Hidden states at each sample's last real position -> [B,V]; the only logits scoring needs.
  torch::Tensor last_logits(const MultimodalInputs& in) { return logits(last_hidden(in)); }
  // Adds the regression head (config.score_head) to a model that has none, zero: it starts by
  // predicting 0, and the first step's gradients reach the head alone.
  void attach_score_head();
  // Mean next-token cross-entropy over supervised labels (logits[t] predicts labels[t+1]).
  torch::Tensor lm_loss(const MultimodalInputs& in) { return token_loss(model(in), in.labels, in.supervised_rows); }
  // The same loss from the decoder's hidden states [B,L,E] and the spliced labels [B,L].
  // `rows`: splice's supervised_rows (found here from the labels when undefined, which on a GPU
  // waits for the device).
  torch::Tensor token_loss(const torch::Tensor& hidden, const torch::Tensor& labels, const torch::Tensor& rows = {});

  ModelConfig config;
  Owl2Model model{nullptr};
  Linear lm_head{nullptr};
  Linear score_head{nullptr};  // [E] -> [1], only when config.score_head
};
TORCH_MODULE(Owl2ForCausalLM);

// Parameters only (buffers excluded), as the released model's count is stated.
int64_t count_parameters(torch::nn::Module& m);

}  // namespace qalign::model
