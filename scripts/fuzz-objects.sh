#!/usr/bin/env bash
# Mutation fuzzing of compiled objects through qosrun's loader, as root:
#   sudo scripts/fuzz-objects.sh [COUNT [SEED]]     (default 5000 copies, seed 1)
# Builds (scripts/build.sh), compiles examples/gaming.qos with the tree and the
# maps strategy, and runs COUNT damaged copies through `qosrun classify`
# (tests/fuzz/fuzz_objects.cpp says what is damaged and what counts as a
# failure). Failing copies are kept in build/fuzz-objects-failures/ with the
# command that reruns each. The suite runs 300 (ctest -R FuzzObjectsSmoke).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5000}
seed=${2:-1}
bash scripts/build.sh
BUILD_DIR=${QOSC_BUILD_DIR:-build}
exec "$BUILD_DIR/tests/fuzz/fuzz_objects" --count "$count" --seed "$seed" --keep "$BUILD_DIR/fuzz-objects-failures"
