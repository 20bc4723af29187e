// qalign demo make-data | plot: the README's training demo. make-data turns the photographs two
// Debian packages ship into a synthetic-distortion quality set in the authors' formats (graded
// blur, noise, JPEG, contrast and colour cast by default; the MOS a fixed function of the
// strength), split by source photograph so the test pictures are never trained on, plus a
// tokenizer learned from the prompts. plot draws the training loss and held-out SRCC. The work is
// data/demo_set.h and data/training_plot.h; here are the options.
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "data/demo_report.h"
#include "data/demo_set.h"
#include "data/training_plot.h"
#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/io/output_guard.h"
#include "qalign/tokenizer_train.h"
#include "tools/commands.h"

namespace qalign::tools {

namespace {

struct MakeDataArgs {
  data::DemoSetOptions set;
  int64_t vocab_size = 512;
};

int run_make_data(const MakeDataArgs& a) {
  const auto n = data::make_demo_set(a.set);
  const std::string tokenizer = (std::filesystem::path(a.set.out) / "tokenizer").string();
  const int64_t vocab = train_prompt_tokenizer(tokenizer, a.vocab_size);
  log::info("wrote ", n.train_pictures, " training and ", n.test_pictures, " test pictures from ", n.train_photographs,
            " + ", n.test_photographs, " photographs, and a ", vocab, "-piece tokenizer, to ", a.set.out);
  return 0;
}

struct PlotArgs {
  std::string metrics, out, dataset, metric = "srcc";
  bool overwrite = false;
};

int run_plot(const PlotArgs& a) {
  std::string extension = std::filesystem::path(a.out).extension().string();
  for (char& ch : extension) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (extension != ".png") fail("--out", "", a.out + ": expected a .png file name (the plot is a PNG picture)");
  io::require_new_file(a.out, "--out", a.overwrite, {{"--metrics", a.metrics}});
  data::plot_training(a.metrics, a.out, a.dataset, a.metric);
  return 0;
}

}  // namespace

Command add_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "The training demo: a synthetic-distortion set from real photographs, plots");
  cmd->require_subcommand(1);

  auto m = std::make_shared<MakeDataArgs>();
  auto* make =
      cmd->add_subcommand("make-data", "Distort the photographs Debian ships into train/test sets + tokenizer");
  make->add_option("--out", m->set.out, "Output folder (images/, train.json, test.json, tokenizer/)")->required();
  make->add_option("--seed", m->set.seed, "Split, strengths and noise")->capture_default_str();
  make->add_option("--per-image", m->set.per_image, "Distorted variants per training photograph")
      ->capture_default_str();
  make->add_option("--test-per-image", m->set.test_per_image, "Distorted variants per test photograph")
      ->capture_default_str();
  make->add_option("--test-fraction", m->set.test_fraction, "Share of the photographs held out for testing")
      ->capture_default_str();
  make->add_option("--size", m->set.size, "Side of the square pictures written: the model's image_size")
      ->capture_default_str();
  make->add_option("--scene", m->set.scene,
                   "Short side the photographs are scaled to before cropping (0: 8/7 of --size)")
      ->capture_default_str();
  make->add_option("--distortions", m->set.distortions,
                   "Comma-separated types: blur, noise, jpeg, contrast, color_shift, downscale")
      ->delimiter(',')
      ->capture_default_str();
  make->add_option("--vocab-size", m->vocab_size, "Pieces of the prompt tokenizer")->capture_default_str();

  auto p = std::make_shared<PlotArgs>();
  auto* plot = cmd->add_subcommand("plot", "PNG plot of the training loss and evaluation SRCC");
  plot->add_option("--metrics", p->metrics, "The run's output_dir/metrics.jsonl (loss and eval_steps evaluations)")
      ->required();
  plot->add_option("--dataset", p->dataset, "Evaluation dataset to plot (default: the first in the file)");
  plot->add_option("--metric", p->metric, "srcc | plcc | krcc")->capture_default_str();
  plot->add_option("--out", p->out, "PNG file to write (a new file)")->required();
  plot->add_flag("--overwrite", p->overwrite, "Replace an existing --out file");

  auto r = std::make_shared<data::DemoReportOptions>();
  auto* report = cmd->add_subcommand(
      "report", "Held-out SRCC per distortion type, and a contact sheet of the best- and worst-rated pictures");
  report->add_option("--model", r->model, "The trained model folder")->required();
  report->add_option("--data", r->data, "The folder make-data wrote")->required();
  report->add_option("--sheet", r->sheet, "Contact sheet PNG to write")->required();
  report->add_option("--count", r->count, "Pictures in each row of the sheet")->capture_default_str();

  return {cmd, [make, report, m, p, r]() {
            if (make->parsed()) return run_make_data(*m);
            if (report->parsed()) {
              std::printf("%s", data::demo_report(*r).c_str());
              return 0;
            }
            return run_plot(*p);
          }};
}

}  // namespace qalign::tools
