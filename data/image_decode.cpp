#include "data/image_decode.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <vector>

#include "data/image_header.h"
#include "qalign/base/error.h"
#include "qalign/media_budget.h"
#include "qalign/media_type.h"

namespace qalign::data {

namespace {

// The file's bytes, its size checked from stat against the budget before anything is read.
std::vector<uint8_t> read_bytes(const std::string& path, const MediaBudget& budget) {
  require_media_file(path, "image");
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "", "cannot read the image file's size: " + ec.message());
  if (size == 0) fail(path, "", "image file is empty");
  check_file_budget(path, static_cast<int64_t>(size), budget);
  if (size > static_cast<uintmax_t>(std::numeric_limits<int>::max()))
    fail(path, "", "image file is over 2 GiB, more than the decoder accepts");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", std::string("cannot open image file: ") + std::strerror(errno));
  std::vector<uint8_t> bytes(size);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (in.bad()) fail(path, "", "read error");
  bytes.resize(static_cast<size_t>(in.gcount()));  // a file that shrank meanwhile
  if (bytes.empty()) fail(path, "", "image file is empty");
  return bytes;
}

void check_size(const std::string& path, int64_t width, int64_t height) {
  if (width <= 0 || height <= 0)
    fail(path, "", "image has no pixels (" + std::to_string(width) + "x" + std::to_string(height) + ")");
  // Divided rather than multiplied: a PNG header's two 32-bit sides overflow int64 when multiplied.
  if (width > kMaxImagePixels / height)
    fail(path, "",
         "image is " + std::to_string(width) + "x" + std::to_string(height) + " pixels, over the " +
             std::to_string(kMaxImagePixels) + "-pixel limit (PIL refuses such images as decompression bombs)");
}

// Everything the header tells, before the decoder allocates: the size under PIL's pixel limit,
// the decoder's allocation under the budget, the JPEG scans under their limit, the data complete.
void check_header(const std::string& path, const std::vector<uint8_t>& bytes, const MediaBudget& budget) {
  const auto header = read_image_header(bytes);
  if (!header)
    fail(path, "",
         std::string("not a decodable image (corrupt, or not a picture format qalign reads: ") + kImageFormats + ")");
  const std::string size = std::to_string(header->width) + "x" + std::to_string(header->height);
  if (header->width > 0 && header->height > 0) {
    check_size(path, header->width, header->height);
    // Our RGB copy, 3 bytes a pixel, comes on top of the decoder's picture.
    const double ours = static_cast<double>(header->width) * static_cast<double>(header->height) * 3;
    check_decoded_budget(path, "this " + size + " " + header->format, header->decoder_bytes + ours, budget);
  }
  if (header->scans > kMaxJpegScans)
    fail(path, "",
         "JPEG has " + std::to_string(header->scans) + " scans, over the " + std::to_string(kMaxJpegScans) +
             "-scan limit (encoders write about 10; each scan is decoded over the whole picture)");
  if (!header->complete)
    fail(path, "", header->format + " data ends before its end-of-image marker: the file is truncated");
  if (header->width <= 0 || header->height <= 0)
    fail(path, "", header->format + " header gives no picture size (" + size + "): the file is corrupt or truncated");
}

// One sample reduced to 8 bits; `clip` picks PIL's mode-"I" rule over keeping the high byte.
template <typename T>
uint8_t to_u8(T v, bool clip) {
  if constexpr (sizeof(T) == 1) {
    return v;
  } else {
    return clip ? static_cast<uint8_t>(std::min<T>(v, 255)) : static_cast<uint8_t>(v >> 8);
  }
}

// OpenCV hands out grey, grey+alpha, BGR or BGRA; alpha is dropped as .convert('RGB') drops it.
template <typename T>
Image to_rgb(const cv::Mat& m) {
  Image out(m.cols, m.rows);
  const int ch = m.channels();
  const bool grey = ch <= 2;
  const bool clip = ch == 1;
  for (int y = 0; y < m.rows; ++y) {
    const T* src = m.ptr<T>(y);
    uint8_t* dst = out.pixel(0, y);
    for (int x = 0; x < m.cols; ++x, src += ch, dst += 3) {
      if (grey) {
        dst[0] = dst[1] = dst[2] = to_u8(src[0], clip);
      } else {
        dst[0] = to_u8(src[2], false);
        dst[1] = to_u8(src[1], false);
        dst[2] = to_u8(src[0], false);
      }
    }
  }
  return out;
}

// The decoder's picture, its input checked first; the file's bytes are let go on return, before
// our copy is made.
cv::Mat decode_checked(const std::string& path, const MediaBudget& budget) {
  const std::vector<uint8_t> bytes = read_bytes(path, budget);
  // OpenCV 4.6 has no GIF reader; FFmpeg's (absent from the GPU build) is not known to match PIL's
  // palette, transparency and frame-offset handling: refused rather than scored on other pixels.
  if (is_gif_bytes(bytes.data(), bytes.size()))
    fail(path, "", "GIF is not supported: convert it to PNG first (PIL reads its first frame)");
  check_header(path, bytes, budget);
  cv::Mat m;
  try {
    const cv::Mat encoded(1, static_cast<int>(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data()));
    // IMREAD_UNCHANGED also leaves EXIF orientation unapplied, as PIL's open() does.
    m = cv::imdecode(encoded, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    fail(path, "", std::string("cannot decode image: ") + e.what());
  }
  if (m.empty()) fail(path, "", "not a decodable image (corrupt, truncated or an unsupported format)");
  return m;
}

}  // namespace

Image decode_image(const std::string& path, const MediaBudget& budget) {
  const cv::Mat m = decode_checked(path, budget);
  check_size(path, m.cols, m.rows);
  const int ch = m.channels();
  if (ch < 1 || ch > 4) fail(path, "", "unsupported image with " + std::to_string(ch) + " channels");
  switch (m.depth()) {
    case CV_8U:
      return to_rgb<uint8_t>(m);
    case CV_16U:
      return to_rgb<uint16_t>(m);
    default:
      fail(path, "", "unsupported sample type (only 8- and 16-bit unsigned images are read)");
  }
}

}  // namespace qalign::data
