#include "qalign/scoring/parts.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <queue>

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/scoring/job_record.h"

namespace qalign::scoring {

namespace fs = std::filesystem;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// "<index>\t<json>" -> index, or -1 when the line is not one of ours.
int64_t split_line(std::string_view line, std::string_view* json) {
  const auto tab = line.find('\t');
  if (tab == 0 || tab == std::string_view::npos || tab > 18) return -1;
  int64_t index = 0;
  for (size_t i = 0; i < tab; ++i) {
    if (line[i] < '0' || line[i] > '9') return -1;
    index = index * 10 + (line[i] - '0');
  }
  *json = line.substr(tab + 1);
  if (json->size() < 2 || json->front() != '{' || json->back() != '}') return -1;
  return index;
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
  int64_t index = -1;
  std::string_view json;
  // Parts are clean when merged (clean_parts ran before this run appended whole chunks).
  bool advance() {
    do {
      if (!std::getline(in, line) || in.eof()) return false;
    } while (line.empty());
    index = split_line(line, &json);
    if (index < 0) log::warn(path, ": a damaged line ends the part here");
    return index >= 0;
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
    before = nlohmann::ordered_json::parse(io::read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, "", std::string("not valid JSON (") + e.what() + "); remove the folder to start over");
  }
  if (const auto d = first_difference(before, job))
    fail(path, d->field,
         "this run differs from the one that began these rows (" + d->there + " there, " + d->now +
             " now); rerun that command, or remove " + folder + " to start over");
}

uint64_t read_part(const std::string& path, const std::function<void(int64_t, std::string_view)>& row) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", "cannot open the part file");
  uint64_t valid = 0, read = 0;
  std::vector<std::string> chunk;
  std::string line;
  while (std::getline(in, line) && !in.eof()) {
    read += line.size() + 1;
    if (line.empty()) {
      for (const auto& r : chunk) {
        std::string_view json;
        row(split_line(r, &json), json);
      }
      chunk.clear();
      valid = read;
      continue;
    }
    std::string_view json;
    if (split_line(line, &json) < 0) break;
    chunk.push_back(line);
  }
  return valid;
}

void DoneSet::add(int64_t index) {
  if (static_cast<size_t>(index) >= bits_.size()) bits_.resize(std::max<size_t>(index + 1, bits_.size() * 2), false);
  if (!bits_[index]) ++count_;
  bits_[index] = true;
}

DoneSet scan_parts(const std::string& folder) {
  DoneSet done;
  for (const auto& f : part_files(folder)) read_part(f, [&](int64_t index, std::string_view) { done.add(index); });
  return done;
}

void clean_parts(const std::string& folder) {
  for (const auto& f : part_files(folder)) {
    const uint64_t valid = read_part(f, [](int64_t, std::string_view) {});
    const uint64_t size = fs::file_size(f);
    if (size == valid) continue;
    log::warn(f, ": dropping ", size - valid, " bytes of an unfinished chunk left by an interrupted run");
    std::error_code ec;
    fs::resize_file(f, valid, ec);
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
