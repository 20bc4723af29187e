#pragma once
// One `qalign train` writes an output_dir at a time. The first process of a job holds
// io::OutputLock on output_dir's lock file (run_lock_file) for the whole run, so a second job
// refuses at once naming the first's pid and host, while the ranks of one job never refuse one
// another. The folder is created for the lock when absent, and removed again on release when the
// run left nothing in it (a run refused at setup writes nothing).
#include <memory>
#include <string>

#include "qalign/io/output_guard.h"

namespace qalign::train {

class RunLock {
 public:
  explicit RunLock(const std::string& output_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  std::string output_dir_;
  bool created_ = false;
  std::unique_ptr<io::OutputLock> lock_;
};

}  // namespace qalign::train
