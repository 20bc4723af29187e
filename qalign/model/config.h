#pragma once
// Model sizes, read from a Hugging Face config.json of model_type "mplug_owl2" (SPEC.md §1).
// Defaults are the released 7B model's.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace qalign::model {

struct VisionConfig {  // config.visual_config.visual_model
  int64_t hidden_size = 1024;
  int64_t intermediate_size = 4096;
  int64_t num_hidden_layers = 24;
  int64_t num_attention_heads = 16;
  int64_t num_channels = 3;
  int64_t image_size = 448;
  int64_t patch_size = 14;
  double layer_norm_eps = 1e-6;
  std::string hidden_act = "quick_gelu";
};

struct AbstractorConfig {  // config.visual_config.visual_abstractor
  int64_t num_learnable_queries = 64;
  int64_t hidden_size = 1024;
  int64_t num_hidden_layers = 6;
  int64_t num_attention_heads = 16;
  int64_t intermediate_size = 2816;
  int64_t encoder_hidden_size = 1024;
  int64_t grid_size = 32;
  double layer_norm_eps = 1e-6;  // ffn_ln only; norm1/normk/norm2 use 1e-5 (SPEC.md §1.3)
};

struct ModelConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::string hidden_act = "silu";
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
  int64_t pad_token_id = 0;
  std::string torch_dtype = "bfloat16";
  // Ours, not the authors': a linear head from the last hidden state to one score ("score_head"
  // in config.json and the weights), for the levels-versus-regression ablation.
  bool score_head = false;
  VisionConfig vision;
  AbstractorConfig abstractor;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t num_patches() const {
    return (vision.image_size / vision.patch_size) * (vision.image_size / vision.patch_size);
  }
  // Visual tokens one image adds to the sequence: the learned queries plus vit_eos.
  int64_t tokens_per_image() const { return abstractor.num_learnable_queries + 1; }

  // Reads and validates config.json; errors name the file and the key (unknown keys are an
  // error with the nearest known key suggested; keys HF writes that we do not use are accepted).
  static ModelConfig from_json_file(const std::string& path);
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  // The HF layout (visual_config nested), loadable by the authors' code.
  nlohmann::json to_json() const;
  // The released q-future/one-align sizes.
  static ModelConfig owl2_7b() { return ModelConfig{}; }
};

}  // namespace qalign::model
