#pragma once
// The README's training demo set: the photographs two Debian packages ship (opencv-doc,
// python3-skimage) turned into a synthetic-distortion quality set in the authors' formats (graded
// blur, noise, JPEG, contrast and colour cast by default; the MOS a fixed function of the
// strength), split by source photograph so the test pictures are never trained on.
// `qalign demo make-data` is its command, which also learns the tokenizer from the prompts.
#include <cstdint>
#include <string>
#include <vector>

namespace qalign::data {

struct DemoSetOptions {
  // The folder written: images/, train.json, train_numbers.json, test.json, manifest.json.
  std::string out;
  uint64_t seed = 0;        // the split, the strengths and the noise
  int per_image = 48;       // distorted variants per training photograph
  int test_per_image = 24;  // distorted variants per test photograph
  int size = 224;           // side of the square pictures written: the model's image_size
  int scene = 0;            // short side the photographs are scaled to before cropping (0: 8/7 of size)
  // Types by name (distortion_name in data/distort.h), taken in turn.
  std::vector<std::string> distortions = {"blur", "noise", "jpeg", "contrast", "color_shift"};
  double test_fraction = 0.25;  // share of the photographs held out for testing
};

struct DemoSetCounts {
  size_t train_pictures = 0, test_pictures = 0, train_photographs = 0, test_photographs = 0;
};

// Writes the demo set to `options.out`, logging each photograph. Bad options throw
// naming the command's flags (--per-image, --size, --scene, --distortions); fewer than four of the
// photographs installed throws naming the folders searched. Same options, same files.
DemoSetCounts make_demo_set(const DemoSetOptions& options);

}  // namespace qalign::data
