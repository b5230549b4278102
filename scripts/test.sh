#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (ctest). Tests that need the shared data
# ($QVIT_DATA, default ../shared/data) are skipped when it is absent, unless QVIT_REQUIRE_DATA=1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure -j1 --timeout 900
