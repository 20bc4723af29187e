#pragma once
// Telling a video from a still picture before decoding either (no OpenCV needed).
#include <string>

namespace qalign {

// True for a video container. The leading bytes decide when they are a known image or video
// signature (a PNG named .mp4 is a picture); otherwise the extension (avi, mp4, mkv, mov, ...).
// A path that is not a regular file is judged by its extension only: opening a FIFO blocks.
bool is_video_path(const std::string& path);

// True when the extension names a video container (avi, mp4, mkv, mov, webm, wmv, ...): the rule
// is_video_path falls back to, and an estimate for counts over many files that are not opened.
bool has_video_extension(const std::string& path);

// The extension with its dot, lower-cased, as std::filesystem reads it ("a/B.MP4" -> ".mp4").
std::string lower_extension(const std::string& path);

// True when the leading bytes are a GIF signature.
bool is_gif_bytes(const unsigned char* bytes, size_t size);

// Throws qalign::Error naming `path` when it does not exist ("<what> file does not exist") or is
// not a regular file (io::require_regular_file: a FIFO or device would block or never end).
void require_media_file(const std::string& path, const std::string& what);

}  // namespace qalign
