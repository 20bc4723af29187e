#pragma once
// Each subcommand lives in its own tools/cmd_<name>.cpp and registers itself here.
#include <CLI/CLI.hpp>

#include <functional>

namespace qalign::tools {

// Adds the subcommand to `app`; the returned callback runs it and gives the exit code.
using Runner = std::function<int()>;
struct Command {
  CLI::App* app;
  Runner run;
};

Command add_inspect(CLI::App& app);
Command add_data(CLI::App& app);
Command add_score(CLI::App& app);
Command add_init(CLI::App& app);
Command add_train(CLI::App& app);
Command add_plan(CLI::App& app);
Command add_eval(CLI::App& app);
Command add_demo(CLI::App& app);
Command add_export(CLI::App& app);
Command add_launch(CLI::App& app);
Command add_bench(CLI::App& app);

}  // namespace qalign::tools
