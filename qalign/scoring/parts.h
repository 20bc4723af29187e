#pragma once
// The progress of a resumable `qalign score --out FILE`: the folder FILE.parts/ holds job.json
// (the command that made it) and one file of rows per rank, "<input index>\t<JSON row>\n",
// appended a chunk at a time, each chunk closed by an empty line. A kill can only tear the last
// chunk of a part: a restart cuts it off (clean_parts), reads every part to know what is done,
// and at the end the parts are merged in input order into FILE.
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qalign/scoring/rows.h"

namespace qalign::scoring {

class InputDigest;

// FILE -> FILE.parts
std::string parts_folder(const std::string& out);
// The part file of `rank` among `world` ranks.
std::string part_file(const std::string& folder, int rank, int world);

// Records the job in folder/job.json, or, when one is there, fails naming the first field that
// differs: a restart must be the same command.
void check_or_record_job(const std::string& folder, const nlohmann::ordered_json& job);

// Calls `row` for each row of the part's complete chunks, in order; returns the byte length of
// those chunks (the rest is a torn or damaged tail).
uint64_t read_part(const std::string& path, const std::function<void(int64_t index, std::string_view json)>& row);

// Input indices with a row in any part of the folder.
class DoneSet {
 public:
  void add(int64_t index);
  bool contains(int64_t index) const { return index >= 0 && static_cast<size_t>(index) < bits_.size() && bits_[index]; }
  int64_t count() const { return count_; }

 private:
  std::vector<bool> bits_;  // one bit per input: 125 kB for a million
  int64_t count_ = 0;
};
DoneSet scan_parts(const std::string& folder);
// Cuts every part back to its complete chunks; before any rank appends.
void clean_parts(const std::string& folder);

// Appends chunks of rows to this rank's part, each chunk in one write. Data reaches the disk at
// least once a second and at close().
class PartWriter {
 public:
  explicit PartWriter(std::string path);
  ~PartWriter();
  PartWriter(const PartWriter&) = delete;
  PartWriter& operator=(const PartWriter&) = delete;
  // `rows`: the chunk's "<index>\t<JSON>\n" lines.
  void append_chunk(const std::string& rows);
  void close();

 private:
  std::string path_;
  int fd_ = -1;
  double last_sync_ = 0;
};

struct MergeResult {
  int64_t rows = 0, failed = 0, kept = 0;
};
// Merges every part in input order into `out` (written whole or not at all), checking that
// inputs 0 .. inputs.count()-1 each have exactly one row, for the input this run names there (the
// digest of the rows' names is that of `inputs`). With a threshold, the inputs scoring at
// least it go, in order, to `keep` (a file, or stdout when it is "").
MergeResult merge_parts(const std::string& folder, const std::string& out, RowFormat format, const InputDigest& inputs,
                        std::optional<double> threshold, const std::string& keep);

}  // namespace qalign::scoring
