#pragma once
// Telling a video from a still picture before decoding either (no OpenCV needed).
#include <string>

namespace qalign::data {

// True for a video container, judged by extension (avi, mp4, mkv, mov, webm, ...) or, failing
// that, by the file's leading bytes.
bool is_video_path(const std::string& path);

}  // namespace qalign::data
