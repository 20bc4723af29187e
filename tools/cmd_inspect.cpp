// qalign inspect PATH: what a checkpoint holds, without building a model; beside a config.json,
// also the memory its weights take when scoring in each mode (float32, bfloat16, int8, int4).
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "qalign/io/checkpoint.h"
#include "qalign/io/state_dict.h"
#include "qalign/model/config.h"
#include "tools/commands.h"
#include "tools/mode_weights.h"

namespace qalign::tools {

namespace {

uint64_t dtype_bytes(const std::string& dtype) { return c10::elementSize(io::dtype_from_safetensors(dtype, "", "")); }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// config.json of the model folder that `path` is or lies in, when there is one.
std::optional<model::ModelConfig> model_config(const std::string& path) {
  namespace fs = std::filesystem;
  const auto dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  const auto config = dir / "config.json";
  if (!fs::exists(config)) return std::nullopt;
  return model::ModelConfig::from_json_file(config.string());
}

}  // namespace

Command add_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "List a checkpoint's tensors: name, dtype, shape, totals");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("path", *path, "Model folder, index (.index.json) or weights file (.safetensors, .bin)")->required();
  cmd->add_flag("--json", *json, "Print one JSON object");
  return {cmd, [path, json]() {
            const auto tensors = io::list_weights(*path);
            uint64_t params = 0, bytes = 0;
            for (const auto& t : tensors) {
              uint64_t n = 1;
              for (auto d : t.shape) n *= static_cast<uint64_t>(d);
              params += n;
              bytes += n * dtype_bytes(t.dtype);
            }
            const auto config = model_config(*path);
            if (*json) {  // written entry by entry: a header may list a million tensors
              std::cout << "{\"num_bytes\":" << bytes << ",\"num_parameters\":" << params;
              if (config) std::cout << ",\"weights_per_mode\":" << mode_weights_json(*config).dump();
              std::cout << ",\"tensors\":[";
              for (size_t i = 0; i < tensors.size(); ++i)
                std::cout << (i ? "," : "")
                          << nlohmann::json{{"name", tensors[i].name},
                                            {"dtype", tensors[i].dtype},
                                            {"shape", tensors[i].shape}}
                                 .dump();
              std::cout << "]}\n";
              return 0;
            }
            size_t width = 4;
            for (const auto& t : tensors) width = std::max(width, t.name.size());
            std::printf("%-*s  %-5s  %s\n", static_cast<int>(width), "name", "dtype", "shape");
            for (const auto& t : tensors)
              std::printf("%-*s  %-5s  %s\n", static_cast<int>(width), t.name.c_str(), t.dtype.c_str(),
                          shape_text(t.shape).c_str());
            std::printf("%zu tensors, %llu parameters, %llu bytes\n", tensors.size(),
                        static_cast<unsigned long long>(params), static_cast<unsigned long long>(bytes));
            if (config) std::cout << mode_weights_text(*config);
            return 0;
          }};
}

}  // namespace qalign::tools
