// LLaMA attention against an independent, loop-by-loop computation: grouped-query attention
// (which the authors' code cannot run), rotary embeddings and padding.
#include <gtest/gtest.h>

#include <cmath>

#include "qalign/model/llama.h"
#include "qalign/model/owl2.h"

using namespace qalign;

namespace {

model::ModelConfig gqa_config() {
  model::ModelConfig c;
  c.hidden_size = 48;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;  // 3 query heads share each key/value head
  c.intermediate_size = 64;
  c.num_hidden_layers = 1;
  c.vocab_size = 50;
  return c;
}

// Rotary by its definition: pair (i, i + d/2) rotated by the angle t / theta^(2i/d).
torch::Tensor rotate(const torch::Tensor& x /*[L,d]*/, double theta) {
  const int64_t L = x.size(0), d = x.size(1), half = d / 2;
  auto out = torch::empty_like(x);
  auto a = x.accessor<float, 2>();
  auto o = out.accessor<float, 2>();
  for (int64_t t = 0; t < L; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = t / std::pow(theta, 2.0 * i / d);
      o[t][i] = static_cast<float>(a[t][i] * std::cos(angle) - a[t][i + half] * std::sin(angle));
      o[t][i + half] = static_cast<float>(a[t][i + half] * std::cos(angle) + a[t][i] * std::sin(angle));
    }
  return out;
}

// One sample, text-only tokens, causal, keys limited to `valid` positions.
torch::Tensor reference_attention(model::LlamaAttentionImpl& attn, const torch::Tensor& h /*[L,E]*/, int64_t valid,
                                  double theta) {
  const int64_t L = h.size(0), H = attn.heads, Hkv = attn.kv_heads, d = attn.head_dim;
  const auto q = torch::matmul(h, attn.q_proj->weight.t());
  const auto k = torch::matmul(h, attn.k_proj->copies[0]->weight.t());
  const auto v = torch::matmul(h, attn.v_proj->copies[0]->weight.t());
  auto ctx = torch::zeros({L, H * d});
  for (int64_t head = 0; head < H; ++head) {
    const int64_t g = head / (H / Hkv);
    const auto qh = rotate(q.narrow(1, head * d, d).contiguous(), theta);
    const auto kh = rotate(k.narrow(1, g * d, d).contiguous(), theta);
    const auto vh = v.narrow(1, g * d, d);
    for (int64_t t = 0; t < L; ++t) {
      std::vector<double> w;
      double mx = -1e300;
      for (int64_t s = 0; s <= t && s < valid; ++s) {
        w.push_back(torch::dot(qh[t], kh[s]).item<double>() / std::sqrt(static_cast<double>(d)));
        mx = std::max(mx, w.back());
      }
      double z = 0;
      for (auto& x : w) z += (x = std::exp(x - mx));
      for (size_t s = 0; s < w.size(); ++s) ctx[t].narrow(0, head * d, d).add_(vh[s] * (w[s] / z));
    }
  }
  return torch::matmul(ctx, attn.o_proj->weight.t());
}

}  // namespace

TEST(Attention, GroupedQueryMatchesIndependentComputation) {
  torch::manual_seed(7);
  const auto c = gqa_config();
  model::LlamaAttention attn(c, torch::TensorOptions());
  const int64_t L = 9;
  const auto h = torch::randn({1, L, c.hidden_size});
  const auto modality = torch::zeros({1, L}, torch::kInt64);
  model::DecoderContext ctx{model::ModalityRoute::from_indicators(modality),
                            model::Rotary::make(L, c.head_dim(), c.rope_theta, torch::kFloat32, torch::kCPU),
                            std::nullopt};
  torch::NoGradGuard g;
  const auto ours = attn(h, ctx)[0];
  const auto ref = reference_attention(*attn, h[0], L, c.rope_theta);
  EXPECT_LE((ours - ref).abs().max().item<double>(), 1e-5);
}

TEST(Attention, RightPaddingLeavesRealPositionsUnchanged) {
  torch::manual_seed(8);
  const auto c = gqa_config();
  model::LlamaAttention attn(c, torch::TensorOptions());
  const int64_t L = 10, real = 6;
  auto h = torch::randn({1, L, c.hidden_size});
  auto mask = torch::zeros({1, L}, torch::kBool);
  mask.narrow(1, 0, real).fill_(true);
  torch::NoGradGuard g;
  const auto ref = reference_attention(*attn, h[0], real, c.rope_theta).narrow(0, 0, real);
  // Trailing padding takes the causal kernel without a mask; the forced mask is the other path.
  EXPECT_FALSE(model::causal_padding_mask(mask).has_value());
  for (const bool masked : {false, true}) {
    model::DecoderContext ctx{model::ModalityRoute::from_indicators(torch::zeros({1, L}, torch::kInt64)),
                              model::Rotary::make(L, c.head_dim(), c.rope_theta, torch::kFloat32, torch::kCPU),
                              model::causal_padding_mask(mask, masked)};
    const auto ours = attn(h, ctx)[0].narrow(0, 0, real);
    EXPECT_LE((ours - ref).abs().max().item<double>(), 1e-5) << (masked ? "with the key mask" : "causal only");
  }
}

TEST(Attention, OnlyPaddingBeforeARealPositionNeedsAKeyMask) {
  const auto rows = [](std::vector<int64_t> v) { return torch::tensor(v).view({1, -1}).to(torch::kBool); };
  EXPECT_FALSE(model::has_inner_padding(rows({1, 1, 1})));
  EXPECT_FALSE(model::has_inner_padding(rows({1, 1, 0, 0})));
  EXPECT_TRUE(model::has_inner_padding(rows({0, 1, 1})));
  EXPECT_TRUE(model::has_inner_padding(rows({1, 0, 1, 0})));
  EXPECT_TRUE(model::has_inner_padding(torch::cat({rows({1, 1, 0}), rows({0, 1, 1})})));
  const auto mask = model::causal_padding_mask(rows({1, 0, 1}));
  ASSERT_TRUE(mask.has_value());
  EXPECT_FALSE(mask->index({0, 0, 2, 1}).item<bool>());  // the hole is masked as a key
  EXPECT_TRUE(mask->index({0, 0, 2, 2}).item<bool>());
}

TEST(Attention, MultiwayRoutesEachTokenToItsModality) {
  torch::manual_seed(9);
  const auto c = gqa_config();
  model::LlamaAttention attn(c, torch::TensorOptions());
  const auto x = torch::randn({2, 5, c.hidden_size});
  const auto modality = torch::tensor({0, 1, 1, 0, 0, 1, 0, 0, 1, 1}, torch::kInt64).view({2, 5});
  torch::NoGradGuard g;
  const auto y = attn->k_proj->forward(x, model::ModalityRoute::from_indicators(modality));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 5; ++t) {
      const auto& w = attn->k_proj->copies[modality[b][t].item<int64_t>()]->weight;
      EXPECT_TRUE(torch::allclose(y[b][t], torch::matmul(w, x[b][t]), 1e-5, 1e-6)) << b << "," << t;
    }
}
