#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test.
# Kernel tests (BPF, namespaces) need root; without it they skip and say why.
#   scripts/test.sh                 # everything that belongs in CI
#   scripts/test.sh -R difftest     # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
BUILD_DIR=${QOSC_BUILD_DIR:-build}
cd "$BUILD_DIR"
# Tests touching the kernel share namespaces/qdiscs by unique names, but the
# wire tests measure throughput: run serially so they do not disturb each other.
ctest --output-on-failure --timeout 900 "$@"
