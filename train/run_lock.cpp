#include "train/run_lock.h"

#include <filesystem>

#include "train/checkpointing.h"

namespace qalign::train {

namespace fs = std::filesystem;

RunLock::RunLock(const std::string& output_dir) : output_dir_(output_dir) {
  std::error_code ec;
  created_ = !fs::exists(output_dir, ec);
  fs::create_directories(output_dir);
  try {
    lock_ = std::make_unique<io::OutputLock>(output_dir, run_lock_file(output_dir));
  } catch (...) {
    if (created_) fs::remove(output_dir, ec);
    throw;
  }
}

RunLock::~RunLock() {
  lock_.reset();  // removes the lock file
  std::error_code ec;
  if (created_ && fs::is_empty(output_dir_, ec)) fs::remove(output_dir_, ec);
}

}  // namespace qalign::train
