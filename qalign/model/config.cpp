#include "qalign/model/config.h"

#include <limits>
#include <set>
#include <variant>
#include <vector>

#include "qalign/base/bounded_file.h"
#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/base/keys.h"

namespace qalign::model {

namespace {

using nlohmann::json;

constexpr const char* kModelType = "mplug_owl2";
constexpr const char* kArchitecture = "MPLUGOwl2LlamaForCausalLM";

enum class Range { Positive, NonNegative };

// Layers in one stack. The deepest published transformers have a few hundred; the bound keeps
// building a model's module tree (even on the meta device, as the memory plan does) from
// running for hours on a mistyped depth.
constexpr int64_t kMaxLayers = 1024;

// One config.json key bound to a member of section struct S: reading, writing and key checking
// all walk the same table, so a new key is one line.
template <class S>
struct Field {
  const char* key;
  std::variant<int64_t S::*, double S::*, std::string S::*, bool S::*> member;
  Range range = Range::Positive;  // numbers only
  bool nullable = false;          // null keeps the default (HF writes null for "unset")
  int64_t max = 0;                // integers only; 0: no upper bound
};

const std::vector<Field<ModelConfig>> kModelFields = {
    {"vocab_size", &ModelConfig::vocab_size},
    {"hidden_size", &ModelConfig::hidden_size},
    {"intermediate_size", &ModelConfig::intermediate_size},
    {"num_hidden_layers", &ModelConfig::num_hidden_layers, Range::Positive, false, kMaxLayers},
    {"num_attention_heads", &ModelConfig::num_attention_heads},
    // Absent or null means plain multi-head attention, as in HF's LlamaConfig.
    {"num_key_value_heads", &ModelConfig::num_key_value_heads, Range::Positive, /*nullable=*/true},
    {"max_position_embeddings", &ModelConfig::max_position_embeddings},
    {"rms_norm_eps", &ModelConfig::rms_norm_eps},
    {"rope_theta", &ModelConfig::rope_theta},
    {"hidden_act", &ModelConfig::hidden_act},
    {"tie_word_embeddings", &ModelConfig::tie_word_embeddings},
    {"bos_token_id", &ModelConfig::bos_token_id, Range::NonNegative},
    {"eos_token_id", &ModelConfig::eos_token_id, Range::NonNegative},
    // The authors' tokenizer pads with <unk> (id 0) when the config leaves it null.
    {"pad_token_id", &ModelConfig::pad_token_id, Range::NonNegative, /*nullable=*/true},
    {"torch_dtype", &ModelConfig::torch_dtype, Range::Positive, /*nullable=*/true},
};

const std::vector<Field<VisionConfig>> kVisionFields = {
    {"hidden_size", &VisionConfig::hidden_size},
    {"intermediate_size", &VisionConfig::intermediate_size},
    {"num_hidden_layers", &VisionConfig::num_hidden_layers, Range::Positive, false, kMaxLayers},
    {"num_attention_heads", &VisionConfig::num_attention_heads},
    {"num_channels", &VisionConfig::num_channels},
    {"image_size", &VisionConfig::image_size},
    {"patch_size", &VisionConfig::patch_size},
    {"layer_norm_eps", &VisionConfig::layer_norm_eps},
    {"hidden_act", &VisionConfig::hidden_act},
};

const std::vector<Field<AbstractorConfig>> kAbstractorFields = {
    {"num_learnable_queries", &AbstractorConfig::num_learnable_queries},
    {"hidden_size", &AbstractorConfig::hidden_size},
    {"num_hidden_layers", &AbstractorConfig::num_hidden_layers, Range::Positive, false, kMaxLayers},
    {"num_attention_heads", &AbstractorConfig::num_attention_heads},
    {"intermediate_size", &AbstractorConfig::intermediate_size},
    {"encoder_hidden_size", &AbstractorConfig::encoder_hidden_size},
    {"grid_size", &AbstractorConfig::grid_size},
    {"layer_norm_eps", &AbstractorConfig::layer_norm_eps},
};

// Keys transformers' PretrainedConfig writes into every config (generation defaults, labels,
// bookkeeping). None changes the network, so any value is accepted.
// clang-format off
const std::vector<std::string> kGenericHfKeys = {
    "_name_or_path", "_commit_hash", "_attn_implementation", "_flash_attn_2_enabled",
    "architectures", "transformers_version", "return_dict", "output_hidden_states",
    "output_attentions", "torchscript", "use_bfloat16", "tf_legacy_loss", "pruned_heads",
    "is_encoder_decoder", "is_decoder", "cross_attention_hidden_size", "add_cross_attention",
    "tie_encoder_decoder", "max_length", "min_length", "do_sample", "early_stopping", "num_beams",
    "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p", "typical_p",
    "repetition_penalty", "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
    "bad_words_ids", "num_return_sequences", "chunk_size_feed_forward", "output_scores",
    "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id",
    "remove_invalid_values", "exponential_decay_length_penalty", "suppress_tokens",
    "begin_suppress_tokens", "finetuning_task", "id2label", "label2id", "tokenizer_class",
    "prefix", "sep_token_id", "decoder_start_token_id", "task_specific_params", "problem_type",
    "model_type", "torch_dtype", "bos_token_id", "eos_token_id", "pad_token_id",
    "tie_word_embeddings"};
// clang-format on

// Top-level keys of LlamaConfig / MPLUGOwl2Config that only matter to training or to HF's
// initialisation, never to inference with trained weights.
const std::vector<std::string> kIgnoredModelKeys = {
    "use_cache",           "initializer_range",      "pretraining_tp",
    "attention_dropout",   "image_aspect_ratio",     "image_grid_pinpoints",
    "freeze_vision_model", "tune_visual_abstractor", "visual_abstractor_lr"};
const std::vector<std::string> kIgnoredVisionKeys = {"projection_dim", "attention_dropout", "initializer_range",
                                                     "initializer_factor", "use_flash_attn"};
const std::vector<std::string> kIgnoredAbstractorKeys = {"attention_probs_dropout_prob", "initializer_range"};

std::string path_of(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

// What the user wrote and its JSON type, e.g. "\"64\" (a string)", short enough for one line.
std::string describe(const json& v) {
  if (v.is_null()) return "null";
  std::string text = v.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  const char* kind = v.is_number_float() ? "a float"
                     : v.is_number()     ? "an integer"
                     : v.is_boolean()    ? "a boolean"
                     : v.is_array()      ? "an array"
                     : v.is_object()     ? "an object"
                                         : "a string";
  return text + " (" + kind + ")";
}

// A JSON object being read: hands out values at dotted paths and remembers which keys were
// used, so anything left over at the end is an unknown key.
class Section {
 public:
  Section(const json& j, std::string source, std::string prefix)
      : j_(j), source_(std::move(source)), prefix_(std::move(prefix)) {
    if (!j_.is_object())
      qalign::fail(source_, prefix_.empty() ? "(top level)" : prefix_, "expected a JSON object, got " + describe(j_));
  }

  // The value at `key`, or nullptr when absent; marks the key as known.
  const json* get(const std::string& key) {
    used_.insert(key);
    const auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }

  // Keys accepted and ignored.
  void allow(const std::vector<std::string>& keys) { allowed_.insert(keys.begin(), keys.end()); }

  template <class S>
  void read(const std::vector<Field<S>>& fields, S& out) {
    for (const auto& f : fields) {
      const json* v = get(f.key);
      if (v == nullptr || (v->is_null() && f.nullable)) continue;
      std::visit([&](auto member) { assign(f, *v, out.*member); }, f.member);
    }
  }

  // Fails on the first key neither used nor allowed. Suggestions prefer the keys this section
  // reads: HF's generic keys ("num_beams") are rarely what a user meant.
  void finish() const {
    const std::vector<std::string> used(used_.begin(), used_.end());
    std::vector<std::string> all = used;
    all.insert(all.end(), allowed_.begin(), allowed_.end());
    for (const auto& item : j_.items()) {
      const std::string& key = item.key();
      if (used_.count(key) != 0 || allowed_.count(key) != 0) continue;
      const bool near_used = !config::closest_key(key, used).empty();
      qalign::fail(source_, field(key), config::unknown_key_message(key, near_used ? used : all));
    }
  }

  std::string field(const std::string& key) const { return path_of(prefix_, key); }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    qalign::fail(source_, field(key), what);
  }

 private:
  template <class S>
  void assign(const Field<S>& f, const json& v, int64_t& out) const {
    const char* expected = f.range == Range::Positive ? "a positive integer" : "a non-negative integer";
    const bool fits = v.is_number_integer() &&
                      (!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()));
    if (!fits) fail(f.key, std::string("expected ") + expected + ", got " + describe(v));
    out = v.get<int64_t>();
    if (out < 0 || (out == 0 && f.range == Range::Positive))
      fail(f.key, std::string("expected ") + expected + ", got " + std::to_string(out));
    if (f.max > 0 && out > f.max)
      fail(f.key, "expected at most " + std::to_string(f.max) + ", got " + std::to_string(out));
  }
  template <class S>
  void assign(const Field<S>& f, const json& v, double& out) const {
    if (!v.is_number()) fail(f.key, "expected a positive number, got " + describe(v));
    out = v.get<double>();
    if (!(out > 0)) fail(f.key, "expected a positive number, got " + v.dump());
  }
  template <class S>
  void assign(const Field<S>& f, const json& v, std::string& out) const {
    if (!v.is_string()) fail(f.key, "expected a string, got " + describe(v));
    out = v.get<std::string>();
  }
  template <class S>
  void assign(const Field<S>& f, const json& v, bool& out) const {
    if (!v.is_boolean()) fail(f.key, "expected true or false, got " + describe(v));
    out = v.get<bool>();
  }

  const json& j_;
  std::string source_;
  std::string prefix_;
  std::set<std::string> used_;
  std::set<std::string> allowed_;
};

template <class S>
json write(const std::vector<Field<S>>& fields, const S& in) {
  json j = json::object();
  for (const auto& f : fields) std::visit([&](auto member) { j[f.key] = in.*member; }, f.member);
  return j;
}

// Keys whose only supported value is the one the released model has: any other value would
// change the network, so it is an error rather than silently ignored.
void require_value(Section& s, const std::string& key, const json& expected, const std::string& why) {
  const json* v = s.get(key);
  if (v != nullptr && *v != expected)
    s.fail(key, "only " + expected.dump() + " is supported (" + why + "), got " + describe(*v));
}

void require_divisible(const Section& s, const std::string& key, int64_t value, const std::string& by_key, int64_t by) {
  if (value % by != 0)
    s.fail(key, "must be divisible by " + by_key + " = " + std::to_string(by) + ", got " + std::to_string(value));
}

void read_vision(Section& s, VisionConfig& v) {
  s.read(kVisionFields, v);
  require_value(s, "hidden_act", "quick_gelu", "the vision MLP is CLIP's quick GELU");
  s.allow(kIgnoredVisionKeys);
  s.allow(kGenericHfKeys);
  s.finish();
  require_divisible(s, "hidden_size", v.hidden_size, "num_attention_heads", v.num_attention_heads);
  require_divisible(s, "image_size", v.image_size, "patch_size", v.patch_size);
}

void read_abstractor(Section& s, AbstractorConfig& a) {
  s.read(kAbstractorFields, a);
  s.allow(kIgnoredAbstractorKeys);
  s.allow(kGenericHfKeys);
  s.finish();
  require_divisible(s, "hidden_size", a.hidden_size, "num_attention_heads", a.num_attention_heads);
  // The 2-D sin-cos key table gives each image axis half the width, each half split sin|cos.
  require_divisible(s, "hidden_size", a.hidden_size, "4 (2-D sin-cos positions)", 4);
}

// Checks between the two visual sections, made even where one of them is left at its defaults.
void check_visual_pair(const std::string& source, const VisionConfig& v, const AbstractorConfig& a) {
  const std::string prefix = "visual_config.visual_abstractor.";
  if (a.encoder_hidden_size != v.hidden_size)
    fail(source, prefix + "encoder_hidden_size",
         "must equal visual_model.hidden_size = " + std::to_string(v.hidden_size) + " (it reads the ViT output), got " +
             std::to_string(a.encoder_hidden_size));
  // k_pos_embed has 1 + grid_size² rows, one per ViT token.
  const int64_t side = v.image_size / v.patch_size;
  if (a.grid_size != side)
    fail(source, prefix + "grid_size",
         "must equal visual_model.image_size / patch_size = " + std::to_string(side) +
             " (one position per patch row/column), got " + std::to_string(a.grid_size));
}

}  // namespace

ModelConfig ModelConfig::from_json_file(const std::string& path) {
  const std::string text = io::read_file_at_most(path, io::kMaxJsonFileBytes, "a model's config.json");
  json j;
  try {
    j = io::parse_json(text, path);
  } catch (const json::exception& e) {
    // nlohmann's text starts with "[json.exception.parse_error.101] " (or out_of_range.406 for a
    // number too large for a double); the rest names line/column or the number.
    std::string what = e.what();
    const size_t bracket = what.find("] ");
    fail(path, "", "invalid JSON: " + (bracket == std::string::npos ? what : what.substr(bracket + 2)));
  }
  return from_json(j, path);
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& source) {
  ModelConfig c;
  Section top(j, source, "");
  const json* type = top.get("model_type");
  if (type == nullptr || *type != kModelType)
    top.fail("model_type", std::string("expected \"") + kModelType + "\" (mPLUG-Owl2), got " +
                               (type == nullptr ? std::string("no model_type") : describe(*type)));
  top.read(kModelFields, c);
  require_value(top, "hidden_act", "silu", "the decoder's MLP is SwiGLU");
  const json* kv_heads = top.get("num_key_value_heads");
  if (kv_heads == nullptr || kv_heads->is_null()) c.num_key_value_heads = c.num_attention_heads;
  require_value(top, "rope_scaling", nullptr, "RoPE is applied unscaled");
  require_value(top, "attention_bias", false, "the attention projections have no bias");
  top.allow(kIgnoredModelKeys);
  top.allow(kGenericHfKeys);
  if (const json* head = top.get("score_head"); head != nullptr) {
    if (!head->is_boolean()) top.fail("score_head", "expected true or false, got " + describe(*head));
    c.score_head = head->get<bool>();
  }

  if (const json* visual = top.get("visual_config"); visual != nullptr && !visual->is_null()) {
    Section vc(*visual, source, "visual_config");
    if (const json* vm = vc.get("visual_model"); vm != nullptr) {
      Section s(*vm, source, "visual_config.visual_model");
      read_vision(s, c.vision);
    }
    if (const json* va = vc.get("visual_abstractor"); va != nullptr) {
      Section s(*va, source, "visual_config.visual_abstractor");
      read_abstractor(s, c.abstractor);
    }
    vc.finish();
  }
  top.finish();
  check_visual_pair(source, c.vision, c.abstractor);

  require_divisible(top, "hidden_size", c.hidden_size, "num_attention_heads", c.num_attention_heads);
  require_divisible(top, "num_attention_heads", c.num_attention_heads, "num_key_value_heads", c.num_key_value_heads);
  // RoPE rotates the two halves of each head.
  if (c.head_dim() % 2 != 0)
    top.fail("hidden_size", "hidden_size / num_attention_heads must be even for rotary positions, got " +
                                std::to_string(c.head_dim()));
  for (const auto& [key, id] : {std::pair<const char*, int64_t>{"bos_token_id", c.bos_token_id},
                                {"eos_token_id", c.eos_token_id},
                                {"pad_token_id", c.pad_token_id}})
    if (id >= c.vocab_size)
      top.fail(key, "must be below vocab_size = " + std::to_string(c.vocab_size) + ", got " + std::to_string(id));
  if (c.torch_dtype != "float32" && c.torch_dtype != "float16" && c.torch_dtype != "bfloat16")
    top.fail("torch_dtype", "expected \"float32\", \"float16\" or \"bfloat16\", got \"" + c.torch_dtype + "\"");
  return c;
}

nlohmann::json ModelConfig::to_json() const {
  json j = write(kModelFields, *this);
  j["architectures"] = json::array({kArchitecture});
  j["model_type"] = kModelType;
  // What the network implements, stated explicitly, and the authors' image preprocessing.
  j["rope_scaling"] = nullptr;
  j["attention_bias"] = false;
  j["pretraining_tp"] = 1;
  j["image_aspect_ratio"] = "pad";
  j["visual_config"] = {{"visual_model", write(kVisionFields, vision)},
                        {"visual_abstractor", write(kAbstractorFields, abstractor)}};
  if (score_head) j["score_head"] = true;
  return j;
}

}  // namespace qalign::model
