// The qalign command: one binary, a subcommand per job.
#include <CLI/CLI.hpp>

#include <csignal>
#include <iostream>
#include <vector>

#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  using namespace qalign;
  // A file-size limit (ulimit -f, a file system's largest file) then fails the write with EFBIG,
  // reported naming the file and cleaned up, instead of killing the process mid-file.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"qalign: train, evaluate, score and export Q-Align / OneAlign visual scorers"};
  app.require_subcommand(1);
  bool quiet = false, verbose = false;
  app.add_flag("-q,--quiet", quiet, "Only print warnings and errors");
  app.add_flag("-v,--verbose", verbose, "Print debug messages");

  std::vector<tools::Command> commands = {
      tools::add_inspect(app), tools::add_data(app),   tools::add_score(app), tools::add_init(app),
      tools::add_train(app),   tools::add_plan(app),   tools::add_eval(app),
#ifdef QALIGN_WITH_OPENCV
      tools::add_demo(app),
#endif
      tools::add_export(app),  tools::add_launch(app), tools::add_bench(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  log::set_level(verbose ? log::Level::Debug : quiet ? log::Level::Warn : log::Level::Info);
  for (auto& c : commands) {
    if (!c.app->parsed()) continue;
    try {
      return c.run();
    } catch (const Error& e) {
      log::error(e.what());
      return 1;
    } catch (const std::exception& e) {
      log::error("unexpected error: ", e.what());
      return 1;
    }
  }
  return 2;
}
