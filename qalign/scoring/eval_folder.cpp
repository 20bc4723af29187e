#include "qalign/scoring/eval_folder.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/base/utf8.h"

namespace qalign::scoring {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

constexpr const char* kJob = "job.json";
constexpr const char* kMarker = "written by";
const std::array<const char*, 5> kOutputs = {kJob, "predictions.jsonl", "predictions.csv", "results.json",
                                             "results.md"};

// One of the files eval writes, or the temporary file a killed atomic write of one left.
bool is_ours(const fs::directory_entry& e) {
  if (!e.is_regular_file() || e.is_symlink()) return false;
  const std::string name = e.path().filename().string();
  for (const char* out : kOutputs) {
    const std::string prefix = std::string(out) + ".tmp.";
    if (name == out) return true;
    if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
        std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()), name.end(),
                    [](char c) { return c >= '0' && c <= '9'; }))
      return true;
  }
  return false;
}

std::string stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "absent";
  std::tm utc{};
  gmtime_r(&st.st_mtim.tv_sec, &utc);
  char when[64];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &utc);
  char ns[16];
  std::snprintf(ns, sizeof ns, ".%09ld", static_cast<long>(st.st_mtim.tv_nsec));
  return std::to_string(st.st_size) + " bytes, modified " + when + ns + " UTC";
}

std::string render(const ordered_json& v) {
  if (v.is_string()) return v.get<std::string>().empty() ? "(none)" : v.get<std::string>();
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x.get<std::string>();
  return s;
}

// "there" and "now" descriptions of every field that differs, e.g. "model A" / "model B". A
// stamps field ("model weights") is left out when its path field already differs.
std::pair<std::string, std::string> differences(const ordered_json& before, const ordered_json& job) {
  std::string there, now;
  auto add = [&](const std::string& a, const std::string& b) {
    there += (there.empty() ? "" : ", ") + a;
    now += (now.empty() ? "" : ", ") + b;
  };
  for (const auto& [key, value] : job.items()) {
    const ordered_json old = before.contains(key) ? before[key] : ordered_json();
    if (old == value) continue;
    if (!value.is_object()) {
      add(key + " " + (old.is_null() ? "(unrecorded)" : render(old)), key + " " + render(value));
      continue;
    }
    const std::string owner = key.substr(0, key.find(' '));
    if (job.contains(owner) && before.contains(owner) && before[owner] != job[owner]) continue;
    ordered_json names = value;
    if (old.is_object()) names.update(old);
    for (const auto& item : names.items()) {
      const std::string& name = item.key();
      const std::string a = old.is_object() && old.contains(name) ? old[name].get<std::string>() : "absent";
      const std::string b = value.contains(name) ? value[name].get<std::string>() : "absent";
      if (a == b) continue;
      add(key + " " + name + " (" + a + ")", key + " " + name + " (" + b + ")");
      break;
    }
  }
  return {there, now};
}

void record(const std::string& out, ordered_json job) {
  ordered_json file = {{kMarker, "qalign eval"}};
  file.update(job);
  io::write_file_atomic((fs::path(out) / kJob).string(), file.dump(2) + "\n");
}

}  // namespace

ordered_json file_stamps(const std::string& path) {
  ordered_json stamps = ordered_json::object();
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_regular_file()) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    for (const auto& n : names) stamps[utf8_escaped(n)] = stamp((fs::path(path) / n).string());
  } else if (fs::exists(path, ec)) {
    stamps[utf8_escaped(path)] = stamp(path);
  }
  return stamps;
}

void claim_eval_folder(const std::string& out, const ordered_json& job, bool overwrite) {
  std::error_code ec;
  if (!fs::exists(out, ec)) {
    fs::create_directories(out, ec);
    if (ec) fail(out, "", "cannot create the output folder: " + ec.message());
    record(out, job);
    return;
  }
  if (!fs::is_directory(out, ec)) fail(out, "", "is not a folder; --out names the folder eval writes its results into");

  const std::string job_file = (fs::path(out) / kJob).string();
  ordered_json before;
  if (fs::exists(job_file)) {
    try {
      before = ordered_json::parse(io::read_file(job_file));
    } catch (const nlohmann::json::exception&) {
      before = nullptr;
    }
  }
  const bool job_is_ours = before.is_object() && before.value(kMarker, "") == "qalign eval";
  std::vector<std::string> ours, foreign;
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    (is_ours(e) && (name != kJob || job_is_ours) ? ours : foreign).push_back(name);
  }
  if (!foreign.empty()) {
    std::sort(foreign.begin(), foreign.end());
    fail(out, "",
         "holds files qalign eval did not write (" + foreign.front() +
             (foreign.size() > 1 ? " and " + std::to_string(foreign.size() - 1) + " more" : "") +
             "); use another --out (qalign never deletes them, --overwrite neither)");
  }
  if (overwrite) {
    for (const auto& name : ours) fs::remove(fs::path(out) / name);
    if (!ours.empty()) log::info("--overwrite: removed the ", ours.size(), " files of the evaluation in ", out);
    record(out, job);
    return;
  }
  const auto rows = fs::path(out) / "predictions.jsonl";
  const bool scored = fs::exists(rows) && fs::file_size(rows) > 0;
  if (!job_is_ours) {
    if (scored)
      fail(out, "",
           "holds predictions that record no job (an older qalign wrote them), so whose they are is unknown; "
           "add --overwrite to start " +
               out + " fresh, or use another --out");
    record(out, job);
    return;
  }
  before.erase(kMarker);
  if (before == job) return;
  if (!scored) {  // nothing to reuse, so nothing to mix up: the folder becomes this job's
    record(out, job);
    return;
  }
  auto [there, now] = differences(before, job);
  if (there.empty()) {  // a job.json with fields this version does not write
    there = "a job its job.json describes differently";
    now = "not that job";
  }
  fail(out, "",
       "holds an evaluation of " + there + "; this run is " + now + "; add --overwrite to start " + out +
           " fresh, or use another --out");
}

}  // namespace qalign::scoring
