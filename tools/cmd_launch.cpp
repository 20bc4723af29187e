// qalign launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]
// -- COMMAND...: torchrun's job for qalign. Starts N workers of COMMAND ("qalign" meaning this
// executable) with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT,
// prints their lines prefixed by the rank, and when one fails stops the others (SIGTERM, then
// SIGKILL after a grace period) and exits with its code, naming it and showing its last lines.
// Each worker is its own process group, and signals go to the group: what a worker started (a
// shell's children) stops with it.
// SIGTERM or SIGINT to the launcher is passed on to every worker. A worker stopped (SIGSTOP,
// SIGTSTP) while the others fail waiting for it is the one named. When starting the workers fails
// part-way, those started are killed and reaped before the launcher says what failed.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qalign/base/error.h"
#include "qalign/base/log.h"
#include "qalign/distributed/process_group.h"
#include "tools/commands.h"
#include "tools/int_range.h"

namespace qalign::tools {

namespace {

volatile std::sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

struct LaunchArgs {
  int nproc = 1, nnodes = 1, node_rank = 0, master_port = 29500, grace_s = 30, tail = 20;
  std::string master_addr = "127.0.0.1";
  std::vector<std::string> command;
};

struct Worker {
  int rank = 0;
  pid_t pid = -1;
  int fds[2] = {-1, -1};         // stdout, stderr (read ends)
  std::string partial[2];        // an unfinished line of each
  std::deque<std::string> last;  // the last lines, for the failure report
  bool running = true;
  int code = 0;
  int stop_signal = 0;  // the signal that stopped it, while it is stopped
  std::chrono::steady_clock::time_point stopped_at;
};

// The launcher keeps two pipes per worker open; more workers than `ulimit -n` allows would fail
// part-way through starting them.
void check_descriptors(int nproc) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return;
  int open_now = 0;  // less the listing's own descriptor
  if (DIR* d = opendir("/proc/self/fd")) {
    for (const dirent* e; (e = readdir(d));) open_now += e->d_name[0] != '.';
    closedir(d);
    --open_now;
  }
  const auto needed = static_cast<rlim_t>(open_now) + 2 * static_cast<rlim_t>(nproc) + 2;
  if (needed > limit.rlim_cur)
    fail("command line", "--nproc-per-node",
         std::to_string(nproc) + " workers need " + std::to_string(needed) +
             " open files in the launcher (two pipes each), but `ulimit -n` allows " + std::to_string(limit.rlim_cur) +
             ": raise it or start fewer workers");
}

std::string self_executable() {
  std::vector<char> buf(4096);
  const auto n = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) fail("/proc/self/exe", "", "cannot find the qalign executable");
  return std::string(buf.data(), static_cast<size_t>(n));
}

void spawn(Worker& w, const LaunchArgs& a, const std::string& exe) {
  // Close-on-exec: a worker inherits none of the others' pipes (dup2 below clears the flag).
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    const std::string why = std::strerror(errno);
    for (int fd : {out[0], out[1]})
      if (fd >= 0) close(fd);
    fail("launch", "rank " + std::to_string(w.rank), "cannot open its output pipes: " + why);
  }
  // Until the child has our handlers reset, a SIGTERM meant for it would only set its copy of
  // g_signal and be lost: blocked here, it stays pending and acts once unblocked.
  sigset_t stops, old;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGINT);
  sigprocmask(SIG_BLOCK, &stops, &old);
  w.pid = fork();
  if (w.pid == 0) {
    std::signal(SIGTERM, SIG_DFL);
    std::signal(SIGINT, SIG_DFL);
    sigprocmask(SIG_SETMASK, &old, nullptr);
    // Its own process group, so that stopping it reaches what it started too (a shell's
    // children), which would otherwise outlive it holding our pipes open.
    setpgid(0, 0);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    const int local = w.rank - a.node_rank * a.nproc;
    setenv("RANK", std::to_string(w.rank).c_str(), 1);
    setenv("WORLD_SIZE", std::to_string(a.nproc * a.nnodes).c_str(), 1);
    setenv("LOCAL_RANK", std::to_string(local).c_str(), 1);
    setenv("LOCAL_WORLD_SIZE", std::to_string(a.nproc).c_str(), 1);
    setenv("GROUP_RANK", std::to_string(a.node_rank).c_str(), 1);
    setenv("MASTER_ADDR", a.master_addr.c_str(), 1);
    setenv("MASTER_PORT", std::to_string(a.master_port).c_str(), 1);
    // torchrun's default: workers sharing a node do not each start a thread per core.
    if (a.nproc > 1) setenv("OMP_NUM_THREADS", "1", 0);
    std::vector<std::string> argv = a.command;
    if (argv[0] == "qalign") argv[0] = exe;
    std::vector<char*> cargv;
    for (auto& s : argv) cargv.push_back(s.data());
    cargv.push_back(nullptr);
    execvp(cargv[0], cargv.data());
    std::fprintf(stderr, "cannot run %s: %s\n", cargv[0], std::strerror(errno));
    _exit(127);
  }
  sigprocmask(SIG_SETMASK, &old, nullptr);
  if (w.pid < 0) {
    const std::string why = std::strerror(errno);
    for (int fd : {out[0], out[1], err[0], err[1]}) close(fd);
    fail("launch", "rank " + std::to_string(w.rank), "cannot start its process (fork): " + why);
  }
  setpgid(w.pid, w.pid);  // also here: the child may not have run yet when we signal it
  close(out[1]), close(err[1]);
  w.fds[0] = out[0];
  w.fds[1] = err[0];
}

// Forwards complete lines of stream `s` (0 stdout, 1 stderr), prefixed; false at end of file.
bool pump(Worker& w, int s, const LaunchArgs& a) {
  char buf[65536];
  const auto n = read(w.fds[s], buf, sizeof buf);
  if (n <= 0) {
    if (!w.partial[s].empty()) w.partial[s] += '\n';
  } else {
    w.partial[s].append(buf, static_cast<size_t>(n));
  }
  size_t start = 0;
  for (size_t nl; (nl = w.partial[s].find('\n', start)) != std::string::npos; start = nl + 1) {
    const auto line = w.partial[s].substr(start, nl - start);
    (s == 0 ? std::cout : std::cerr) << "[rank " << w.rank << "] " << line << '\n' << std::flush;
    w.last.push_back(line);
    if (static_cast<int>(w.last.size()) > a.tail) w.last.pop_front();
  }
  w.partial[s].erase(0, start);
  if (n <= 0) {
    close(w.fds[s]);
    w.fds[s] = -1;
  }
  return n > 0;
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

std::string describe(int status) {
  return WIFEXITED(status)
             ? "exited with code " + std::to_string(WEXITSTATUS(status))
             : "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
}

std::string signal_name(int sig) { return "signal " + std::to_string(sig) + " (" + strsignal(sig) + ")"; }

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string one_decimal(double v) {
  const auto s = std::to_string(std::round(v * 10) / 10);
  return s.substr(0, s.find('.') + 2);
}

// Starts every worker; when one cannot start, kills and reaps those already started (they would
// wait for the missing ranks until their timeout) and fails saying what failed.
void spawn_all(std::vector<Worker>& workers, const LaunchArgs& a, const std::string& exe) {
  for (size_t i = 0; i < workers.size(); ++i) {
    try {
      spawn(workers[i], a, exe);
    } catch (const Error& e) {
      for (size_t j = 0; j < i; ++j) kill(-workers[j].pid, SIGKILL);
      for (size_t j = 0; j < i; ++j) {
        waitpid(workers[j].pid, nullptr, 0);
        for (int& fd : workers[j].fds) close(fd), fd = -1;
      }
      fail("command line", "--nproc-per-node",
           "started " + std::to_string(i) + " of " + std::to_string(workers.size()) + " workers, then: " + e.what() +
               "; the " + std::to_string(i) + " started were killed");
    }
  }
}

// The worker stopped longest, if any: the one the others waited for when they time out.
const Worker* longest_stopped(const std::vector<Worker>& workers) {
  const Worker* found = nullptr;
  for (const auto& w : workers)
    if (w.running && w.stop_signal && (!found || w.stopped_at < found->stopped_at)) found = &w;
  return found;
}

// Whether a worker's last lines say a collective gave up waiting for its peers.
bool lost_its_peers(const Worker& w) {
  return std::any_of(w.last.begin(), w.last.end(), [](const std::string& line) {
    return line.find(distributed::kPeerLostPhrase) != std::string::npos;
  });
}

// What happened to the rank a failure is blamed on, as "it ..." completes it: a worker stopped
// while the others waited is the cause; a worker that gave up on its peers while others still
// ran waited for those.
std::string blame(const Worker& failed, int status, const std::vector<Worker>& workers, const Worker** culprit) {
  *culprit = &failed;
  if (const Worker* stopped = longest_stopped(workers)) {
    *culprit = stopped;
    return "was stopped by " + signal_name(stopped->stop_signal) + " " +
           one_decimal(seconds_since(stopped->stopped_at)) + " s before and never continued; rank " +
           std::to_string(failed.rank) + " (pid " + std::to_string(failed.pid) + ") " + describe(status) +
           " waiting for it";
  }
  std::string still;
  if (lost_its_peers(failed))
    for (const auto& w : workers)
      if (w.running) still += (still.empty() ? "" : ", ") + std::to_string(w.rank);
  return describe(status) + (still.empty() ? ""
                                           : "; it gave up waiting for its peers while rank(s) " + still +
                                                 " still ran: hung or much slower");
}

int run_launch(const LaunchArgs& a) {
  if (a.command.empty()) fail("command line", "--", "no worker command given (qalign launch ... -- qalign train ...)");
  if (a.node_rank >= a.nnodes) fail("command line", "--node-rank", "must be below --nnodes");
  check_descriptors(a.nproc);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  const auto exe = self_executable();
  std::vector<Worker> workers(static_cast<size_t>(a.nproc));
  for (int i = 0; i < a.nproc; ++i) workers[i].rank = a.node_rank * a.nproc + i;
  spawn_all(workers, a, exe);
  log::info("launched ", a.nproc, " workers (ranks ", workers.front().rank, "..", workers.back().rank, " of ",
            a.nproc * a.nnodes, "), rendezvous ", a.master_addr, ":", a.master_port);

  using clock = std::chrono::steady_clock;
  const Worker* failed = nullptr;
  std::string failure;                       // what happened, naming the rank to blame
  int failed_code = 0;                       // the exit code of the first worker that failed
  std::optional<clock::time_point> kill_at;  // set once the workers have been told to stop
  // Once every worker has exited: until when to read what their leftover children still write.
  std::optional<clock::time_point> drain_until;
  int forwarded = 0;
  // A worker's group lives on while the worker runs or something of it holds its pipes.
  // A stopped worker gets SIGCONT after the signal, or it would hold the signal until SIGKILL.
  const auto stop_all = [&](int sig) {
    for (auto& w : workers)
      if (w.running || w.fds[0] >= 0 || w.fds[1] >= 0) {
        kill(-w.pid, sig);
        if (w.stop_signal) kill(-w.pid, SIGCONT);
      }
  };
  for (;;) {
    if (g_signal && forwarded != g_signal) {
      forwarded = g_signal;
      log::warn("launcher got signal ", forwarded, "; passing it to the workers");
      stop_all(forwarded);
      if (!kill_at) kill_at = clock::now() + std::chrono::seconds(a.grace_s);
    }
    std::vector<pollfd> fds;
    std::vector<std::pair<Worker*, int>> owners;
    for (auto& w : workers)
      for (int s = 0; s < 2; ++s)
        if (w.fds[s] >= 0) {
          fds.push_back({w.fds[s], POLLIN, 0});
          owners.emplace_back(&w, s);
        }
    if (!fds.empty() && poll(fds.data(), fds.size(), 100) > 0) {
      for (size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) pump(*owners[i].first, owners[i].second, a);
    } else if (fds.empty()) {
      usleep(100 * 1000);
    }
    bool any_running = false;
    // Of the workers found failed in one sweep, one killed by a signal is likelier the cause
    // than one that exited on losing it.
    Worker* first = nullptr;
    int first_status = 0;
    for (auto& w : workers) {
      if (!w.running) continue;
      int status = 0;
      if (waitpid(w.pid, &status, WNOHANG | WUNTRACED | WCONTINUED) != w.pid) {
        any_running = true;
        continue;
      }
      if (WIFSTOPPED(status) || WIFCONTINUED(status)) {
        any_running = true;
        w.stop_signal = WIFSTOPPED(status) ? WSTOPSIG(status) : 0;
        w.stopped_at = clock::now();
        if (w.stop_signal)
          log::warn("rank ", w.rank, " (pid ", w.pid, ") was stopped by ", signal_name(w.stop_signal),
                    "; the others wait for it until their timeout");
        else if (!failed)
          log::info("rank ", w.rank, " (pid ", w.pid, ") continued");
        continue;
      }
      w.running = false;
      w.code = exit_code(status);
      if (w.code != 0 && !failed && (!first || (WIFSIGNALED(status) && !WIFSIGNALED(first_status)))) {
        first = &w;
        first_status = status;
      }
    }
    if (first) {
      failure = blame(*first, first_status, workers, &failed);
      failed_code = first->code;
      log::error("rank ", failed->rank, " (pid ", failed->pid, ") ", failure, "; stopping the other workers");
      stop_all(SIGTERM);
      kill_at = clock::now() + std::chrono::seconds(a.grace_s);
    }
    if (kill_at && clock::now() > *kill_at) {
      stop_all(SIGKILL);
      kill_at.reset();
    }
    if (any_running) continue;
    // After a stop, what is left gets the rest of the grace and a second after SIGKILL; after a
    // clean finish, a second to flush. Then we stop reading rather than wait on an orphan.
    if (!drain_until) drain_until = (kill_at ? *kill_at : clock::now()) + std::chrono::seconds(1);
    const bool reading =
        std::any_of(workers.begin(), workers.end(), [](const Worker& w) { return w.fds[0] >= 0 || w.fds[1] >= 0; });
    if (!reading || clock::now() > *drain_until) break;
  }
  for (auto& w : workers)
    for (int& fd : w.fds)
      if (fd >= 0) close(fd), fd = -1;
  if (failed) {
    std::string tail;
    for (const auto& line : failed->last) tail += "\n  " + line;
    log::error("rank ", failed->rank, " failed: it ", failure, ". Its last lines:", tail);
    return failed_code;
  }
  if (g_signal) return 128 + g_signal;
  return 0;
}

}  // namespace

Command add_launch(CLI::App& app) {
  auto* cmd = app.add_subcommand("launch", "Run a command as the workers of a data-parallel job (like torchrun)");
  auto a = std::make_shared<LaunchArgs>();
  cmd->add_option("--nproc-per-node", a->nproc, "Workers on this node (at most 1024, and what ulimit -n allows)")
      ->check(in_range(1, distributed::kMaxProcPerNode));
  cmd->add_option("--nnodes", a->nnodes, "Nodes in the job (at most 65536)")
      ->check(in_range(1, distributed::kMaxNodes));
  cmd->add_option("--node-rank", a->node_rank, "This node's index")->check(in_range(0, distributed::kMaxNodes - 1));
  cmd->add_option("--master-addr", a->master_addr, "Host of rank 0 (its c10d TCPStore)");
  cmd->add_option("--master-port", a->master_port, "Port of rank 0's TCPStore")->check(CLI::Range(1, 65535));
  cmd->add_option("--grace", a->grace_s, "Seconds the other workers get to stop after one fails, before SIGKILL")
      ->check(in_range(0, 86400));
  cmd->add_option("command", a->command, "The worker command, after --, e.g. -- qalign train --config X")->required();
  cmd->footer("Example: qalign launch --nproc-per-node 8 -- qalign train --config configs/onealign.yaml");
  return {cmd, [a]() { return run_launch(*a); }};
}

}  // namespace qalign::tools
