#include "qalign/model/presets.h"

#include <regex>

#include "qalign/base/error.h"
#include "qalign/base/text.h"

namespace qalign::model {

namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.vocab_size = 576;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.max_position_embeddings = 256;
  c.rms_norm_eps = 1e-5;
  c.torch_dtype = "float32";
  c.vision = {32, 64, 2, 4, 3, 56, 14, 1e-6, "quick_gelu"};
  c.abstractor = {8, 32, 2, 4, 88, 32, 4, 1e-6};
  return c;
}

ModelConfig small() {
  ModelConfig c;
  c.vocab_size = 32000;
  c.hidden_size = 512;
  c.intermediate_size = 1376;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.rms_norm_eps = 1e-6;
  c.torch_dtype = "float32";
  c.vision = {256, 1024, 4, 4, 3, 224, 14, 1e-6, "quick_gelu"};
  c.abstractor = {32, 256, 2, 4, 704, 256, 16, 1e-6};
  return c;
}

}  // namespace

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {"tiny", "small", "owl2-7b", "owl2-7b-<N>l", "MODEL.json"};
  return names;
}

ModelConfig preset_config(const std::string& name, const std::string& field) {
  if (ends_with(name, ".json")) return ModelConfig::from_json_file(name);
  if (name == "tiny") return tiny();
  if (name == "small") return small();
  if (name == "owl2-7b") return ModelConfig::owl2_7b();
  static const std::regex layers("owl2-7b-([0-9]+)l");
  std::smatch m;
  if (std::regex_match(name, m, layers)) {
    auto c = ModelConfig::owl2_7b();
    // The released depths bound N (digits compared as text: no overflow on a long number).
    const std::string n = m[1].str();
    const std::string most = std::to_string(c.num_hidden_layers);
    if (n.size() > 9 || std::stoll(n) < 1 || std::stoll(n) > c.num_hidden_layers)
      fail(field, "",
           "\"" + name + "\": the layer count must be 1 to " + most + " (owl2-7b has " + most + " language and " +
               std::to_string(c.vision.num_hidden_layers) + " vision layers)");
    c.num_hidden_layers = std::stoll(n);
    c.vision.num_hidden_layers = std::min(c.num_hidden_layers, c.vision.num_hidden_layers);
    // Through the checks config.json goes through.
    return ModelConfig::from_json(c.to_json(), field + " " + name);
  }
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  fail(field, "", "unknown preset \"" + name + "\"; expected one of " + known);
}

}  // namespace qalign::model
