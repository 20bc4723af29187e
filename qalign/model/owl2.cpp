#include "qalign/model/owl2.h"

#include "qalign/base/error.h"
#include "qalign/base/host_to_device.h"

namespace qalign::model {

Owl2ModelImpl::Owl2ModelImpl(const ModelConfig& c, const torch::TensorOptions& opts) : config(c) {
  vision_model = register_module("vision_model", VisionEncoder(c.vision, opts));
  visual_abstractor = register_module("visual_abstractor", VisualAbstractor(c.abstractor, c.hidden_size, opts));
  embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.hidden_size, opts));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(LlamaDecoderLayer(c, opts));
  register_module("layers", layers);
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps, opts));
}

torch::Tensor Owl2ModelImpl::encode_images(const torch::Tensor& pixels) {
  const auto dtype = vision_model->embeddings->cls_token.scalar_type();
  return call_part(
      run_part, *visual_abstractor, [this](const torch::Tensor& x) { return visual_abstractor(x); },
      vision_model(pixels.to(dtype)));
}

MultimodalInputs Owl2ModelImpl::splice(const torch::Tensor& input_ids, const std::vector<torch::Tensor>& visual,
                                       const torch::Tensor& attention_mask, const torch::Tensor& labels) {
  const int64_t B = input_ids.size(0), T = input_ids.size(1), E = config.hidden_size;
  if (static_cast<int64_t>(visual.size()) != B)
    throw Error("splice: " + std::to_string(visual.size()) + " visual blocks for " + std::to_string(B) + " samples");
  // The layout is worked out on the host (ids, mask and labels given there cost no device
  // synchronisation); the results then go to the model's device without waiting.
  const auto device = embed_tokens->weight.device();
  const auto ids_cpu = input_ids.to(torch::kCPU).contiguous();
  const auto host = ids_cpu.options();
  const auto text = call_part(
      run_part, *embed_tokens, [this](const torch::Tensor& ids) { return embed_tokens(ids); },
      input_ids.clamp_min(0).to(device, /*non_blocking=*/true));  // placeholders as id 0, then replaced
  const auto mask = attention_mask.defined() ? attention_mask.to(torch::kCPU).to(torch::kBool)
                                             : torch::ones({B, T}, host.dtype(torch::kBool));
  const auto host_labels = labels.defined() ? labels.to(torch::kCPU) : labels;

  std::vector<torch::Tensor> embeds(B), masks(B), labs(B), mods(B);
  int64_t L = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t* row = ids_cpu[b].data_ptr<int64_t>();
    std::vector<int64_t> places;
    for (int64_t t = 0; t < T; ++t)
      if (row[t] == kImageTokenIndex) places.push_back(t);
    if (places.size() > 1)
      throw Error("splice: sample " + std::to_string(b) + " has " + std::to_string(places.size()) +
                  " image placeholders; one per sample is supported");
    const auto lab = labels.defined() ? host_labels[b] : torch::Tensor();
    if (places.empty()) {
      if (visual[b].defined() && visual[b].numel() > 0)
        throw Error("splice: sample " + std::to_string(b) + " has visual tokens but no <|image|> placeholder");
      embeds[b] = text[b];
      mods[b] = torch::zeros({T}, host);
      masks[b] = mask[b];
      if (lab.defined()) labs[b] = lab;
    } else {
      const int64_t p = places[0], V = visual[b].size(0);
      const auto vis = visual[b].to(text.scalar_type());
      embeds[b] = torch::cat({text[b].narrow(0, 0, p), vis, text[b].narrow(0, p + 1, T - p - 1)});
      mods[b] = torch::cat({torch::zeros({p}, host), torch::ones({V}, host), torch::zeros({T - p - 1}, host)});
      masks[b] = torch::cat({torch::ones({V - 1}, mask.options()), mask[b]});
      if (lab.defined())
        labs[b] = torch::cat(
            {lab.narrow(0, 0, p), torch::full({V}, kIgnoreIndex, lab.options()), lab.narrow(0, p + 1, T - p - 1)});
    }
    L = std::max(L, embeds[b].size(0));
  }
  MultimodalInputs out;
  out.embeds = torch::zeros({B, L, E}, text.options());
  auto modality = torch::zeros({B, L}, host);
  auto attention = torch::zeros({B, L}, mask.options());
  torch::Tensor supervised;
  if (labels.defined()) supervised = torch::full({B, L}, kIgnoreIndex, host_labels.options());
  std::vector<int64_t> last(B);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = embeds[b].size(0);
    out.embeds[b].narrow(0, 0, n).copy_(embeds[b]);
    modality[b].narrow(0, 0, n).copy_(mods[b]);
    attention[b].narrow(0, 0, n).copy_(masks[b]);
    if (labels.defined()) supervised[b].narrow(0, 0, n).copy_(labs[b]);
    const auto real = torch::nonzero(masks[b]).flatten();
    last[b] = real.numel() ? real[-1].item<int64_t>() : n - 1;
  }
  out.inner_padding = has_inner_padding(attention);
  const auto to_model = [&](const torch::Tensor& t) { return host_to_device(t, device); };
  auto route = ModalityRoute::from_indicators(modality);
  for (auto* t : {&route.text, &route.visual, &route.order, &route.inverse})
    if (t->defined()) *t = to_model(*t);
  out.route = route;
  out.modality = to_model(modality);
  out.attention_mask = to_model(attention);
  if (labels.defined()) {
    out.host_labels = supervised;
    out.labels = to_model(supervised);
    const auto target = supervised.narrow(1, 1, L - 1).reshape({-1});
    out.supervised_rows = to_model(torch::nonzero(target != kIgnoreIndex).squeeze(1));
  }
  out.last_index = to_model(torch::tensor(last, host));
  return out;
}

torch::Tensor Owl2ModelImpl::forward(const MultimodalInputs& in, std::vector<torch::Tensor>* hidden_states) {
  DecoderContext ctx{in.route ? *in.route : ModalityRoute::from_indicators(in.modality),
                     Rotary::make(in.embeds.size(1), config.head_dim(), config.rope_theta, in.embeds.scalar_type(),
                                  in.embeds.device()),
                     causal_padding_mask(in.attention_mask, in.inner_padding)};
  auto h = in.embeds;
  for (const auto& layer : *layers) {
    if (hidden_states) hidden_states->push_back(h);
    auto* block = layer->as<LlamaDecoderLayer>();
    // The context is copied into the closure: a checkpointing runner calls it again in backward.
    h = run_block ? run_block(
                        *block, [block, ctx](const torch::Tensor& x) { return block->forward(x, ctx); }, h)
                  : block->forward(h, ctx);
  }
  h = call_part(
      run_part, *norm, [this](const torch::Tensor& x) { return norm(x); }, h);
  if (hidden_states) hidden_states->push_back(h);
  return h;
}

Owl2ForCausalLMImpl::Owl2ForCausalLMImpl(const ModelConfig& c, const torch::TensorOptions& opts) : config(c) {
  model = register_module("model", Owl2Model(c, opts));
  lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, false, opts));
  if (c.score_head) score_head = register_module("score_head", Linear(c.hidden_size, 1, true, opts));
}

void Owl2ForCausalLMImpl::attach_score_head() {
  if (score_head) return;
  config.score_head = true;
  const auto& w = lm_head->weight;
  score_head = register_module("score_head", Linear(config.hidden_size, 1, true, w.options()));
  torch::NoGradGuard no_grad;
  score_head->weight.zero_();
}

torch::Tensor Owl2ForCausalLMImpl::last_hidden(const MultimodalInputs& in) {
  const auto h = model(in);  // [B,L,E]
  const auto idx = in.last_index.to(h.device()).view({-1, 1, 1}).expand({-1, 1, h.size(2)});
  return h.gather(1, idx).squeeze(1);
}

torch::Tensor Owl2ForCausalLMImpl::token_loss(const torch::Tensor& h, const torch::Tensor& labels,
                                              const torch::Tensor& supervised_rows) {
  // The output layer and its softmax run only where a label is supervised: the same mean as
  // cross-entropy over every position with ignore_index, without the vocabulary-wide work on the
  // prompt and image positions (most of the sequence).
  const auto target = labels.narrow(1, 1, labels.size(1) - 1).reshape({-1});
  const auto rows = supervised_rows.defined() ? supervised_rows : torch::nonzero(target != kIgnoreIndex).squeeze(1);
  const auto hidden = h.narrow(1, 0, h.size(1) - 1).reshape({-1, h.size(-1)});
  const auto logits = this->logits(hidden.index_select(0, rows)).to(torch::kFloat32);
  return torch::nn::functional::cross_entropy(logits, target.index_select(0, rows));
}

int64_t count_parameters(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace qalign::model
