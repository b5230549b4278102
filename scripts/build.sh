#!/usr/bin/env bash
# Configures and builds qvit into build/ (Release, warnings as errors). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQVIT_WERROR=ON "$@" >/dev/null
cmake --build build -j"$(nproc)"
