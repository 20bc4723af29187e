// The inputs of `qalign score` as a stream (data/inputs.h) and the ordered prefetch that decodes
// them ahead of the model (data/prefetch.h).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "qalign/base/error.h"
#include "qalign/base/prefetch.h"
#include "qalign/scoring/inputs.h"
#include "tests/support/fixtures.h"

using namespace qalign;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> drain(scoring::InputStream s) {
  std::vector<std::string> out;
  while (auto p = s.next()) out.push_back(*p);
  return out;
}

void touch(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << "x";
}

}  // namespace

TEST(InputStream, FilesListsAndFoldersInTheirFixedOrder) {
  test::ScratchDir d("qalign-inputs");
  const auto root = d.file("tree");
  for (const char* f : {"b.jpg", "a/z.png", "a/m/1.JPG", "a.jpg", "c/notes.txt", "c/clip.mp4", "B.png"})
    touch(root + "/" + f);
  fs::create_directory_symlink(root, root + "/a/loop");  // a link back up is not followed
  std::ofstream(d.file("list.txt")) << "first.jpg\r\n\n  spaced name.png\nlast.webp";

  const auto got = drain(scoring::InputStream({d.file("named.txt"), "@" + d.file("list.txt"), root}));
  const std::vector<std::string> want = {d.file("named.txt"), "first.jpg",         "  spaced name.png", "last.webp",
                                         root + "/B.png",     root + "/a/m/1.JPG", root + "/a/z.png",   root + "/a.jpg",
                                         root + "/b.jpg",     root + "/c/clip.mp4"};
  EXPECT_EQ(got, want);
}

TEST(InputStream, AMissingListIsAnErrorNamingIt) {
  scoring::InputStream s({"x.jpg", "@/nonexistent/list.txt"});
  EXPECT_EQ(*s.next(), "x.jpg");
  try {
    s.next();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/list.txt: cannot open the input list"), std::string::npos)
        << e.what();
  }
}

TEST(OrderedPrefetch, ResultsComeInSourceOrderWhateverTheThreadsAndStayWithinTheWindow) {
  for (int threads : {0, 1, 4}) {
    int next = 0, ahead = 0;
    std::atomic<int> running{0}, most{0}, consumed{0};
    OrderedPrefetch<int, int> p(
        [&]() -> std::optional<int> {
          ahead = std::max(ahead, next - consumed.load());
          return next < 200 ? std::optional(next++) : std::nullopt;
        },
        [&](int& j) {
          most = std::max(most.load(), ++running);
          std::this_thread::sleep_for(std::chrono::microseconds((j * 37) % 200));
          --running;
          return j * j;
        },
        threads, 6);
    for (int i = 0; i < 200; ++i) {
      auto r = p.next();
      ASSERT_TRUE(r) << threads;
      ASSERT_EQ(*r, i * i) << threads;
      ++consumed;
    }
    EXPECT_FALSE(p.next());
    EXPECT_LE(most.load(), std::max(threads, 1));
    EXPECT_LE(ahead, 6) << "at most `window` jobs are ahead of the consumer (counted here one late)";
    if (threads > 1) EXPECT_GT(most.load(), 1) << "the work overlaps";
  }
}

TEST(OrderedPrefetch, AnErrorIsRethrownAtItsPlaceAndTheRestStillCome) {
  int next = 0;
  OrderedPrefetch<int, int> p([&]() -> std::optional<int> { return next < 5 ? std::optional(next++) : std::nullopt; },
                              [](int& j) {
                                if (j == 2) throw std::runtime_error("bad two");
                                return j;
                              },
                              3, 4);
  EXPECT_EQ(*p.next(), 0);
  EXPECT_EQ(*p.next(), 1);
  EXPECT_THROW(p.next(), std::runtime_error);
  EXPECT_EQ(*p.next(), 3);
  EXPECT_EQ(*p.next(), 4);
  EXPECT_FALSE(p.next());
}
