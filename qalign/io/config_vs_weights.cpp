#include "qalign/io/config_vs_weights.h"

#include <cstdint>
#include <set>

#include "qalign/base/error.h"

namespace qalign::io {

namespace {

const std::string kVision = "visual_config.visual_model.";
const std::string kAbstractor = "visual_config.visual_abstractor.";
const std::string kDecoderLayer = "model.layers.0.";
const std::string kVisionLayer = "model.vision_model.encoder.layers.0.";
const std::string kAbstractorLayer = "model.visual_abstractor.encoder.layers.0.crossattention.";

// One config.json key whose value fixes dimension `dim` of `tensor` to `expect` (the value
// itself, or a size derived from it).
struct Dim {
  std::string key;
  int64_t value;
  std::string tensor;
  size_t dim;
  int64_t expect;
};

// One config.json key that counts the blocks named "<prefix><i>." in the checkpoint.
struct Count {
  std::string key;
  int64_t value;
  std::string prefix;
};

// Distinct block indices under `prefix`.
int64_t count_blocks(const TensorShapes& shapes, const std::string& prefix) {
  std::set<std::string> seen;
  for (auto it = shapes.lower_bound(prefix); it != shapes.end() && it->first.compare(0, prefix.size(), prefix) == 0;
       ++it) {
    const auto rest = it->first.substr(prefix.size());
    seen.insert(rest.substr(0, rest.find('.')));
  }
  return static_cast<int64_t>(seen.size());
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// side² + 1 rows (one per patch, plus the class token); -1, which no shape has, on overflow.
int64_t grid_rows(int64_t side) {
  int64_t n = 0;
  return __builtin_mul_overflow(side, side, &n) || n == INT64_MAX ? -1 : n + 1;
}

}  // namespace

void check_config_against_weights(const model::ModelConfig& c, const TensorShapes& shapes, const std::string& config,
                                  const std::string& weights) {
  const auto& v = c.vision;
  const auto& a = c.abstractor;
  // In the order a reader would check them: widths first, then depths, then per-layer sizes.
  const std::vector<Dim> dims = {
      {"vocab_size", c.vocab_size, "model.embed_tokens.weight", 0, c.vocab_size},
      {"hidden_size", c.hidden_size, "model.embed_tokens.weight", 1, c.hidden_size},
      {"intermediate_size", c.intermediate_size, kDecoderLayer + "mlp.gate_proj.weight", 0, c.intermediate_size},
      {"num_key_value_heads", c.num_key_value_heads, kDecoderLayer + "self_attn.k_proj.multiway.0.weight", 0,
       c.num_key_value_heads * c.head_dim()},
      {kVision + "hidden_size", v.hidden_size, "model.vision_model.embeddings.cls_token", 2, v.hidden_size},
      {kVision + "num_channels", v.num_channels, "model.vision_model.embeddings.patch_embed.weight", 1, v.num_channels},
      {kVision + "patch_size", v.patch_size, "model.vision_model.embeddings.patch_embed.weight", 2, v.patch_size},
      {kVision + "image_size", v.image_size, "model.vision_model.embeddings.position_embedding", 1,
       grid_rows(v.image_size / v.patch_size)},
      {kVision + "intermediate_size", v.intermediate_size, kVisionLayer + "mlp.fc1.weight", 0, v.intermediate_size},
      {kAbstractor + "num_learnable_queries", a.num_learnable_queries, "model.visual_abstractor.query_embeds", 1,
       a.num_learnable_queries},
      {kAbstractor + "hidden_size", a.hidden_size, "model.visual_abstractor.query_embeds", 2, a.hidden_size},
      {kAbstractor + "encoder_hidden_size", a.encoder_hidden_size, kAbstractorLayer + "attention.key.weight", 1,
       a.encoder_hidden_size},
      {kAbstractor + "grid_size", a.grid_size, kAbstractorLayer + "attention.k_pos_embed", 0, grid_rows(a.grid_size)},
      {kAbstractor + "intermediate_size", a.intermediate_size, kAbstractorLayer + "output.mlp.w1.weight", 0,
       a.intermediate_size},
  };
  const std::vector<Count> counts = {
      {"num_hidden_layers", c.num_hidden_layers, "model.layers."},
      {kVision + "num_hidden_layers", v.num_hidden_layers, "model.vision_model.encoder.layers."},
      {kAbstractor + "num_hidden_layers", a.num_hidden_layers, "model.visual_abstractor.encoder.layers."},
  };
  // Depths before per-layer sizes: a checkpoint without layers has no layer 0 to read them from.
  for (const auto& n : counts) {
    const int64_t have = count_blocks(shapes, n.prefix);
    if (have != n.value)
      fail(config, n.key,
           std::to_string(n.value) + ", but " + weights + " has " + std::to_string(have) +
               (have == 0 ? " (no " + n.prefix + "N tensors)"
                          : " (" + n.prefix + "0 to " + n.prefix + std::to_string(have - 1) + ")"));
  }
  for (const auto& d : dims) {
    const auto it = shapes.find(d.tensor);
    if (it == shapes.end())
      fail(weights, d.tensor,
           "missing from the checkpoint (it gives config.json's " + d.key + " = " + std::to_string(d.value) +
               " its size)");
    const auto& shape = it->second;
    if (shape.size() <= d.dim || shape[d.dim] != d.expect)
      fail(config, d.key,
           std::to_string(d.value) + ", but " + weights + " has " + d.tensor + " of shape " + shape_text(shape));
  }
}

}  // namespace qalign::io
