#pragma once
// Paths to the fixtures the tests read: tests/fixtures in the repository (always there) and
// ../shared (large label files; tests that need it skip when it is absent).
#include <string>

namespace qalign::test {

std::string source_dir();
// tests/fixtures/<rel>
std::string fixture(const std::string& rel);
// ../shared/<rel>, or "" when the shared folder is absent.
std::string shared(const std::string& rel);
// The built qalign executable.
std::string qalign_binary();
// Runs a shell command, returns its exit code and combined output.
int run_command(const std::string& cmd, std::string* output);

}  // namespace qalign::test
