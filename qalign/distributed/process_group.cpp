#include "qalign/distributed/process_group.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <charconv>
#include <chrono>
#include <thread>

#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/distributed/store_probe.h"

namespace qalign::distributed {

namespace {

int parse_int(const char* name, const char* value) {
  int v = 0;
  const std::string s(value);
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0)
    fail("environment", name, "expected a non-negative integer, got '" + s + "'");
  return v;
}

// SLURM_TASKS_PER_NODE reads like "4(x2),3": the count of the first node.
int leading_int(const char* name, const char* value) {
  std::string s(value);
  s = s.substr(0, s.find_first_not_of("0123456789"));
  return parse_int(name, s.c_str());
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  const auto bracket = nodelist.find('[');
  const auto comma = nodelist.find(',');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) return nodelist.substr(0, comma);
  const auto first = nodelist.substr(bracket + 1, nodelist.find_first_of(",-]", bracket + 1) - bracket - 1);
  return nodelist.substr(0, bracket) + first;
}

LaunchEnv read_launch_env(const std::function<const char*(const char*)>& getenv) {
  LaunchEnv e;
  const auto get_int = [&](const char* name, int fallback) {
    const char* v = getenv(name);
    return v ? parse_int(name, v) : fallback;
  };
  if (getenv("RANK") && getenv("WORLD_SIZE")) {
    e.launcher = "torchrun";
    e.rank = get_int("RANK", 0);
    e.world_size = get_int("WORLD_SIZE", 1);
    e.local_rank = get_int("LOCAL_RANK", 0);
    e.local_world_size = get_int("LOCAL_WORLD_SIZE", e.world_size);
  } else if (getenv("SLURM_PROCID") && getenv("SLURM_NTASKS")) {
    e.launcher = "slurm";
    e.rank = get_int("SLURM_PROCID", 0);
    e.world_size = get_int("SLURM_NTASKS", 1);
    e.local_rank = get_int("SLURM_LOCALID", 0);
    if (const char* n = getenv("SLURM_NTASKS_PER_NODE"))
      e.local_world_size = leading_int("SLURM_NTASKS_PER_NODE", n);
    else if (const char* t = getenv("SLURM_TASKS_PER_NODE"))
      e.local_world_size = leading_int("SLURM_TASKS_PER_NODE", t);
    else
      e.local_world_size = e.world_size;
    if (const char* nodes = getenv("SLURM_JOB_NODELIST")) e.master_addr = first_slurm_host(nodes);
  } else if (getenv("OMPI_COMM_WORLD_RANK") && getenv("OMPI_COMM_WORLD_SIZE")) {
    e.launcher = "mpi";
    e.rank = get_int("OMPI_COMM_WORLD_RANK", 0);
    e.world_size = get_int("OMPI_COMM_WORLD_SIZE", 1);
    e.local_rank = get_int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
    e.local_world_size = get_int("OMPI_COMM_WORLD_LOCAL_SIZE", e.world_size);
  }
  // Every launcher may name the rendezvous explicitly; SLURM's node list is only the default.
  if (const char* a = getenv("MASTER_ADDR")) e.master_addr = a;
  e.master_port = get_int("MASTER_PORT", e.master_port);
  if (e.world_size < 1) fail("environment", "WORLD_SIZE", "must be at least 1");
  if (e.world_size > kMaxWorldSize)
    fail("environment", "WORLD_SIZE",
         "at most " + std::to_string(kMaxWorldSize) + ", got " + std::to_string(e.world_size));
  if (e.rank >= e.world_size)
    fail("environment", "RANK",
         "rank " + std::to_string(e.rank) + " is not below the world size " + std::to_string(e.world_size));
  if (e.master_port > 65535) fail("environment", "MASTER_PORT", "not a port: " + std::to_string(e.master_port));
  return e;
}

int local_cuda_index(const LaunchEnv& env, int64_t visible) {
  if (visible == 1) return 0;
  if (env.local_rank >= visible)
    fail("launcher", "LOCAL_RANK",
         std::to_string(env.local_rank) + " but this process sees " + std::to_string(visible) +
             " GPUs: start at most one process per GPU (or set device: cpu)");
  return env.local_rank;
}

std::string resolve_backend(const std::string& backend, torch::Device device) {
  if (backend == "auto") return device.is_cuda() ? "nccl" : "gloo";
  return backend;
}

ProcessGroup::ProcessGroup(const LaunchEnv& env, const std::string& backend, std::chrono::milliseconds timeout,
                           torch::Device device, const RendezvousTimeout& rendezvous)
    : env_(env), timeout_(timeout) {
  const std::string name = resolve_backend(backend, device);
  kind_ = name;
  if (name == "nccl" && !torch::cuda::is_available())
    fail("training config", "ddp_backend", "nccl needs CUDA, and no GPU is available here; use gloo");
  if (name == "nccl" && !device.is_cuda())
    fail("training config", "ddp_backend", "nccl needs the model on a GPU (device: cuda or auto), not " + device.str());
  const auto joining = rendezvous.value.count() > 0 ? rendezvous.value : timeout;
  const auto where = env.master_addr + ":" + std::to_string(env.master_port);
  const auto who = "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size);
  if (env.rank != 0) wait_for_store(env.master_addr, env.master_port, joining, rendezvous.key, who);
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = env.world_size;
  so.timeout = joining;
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    store_ = c10::make_intrusive<c10d::PrefixStore>("qalign", tcp);
    if (name == "nccl") {
      device_ = device;
      backend_ = make_nccl_backend(store_, env.rank, env.world_size, device, timeout);
    } else {
      backend_ = make_gloo_backend(store_, env.rank, env.world_size, timeout);
    }
    // Joined: later uses of the store (another_backend) wait as collectives do.
    tcp->setTimeout(timeout);
  } catch (const c10::Error& e) {
    fail("distributed", "rendezvous",
         who + " could not join at " + where + " (waiting at most " + std::to_string(joining.count() / 1000) + " s, " +
             rendezvous.key + "): " + e.what_without_backtrace());
  }
  log::info("rank ", env.rank, " of ", env.world_size, " (local ", env.local_rank, " of ", env.local_world_size, ", ",
            env.launcher, ") joined ", env.master_addr, ":", env.master_port, " with ", name);
}

ProcessGroup::~ProcessGroup() {
  try {
    for (auto& b : others_) b->shutdown();
    if (backend_) backend_->shutdown();
  } catch (const std::exception& e) {  // a peer already gone: nothing left to tell it
    log::warn("rank ", env_.rank, ": process group shutdown: ", e.what());
  }
}

c10::intrusive_ptr<c10d::Backend> ProcessGroup::another_backend(const std::string& name) {
  const auto store = c10::make_intrusive<c10d::PrefixStore>(name, store_);
  others_.push_back(kind_ == "nccl" ? make_nccl_backend(store, env_.rank, env_.world_size, device_, timeout_)
                                    : make_gloo_backend(store, env_.rank, env_.world_size, timeout_));
  return others_.back();
}

void ProcessGroup::wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
  const auto lost = [&](const char* why) {
    fail("distributed", what,
         "rank " + std::to_string(env_.rank) + ": " + kPeerLostPhrase + " ddp_timeout (" +
             std::to_string(timeout_.count() / 1000) + " s) or broke the connection: " + why);
  };
  try {
    if (kind_ == "nccl")
      work->wait();  // the stream waits, not the host; the communicator's own timeout is ddp_timeout
    else
      work->wait(timeout_);
  } catch (const c10::Error& e) {
    lost(e.what_without_backtrace());
  } catch (const std::exception& e) {  // Gloo's own IoException, rethrown by the work as is
    lost(e.what());
  }
}

void ProcessGroup::wait_and_release(c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
  wait(work, what);
  if (kind_ != "nccl") {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (work.use_count() > 1 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  }
  work.reset();
}

void ProcessGroup::broadcast(torch::Tensor& t, int root) {
  std::vector<torch::Tensor> ts{t.device() == device_ ? t : t.to(device_)};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  wait(backend_->broadcast(ts, o), "broadcast");
  if (!ts[0].is_same(t)) t.copy_(ts[0]);
}

void ProcessGroup::allreduce_sum(torch::Tensor& t) {
  std::vector<torch::Tensor> ts{t.device() == device_ ? t : t.to(device_)};
  wait(backend_->allreduce(ts), "allreduce");
  if (!ts[0].is_same(t)) t.copy_(ts[0]);
}

void ProcessGroup::barrier() {
  auto one = torch::ones({1}, torch::TensorOptions().device(device_));
  allreduce_sum(one);
}

}  // namespace qalign::distributed
