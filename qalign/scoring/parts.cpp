#include "qalign/scoring/parts.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <queue>

#include "qalign/base/atomic_file.h"
#include "qalign/base/bounded_file.h"
#include "qalign/base/error.h"
#include "qalign/base/json_file.h"
#include "qalign/base/log.h"
#include "qalign/scoring/job_record.h"

namespace qalign::scoring {

namespace fs = std::filesystem;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// No row comes near this (a path is at most 4096 bytes); a longer line is damage, and reading it
// whole would let a damaged part fill memory.
constexpr size_t kMaxRowBytes = 1 << 20;

// The next line, without its '\n', cut at kMaxRowBytes; adds the bytes consumed to `*consumed`.
// False at the end of the file, and for a last line without its '\n' (torn by a kill).
bool next_line(std::istream& in, std::string& line, uint64_t* consumed) {
  line.clear();
  auto* buf = in.rdbuf();
  for (int c; (c = buf->sbumpc()) != std::char_traits<char>::eof();) {
    ++*consumed;
    if (c == '\n') return true;
    if (line.size() <= kMaxRowBytes) line += static_cast<char>(c);
  }
  return false;
}

// What makes `row` other than one qalign score writes (rows.h), or "".
std::string row_problem(const nlohmann::json& row) {
  if (!row.is_object()) return "not a JSON object";
  const auto is = [&](const char* key, bool (nlohmann::json::*type)() const noexcept, bool nullable) {
    const auto it = row.find(key);
    return it != row.end() && (((*it).*type)() || (nullable && it->is_null()));
  };
  for (const char* key : {"input", "task", "media"})
    if (!is(key, &nlohmann::json::is_string, false)) return std::string("\"") + key + "\" is not a string";
  for (const char* key : {"score", "score01"})
    if (!is(key, &nlohmann::json::is_number, true)) return std::string("\"") + key + "\" is not a number or null";
  for (const char* key : {"level", "error"})
    if (!is(key, &nlohmann::json::is_string, true)) return std::string("\"") + key + "\" is not a string or null";
  if (!is("probs", &nlohmann::json::is_object, true)) return "\"probs\" is not an object or null";
  const auto& probs = row["probs"];
  for (const char* w : kLevelWords)
    if (!probs.is_null() && !(probs.contains(w) && probs[w].is_number()))
      return std::string("\"probs\" lacks a number for \"") + w + "\"";
  return "";
}

// "<index>\t<row>" -> the index and the row's text, or -1 with `*problem` saying what is wrong.
int64_t split_line(const std::string& line, std::string_view* json, std::string* problem) {
  const auto tab = line.find('\t');
  if (line.size() > kMaxRowBytes) {
    *problem = "longer than " + std::to_string(kMaxRowBytes) + " bytes";
    return -1;
  }
  if (tab == 0 || tab == std::string::npos || tab > 18) {
    *problem = "not \"<input index>\\t<row>\"";
    return -1;
  }
  int64_t index = 0;
  for (size_t i = 0; i < tab; ++i) {
    if (line[i] < '0' || line[i] > '9') {
      *problem = "the input index is not a number";
      return -1;
    }
    index = index * 10 + (line[i] - '0');
  }
  *json = std::string_view(line).substr(tab + 1);
  try {
    *problem = row_problem(io::parse_json(*json, "row"));
  } catch (const std::exception& e) {  // nlohmann's syntax errors, and the nesting bound
    *problem = std::string("not valid JSON (") + e.what() + ")";
  }
  return problem->empty() ? index : -1;
}

std::vector<std::string> part_files(const std::string& folder) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(folder))
    if (e.path().extension() == ".rows") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// One part read line by line for the merge.
struct PartCursor {
  std::ifstream in;
  std::string path, line;
  int64_t index = -1, line_number = 0;
  uint64_t consumed = 0;
  std::string_view json;
  // Parts are clean when merged: clean_parts ran before this run appended whole chunks.
  bool advance() {
    do {
      ++line_number;
      if (!next_line(in, line, &consumed)) return false;
    } while (line.empty());
    std::string problem;
    index = split_line(line, &json, &problem);
    if (index < 0)
      fail(
          path, "line " + std::to_string(line_number),
          "damaged (" + problem + "); rerun the same command: it drops the damaged rows and scores their inputs again");
    return true;
  }
};

}  // namespace

std::string parts_folder(const std::string& out) { return out + ".parts"; }

std::string part_file(const std::string& folder, int rank, int world) {
  return folder + "/rank-" + std::to_string(rank) + "-of-" + std::to_string(world) + ".rows";
}

void check_or_record_job(const std::string& folder, const nlohmann::ordered_json& job) {
  const std::string path = folder + "/job.json";
  if (!fs::exists(path)) {
    io::write_file_atomic(path, job.dump(2) + "\n");
    return;
  }
  nlohmann::ordered_json before;
  try {
    before = nlohmann::ordered_json::parse(io::read_file_at_most(path, io::kMaxJsonFileBytes, "a job record"));
  } catch (const nlohmann::json::exception& e) {
    fail(path, "", std::string("not valid JSON (") + e.what() + "); remove the folder to start over");
  }
  if (const auto d = first_difference(before, job))
    fail(path, d->field,
         "this run differs from the one that began these rows (" + d->there + " there, " + d->now +
             " now); rerun that command, or remove " + folder + " to start over");
}

PartRead read_part(const std::string& path, const std::function<void(int64_t)>& row) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", "cannot open the part file");
  PartRead result;
  uint64_t read = 0;
  std::vector<int64_t> chunk;
  std::string line;
  for (int64_t number = 1; next_line(in, line, &read); ++number) {
    if (line.empty()) {
      for (const int64_t index : chunk) row(index);
      chunk.clear();
      result.valid_bytes = read;
      continue;
    }
    std::string_view json;
    const int64_t index = split_line(line, &json, &result.damage);
    if (index < 0) {
      result.damaged_line = number;
      break;
    }
    chunk.push_back(index);
  }
  return result;
}

DoneSet::DoneSet(std::vector<int64_t> indices) {
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  count_ = static_cast<int64_t>(indices.size());
  if (indices.empty()) return;
  if (indices.back() >= 64 * (count_ + 1024)) {
    sorted_ = std::move(indices);
    return;
  }
  bits_.assign(static_cast<size_t>(indices.back()) + 1, false);
  for (const int64_t i : indices) bits_[static_cast<size_t>(i)] = true;
}

bool DoneSet::contains(int64_t index) const {
  if (!sorted_.empty()) return std::binary_search(sorted_.begin(), sorted_.end(), index);
  return index >= 0 && static_cast<size_t>(index) < bits_.size() && bits_[static_cast<size_t>(index)];
}

DoneSet scan_parts(const std::string& folder) {
  std::vector<int64_t> indices;
  for (const auto& f : part_files(folder)) read_part(f, [&](int64_t index) { indices.push_back(index); });
  return DoneSet(std::move(indices));
}

void clean_parts(const std::string& folder) {
  for (const auto& f : part_files(folder)) {
    const PartRead part = read_part(f, [](int64_t) {});
    const uint64_t size = fs::file_size(f);
    if (size == part.valid_bytes) continue;
    if (part.damaged_line > 0)
      log::warn(f, ": line ", part.damaged_line, " is damaged (", part.damage, "): dropping it and the ",
                size - part.valid_bytes, " bytes from its chunk on; their inputs are scored again");
    else
      log::warn(f, ": dropping ", size - part.valid_bytes, " bytes of an unfinished chunk left by an interrupted run");
    std::error_code ec;
    fs::resize_file(f, part.valid_bytes, ec);
    if (ec) fail(f, "", "cannot cut off the unfinished chunk: " + ec.message());
  }
}

PartWriter::PartWriter(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path_, "", std::string("cannot open the part file for writing: ") + std::strerror(errno));
  last_sync_ = now_s();
}

PartWriter::~PartWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void PartWriter::append_chunk(const std::string& rows) {
  const std::string lines = rows + "\n";
  io::write_all(fd_, lines.data(), lines.size(), path_);
  if (now_s() - last_sync_ >= 1.0) {
    ::fdatasync(fd_);
    last_sync_ = now_s();
  }
}

void PartWriter::close() {
  if (fd_ < 0) return;
  if (::fsync(fd_) != 0) fail(path_, "", std::string("fsync failed: ") + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
}

MergeResult merge_parts(const std::string& folder, const std::string& out, RowFormat format, const InputDigest& inputs,
                        std::optional<double> threshold, const std::string& keep) {
  std::vector<std::unique_ptr<PartCursor>> cursors;
  for (const auto& f : part_files(folder)) {
    auto c = std::make_unique<PartCursor>();
    c->path = f;
    c->in.open(f, std::ios::binary);
    if (!c->in) fail(f, "", "cannot open the part file");
    if (c->advance()) cursors.push_back(std::move(c));
  }
  auto later = [&](size_t a, size_t b) { return cursors[a]->index > cursors[b]->index; };
  std::priority_queue<size_t, std::vector<size_t>, decltype(later)> heap(later);
  for (size_t i = 0; i < cursors.size(); ++i) heap.push(i);

  io::AtomicWriter writer(out);
  std::optional<io::AtomicWriter> keep_file;
  if (threshold && !keep.empty()) keep_file.emplace(keep);
  if (format == RowFormat::kCsv) writer.write(csv_header().data(), csv_header().size());
  MergeResult r;
  int64_t next = 0;
  InputDigest names;
  while (!heap.empty()) {
    PartCursor& c = *cursors[heap.top()];
    const size_t at = heap.top();
    heap.pop();
    if (c.index < next) {
      log::warn(c.path, ": a second row for input ", c.index, " is ignored");
    } else if (c.index >= inputs.count()) {  // ordered: every later row is past the inputs too
      log::warn(c.path, ": a row for input ", c.index, " is ignored: there are ", inputs.count(), " inputs");
    } else if (c.index > next) {
      fail(folder, "",
           "no row for input " + std::to_string(next) + " (the next one found is " + std::to_string(c.index) +
               "); rerun the same command to score it");
    } else {
      const auto row = nlohmann::ordered_json::parse(c.json);
      const std::string text = format == RowFormat::kCsv ? csv_line(row) : std::string(c.json) + "\n";
      if (!row["error"].is_null()) ++r.failed;
      names.add(row_input(row));
      if (threshold && row["score"].is_number() && row["score"].get<double>() >= *threshold)
        if (const auto line = keep_list_line(row)) {
          if (keep_file)
            keep_file->write(line->data(), line->size());
          else
            std::cout << *line;
          ++r.kept;
        }
      writer.write(text.data(), text.size());
      ++next;
      ++r.rows;
    }
    if (c.advance()) heap.push(at);
  }
  if (next != inputs.count())
    fail(folder, "",
         "rows for " + std::to_string(next) + " of " + std::to_string(inputs.count()) +
             " inputs; rerun the same command to score the rest");
  if (names.value() != inputs.value())  // rows by position, of a list or folder that changed since
    fail(folder, "",
         "holds rows of other inputs than this run names (a folder or list changed since the run that began "
         "them); remove it, or add --overwrite, to score afresh");
  writer.commit();
  if (keep_file) keep_file->commit();
  std::cout.flush();
  return r;
}

}  // namespace qalign::scoring
