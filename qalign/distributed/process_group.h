#pragma once
// The processes of a data-parallel run: where this one stands (rank, world size, local rank),
// read from the launcher's environment, and a c10d backend joined through c10d's TCPStore.
// Launchers understood: torchrun and `qalign launch` (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), SLURM (SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID, the first host of SLURM_JOB_NODELIST) and Open MPI (OMPI_COMM_WORLD_*).
#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qalign/distributed/job_size.h"

namespace qalign::distributed {

// What ProcessGroup::wait says when a collective gives up on its peers; `qalign launch` looks for
// it in a failed worker's last lines to tell the waiting ranks from the one they waited for.
inline constexpr const char* kPeerLostPhrase = "a peer died, hung past";

struct LaunchEnv {
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // torchrun | slurm | mpi | none
};

// The environment as `getenv` reports it (std::getenv in a run, a map in tests). Variables that
// are set but malformed are errors naming the variable.
LaunchEnv read_launch_env(const std::function<const char*(const char*)>& getenv);

// Whether a run joins a process group: several processes, or torchrun-style variables even for
// one (qalign launch --nproc-per-node 1: an NCCL check, or ZeRO on one GPU). A single process
// started without a launcher has none, so it trains without ZeRO or offload.
inline bool has_process_group(const LaunchEnv& env) { return env.world_size > 1 || env.launcher == "torchrun"; }

// "node[01-04],gpu7" -> "node01": the first host of a SLURM node list.
std::string first_slurm_host(const std::string& nodelist);

// The GPU a process of `env` uses among the `visible` ones: the only one when a process sees one
// (SLURM's --gpus-per-task, or CUDA_VISIBLE_DEVICES set per process), else cuda:LOCAL_RANK.
// Throws naming LOCAL_RANK when it is beyond the visible GPUs.
int local_cuda_index(const LaunchEnv& env, int64_t visible);

// The backend a config's ddp_backend asks for, on the device the model trains on: auto is nccl
// for a CUDA device and gloo for the CPU, whether or not the machine has a GPU.
std::string resolve_backend(const std::string& backend, torch::Device device);

// How long joining the group may take, and the setting that says so (named when it runs out).
struct RendezvousTimeout {
  std::chrono::milliseconds value{0};  // 0: the collectives' timeout
  std::string key = "ddp_timeout";
};

class ProcessGroup {
 public:
  // Rendezvous of env.world_size processes at env.master_addr:env.master_port (rank 0 serves
  // the store), for tensors on `device` (a CUDA device for nccl), within `rendezvous`.
  // `backend`: auto (resolve_backend), gloo or nccl. A peer that dies or hangs ends the
  // collectives after `timeout`: Gloo's waits time out, NCCL's watchdog aborts the process.
  ProcessGroup(const LaunchEnv& env, const std::string& backend, std::chrono::milliseconds timeout,
               torch::Device device = torch::kCPU, const RendezvousTimeout& rendezvous = {});
  // Shuts the backends down (NCCL warns at exit otherwise).
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return env_.rank; }
  int size() const { return env_.world_size; }
  // Where tensors must be for the backend: the local GPU for nccl, else the CPU.
  torch::Device device() const { return device_; }
  c10d::Backend& backend() { return *backend_; }
  // Another communicator over the same ranks, for a stream of collectives whose order must not
  // interleave with the first's (ZeRO-3's parameter gathers beside its gradient reduce-scatters).
  // Every rank calls it at the same point of the program.
  c10::intrusive_ptr<c10d::Backend> another_backend(const std::string& name);

  // Blocking collectives on one tensor, in place.
  void broadcast(torch::Tensor& t, int root = 0);
  void allreduce_sum(torch::Tensor& t);
  // Returns once every rank has called it (an all-reduce of one number: every backend has that).
  void barrier();
  // Waits for `work`, turning a timeout or a lost peer into a qalign::Error naming the operation.
  // Under NCCL the wait orders the current CUDA stream after the collective and returns at once:
  // the host runs ahead, and NCCL's watchdog enforces the timeout.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what);
  // wait(), then drops the caller's `work`, which must be its only reference outside the backend.
  // A Gloo worker thread keeps each finished work (and so the tensors it read and wrote) for a
  // moment after wait() returns: freeing a gathered buffer then left it alive while the next one
  // was allocated, a timing-dependent extra unit at ZeRO-3's peak (0.24 GB at full size, on
  // either rank from run to run). So under Gloo this waits, for at most a second, until the
  // worker has let go: on return the work's tensors are held only by their other owners.
  void wait_and_release(c10::intrusive_ptr<c10d::Work>& work, const std::string& what);

 private:
  LaunchEnv env_;
  torch::Device device_{torch::kCPU};
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> backend_;
  std::vector<c10::intrusive_ptr<c10d::Backend>> others_;  // another_backend's, shut down with the first
  std::string kind_;                                       // nccl or gloo
};

// The backends, each in its own file because each needs its own transport's headers.
c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout);
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    torch::Device device, std::chrono::milliseconds timeout);

}  // namespace qalign::distributed
