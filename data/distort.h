#pragma once
// Graded synthetic distortions of RGB photographs, for image-quality sets with a known answer
// (the demo's). Each type takes a strength s in [0, 1]: 0 leaves the picture as it is (JPEG:
// quality 95, visually lossless), 1 is the worst the type goes, and the parameter in between follows a curve chosen so
// equal steps of s look like roughly equal steps of damage. The label is then a fixed function of s (distortion_mos).
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace qalign::data {

enum class Distortion {
  kBlur,        // Gaussian blur, sigma = 4 s pixels
  kNoise,       // white Gaussian noise per channel, sigma = 40 s (of 255), seeded
  kJpeg,        // JPEG at quality round(95 (2/95)^s): 95, 44, 20, 9, 4, 2 at s = 0, 0.2, … 1
  kContrast,    // pixels pulled toward the mean grey by a factor 1 - 0.85 s
  kColorShift,  // a colour cast of 70 s (of 255) along a seeded hue direction, brightness kept
  kDownscale,   // shrunk by 1 + 7 s (area), then enlarged back bilinearly
};

const std::vector<Distortion>& all_distortions();
// "blur", "noise", "jpeg", "contrast", "color_shift", "downscale".
std::string distortion_name(Distortion d);
// The inverse; an unknown word throws naming `source` and `field`.
Distortion parse_distortion(const std::string& word, const std::string& source, const std::string& field);

// The picture degraded by `d` at `strength` (clamped to [0, 1]). `seed` draws the noise and the
// cast direction; the other types ignore it. Same inputs, same bytes.
Image distort(const Image& img, Distortion d, double strength, uint64_t seed = 0);

// The opinion score such a picture gets: 5 - 4 s, on the scale [1, 5] of five-level ratings,
// for every type (the parameter curves above carry the per-type calibration).
double distortion_mos(double strength);

// The common baseline a quality set's references start from: balanced to neutral grey (each
// channel's mean moved to the mean brightness) and stretched about that mean to an RMS
// brightness contrast of `contrast` (of 255), clipped to 8 bits. Contrast and colour-cast damage
// applied after it then reads the same on every photograph, whatever its own exposure and light.
Image normalise_reference(const Image& img, double contrast = 56);

// Resized (area when shrinking, bicubic when enlarging) so the shorter side is `short_side`.
Image resize_short_side(const Image& img, int short_side);

// The JPEG bytes distort(kJpeg) decodes; written as is, the file holds exactly that picture.
std::vector<uint8_t> encode_jpeg(const Image& img, double strength);

// PNG bytes of the picture (lossless).
std::vector<uint8_t> encode_png(const Image& img);

}  // namespace qalign::data
