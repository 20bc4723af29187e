// Model config.json and training-recipe YAML: the fixtures and configs/ load with the right
// values, both round-trip, and every malformed input fails with a message naming the file, the
// field and what was expected.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "qalign/base/error.h"
#include "qalign/base/keys.h"
#include "qalign/config/overrides.h"
#include "qalign/config/train_config.h"
#include "qalign/model/config.h"
#include "tests/support/fixtures.h"

namespace qalign {
namespace {

namespace fs = std::filesystem;
using config::TrainConfig;
using model::ModelConfig;
using nlohmann::json;

// A per-process scratch folder, so parallel test runs do not share files; removed at exit.
struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("qalign_test_config_" + std::to_string(getpid()));
  Scratch() { fs::create_directories(dir); }
  ~Scratch() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

fs::path scratch() {
  static const Scratch s;
  return s.dir;
}

std::string write_file(const std::string& name, const std::string& text) {
  const fs::path p = scratch() / name;
  std::ofstream(p) << text;
  return p.string();
}

std::string config_yaml(const std::string& name) { return test::source_dir() + "/configs/" + name; }

json tiny_json() {
  std::ifstream in(test::fixture("qalign-tiny/model/config.json"));
  return json::parse(in);
}

TEST(ModelConfig, TinyFixture) {
  const auto c = ModelConfig::from_json_file(test::fixture("qalign-tiny/model/config.json"));
  EXPECT_EQ(c.vocab_size, 576);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.max_position_embeddings, 256);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.torch_dtype, "float32");
  EXPECT_EQ(c.head_dim(), 16);
  EXPECT_EQ(c.vision.hidden_size, 32);
  EXPECT_EQ(c.vision.intermediate_size, 64);
  EXPECT_EQ(c.vision.num_attention_heads, 4);
  EXPECT_EQ(c.vision.image_size, 56);
  EXPECT_EQ(c.vision.patch_size, 14);
  EXPECT_EQ(c.vision.hidden_act, "quick_gelu");
  EXPECT_EQ(c.num_patches(), 16);
  EXPECT_EQ(c.abstractor.num_learnable_queries, 8);
  EXPECT_EQ(c.abstractor.hidden_size, 32);
  EXPECT_EQ(c.abstractor.intermediate_size, 88);
  EXPECT_EQ(c.abstractor.encoder_hidden_size, 32);
  EXPECT_EQ(c.abstractor.grid_size, 4);
  EXPECT_EQ(c.tokens_per_image(), 9);
}

TEST(ModelConfig, Fixture448) {
  const auto c = ModelConfig::from_json_file(test::fixture("qalign-448/model/config.json"));
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.vision.image_size, 448);
  EXPECT_EQ(c.abstractor.grid_size, 32);
  EXPECT_EQ(c.num_patches(), 1024);
}

// The released model's sizes (SPEC.md §1), and HF's defaults for keys a config.json leaves out.
TEST(ModelConfig, Owl27bDefaults) {
  const auto c = ModelConfig::owl2_7b();
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 11008);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.head_dim(), 128);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.vision.hidden_size, 1024);
  EXPECT_EQ(c.vision.num_hidden_layers, 24);
  EXPECT_EQ(c.num_patches(), 1024);
  EXPECT_EQ(c.abstractor.num_hidden_layers, 6);
  EXPECT_EQ(c.abstractor.intermediate_size, 2816);
  EXPECT_EQ(c.tokens_per_image(), 65);
  const auto minimal = ModelConfig::from_json({{"model_type", "mplug_owl2"}}, "minimal");
  EXPECT_EQ(minimal.to_json(), c.to_json());
}

TEST(ModelConfig, KeyValueHeadsDefaultToHeads) {
  json j = tiny_json();
  j.erase("num_key_value_heads");
  EXPECT_EQ(ModelConfig::from_json(j, "t").num_key_value_heads, 4);
  j["num_key_value_heads"] = nullptr;
  EXPECT_EQ(ModelConfig::from_json(j, "t").num_key_value_heads, 4);
  j["num_key_value_heads"] = 2;  // grouped-query attention
  EXPECT_EQ(ModelConfig::from_json(j, "t").num_key_value_heads, 2);
}

TEST(ModelConfig, RoundTrip) {
  ModelConfig odd = ModelConfig::from_json_file(test::fixture("qalign-tiny/model/config.json"));
  odd.num_key_value_heads = 2;
  odd.tie_word_embeddings = true;
  odd.rope_theta = 500000.0;
  odd.rms_norm_eps = 1.234567890123e-7;
  odd.torch_dtype = "float16";
  odd.vision.layer_norm_eps = 3e-6;
  odd.abstractor.layer_norm_eps = 1e-5;
  for (const ModelConfig& c :
       {ModelConfig::owl2_7b(), ModelConfig::from_json_file(test::fixture("qalign-448/model/config.json")), odd}) {
    const ModelConfig back = ModelConfig::from_json(c.to_json(), "round trip");
    EXPECT_EQ(back.to_json(), c.to_json());
    EXPECT_EQ(back.num_key_value_heads, c.num_key_value_heads);
    EXPECT_EQ(back.tie_word_embeddings, c.tie_word_embeddings);
    EXPECT_EQ(back.rms_norm_eps, c.rms_norm_eps);  // exact: the text keeps every bit
    EXPECT_EQ(back.vision.layer_norm_eps, c.vision.layer_norm_eps);
    EXPECT_EQ(back.abstractor.grid_size, c.abstractor.grid_size);
  }
}

// What the authors' MPLUGOwl2Config needs to find where it looks.
TEST(ModelConfig, ToJsonIsHfLayout) {
  const json j = ModelConfig::owl2_7b().to_json();
  EXPECT_EQ(j["model_type"], "mplug_owl2");
  EXPECT_EQ(j["architectures"], json::array({"MPLUGOwl2LlamaForCausalLM"}));
  EXPECT_EQ(j["hidden_size"], 4096);
  EXPECT_TRUE(j["rope_scaling"].is_null());
  EXPECT_EQ(j["visual_config"]["visual_model"]["image_size"], 448);
  EXPECT_EQ(j["visual_config"]["visual_abstractor"]["num_learnable_queries"], 64);
}

TEST(ModelConfig, AcceptsKeysTransformersWrites) {
  json j = tiny_json();
  j["_name_or_path"] = "q-future/one-align";
  j["return_dict"] = true;
  j["id2label"] = {{"0", "LABEL_0"}};
  j["task_specific_params"] = nullptr;
  j["top_k"] = 50;
  j["pad_token_id"] = nullptr;
  j["visual_config"]["visual_model"]["model_type"] = "mplug_owl_vision_model";
  j["visual_config"]["visual_abstractor"]["output_attentions"] = false;
  const auto c = ModelConfig::from_json(j, "hf.json");
  EXPECT_EQ(c.pad_token_id, 0);
}

TEST(Keys, Suggestions) {
  EXPECT_EQ(config::edit_distance("hiden_size", "hidden_size"), 1u);
  EXPECT_EQ(config::edit_distance("lerning_rate", "learning_rate"), 1u);
  EXPECT_EQ(config::edit_distance("seed", "sede"), 1u);  // a swap is one edit
  const std::vector<std::string> keys = {"learning_rate", "num_train_epochs", "seed", "save_steps"};
  EXPECT_EQ(config::closest_key("Learning_Rate", keys), "learning_rate");
  EXPECT_EQ(config::closest_key("epochs", keys), "num_train_epochs");
  EXPECT_EQ(config::closest_key("optimizer", keys), "");
  EXPECT_EQ(config::unknown_key_message("visual_modle", {"visual_model", "visual_abstractor"}),
            "unknown key; did you mean 'visual_model'?");
  EXPECT_EQ(config::unknown_key_message("xyz", {"visual_model", "visual_abstractor"}),
            "unknown key; expected one of: visual_model, visual_abstractor");
}

// Every option's default is the authors' (SPEC.md §7).
TEST(TrainConfig, AuthorsDefaults) {
  const TrainConfig c;
  EXPECT_EQ(c.seed, 42);
  EXPECT_EQ(c.model_max_length, 2048);
  EXPECT_EQ(c.max_steps, -1);
  EXPECT_DOUBLE_EQ(c.learning_rate, 2e-5);
  EXPECT_DOUBLE_EQ(c.weight_decay, 0.0);
  EXPECT_DOUBLE_EQ(c.warmup_ratio, 0.03);
  EXPECT_EQ(c.lr_scheduler_type, "cosine");
  EXPECT_DOUBLE_EQ(c.adam_beta1, 0.9);
  EXPECT_DOUBLE_EQ(c.adam_beta2, 0.999);
  EXPECT_DOUBLE_EQ(c.adam_epsilon, 1e-8);
  EXPECT_DOUBLE_EQ(c.max_grad_norm, 0.0);
  EXPECT_FALSE(c.visual_abstractor_lr.has_value());
  EXPECT_TRUE(c.bf16 && c.tf32 && c.gradient_checkpointing && c.group_by_modality_length);
  EXPECT_TRUE(c.tune_visual_abstractor);
  EXPECT_FALSE(c.freeze_vision_model);
  EXPECT_FALSE(c.lora_enable);
  EXPECT_EQ(c.lora_r, 128);
  EXPECT_EQ(c.lora_alpha, 256);
  EXPECT_DOUBLE_EQ(c.lora_dropout, 0.05);
  EXPECT_EQ(c.dataloader_num_workers, 4);
  EXPECT_EQ(c.logging_steps, 1);
  EXPECT_EQ(c.level_labels, "one_hot");
  EXPECT_EQ(c.answer_format, "levels");
}

TEST(TrainConfig, EveryShippedConfigLoads) {
  int n = 0;
  std::vector<fs::directory_entry> entries;
  for (const auto& e : fs::directory_iterator(test::source_dir() + "/configs")) entries.push_back(e);
  for (const auto& folder : fs::directory_iterator(test::source_dir() + "/experiments"))
    if (folder.is_directory())
      for (const auto& e : fs::directory_iterator(folder.path())) entries.push_back(e);
  for (const auto& entry : entries) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(config::load_train_config(entry.path().string()));
    ++n;
  }
  EXPECT_GE(n, 3);
}

// The per-script values of SPEC.md §7's table.
TEST(TrainConfig, ScriptValues) {
  struct Row {
    const char* file;
    const char* data;
    double epochs;
    int64_t batch;
    int64_t save_steps;
  };
  for (const Row& r : {Row{"l1_koniq.yaml", "train_koniq.json", 3, 8, 111},
                       Row{"iqa_mix.yaml", "train_koniq_spaq_kadid.json", 3, 16, 188},
                       Row{"onealign.yaml", "train_all.json", 2, 32, 1100},
                       Row{"../experiments/iqa-single/l1_spaq.yaml", "train_spaq.json", 3, 8, 140},
                       Row{"../experiments/iaa-ava/l1_ava.yaml", "train_ava.json", 2, 16, 1800},
                       Row{"../experiments/vqa-lsvq/l1_lsvq.yaml", "train_lsvq.json", 2, 8, 438}}) {
    SCOPED_TRACE(r.file);
    const TrainConfig c = config::load_train_config(config_yaml(r.file));
    ASSERT_EQ(c.data_path.size(), 1u);
    EXPECT_EQ(fs::path(c.data_path[0]).filename(), r.data);
    EXPECT_EQ(c.num_train_epochs, r.epochs);
    EXPECT_EQ(c.per_device_train_batch_size, r.batch);
    EXPECT_EQ(c.gradient_accumulation_steps, 1);
    EXPECT_EQ(c.save_steps, r.save_steps);
    EXPECT_DOUBLE_EQ(c.learning_rate, 2e-5);
    EXPECT_DOUBLE_EQ(c.warmup_ratio, 0.03);
    EXPECT_TRUE(c.tune_visual_abstractor);
    EXPECT_FALSE(c.freeze_vision_model);
  }
}

TEST(TrainConfig, OverridesAreTyped) {
  TrainConfig c =
      config::load_train_config(config_yaml("l1_koniq.yaml"),
                                {"learning_rate=1e-4", "seed=7", "bf16=False", "num_train_epochs=1", "max_steps=-1",
                                 "data_path=a.json,b.json", "eval_data_paths=[x.json, y.json]", "eval_steps=50",
                                 "visual_abstractor_lr=2e-5", "lr_scheduler_type=linear", "image_folder=/data/a=b"});
  EXPECT_DOUBLE_EQ(c.learning_rate, 1e-4);
  EXPECT_EQ(c.seed, 7);
  EXPECT_FALSE(c.bf16);
  EXPECT_EQ(c.num_train_epochs, 1.0);
  EXPECT_EQ(c.data_path, (std::vector<std::string>{"a.json", "b.json"}));
  EXPECT_EQ(c.eval_data_paths, (std::vector<std::string>{"x.json", "y.json"}));
  ASSERT_TRUE(c.visual_abstractor_lr.has_value());
  EXPECT_DOUBLE_EQ(*c.visual_abstractor_lr, 2e-5);
  EXPECT_EQ(c.lr_scheduler_type, "linear");
  EXPECT_EQ(c.image_folder, "/data/a=b");
  config::apply_override(c, "visual_abstractor_lr=null");
  EXPECT_FALSE(c.visual_abstractor_lr.has_value());
}

TEST(TrainConfig, OverridesFromArgs) {
  const auto o = config::overrides_from_args(
      {"--learning_rate", "1e-4", "--bf16=False", "seed=3", "--per-device-train-batch-size", "4", "--max_steps", "-1"});
  EXPECT_EQ(o, (std::vector<std::string>{"learning_rate=1e-4", "bf16=False", "seed=3", "per_device_train_batch_size=4",
                                         "max_steps=-1"}));
  const TrainConfig c = config::load_train_config(config_yaml("l1_koniq.yaml"), o);
  EXPECT_EQ(c.per_device_train_batch_size, 4);
  EXPECT_EQ(c.seed, 3);
}

TEST(TrainConfig, YamlRoundTrip) {
  const TrainConfig c = config::load_train_config(
      config_yaml("onealign.yaml"), {"visual_abstractor_lr=2e-5", "eval_data_paths=a.json,b.json", "eval_steps=100",
                                     "image_folder=", "learning_rate=0.1"});
  const std::string text = config::to_yaml(c);
  const TrainConfig back = config::load_train_config(write_file("round_trip.yaml", text));
  EXPECT_EQ(config::to_yaml(back), text);
  EXPECT_EQ(back.learning_rate, 0.1);
  EXPECT_EQ(back.image_folder, "");
  EXPECT_EQ(back.eval_data_paths, c.eval_data_paths);
}

// ---- Malformed inputs: each must throw qalign::Error whose message holds every expected piece.

enum class Input { Json, Yaml, Override, Args };

struct Malformed {
  const char* name;  // also the file name, so messages can be checked for it
  Input input;
  std::string text;  // file contents, one override, or space-separated arguments
  std::vector<std::string> expected;
};

std::ostream& operator<<(std::ostream& os, const Malformed& m) { return os << m.name; }

const char* kTrainBase = "model_name_or_path: m\ndata_path: [a.json]\noutput_dir: out\n";

std::string tiny_with(const std::function<void(json&)>& edit) {
  json j = tiny_json();
  edit(j);
  return j.dump(2);
}

std::vector<Malformed> malformed_cases() {
  return {
      // config.json
      {"truncated",
       Input::Json,
       R"({"model_type": "mplug_owl2", "hidden_size": 64)",
       {"truncated.json: invalid JSON", "line 1", "unexpected end of input"}},
      {"empty_json", Input::Json, "", {"empty_json.json: invalid JSON", "unexpected end of input"}},
      {"json_root_array",
       Input::Json,
       "[1, 2]",
       {"json_root_array.json: (top level): expected a JSON object, got [1,2] (an array)"}},
      {"string_for_int",
       Input::Json,
       tiny_with([](json& j) { j["hidden_size"] = "64"; }),
       {"string_for_int.json: hidden_size: expected a positive integer, got \"64\" (a string)"}},
      {"float_for_int",
       Input::Json,
       tiny_with([](json& j) { j["visual_config"]["visual_model"]["num_hidden_layers"] = 2.5; }),
       {"float_for_int.json: visual_config.visual_model.num_hidden_layers: expected a positive "
        "integer, got 2.5 (a float)"}},
      {"unknown_nested_key",
       Input::Json,
       tiny_with([](json& j) { j["visual_config"]["visual_model"]["hiden_size"] = 32; }),
       {"unknown_nested_key.json: visual_config.visual_model.hiden_size: unknown key; did you mean "
        "'hidden_size'?"}},
      {"unknown_top_key",
       Input::Json,
       tiny_with([](json& j) { j["num_layers"] = 2; }),
       {"unknown_top_key.json: num_layers: unknown key"}},
      {"negative_size",
       Input::Json,
       tiny_with([](json& j) { j["visual_config"]["visual_abstractor"]["num_hidden_layers"] = -2; }),
       {"negative_size.json: visual_config.visual_abstractor.num_hidden_layers: expected a "
        "positive "
        "integer, got -2"}},
      {"heads_do_not_divide",
       Input::Json,
       tiny_with([](json& j) { j["hidden_size"] = 66; }),
       {"heads_do_not_divide.json: hidden_size: must be divisible by num_attention_heads = 4, got "
        "66"}},
      {"vision_heads_do_not_divide",
       Input::Json,
       tiny_with([](json& j) { j["visual_config"]["visual_model"]["num_attention_heads"] = 3; }),
       {"vision_heads_do_not_divide.json: visual_config.visual_model.hidden_size: must be "
        "divisible "
        "by num_attention_heads = 3, got 32"}},
      {"kv_heads_do_not_divide",
       Input::Json,
       tiny_with([](json& j) { j["num_key_value_heads"] = 3; }),
       {"kv_heads_do_not_divide.json: num_attention_heads: must be divisible by "
        "num_key_value_heads "
        "= 3, got 4"}},
      {"wrong_model_type",
       Input::Json,
       tiny_with([](json& j) { j["model_type"] = "llama"; }),
       {"wrong_model_type.json: model_type: expected \"mplug_owl2\""}},
      {"rope_scaling",
       Input::Json,
       tiny_with([](json& j) {
         j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
       }),
       {"rope_scaling.json: rope_scaling: only null is supported"}},
      {"grid_mismatch",
       Input::Json,
       tiny_with([](json& j) { j["visual_config"]["visual_abstractor"]["grid_size"] = 32; }),
       {"grid_mismatch.json: visual_config.visual_abstractor.grid_size: must equal "
        "visual_model.image_size / patch_size = 4"}},
      {"abstractor_left_default",
       Input::Json,
       tiny_with([](json& j) { j["visual_config"].erase("visual_abstractor"); }),
       {"abstractor_left_default.json: visual_config.visual_abstractor.encoder_hidden_size: must "
        "equal visual_model.hidden_size = 32"}},
      {"visual_config_not_object",
       Input::Json,
       tiny_with([](json& j) { j["visual_config"] = 3; }),
       {"visual_config_not_object.json: visual_config: expected a JSON object"}},
      {"token_id_out_of_vocab",
       Input::Json,
       tiny_with([](json& j) { j["eos_token_id"] = 576; }),
       {"token_id_out_of_vocab.json: eos_token_id: must be below vocab_size = 576"}},
      // training YAML
      {"empty_yaml", Input::Yaml, "", {"empty_yaml.yaml: the file is empty"}},
      {"tab_indent",
       Input::Yaml,
       "model_name_or_path: m\ndata_path:\n\t- a.json\n",
       {"tab_indent.yaml:3: YAML syntax error", "indented with a tab"}},
      {"unclosed_list", Input::Yaml, "data_path: [a.json\nseed: 1\n", {"unclosed_list.yaml:", "YAML syntax error"}},
      {"yaml_root_list",
       Input::Yaml,
       "- seed\n- 1\n",
       {"yaml_root_list.yaml:1: expected a mapping of training options", "got a list"}},
      {"list_for_scalar",
       Input::Yaml,
       std::string(kTrainBase) + "seed: [1, 2]\n",
       {"list_for_scalar.yaml:4: seed: expected an integer, got a list"}},
      {"word_for_number",
       Input::Yaml,
       std::string(kTrainBase) + "learning_rate: fast\n",
       {"word_for_number.yaml:4: learning_rate: expected a number, got 'fast'"}},
      {"quoted_int",
       Input::Yaml,
       std::string(kTrainBase) + "seed: \"42\"\n",
       {"quoted_int.yaml:4: seed: expected an integer, got the quoted string \"42\""}},
      {"float_for_int_yaml",
       Input::Yaml,
       std::string(kTrainBase) + "save_steps: 1.5\n",
       {"float_for_int_yaml.yaml:4: save_steps: expected an integer, got '1.5'"}},
      {"bad_bool",
       Input::Yaml,
       std::string(kTrainBase) + "bf16: maybe\n",
       {"bad_bool.yaml:4: bf16: expected true or false, got 'maybe'"}},
      {"unknown_yaml_key",
       Input::Yaml,
       std::string(kTrainBase) + "\nlerning_rate: 1e-4\n",
       {"unknown_yaml_key.yaml:5: lerning_rate: unknown key; did you mean 'learning_rate'?"}},
      {"duplicate_key",
       Input::Yaml,
       "seed: 1\n" + std::string(kTrainBase) + "seed: 2\n",
       {"duplicate_key.yaml:5: seed: duplicate key (first set on line 1)"}},
      {"bad_choice",
       Input::Yaml,
       std::string(kTrainBase) + "lr_scheduler_type: cosin\n",
       {"bad_choice.yaml:4: lr_scheduler_type: expected one of cosine, linear, constant, got "
        "'cosin'"}},
      {"bad_answer_format",
       Input::Yaml,
       std::string(kTrainBase) + "answer_format: score\n",
       {"bad_answer_format.yaml:4: answer_format: expected one of levels, number, regression, got 'score'"}},
      {"out_of_range",
       Input::Yaml,
       std::string(kTrainBase) + "warmup_ratio: 1.5\n",
       {"out_of_range.yaml:4: warmup_ratio: expected a value in [0, 1], got 1.5"}},
      {"zero4",
       Input::Yaml,
       std::string(kTrainBase) + "zero_stage: 4\n",
       {"zero4.yaml:4: zero_stage: expected 0, 1, 2 or 3, got 4"}},
      {"offload_unknown",
       Input::Yaml,
       std::string(kTrainBase) + "offload_optimizer: nvme\n",
       {"offload_unknown.yaml:4: offload_optimizer:"}},
      {"mapping_for_list",
       Input::Yaml,
       "data_path: {a: 1}\n",
       {"mapping_for_list.yaml:1: data_path: expected a list of strings, got a mapping"}},
      {"missing_required", Input::Yaml, "seed: 1\n", {"missing_required.yaml: model_name_or_path: required"}},
      {"eval_without_data",
       Input::Yaml,
       std::string(kTrainBase) + "eval_steps: 10\n",
       {"eval_without_data.yaml: eval_data_paths: required when eval_steps > 0"}},
      // command-line overrides (applied to configs/l1_koniq.yaml) and argument tails
      {"bad_override_value", Input::Override, "seed=abc", {"command line: seed: expected an integer, got 'abc'"}},
      {"bad_override_bool", Input::Override, "bf16=yes", {"command line: bf16: expected true or false, got 'yes'"}},
      {"override_out_of_range",
       Input::Override,
       "per_device_train_batch_size=0",
       {"command line: per_device_train_batch_size: expected a value > 0, got 0"}},
      {"unknown_override",
       Input::Override,
       "learnig_rate=1e-4",
       {"command line: learnig_rate: unknown key; did you mean 'learning_rate'?"}},
      {"override_without_value", Input::Override, "seed", {"command line: override 'seed': expected key=value"}},
      {"bad_override_list",
       Input::Override,
       "data_path=[a.json",
       {"command line: data_path: expected a list like [a, b] or a,b"}},
      {"args_missing_value", Input::Args, "--seed", {"command line: seed: missing value"}},
      {"args_positional", Input::Args, "--seed 1 stray", {"command line: unexpected argument 'stray'"}},
  };
}

class MalformedInput : public testing::TestWithParam<Malformed> {};

void load(const Malformed& m) {
  switch (m.input) {
    case Input::Json:
      ModelConfig::from_json_file(write_file(std::string(m.name) + ".json", m.text));
      return;
    case Input::Yaml:
      config::load_train_config(write_file(std::string(m.name) + ".yaml", m.text));
      return;
    case Input::Override:
      config::load_train_config(config_yaml("l1_koniq.yaml"), {m.text});
      return;
    case Input::Args: {
      std::istringstream in(m.text);
      std::vector<std::string> args;
      for (std::string a; in >> a;) args.push_back(a);
      config::overrides_from_args(args);
      return;
    }
  }
}

TEST_P(MalformedInput, FailsWithAClearMessage) {
  const Malformed& m = GetParam();
  try {
    load(m);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const auto& piece : m.expected)
      EXPECT_NE(message.find(piece), std::string::npos) << "want: " << piece << "\ngot:  " << message;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a qalign::Error: " << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Config, MalformedInput, testing::ValuesIn(malformed_cases()),
                         [](const testing::TestParamInfo<Malformed>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace qalign
