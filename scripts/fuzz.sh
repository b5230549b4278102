#!/usr/bin/env bash
# Builds the libFuzzer targets (clang 14, ASan + UBSan) into build-fuzz/ and runs each for a
# bounded time on a copy of its committed corpus (fuzz/corpus/<target>). Any crash, leak-free
# sanitizer report or non-qvit exception fails the run and leaves the input in build-fuzz/.
# Usage: scripts/fuzz.sh [seconds per target, default 60]
#        scripts/fuzz.sh --ci   (CI: a fixed seed and a fixed number of runs, so it is repeatable)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--ci" ]]; then
  limit=(-seed=1 -runs=200000)
else
  limit=(-max_total_time="${1:-60}")
fi
scripts/setup.sh --with-fuzz
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQVIT_FUZZ=ON \
  -DQVIT_BUILD_TESTS=OFF -DQVIT_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target safetensors_fuzz pth_fuzz qparams_fuzz image_fuzz qvit_file_fuzz
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
for t in safetensors pth qparams image qvit_file; do
  work="build-fuzz/corpus/$t"
  rm -rf "$work" && mkdir -p "$work" && cp fuzz/corpus/$t/* "$work/"
  echo "fuzz: $t ${limit[*]}"
  (cd build-fuzz && ./fuzz/${t}_fuzz "${limit[@]}" -max_len=65536 -rss_limit_mb=4096 \
     -timeout=20 -print_final_stats=1 "corpus/$t" 2>&1 | tail -n 12)
done
echo "fuzz: no findings"
