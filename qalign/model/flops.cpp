#include "qalign/model/flops.h"

namespace qalign::model {

namespace {

// A dense layer over n tokens.
double linear(double n, double in, double out) { return 2 * n * in * out; }
// QK^T and the weighted sum of values: queries q, keys k, width d.
double attention(double q, double k, double d) { return 2 * 2 * q * k * d; }

}  // namespace

ForwardFlops forward_flops(const ModelConfig& c, int64_t images, int64_t text_tokens, int64_t logit_positions) {
  ForwardFlops f;
  const auto& v = c.vision;
  const double patches = static_cast<double>(c.num_patches()), nv = patches + 1;  // + cls
  const double dv = static_cast<double>(v.hidden_size), iv = static_cast<double>(v.intermediate_size);
  double vit = linear(patches, static_cast<double>(v.num_channels * v.patch_size * v.patch_size), dv);
  vit += static_cast<double>(v.num_hidden_layers) * (linear(nv, dv, 3 * dv) + attention(nv, nv, dv) +
                                                     linear(nv, dv, dv) + linear(nv, dv, iv) + linear(nv, iv, dv));
  f.vision = vit * static_cast<double>(images);

  // The abstractor's queries attend to themselves and the ViT tokens together (SPEC.md §1.3).
  const auto& a = c.abstractor;
  const double q = static_cast<double>(a.num_learnable_queries), da = static_cast<double>(a.hidden_size);
  const double ia = static_cast<double>(a.intermediate_size), kv = q + nv;
  double abs =
      static_cast<double>(a.num_hidden_layers) * (linear(q, da, da) + 2 * linear(kv, da, da) + attention(q, kv, da) +
                                                  linear(q, da, da) + 2 * linear(q, da, ia) + linear(q, ia, da));
  abs += linear(q, da, static_cast<double>(c.hidden_size));  // visual_fc
  f.abstractor = abs * static_cast<double>(images);

  const double L = static_cast<double>(text_tokens + images * c.tokens_per_image());
  const double e = static_cast<double>(c.hidden_size), i = static_cast<double>(c.intermediate_size);
  const double ekv = static_cast<double>(c.num_key_value_heads * c.head_dim());
  f.language = static_cast<double>(c.num_hidden_layers) *
               (linear(L, e, e) + 2 * linear(L, e, ekv) + attention(L, L, e) + linear(L, e, e) + 3 * linear(L, e, i));
  f.lm_head = linear(static_cast<double>(logit_positions), e, static_cast<double>(c.vocab_size));
  return f;
}

}  // namespace qalign::model
