#include "data/qt_resource.h"

#include "qalign/base/atomic_file.h"
#include "qalign/base/error.h"

namespace qalign::data {

namespace {
constexpr uint16_t kDirectory = 0x2, kZlib = 0x1, kZstd = 0x4;
}  // namespace

// Every offset below comes from the file, so every read is bounds-checked.
QtResourceArchive::QtResourceArchive(std::string path) : path_(std::move(path)), bytes_(io::read_file(path_)) {
  if (bytes_.compare(0, 4, "qres") != 0) fail(path_, "header", "not a Qt resource archive (no \"qres\")");
  version_ = u32(4, "version");
  if (version_ < 1 || version_ > 3) fail(path_, "version", std::to_string(version_) + ", expected 1 to 3");
  tree_ = u32(8, "tree offset");
  data_ = u32(12, "data offset");
  names_ = u32(16, "names offset");
}

std::vector<std::string> QtResourceArchive::files() const {
  std::vector<std::string> out;
  walk(entry(0), "", 0, [&](const std::string& path, const Entry&) { out.push_back(path); });
  return out;
}

std::vector<uint8_t> QtResourceArchive::read(const std::string& inner) const {
  std::vector<uint8_t> out;
  bool found = false;
  walk(entry(0), "", 0, [&](const std::string& path, const Entry& e) {
    if (found || path != inner) return;
    found = true;
    if (e.flags & (kZlib | kZstd))
      fail(path_, inner,
           std::string("compressed (") + (e.flags & kZlib ? "zlib" : "zstd") + "); only stored entries are read");
    const uint64_t at = uint64_t{data_} + e.data;
    const uint32_t size = u32(at, inner);
    need(at + 4, size, inner);
    out.assign(bytes_.begin() + static_cast<std::ptrdiff_t>(at + 4),
               bytes_.begin() + static_cast<std::ptrdiff_t>(at + 4 + size));
  });
  if (!found) fail(path_, inner, "no such file in the archive");
  return out;
}

// Tree records: name offset (u32), flags (u16), then a folder's child count and first child
// (u32 each) or a file's country, language (u16 each) and data offset (u32); from version 2 a
// modification time (u64) follows.
QtResourceArchive::Entry QtResourceArchive::entry(uint32_t index) const {
  const uint64_t at = tree_ + uint64_t{index} * (version_ >= 2 ? 22 : 14);
  const std::string field = "tree entry " + std::to_string(index);
  Entry e;
  e.name = name(u32(at, field));
  e.flags = u16(at + 4, field);
  if (e.flags & kDirectory) {
    e.children = u32(at + 6, field);
    e.first_child = u32(at + 10, field);
  } else {
    e.data = u32(at + 10, field);
  }
  return e;
}

// `depth` bounds a tree whose entries point back at their ancestors.
void QtResourceArchive::walk(const Entry& dir, const std::string& prefix, int depth,
                             const std::function<void(const std::string&, const Entry&)>& file) const {
  if (depth > 64) fail(path_, prefix, "folders nested over 64 deep (a loop in the tree?)");
  for (uint32_t k = 0; k < dir.children; ++k) {
    const auto e = entry(dir.first_child + k);
    const std::string path = prefix + "/" + e.name;
    if (e.flags & kDirectory)
      walk(e, path, depth + 1, file);
    else
      file(path, e);
  }
}

void QtResourceArchive::need(uint64_t at, uint64_t size, const std::string& field) const {
  if (at + size > bytes_.size()) fail(path_, field, "runs past the end of the file (truncated?)");
}

uint32_t QtResourceArchive::u32(uint64_t at, const std::string& field) const {
  need(at, 4, field);
  const auto* p = reinterpret_cast<const uint8_t*>(bytes_.data() + at);
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

uint16_t QtResourceArchive::u16(uint64_t at, const std::string& field) const {
  need(at, 2, field);
  const auto* p = reinterpret_cast<const uint8_t*>(bytes_.data() + at);
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}

// Length (u16), hash (u32), then UTF-16BE units. Resource names are ASCII; any other unit becomes
// '?' so that a lookup by an ASCII path cannot match it by accident.
std::string QtResourceArchive::name(uint32_t offset) const {
  const uint64_t at = uint64_t{names_} + offset;
  const uint16_t length = u16(at, "name");
  need(at + 6, uint64_t{length} * 2, "name");
  std::string out;
  for (uint16_t i = 0; i < length; ++i) {
    const uint16_t unit = u16(at + 6 + 2 * i, "name");
    out += unit < 0x80 ? static_cast<char>(unit) : '?';
  }
  return out;
}

}  // namespace qalign::data
