#include "qalign/config/train_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <sstream>
#include <variant>

#include "qalign/base/bounded_file.h"
#include "qalign/base/error.h"
#include "qalign/base/keys.h"
#include "qalign/config/limits.h"

namespace qalign::config {

namespace {

using Member =
    std::variant<int64_t TrainConfig::*, double TrainConfig::*, bool TrainConfig::*, std::string TrainConfig::*,
                 std::vector<std::string> TrainConfig::*, std::optional<double> TrainConfig::*>;

// A bound on a number; `expect` completes "expected ..." in the error when it does not hold.
struct Check {
  const char* expect = nullptr;
  bool (*ok)(double) = nullptr;
};

const Check kPositive{"a value > 0", [](double v) { return v > 0; }};
const Check kNonNegative{"a value >= 0", [](double v) { return v >= 0; }};
const Check kFraction{"a value in [0, 1]", [](double v) { return v >= 0 && v <= 1; }};
const Check kBeta{"a value in [0, 1)", [](double v) { return v >= 0 && v < 1; }};
const Check kHeadroom{"-1 (the plan's estimate) or a value >= 0", [](double v) { return v == -1 || v >= 0; }};
const Check kStepLimit{"-1 (no limit) or a value > 0", [](double v) { return v == -1 || v > 0; }};
// AdamW moves each weight by about the learning rate a step: past 1 a step destroys the model
// (the authors use 2e-5), and values near the double's limit overflow the update to inf.
const Check kLearningRate{"a value in (0, 1]", [](double v) { return v > 0 && v <= 1; }};
// Each optimizer step holds all its micro-batches (pixels included) in memory at once.
const Check kAccumulation{"1 to 4096 micro-batches per step", [](double v) { return v >= 1 && v <= 4096; }};
// Adapter matrices are r x width per adapted layer: ranks past the widest layers (4096 in the
// 7B models) cannot add anything and would only allocate.
const Check kLoraRank{"1 to 4096", [](double v) { return v >= 1 && v <= 4096; }};
const Check kMediaBudget{"a value from 1 to 1048576 (MB)",
                         [](double v) { return v >= 1 && v <= static_cast<double>(kMaxMediaBudgetMb); }};
const Check kTimeout{"1 to 604800 seconds (a week)",
                     [](double v) { return v >= 1 && v <= static_cast<double>(kMaxTimeoutSeconds); }};
// Shards optimizer state (1), also gradients (2), also parameters (3).
const Check kZeroStage{"0, 1, 2 or 3", [](double v) { return v == 0 || v == 1 || v == 2 || v == 3; }};

// One option: its YAML/command-line name, the member it sets, and what values are legal.
// Adding an option to TrainConfig is one line here.
struct Field {
  const char* name;
  Member member;
  Check check = {};
  std::vector<std::string> choices = {};
};

const std::vector<Field> kFields = {
    {"model_name_or_path", &TrainConfig::model_name_or_path},
    {"data_path", &TrainConfig::data_path},
    {"image_folder", &TrainConfig::image_folder},
    {"output_dir", &TrainConfig::output_dir},
    {"version", &TrainConfig::version, {}, {"v1"}},
    {"image_aspect_ratio", &TrainConfig::image_aspect_ratio, {}, {"pad"}},
    {"model_max_length", &TrainConfig::model_max_length, kPositive},
    {"num_train_epochs", &TrainConfig::num_train_epochs, kPositive},
    {"max_steps", &TrainConfig::max_steps, kStepLimit},
    {"per_device_train_batch_size", &TrainConfig::per_device_train_batch_size, kPositive},
    {"per_device_eval_batch_size", &TrainConfig::per_device_eval_batch_size, kPositive},
    {"gradient_accumulation_steps", &TrainConfig::gradient_accumulation_steps, kAccumulation},
    {"seed", &TrainConfig::seed, kNonNegative},
    {"learning_rate", &TrainConfig::learning_rate, kLearningRate},
    {"weight_decay", &TrainConfig::weight_decay, kNonNegative},
    {"warmup_ratio", &TrainConfig::warmup_ratio, kFraction},
    {"lr_scheduler_type", &TrainConfig::lr_scheduler_type, {}, {"cosine", "linear", "constant"}},
    {"adam_beta1", &TrainConfig::adam_beta1, kBeta},
    {"adam_beta2", &TrainConfig::adam_beta2, kBeta},
    {"adam_epsilon", &TrainConfig::adam_epsilon, kPositive},
    {"max_grad_norm", &TrainConfig::max_grad_norm, kNonNegative},
    {"visual_abstractor_lr", &TrainConfig::visual_abstractor_lr, kLearningRate},
    {"tune_visual_abstractor", &TrainConfig::tune_visual_abstractor},
    {"freeze_vision_model", &TrainConfig::freeze_vision_model},
    {"tune_language_model", &TrainConfig::tune_language_model},
    {"lora_enable", &TrainConfig::lora_enable},
    {"lora_r", &TrainConfig::lora_r, kLoraRank},
    {"lora_alpha", &TrainConfig::lora_alpha, kPositive},
    {"lora_dropout", &TrainConfig::lora_dropout, kBeta},
    {"lora_target_modules", &TrainConfig::lora_target_modules},
    {"lora_weights", &TrainConfig::lora_weights},
    {"level_labels", &TrainConfig::level_labels, {}, {"one_hot", "soft"}},
    {"answer_format", &TrainConfig::answer_format, {}, {"levels", "number", "regression"}},
    {"optim", &TrainConfig::optim, {}, {"adamw_torch", "adamw_torch_fused"}},
    {"soft_label_weight", &TrainConfig::soft_label_weight, kNonNegative},
    {"bf16", &TrainConfig::bf16},
    {"tf32", &TrainConfig::tf32},
    {"gradient_checkpointing", &TrainConfig::gradient_checkpointing},
    {"zero_stage", &TrainConfig::zero_stage, kZeroStage},
    {"offload_optimizer", &TrainConfig::offload_optimizer, {}, {"none", "cpu"}},
    {"offload_optimizer_threads", &TrainConfig::offload_optimizer_threads, kNonNegative},
    {"zero3_prefetch_blocks", &TrainConfig::zero3_prefetch_blocks, kNonNegative},
    {"memory_plan_check", &TrainConfig::memory_plan_check},
    {"device_memory_headroom_mb", &TrainConfig::device_memory_headroom_mb, kHeadroom},
    {"ddp_backend", &TrainConfig::ddp_backend, {}, {"auto", "gloo", "nccl"}},
    {"ddp_timeout", &TrainConfig::ddp_timeout, kTimeout},
    {"rendezvous_timeout", &TrainConfig::rendezvous_timeout, kTimeout},
    {"ddp_bucket_cap_mb", &TrainConfig::ddp_bucket_cap_mb, kPositive},
    {"zero_communication_dtype", &TrainConfig::zero_communication_dtype, {}, {"float32", "bfloat16"}},
    {"device", &TrainConfig::device, {}, {"auto", "cpu", "cuda"}},
    {"dataloader_num_workers", &TrainConfig::dataloader_num_workers, kNonNegative},
    {"group_by_modality_length", &TrainConfig::group_by_modality_length},
    {"dataloader_shuffle", &TrainConfig::dataloader_shuffle},
    {"max_skipped_sample_fraction", &TrainConfig::max_skipped_sample_fraction, kFraction},
    {"max_image_file_mb", &TrainConfig::max_image_file_mb, kMediaBudget},
    {"max_image_decoded_mb", &TrainConfig::max_image_decoded_mb, kMediaBudget},
    {"logging_steps", &TrainConfig::logging_steps, kPositive},
    {"save_steps", &TrainConfig::save_steps, kPositive},
    {"save_total_limit", &TrainConfig::save_total_limit, kNonNegative},
    {"resume_from_checkpoint", &TrainConfig::resume_from_checkpoint},
    {"overwrite_output_dir", &TrainConfig::overwrite_output_dir},
    {"max_nonfinite_steps", &TrainConfig::max_nonfinite_steps, kPositive},
    {"eval_data_paths", &TrainConfig::eval_data_paths},
    {"eval_steps", &TrainConfig::eval_steps, kNonNegative},
    {"metric_for_best_model", &TrainConfig::metric_for_best_model, {}, {"srcc", "plcc"}},
};

const std::vector<std::string>& field_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& f : kFields) n.push_back(f.name);
    return n;
  }();
  return names;
}

// The field called `name`; an unknown name is an error suggesting the nearest option.
const Field& find_field(const std::string& name, const std::string& where) {
  for (const auto& f : kFields)
    if (name == f.name) return f;
  fail(where, name, unknown_key_message(name, field_names()));
}

// yaml-cpp tags a quoted scalar "!": `seed: "42"` is a string, not a number.
bool quoted(const YAML::Node& n) { return n.Tag() == "!"; }

// What the user wrote, in words, for "got ..." in an error.
std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return quoted(n) ? "the quoted string \"" + n.Scalar() + "\"" : "'" + n.Scalar() + "'";
    default:
      return "nothing";
  }
}

bool is_null_text(const std::string& s) { return s.empty() || s == "null" || s == "~" || s == "none" || s == "None"; }

// Scalars parse here rather than through yaml-cpp's as<T>, which takes YAML 1.1 booleans
// ("y", "on", "off") and ".inf"/".nan" as values a user rarely means.
std::optional<int64_t> parse_int(const std::string& s) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(const std::string& s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "true") return true;
  if (s == "false") return false;
  return std::nullopt;
}

// Sets one field from a YAML node; `where` is "file:line" or "command line".
class Setter {
 public:
  Setter(TrainConfig& c, const Field& f, const YAML::Node& n, std::string where)
      : c_(c), f_(f), n_(n), where_(std::move(where)) {}

  void operator()(int64_t TrainConfig::*m) const {
    const auto v = plain_scalar() ? parse_int(n_.Scalar()) : std::nullopt;
    if (!v) wrong("an integer");
    check(static_cast<double>(*v));
    c_.*m = *v;
  }
  void operator()(double TrainConfig::*m) const { c_.*m = number(); }
  void operator()(std::optional<double> TrainConfig::*m) const {
    c_.*m =
        n_.IsNull() || (plain_scalar() && is_null_text(n_.Scalar())) ? std::nullopt : std::optional<double>(number());
  }
  void operator()(bool TrainConfig::*m) const {
    const auto v = plain_scalar() ? parse_bool(n_.Scalar()) : std::nullopt;
    if (!v) wrong("true or false");
    c_.*m = *v;
  }
  void operator()(std::string TrainConfig::*m) const {
    if (!n_.IsScalar()) wrong("a string");
    const std::string& s = n_.Scalar();
    if (!f_.choices.empty() && std::find(f_.choices.begin(), f_.choices.end(), s) == f_.choices.end()) {
      std::string list;
      for (const auto& c : f_.choices) list += (list.empty() ? "" : ", ") + c;
      fail(where_, f_.name, "expected one of " + list + ", got '" + s + "'");
    }
    c_.*m = s;
  }
  // A single string counts as a one-item list: `data_path: train.json` reads naturally.
  void operator()(std::vector<std::string> TrainConfig::*m) const {
    std::vector<std::string> items;
    if (n_.IsScalar()) {
      items.push_back(n_.Scalar());
    } else if (n_.IsSequence()) {
      for (const auto& item : n_) {
        if (!item.IsScalar())
          fail(where_, f_.name, "expected a list of strings, got an item that is " + describe(item));
        items.push_back(item.Scalar());
      }
    } else if (!n_.IsNull()) {
      wrong("a list of strings");
    }
    c_.*m = items;
  }

 private:
  bool plain_scalar() const { return n_.IsScalar() && !quoted(n_); }

  double number() const {
    const auto v = plain_scalar() ? parse_double(n_.Scalar()) : std::nullopt;
    if (!v) wrong("a number");
    check(*v);
    return *v;
  }
  void check(double v) const {
    if (f_.check.ok != nullptr && !f_.check.ok(v))
      fail(where_, f_.name, std::string("expected ") + f_.check.expect + ", got " + n_.Scalar());
  }
  [[noreturn]] void wrong(const std::string& expected) const {
    fail(where_, f_.name, "expected " + expected + ", got " + describe(n_));
  }

  TrainConfig& c_;
  const Field& f_;
  const YAML::Node& n_;
  std::string where_;
};

void set(TrainConfig& c, const Field& f, const YAML::Node& n, const std::string& where) {
  std::visit(Setter(c, f, n, where), f.member);
}

std::string at_line(const std::string& path, const YAML::Mark& mark) {
  return path + ":" + std::to_string(mark.line + 1);
}

// yaml-cpp reports a tab in indentation as "illegal tab" or a misplaced entry; saying "tab"
// plainly saves the user from staring at invisible whitespace.
std::string syntax_hint(const std::string& text, int line) {
  std::istringstream in(text);
  std::string l;
  for (int i = 0; i <= line && std::getline(in, l); ++i) {
    if (i < line) continue;
    const size_t indent_end = l.find_first_not_of(" \t");
    if (l.substr(0, indent_end).find('\t') != std::string::npos)
      return " (the line is indented with a tab; YAML allows only spaces)";
  }
  return "";
}

YAML::Node parse_file(const std::string& path) {
  const std::string text = io::read_file_at_most(path, kMaxYamlConfigBytes, "a YAML training config");
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(at_line(path, e.mark), "", "YAML syntax error: " + e.msg + syntax_hint(text, e.mark.line));
  }
}

// The YAML node an override's text stands for: the text itself, or for a list option a flow
// sequence "[a, b]" or comma-separated items.
YAML::Node override_node(const Field& f, const std::string& value, const std::string& where) {
  if (!std::holds_alternative<std::vector<std::string> TrainConfig::*>(f.member)) return YAML::Node(value);
  if (!value.empty() && value.front() == '[') {
    try {
      return YAML::Load(value);
    } catch (const YAML::Exception& e) {
      fail(where, f.name, "expected a list like [a, b] or a,b, got '" + value + "' (" + e.msg + ")");
    }
  }
  YAML::Node items(YAML::NodeType::Sequence);
  std::istringstream in(value);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) items.push_back(item);
  return items;
}

}  // namespace

void apply_override(TrainConfig& config, const std::string& key_value) {
  const std::string where = "command line";
  const size_t eq = key_value.find('=');
  if (eq == std::string::npos || eq == 0) fail(where, "", "override '" + key_value + "': expected key=value");
  const Field& f = find_field(key_value.substr(0, eq), where);
  set(config, f, override_node(f, key_value.substr(eq + 1), where), where);
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  const YAML::Node root = parse_file(path);
  if (root.IsNull()) fail(path, "", "the file is empty; expected a mapping of training options (key: value)");
  if (!root.IsMap())
    fail(at_line(path, root.Mark()), "",
         "expected a mapping of training options (key: value) at the top level, got " + describe(root));
  TrainConfig config;
  std::map<std::string, int> first_line;
  for (const auto& item : root) {
    const std::string where = at_line(path, item.first.Mark());
    if (!item.first.IsScalar()) fail(where, "", "expected an option name, got " + describe(item.first));
    const std::string key = item.first.Scalar();
    // yaml-cpp keeps both entries of a repeated key; a silent "last one wins" hides mistakes.
    const auto [it, fresh] = first_line.emplace(key, item.first.Mark().line + 1);
    if (!fresh) fail(where, key, "duplicate key (first set on line " + std::to_string(it->second) + ")");
    set(config, find_field(key, where), item.second, at_line(path, item.second.Mark()));
  }
  for (const auto& o : overrides) apply_override(config, o);
  validate(config, path);
  return config;
}

void validate(const TrainConfig& config, const std::string& source) {
  if (config.model_name_or_path.empty())
    fail(source, "model_name_or_path", "required: the folder of the initial model (config.json and weights)");
  if (config.data_path.empty()) fail(source, "data_path", "required: one or more training JSON files");
  if (config.output_dir.empty()) fail(source, "output_dir", "required: where checkpoints are written");
  if (config.offload_optimizer != "none" && config.zero_stage == 0)
    fail(source, "offload_optimizer", "needs zero_stage 1 or more: only ZeRO's sharded state can live on the host");
  check_worker_count(config.dataloader_num_workers, source, "dataloader_num_workers");
  check_worker_count(config.offload_optimizer_threads, source, "offload_optimizer_threads");
  if (config.eval_steps > 0 && config.eval_data_paths.empty())
    fail(source, "eval_data_paths", "required when eval_steps > 0: the JSON files to evaluate on");
}

std::string to_yaml(const TrainConfig& config) {
  // Shortest text that reads back to the same double (2e-05, not 2.0000000000000002e-05).
  const auto number = [](double v) {
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, end);
  };
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& f : kFields) {
    out << YAML::Key << f.name << YAML::Value;
    std::visit(
        [&](auto member) {
          const auto& v = config.*member;
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, double>) {
            out << number(v);
          } else if constexpr (std::is_same_v<T, std::optional<double>>) {
            if (v)
              out << number(*v);
            else
              out << YAML::Null;
          } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            out << YAML::Flow << v;
          } else {
            out << v;
          }
        },
        f.member);
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace qalign::config
