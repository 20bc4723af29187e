#!/usr/bin/env bash
# Installs everything qalign needs to build and run, idempotently:
#   Debian packages, LibTorch 2.11.0 (PyPI wheel) in .venv, SentencePiece (static) in .deps.
# Re-running skips what is already there. QALIGN_FULL_CUDA_WHEELS=1 installs torch's own
# nvidia-* wheels (gigabytes) instead of using the machine's CUDA 13 libraries.
# --demo adds the packages whose photographs only the demo uses (62 MB, no dependencies:
# data/demo_photographs.h); the tests never need them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TORCH_VERSION=2.11.0
SPM_VERSION=0.1.99   # the authors' pin (SPEC.md header)
log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
SECONDS=0

# --- Debian packages -------------------------------------------------------------------
APT_PKGS=(build-essential cmake pkg-config python3-venv libyaml-cpp-dev libopencv-dev
          nlohmann-json3-dev libcli11-dev libgtest-dev libgloo-dev
          libavformat-dev libavcodec-dev libavutil-dev  # video packets read for frame sizes (data/video_frame_sizes.cpp)
          opencv-doc   # the photographs and clips of the demo and tests
          ninja-build lld  # the build: parallel across targets, fast links
          clang-format-14)  # scripts/format.sh --check, which CI runs
if [ "${1:-}" = "--demo" ]; then
  APT_PKGS+=(gcompris-qt-data lomiri-wallpapers-16.04 palapeli-data)
fi
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi

PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || { log "creating .venv"; python3 -m venv "$ROOT/.venv"; }

# --- SentencePiece, static, symbols private -------------------------------------------------
# Debian's libsentencepiece exports its bundled protobuf-lite, which clashes with other
# protobufs in the process (MEASURED.md); a private static build cannot clash.
# It builds in the background while pip installs torch (mostly one core unpacking files), which
# on a fresh 2-core machine saves most of its time.
SPM_PREFIX="$ROOT/.deps/sentencepiece"
build_spm() {
  log "building SentencePiece $SPM_VERSION (static)"
  work=$(mktemp -d)
  "$PY" -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps \
      "sentencepiece==$SPM_VERSION" -d "$work"
  tar xzf "$work/sentencepiece-$SPM_VERSION.tar.gz" -C "$work"
  cmake -S "$work/sentencepiece-$SPM_VERSION/sentencepiece" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
      -DSPM_ENABLE_SHARED=OFF -DSPM_ENABLE_TCMALLOC=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
      -DCMAKE_CXX_FLAGS="-fvisibility=hidden -fvisibility-inlines-hidden" \
      -DCMAKE_INSTALL_PREFIX="$SPM_PREFIX" -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
  cmake --build "$work/build" -j"$(nproc)" --target sentencepiece-static sentencepiece_train-static >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log"; exit 1; }
  mkdir -p "$SPM_PREFIX/lib" "$SPM_PREFIX/include"
  cp "$work/build/src/libsentencepiece.a" "$work/build/src/libsentencepiece_train.a" "$SPM_PREFIX/lib/"
  cp "$work/sentencepiece-$SPM_VERSION/sentencepiece/src/"{sentencepiece_processor.h,sentencepiece_trainer.h} \
     "$SPM_PREFIX/include/"
  rm -rf "$work"
}
spm_pid=
if [ ! -f "$SPM_PREFIX/lib/libsentencepiece_train.a" ]; then
  build_spm & spm_pid=$!
else
  log "SentencePiece present in .deps"
fi

# --- LibTorch from the PyPI wheel --------------------------------------------------------
if ! "$PY" -c "import torch,sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  PIP=("$PY" -m pip install -q --disable-pip-version-check)
  # grep reads all of ldconfig's list: with -q it would stop at the first match, ldconfig would
  # die of SIGPIPE and pipefail would read that as "no CUDA 13" (measured: 17 of 300 times).
  if [ "${QALIGN_FULL_CUDA_WHEELS:-0}" = 1 ] || ! ldconfig -p | grep 'libcudart.so.13' > /dev/null; then
    log "installing torch==$TORCH_VERSION with its CUDA wheels"
    "${PIP[@]}" "torch==$TORCH_VERSION"
  else
    # The machine's CUDA 13 toolkit supplies cudart, cuBLAS, cuDNN, NCCL, ...; only these three
    # libraries that libtorch_cuda.so links are missing from it (pins from torch's metadata).
    log "installing torch==$TORCH_VERSION against the system CUDA 13 (no nvidia-* bulk)"
    "${PIP[@]}" filelock "typing-extensions>=4.10" "sympy>=1.13.3" "networkx>=2.5.1" jinja2 \
      "fsspec>=0.8.5" "setuptools<82" numpy
    "${PIP[@]}" --no-deps "torch==$TORCH_VERSION" nvidia-cusparselt-cu13==0.8.0 \
      nvidia-nvshmem-cu13==3.4.5 "nvidia-cufile==1.15.1.6.*"
  fi
else
  log "torch $TORCH_VERSION present in .venv"
fi
[ -z "$spm_pid" ] || wait "$spm_pid" || { log "SentencePiece build failed"; exit 1; }

# --- CPU matmul check -----------------------------------------------------------------------
"$PY" - <<'PY'
import time, torch
torch.set_num_threads(1)
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
for _ in range(3): a @ b
n = 20; t = time.perf_counter()
for _ in range(n): a @ b
g = 2 * 1024**3 * n / (time.perf_counter() - t) / 1e9
print(f"[setup] LibTorch CPU matmul 1024^3 float32, 1 thread: {g:.1f} GFLOP/s")
if g < 20:
    raise SystemExit("[setup] matmul below 20 GFLOP/s: LibTorch is not using an optimised BLAS "
                     "(check torch.__config__.show() for MKL) or the CPU is heavily loaded")
PY
log "done in ${SECONDS}s"
