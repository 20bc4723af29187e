#pragma once
// The one check before qalign opens a file it reads: it must exist and be a regular file (links
// followed). Opening a FIFO blocks until a writer comes, which may be never, and a folder or a
// device reads as nonsense or without end; a stat() answers at once.
#include <string>

namespace qalign::io {

// Throws qalign::Error "PATH: cannot open file: ..." naming what `path` is instead.
void require_regular_file(const std::string& path);

}  // namespace qalign::io
