#include "data/video_frame_sizes.h"

#include <memory>
#include <vector>

#include "data/image_header.h"
#include "qalign/base/error.h"

#ifdef QALIGN_WITH_LIBAV
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}
#endif

namespace qalign::data {

#ifdef QALIGN_WITH_LIBAV

namespace {

struct Closer {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
  void operator()(AVCodecParserContext* p) const { av_parser_close(p); }
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
template <typename T>
using Owned = std::unique_ptr<T, Closer>;

// Sizes seen frame by frame; `change` is set at the first that differs from the first.
struct SizeTracker {
  int64_t frame = 0;
  int64_t first_width = 0, first_height = 0;
  std::optional<SizeChange> change;

  void see(int64_t width, int64_t height) {
    if (width > 0 && height > 0 && !change) {
      if (first_width == 0) {
        first_width = width;
        first_height = height;
      } else if (width != first_width || height != first_height) {
        change = SizeChange{frame, width, height, first_width, first_height};
      }
    }
    ++frame;
  }
};

// The size of one packet's picture (av_read_frame hands out one frame a packet): the codec's
// parser reads the sequence headers it passes.
void parse_packet(AVCodecParserContext* parser, AVCodecContext* codec, const AVPacket& packet, SizeTracker& sizes) {
  const uint8_t* data = packet.data;
  int left = packet.size;
  while (left > 0) {
    uint8_t* frame = nullptr;
    int frame_size = 0;
    const int used =
        av_parser_parse2(parser, codec, &frame, &frame_size, data, left, packet.pts, packet.dts, packet.pos);
    if (used <= 0) break;
    data += used;
    left -= used;
  }
  sizes.see(parser->width, parser->height);
}

}  // namespace

std::optional<SizeChange> find_size_change(const std::string& path) {
  AVFormatContext* opened = nullptr;
  if (avformat_open_input(&opened, path.c_str(), nullptr, nullptr) < 0) return std::nullopt;
  const Owned<AVFormatContext> format(opened);
  if (avformat_find_stream_info(format.get(), nullptr) < 0) return std::nullopt;
  const int stream = av_find_best_stream(format.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (stream < 0) return std::nullopt;
  const AVCodecParameters* parameters = format->streams[stream]->codecpar;
  const bool mjpeg = parameters->codec_id == AV_CODEC_ID_MJPEG;
  const Owned<AVCodecParserContext> parser(mjpeg ? nullptr : av_parser_init(parameters->codec_id));
  if (!mjpeg && !parser) return std::nullopt;
  const Owned<AVCodecContext> codec(avcodec_alloc_context3(nullptr));
  const Owned<AVPacket> packet(av_packet_alloc());
  if (!codec || !packet || avcodec_parameters_to_context(codec.get(), parameters) < 0) return std::nullopt;
  // Each packet is one whole frame: parsed at once, not when the next one's start code comes.
  if (parser) parser->flags |= PARSER_FLAG_COMPLETE_FRAMES;
  SizeTracker sizes;
  while (!sizes.change && av_read_frame(format.get(), packet.get()) >= 0) {
    if (packet->stream_index == stream) {
      if (mjpeg) {
        const auto header = read_image_header(std::vector<uint8_t>(packet->data, packet->data + packet->size));
        sizes.see(header ? header->width : 0, header ? header->height : 0);
      } else {
        parse_packet(parser.get(), codec.get(), *packet, sizes);
      }
    }
    av_packet_unref(packet.get());
  }
  return sizes.change;
}

#else

// Without FFmpeg's libraries nothing tells the sizes (and OpenCV reads no video either).
std::optional<SizeChange> find_size_change(const std::string&) { return std::nullopt; }

#endif

void require_one_frame_size(const std::string& path) {
  const auto change = find_size_change(path);
  if (!change) return;
  fail(path, "frame " + std::to_string(change->frame),
       "is " + std::to_string(change->width) + "x" + std::to_string(change->height) +
           " where the frames before it are " + std::to_string(change->first_width) + "x" +
           std::to_string(change->first_height) +
           ": frames that change size mid-stream are not read (the decoder would hand out stale or garbage frames)");
}

}  // namespace qalign::data
