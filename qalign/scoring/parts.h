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

// Calls `row` with the input index of each row of the part's complete chunks, in order, up to
// the first damaged line
// (one not "<index>\t<row object>"); returns the byte length of those chunks (the rest is a torn
// chunk of an interrupted run, or a damaged line and what follows it).
struct PartRead {
  uint64_t valid_bytes = 0;
  int64_t damaged_line = 0;  // 1-based; 0 when every complete line is a row
  std::string damage;        // what is wrong with that line
};
PartRead read_part(const std::string& path, const std::function<void(int64_t index)>& row);

// Input indices with a row in any part of the folder.
class DoneSet {
 public:
  // From the indices found, in any order, repeats allowed.
  explicit DoneSet(std::vector<int64_t> indices = {});
  bool contains(int64_t index) const;
  int64_t count() const { return count_; }

 private:
  // One bit per input while that is small (each rank resumes a prefix of its share: 125 kB for a
  // million inputs), else the sorted indices: never more than 8 bytes per row found, whatever
  // index a damaged part claims.
  std::vector<bool> bits_;
  std::vector<int64_t> sorted_;
  int64_t count_ = 0;
};
DoneSet scan_parts(const std::string& folder);
// Cuts every part back to its complete chunks of valid rows, before any rank appends: a damaged
// line is reported (file and line) and dropped with the rest of the part from its chunk on, so
// those inputs are scored again.
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
