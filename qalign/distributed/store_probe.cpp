#include "qalign/distributed/store_probe.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <torch/csrc/distributed/c10d/TCPStoreBackend.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>

#include "qalign/base/error.h"

namespace qalign::distributed {

namespace {

using clock = std::chrono::steady_clock;

// A connected socket's descriptor, closed when it goes.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

int milliseconds_until(clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
  return static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(left, 1000)));
}

// Waits for `events` on `fd` until the deadline, a second at a time; false when it passed.
bool wait_until(int fd, short events, clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, milliseconds_until(deadline));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
    if (clock::now() >= deadline) return false;
  }
}

// What one attempt found at the address.
// kNothing and kClosed may be rank 0 still starting: tried again until the deadline.
enum class Found { kStore, kNothing, kClosed, kSilent, kStranger };

struct Attempt {
  Found found = Found::kNothing;
  std::string detail;
};

// Connects without blocking past the deadline; -1 with `why` set when it cannot.
int connect_by(const addrinfo& a, clock::time_point deadline, std::string& why) {
  const int fd = ::socket(a.ai_family, a.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a.ai_protocol);
  if (fd < 0) {
    why = std::strerror(errno);
    return -1;
  }
  if (::connect(fd, a.ai_addr, a.ai_addrlen) != 0 && errno != EINPROGRESS) {
    why = std::strerror(errno);
    ::close(fd);
    return -1;
  }
  int error = 0;
  socklen_t len = sizeof error;
  if (!wait_until(fd, POLLOUT, deadline)) error = ETIMEDOUT;
  if (!error && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
  if (error) {
    why = std::strerror(error);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& bytes) {
  for (size_t sent = 0; sent < bytes.size();) {
    const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

template <typename T>
void append(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

// One connection: validate, ping with our pid, and read the echoed pid back.
Attempt ask(const addrinfo& a, clock::time_point deadline) {
  Attempt r;
  const Socket s(connect_by(a, deadline, r.detail));
  if (s.fd() < 0) return r;
  std::string query;
  append(query, static_cast<uint8_t>(c10d::detail::QueryType::VALIDATE));
  append(query, c10d::detail::validationMagicNumber);
  append(query, static_cast<uint8_t>(c10d::detail::QueryType::PING));
  const auto nonce = static_cast<uint32_t>(::getpid());
  append(query, nonce);
  if (!send_all(s.fd(), query)) return {Found::kClosed, "a program there closed the connection"};
  uint32_t answer = 0;
  for (size_t got = 0; got < sizeof answer;) {
    if (!wait_until(s.fd(), POLLIN, deadline)) return {Found::kSilent, ""};
    const auto n = ::recv(s.fd(), reinterpret_cast<char*>(&answer) + got, sizeof answer - got, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
      return {Found::kClosed, "a program there closed the connection without answering"};
    if (n > 0) got += static_cast<size_t>(n);
  }
  if (answer != nonce) return {Found::kStranger, ""};
  return {Found::kStore, ""};
}

}  // namespace

void wait_for_store(const std::string& host, int port, std::chrono::milliseconds timeout, const std::string& key,
                    const std::string& who) {
  const auto deadline = clock::now() + timeout;
  const auto where = host + ":" + std::to_string(port);
  std::ostringstream waited;
  waited << timeout.count() / 1000.0;
  Attempt last;
  for (auto pause = std::chrono::milliseconds(50);; pause = std::min(pause * 2, std::chrono::milliseconds(1000))) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
    if (rc != 0) {
      last = {Found::kNothing, std::string("cannot resolve the host: ") + gai_strerror(rc)};
    } else {
      for (const addrinfo* a = list; a; a = a->ai_next) {
        last = ask(*a, deadline);
        if (last.found != Found::kNothing && last.found != Found::kClosed) break;
      }
      ::freeaddrinfo(list);
    }
    if (last.found == Found::kStore) return;
    if (last.found == Found::kSilent)
      fail("distributed", "rendezvous",
           who + ": something accepts connections at " + where + " but did not answer as rank 0's store within " +
               waited.str() + " s (" + key + "): another program may hold MASTER_PORT " + std::to_string(port) +
               "; choose a free port (qalign launch --master-port)");
    if (last.found == Found::kStranger)
      fail("distributed", "rendezvous",
           who + ": the program listening at " + where +
               " is not rank 0's store (its answer is not a c10d store's): another program may hold MASTER_PORT " +
               std::to_string(port) + "; choose a free port (qalign launch --master-port)");
    if (clock::now() >= deadline)
      fail("distributed", "rendezvous",
           who + ": rank 0's store at " + where + " did not come up within " + waited.str() + " s (" + key +
               "): " + last.detail + "; is rank 0 running, with the same MASTER_ADDR and MASTER_PORT?");
    std::this_thread::sleep_for(std::min<clock::duration>(pause, deadline - clock::now()));
  }
}

}  // namespace qalign::distributed
