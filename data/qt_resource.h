#pragma once
// Files inside a Qt resource archive (.rcc, format versions 1 to 3), the container in which
// gcompris-qt-data ships its photographs (WebP). Written here because no Debian library reads the
// format without Qt itself, and the reader is a short walk of a tree of fixed-size records.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace qalign::data {

class QtResourceArchive {
 public:
  // Reads the whole archive; fails naming it when it is not one or its header is malformed.
  explicit QtResourceArchive(std::string path);

  // Every file path in the archive ("/gcompris/src/activities/erase/resource/alpaca.webp"), depth
  // first, each folder's entries in the archive's order.
  std::vector<std::string> files() const;
  // The bytes of the file at `inner`. Fails naming the archive and the path when the path is
  // absent, an offset points past the end, or the entry is compressed (only stored entries are
  // read: the photographs are stored, being WebP already).
  std::vector<uint8_t> read(const std::string& inner) const;

 private:
  struct Entry {
    std::string name;
    uint16_t flags = 0;
    uint32_t children = 0, first_child = 0, data = 0;
  };
  Entry entry(uint32_t index) const;
  void walk(const Entry& dir, const std::string& prefix, int depth,
            const std::function<void(const std::string&, const Entry&)>& file) const;
  void need(uint64_t at, uint64_t size, const std::string& field) const;
  uint32_t u32(uint64_t at, const std::string& field) const;
  uint16_t u16(uint64_t at, const std::string& field) const;
  std::string name(uint32_t offset) const;

  std::string path_, bytes_;
  uint32_t version_ = 0, tree_ = 0, data_ = 0, names_ = 0;
};

}  // namespace qalign::data
