#!/usr/bin/env bash
# Gathers every dependency but LibTorch — headers and static libraries — into one folder that a
# machine with only PyTorch (the GPU machine: no apt, no network) builds against with
# -DQALIGN_DEPS_BUNDLE=DIR. Run after scripts/setup.sh.
# With --opencv it adds a static OpenCV (core, imgproc, imgcodecs, videoio without FFmpeg; zlib,
# libpng and libjpeg-turbo built in) and real photographs, so that machine decodes images through
# the real loader: Debian's OpenCV with its closure is 241 shared libraries, 268 MB, over the
# device tool's 64 MiB carry; this build is 21 MB. The source is PyPI's opencv-python-headless
# sdist of OpenCV 4.6.0, Debian 12's version, so it decodes the fixtures' pixels as this machine
# does; it is built once (about 5 minutes on 2 cores) and kept in .deps/opencv-4.6.0.
# Usage: scripts/device_bundle.sh [--opencv] [OUT]   (default .deps/device)
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_OPENCV=0
if [ "${1:-}" = "--opencv" ]; then WITH_OPENCV=1; shift; fi
OUT=${1:-.deps/device}
LIB=/usr/lib/$(gcc -print-multiarch)
SPM=.deps/sentencepiece
rm -rf "$OUT"
mkdir -p "$OUT/include" "$OUT/lib"
for d in yaml-cpp nlohmann CLI gtest gloo; do
  [ -d "/usr/include/$d" ] || { echo "device_bundle: /usr/include/$d missing; run scripts/setup.sh" >&2; exit 1; }
  cp -r "/usr/include/$d" "$OUT/include/"
done
for a in "$LIB/libyaml-cpp.a" "$LIB/libgtest.a" "$LIB/libgtest_main.a" "$SPM/lib/libsentencepiece.a" \
         "$SPM/lib/libsentencepiece_train.a"; do
  [ -f "$a" ] || { echo "device_bundle: $a missing; run scripts/setup.sh" >&2; exit 1; }
  cp "$a" "$OUT/lib/"
done
cp "$SPM"/include/*.h "$OUT/include/"

if [ $WITH_OPENCV = 1 ]; then
  OCV=.deps/opencv-4.6.0
  if [ ! -f "$OCV/lib/cmake/opencv4/OpenCVConfig.cmake" ]; then
    SRC=.deps/opencv-src
    TGZ=$SRC/opencv-python-headless-4.6.0.66.tar.gz
    SHA=d5291d7e10aa2c19cab6fd86f0d61af8617290ecd2d7ffcb051e446868d04cc5
    mkdir -p "$SRC"
    if [ ! -f "$TGZ" ] || ! echo "$SHA  $TGZ" | sha256sum -c --quiet; then
      curl -fsSL -o "$TGZ" \
        "https://files.pythonhosted.org/packages/fe/5d/f99eb2182c6f7bf9647babe6f86f5e397f6be07a2035bbdf272e7cb16cd4/opencv-python-headless-4.6.0.66.tar.gz"
      echo "$SHA  $TGZ" | sha256sum -c --quiet || { echo "device_bundle: $TGZ: sha256 mismatch" >&2; exit 1; }
    fi
    tar xzf "$TGZ" -C "$SRC" opencv-python-headless-4.6.0.66/opencv
    # Only the decoding the loader uses; no IPP, threads from pthreads, nothing from the system.
    cmake -S "$SRC/opencv-python-headless-4.6.0.66/opencv" -B "$SRC/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX="$PWD/$OCV" -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
      -DBUILD_LIST=core,imgproc,imgcodecs,videoio -DBUILD_ZLIB=ON -DBUILD_JPEG=ON -DBUILD_PNG=ON \
      -DWITH_TIFF=OFF -DWITH_WEBP=OFF -DWITH_OPENJPEG=OFF -DWITH_JASPER=OFF -DWITH_OPENEXR=OFF -DWITH_IMGCODEC_HDR=OFF \
      -DWITH_IMGCODEC_SUNRASTER=OFF -DWITH_IMGCODEC_PFM=OFF -DWITH_IPP=OFF -DWITH_ITT=OFF -DWITH_TBB=OFF -DWITH_OPENMP=OFF \
      -DWITH_EIGEN=OFF -DWITH_LAPACK=OFF -DWITH_PROTOBUF=OFF -DWITH_OPENCL=OFF -DWITH_VA=OFF -DWITH_VA_INTEL=OFF \
      -DWITH_FFMPEG=OFF -DWITH_GSTREAMER=OFF -DWITH_V4L=OFF -DWITH_1394=OFF -DWITH_GTK=OFF -DWITH_QT=OFF -DWITH_CUDA=OFF \
      -DWITH_QUIRC=OFF -DWITH_ADE=OFF -DCPU_DISPATCH=AVX2 -DBUILD_TESTS=OFF -DBUILD_PERF_TESTS=OFF -DBUILD_EXAMPLES=OFF \
      -DBUILD_opencv_apps=OFF -DBUILD_opencv_python3=OFF -DBUILD_JAVA=OFF -DBUILD_DOCS=OFF -DOPENCV_GENERATE_PKGCONFIG=OFF \
      > "$SRC/configure.log" 2>&1 || { tail -30 "$SRC/configure.log" >&2; exit 1; }
    cmake --build "$SRC/build" -j"$(nproc)" --target install > "$SRC/build.log" 2>&1 || { tail -30 "$SRC/build.log" >&2; exit 1; }
  fi
  mkdir -p "$OUT/opencv"
  cp -r "$OCV/include" "$OCV/lib" "$OUT/opencv/"
  # Real photographs for the check's training run (Debian's opencv-doc, BSD-3-Clause like OpenCV).
  PHOTOS=/usr/share/doc/opencv-doc/examples/data
  [ -f "$PHOTOS/baboon.jpg" ] || { echo "device_bundle: $PHOTOS missing; install opencv-doc" >&2; exit 1; }
  mkdir -p "$OUT/photos"
  cp "$PHOTOS"/*.jpg "$OUT/photos/"
fi
echo "device_bundle: $(du -sh "$OUT" | cut -f1) in $OUT"
