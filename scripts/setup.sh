#!/usr/bin/env bash
# Installs the Debian packages qvit needs, skipping what is already installed (idempotent).
# Usage: scripts/setup.sh [--with-python] [--with-fuzz]
#   --with-python: torch/torchvision/PIL for tools/ and bench/ (+ OpenBLAS: Debian's torch calls the
#   system BLAS, and the reference libblas3 makes it ~10x slower);  --with-fuzz: clang + libFuzzer runtime
set -euo pipefail
pkgs=(build-essential cmake pkg-config libdnnl-dev libturbojpeg0-dev libpng-dev zlib1g-dev
      nlohmann-json3-dev libcli11-dev libfmt-dev libgtest-dev libbenchmark-dev
      ocl-icd-opencl-dev  # dnnl-config.cmake (Debian oneDNN 2.6) calls find_package(OpenCL)
      chromium)  # chromium: headless rendering test of `qvit report` pages
for arg in "$@"; do
  case "$arg" in
    --with-python) pkgs+=(python3-torch python3-torchvision python3-pil python3-numpy libopenblas0-pthread) ;;
    --with-fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#pkgs[@]} packages already installed"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
