#pragma once
// The largest job `qalign launch` starts and `qalign plan` plans: per node at most as many
// workers as the launcher's pipes and processes allow on any host we know of, and at most as many
// nodes as the largest clusters, so a world size stays far inside an int and sizes times ranks
// inside 64 bits.
namespace qalign::distributed {

inline constexpr int kMaxProcPerNode = 1024;
inline constexpr int kMaxNodes = 65536;
inline constexpr int kMaxWorldSize = kMaxProcPerNode * kMaxNodes;

}  // namespace qalign::distributed
