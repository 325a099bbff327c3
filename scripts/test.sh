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
# Two tests at a time: kernel tests use namespaces of their own names (tests
# that share names hold a RESOURCE_LOCK), and the tests that measure (wire,
# demo, eval, stats counters) are RUN_SERIAL, so they still run alone.
# QOSC_TEST_JOBS=1 runs everything in turn (slower).
ctest --output-on-failure --timeout 900 -j "${QOSC_TEST_JOBS:-2}" "$@"
