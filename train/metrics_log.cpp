#include "train/metrics_log.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/log.h"

namespace qalign::train {

MetricsLog::MetricsLog(const std::string& output_dir, int64_t resume_step)
    : path_(output_dir + "/metrics.jsonl"), first_step_(std::max<int64_t>(resume_step, 0)) {
  std::string kept;
  if (resume_step >= 0) {
    std::ifstream in(path_);
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("step") && j["step"].is_number() && j["step"].get<int64_t>() <= resume_step)
        kept += line + "\n";
    }
  }
  io::write_file_atomic(path_, kept);
  out_.open(path_, std::ios::app);
  if (!out_) fail(path_, "", "cannot open for appending");
}

void MetricsLog::write(const StepMetrics& m, int64_t total_steps) {
  char line[512];
  std::snprintf(line, sizeof line,
                "step %lld/%lld | epoch %.2f | loss %.6f | grad norm %.4f | lr %.3e | %.1f samples/s | %.0f tokens/s | "
                "%.0f ms/step | peak %.0f MiB",
                static_cast<long long>(m.step), static_cast<long long>(total_steps), m.epoch, m.loss, m.grad_norm, m.lr,
                m.samples_per_s, m.tokens_per_s, m.ms_per_step, m.peak_memory_mib);
  std::string text = line;
  if (m.input_wait_ms_per_step >= 1)
    text += " | waited " + std::to_string(std::lround(m.input_wait_ms_per_step)) + " ms/step for input";
  if (m.nonfinite_steps > 0) text += " | " + std::to_string(m.nonfinite_steps) + " non-finite steps skipped";
  if (m.skipped_samples > 0) text += " | " + std::to_string(m.skipped_samples) + " unreadable samples skipped";
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int64_t done = m.step - first_step_;
  const std::string eta =
      " | ETA " +
      (done > 0 ? log::clock_text(elapsed / static_cast<double>(done) * static_cast<double>(total_steps - m.step))
                : std::string("-"));
  if (log::to_terminal()) {
    char brief[160];
    std::snprintf(brief, sizeof brief, "step %lld/%lld | loss %.4f | %.1f samples/s", static_cast<long long>(m.step),
                  static_cast<long long>(total_steps), m.loss, m.samples_per_s);
    log::status(brief + eta + last_eval_);
  } else {
    log::info(text + eta);
  }
  nlohmann::json j = {{"step", m.step},
                      {"epoch", m.epoch},
                      {"loss", m.loss},
                      {"grad_norm", m.grad_norm},
                      {"lr", m.lr},
                      {"samples_per_s", m.samples_per_s},
                      {"tokens_per_s", m.tokens_per_s},
                      {"ms_per_step", m.ms_per_step},
                      {"input_wait_ms_per_step", m.input_wait_ms_per_step},
                      {"peak_memory_mib", m.peak_memory_mib},
                      {"nonfinite_steps", m.nonfinite_steps},
                      {"skipped_samples", m.skipped_samples}};
  if (!m.memory.is_null()) j["memory"] = m.memory;
  if (!m.memory_report.is_null() && !m.memory_report.empty()) j["memory_report"] = m.memory_report;
  out_ << j.dump() << "\n";
  out_.flush();
}

void MetricsLog::write_eval(int64_t step, double epoch, const std::map<std::string, metrics::Agreement>& results) {
  nlohmann::json j = {{"step", step}, {"epoch", epoch}};
  // NaN (a constant prediction) is written as null, which JSON can hold.
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  for (const auto& [name, a] : results) {
    char line[256];
    std::snprintf(line, sizeof line, "eval step %lld | %s (%zu items) | srcc %.4f | plcc %.4f | krcc %.4f",
                  static_cast<long long>(step), name.c_str(), a.n, a.srcc, a.plcc, a.krcc);
    log::info(line);
    std::snprintf(line, sizeof line, " | held-out SRCC %.4f (step %lld)", a.srcc, static_cast<long long>(step));
    if (name == results.begin()->first) last_eval_ = line;
    j["eval_" + name + "_n"] = a.n;
    j["eval_" + name + "_srcc"] = number(a.srcc);
    j["eval_" + name + "_plcc"] = number(a.plcc);
    j["eval_" + name + "_krcc"] = number(a.krcc);
  }
  out_ << j.dump() << "\n";
  out_.flush();
}

}  // namespace qalign::train
