#!/usr/bin/env bash
# Builds qvit with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ and runs the
# whole unit-test suite under them (any report fails the run). Slower than scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQVIT_SANITIZE=ON -DQVIT_WERROR=ON \
  -DQVIT_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$(nproc)"
# detect_leaks: LeakSanitizer needs ptrace, which some sandboxes forbid; it is on when it works.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=${QVIT_ASAN_LEAKS:-0}:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd build-asan
ctest --output-on-failure -j1 --timeout 1800
