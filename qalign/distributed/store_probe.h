#pragma once
// Before a rank other than 0 joins rank 0's c10d TCPStore: c10d's client waits for the store's
// first answer without a deadline, so a MASTER_PORT held by another program that accepts
// connections and never answers would hang the rank for good. The probe asks the store's own
// validate-and-ping (libtorch's protocol, from its headers) and waits for the answer at most
// until the deadline.
#include <chrono>
#include <string>

namespace qalign::distributed {

// Returns once a c10d store answers at host:port, retrying while nothing listens there yet (rank
// 0 still starting). Throws, beginning with `who` ("rank 1 of 2"), naming the address, the port,
// what was found there, and `key`, the setting whose `timeout` ran out.
void wait_for_store(const std::string& host, int port, std::chrono::milliseconds timeout, const std::string& key,
                    const std::string& who);

}  // namespace qalign::distributed
