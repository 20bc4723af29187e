// Built instead of the OpenCV decoders when QALIGN_WITH_OPENCV is off (the GPU machine's build,
// which has only LibTorch): pictures and videos then reach the model as tensors, and any attempt
// to decode a file says why it cannot.
#include "data/image_decode.h"
#include "data/video.h"
#include "qalign/base/error.h"

namespace qalign::data {

namespace {

[[noreturn]] void unavailable(const std::string& path) {
  fail(path, "",
       "this qalign was built without OpenCV (QALIGN_WITH_OPENCV=OFF) and cannot decode files; "
       "rebuild with OpenCV or pass pixel tensors");
}

}  // namespace

Image decode_image(const std::string& path, const MediaBudget&) { unavailable(path); }
SampledVideo sample_video(const std::string& path, const MediaBudget&, int64_t) { unavailable(path); }
int64_t header_sampled_frames(const std::string& path) { unavailable(path); }
std::vector<Image> load_video_frames(const std::string& path) { unavailable(path); }
torch::Tensor load_video_tensor(const std::string& path, int64_t, const MediaBudget&) { unavailable(path); }

}  // namespace qalign::data
