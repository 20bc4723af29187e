// The Qt resource archive reader the demo takes gcompris' photographs from: archives built here
// byte by byte from the format's description, and a real one where gcompris-qt-data is installed.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "data/image_decode.h"
#include "data/qt_resource.h"
#include "qalign/base/atomic_file.h"
#include "tests/support/fixtures.h"

namespace qalign {
namespace {

// An archive of version 3: a tree of folders and stored (or, flagged, compressed) files.
class RccBuilder {
 public:
  struct Node {
    std::string name;
    std::vector<Node> children;  // a folder when is_dir
    std::string data;
    bool is_dir = false;
    uint16_t extra_flags = 0;
  };

  static std::string build(const Node& root) {
    RccBuilder b;
    std::vector<const Node*> order = {&root};
    // Breadth first, so each folder's children are consecutive records, as rcc writes them.
    std::vector<uint32_t> first(1, 0);
    for (size_t i = 0; i < order.size(); ++i) {
      first.resize(order.size());
      first[i] = static_cast<uint32_t>(order.size());
      for (const auto& c : order[i]->children) order.push_back(&c);
    }
    std::string tree, names, data;
    for (size_t i = 0; i < order.size(); ++i) {
      const Node& n = *order[i];
      put32(tree, static_cast<uint32_t>(names.size()));
      put16(names, static_cast<uint16_t>(n.name.size()));
      put32(names, 0);  // hash: not read
      for (char c : n.name) put16(names, static_cast<uint16_t>(c));
      put16(tree, static_cast<uint16_t>((n.is_dir ? 2 : 0) | n.extra_flags));
      if (n.is_dir) {
        put32(tree, static_cast<uint32_t>(n.children.size()));
        put32(tree, first[i]);
      } else {
        put16(tree, 0);
        put16(tree, 0);
        put32(tree, static_cast<uint32_t>(data.size()));
        put32(data, static_cast<uint32_t>(n.data.size()));
        data += n.data;
      }
      tree += std::string(8, '\0');  // mtime
    }
    std::string out = "qres";
    const uint32_t header = 24;
    put32(out, 3);
    put32(out, header);
    put32(out, header + static_cast<uint32_t>(tree.size()));
    put32(out, header + static_cast<uint32_t>(tree.size() + data.size()));
    put32(out, 0);
    return out + tree + data + names;
  }

 private:
  static void put32(std::string& s, uint32_t v) {
    for (int k = 3; k >= 0; --k) s += static_cast<char>(v >> (8 * k) & 0xff);
  }
  static void put16(std::string& s, uint16_t v) {
    s += static_cast<char>(v >> 8);
    s += static_cast<char>(v & 0xff);
  }
};

using Node = RccBuilder::Node;

Node sample() {
  Node photo{"alpaca.webp", {}, std::string("RIFF\0\0\0\0WEBP", 12) + "pixels"};
  Node other{"notes.txt", {}, "two\nlines\n"};
  Node resource{"resource", {photo, other}, "", true};
  Node erase{"erase", {resource}, "", true};
  Node top{"top.txt", {}, "top"};
  return Node{"", {erase, top}, "", true};
}

TEST(QtResource, ListsEveryFileAndReadsItsBytes) {
  test::ScratchDir dir;
  io::write_file_atomic(dir.file("a.rcc"), RccBuilder::build(sample()));
  const data::QtResourceArchive a(dir.file("a.rcc"));
  EXPECT_EQ(a.files(),
            (std::vector<std::string>{"/erase/resource/alpaca.webp", "/erase/resource/notes.txt", "/top.txt"}));
  const auto bytes = a.read("/erase/resource/notes.txt");
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "two\nlines\n");
  const auto photo = a.read("/erase/resource/alpaca.webp");
  EXPECT_EQ(photo.size(), 18u);
  EXPECT_EQ(std::string(photo.begin() + 8, photo.begin() + 12), "WEBP");
}

TEST(QtResource, MalformedArchivesAreErrorsNamingFileAndField) {
  test::ScratchDir dir;
  const std::string good = RccBuilder::build(sample());
  io::write_file_atomic(dir.file("a.rcc"), good);
  const data::QtResourceArchive a(dir.file("a.rcc"));
  EXPECT_NE(test::error_of([&] { a.read("/erase/alpaca.webp"); }).find("a.rcc: /erase/alpaca.webp: no such file"),
            std::string::npos);

  io::write_file_atomic(dir.file("not.rcc"), "PK\x03\x04 a zip, not a resource archive");
  EXPECT_NE(test::error_of([&] { data::QtResourceArchive{dir.file("not.rcc")}; }).find("not.rcc: header: not a Qt"),
            std::string::npos);

  // Cut inside the data block: the tree still reads, the file's bytes do not.
  io::write_file_atomic(dir.file("cut.rcc"), good.substr(0, good.size() - 40));
  const data::QtResourceArchive cut(dir.file("cut.rcc"));
  EXPECT_NE(test::error_of([&] { cut.read("/top.txt"); }).find("runs past the end"), std::string::npos);

  auto zipped = sample();
  zipped.children[1].extra_flags = 1;
  io::write_file_atomic(dir.file("zlib.rcc"), RccBuilder::build(zipped));
  EXPECT_NE(test::error_of([&] {
              data::QtResourceArchive(dir.file("zlib.rcc")).read("/top.txt");
            }).find("zlib.rcc: /top.txt: compressed (zlib)"),
            std::string::npos);

  // A folder whose first child is the root: a loop, not an endless walk.
  std::string loop = good;
  const size_t erase_record = 24 + 22;  // the root's first child, "erase"
  loop[erase_record + 10] = loop[erase_record + 11] = loop[erase_record + 12] = loop[erase_record + 13] = '\0';
  io::write_file_atomic(dir.file("loop.rcc"), loop);
  EXPECT_NE(test::error_of([&] { data::QtResourceArchive(dir.file("loop.rcc")).files(); }).find("nested over 64 deep"),
            std::string::npos);
}

TEST(QtResource, ReadsGcomprisPhotographsWhereInstalled) {
  const std::string rcc = "/usr/share/gcompris-qt/rcc/erase.rcc";
  if (!std::filesystem::exists(rcc)) GTEST_SKIP() << rcc << " absent: gcompris-qt-data is installed for the demo only";
  const data::QtResourceArchive a(rcc);
  const auto bytes = a.read("/gcompris/src/activities/erase/resource/alpaca.webp");
  test::ScratchDir dir;
  io::write_file_atomic(dir.file("alpaca.webp"), std::string(bytes.begin(), bytes.end()));
  const auto image = data::decode_image(dir.file("alpaca.webp"));
  EXPECT_EQ(image.width, 1920);
  EXPECT_EQ(image.height, 1080);
}

}  // namespace
}  // namespace qalign
