// Gloo through c10d's ProcessGroupGloo, whose header needs gloo's: Debian's libgloo-dev supplies
// them (headers only; the code is the copy inside libtorch_cpu.so), and only the constructor,
// Options and createDefaultDevice are used, whose ABI does not involve gloo's own types' layout.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "qalign/distributed/process_group.h"

namespace qalign::distributed {

c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
}

}  // namespace qalign::distributed
