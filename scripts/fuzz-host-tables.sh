#!/usr/bin/env bash
# Mutation fuzzing of host tables (qosrun hosts apply / attach --hosts):
#   scripts/fuzz-host-tables.sh [ITERATIONS [SEED]]    (default 1,000,000, seed 1)
# Builds (scripts/build.sh) and runs tests/fuzz/fuzz_host_tables.cpp under
# ASan + UBSan: every mutated table is accepted clean or refused with every
# problem at FILE:LINE (that file says what is mutated and checked). The
# suite runs 20,000 (ctest -R FuzzHostTablesSmoke). No root needed.
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-1000000}
seed=${2:-1}
bash scripts/build.sh fuzz_host_tables
BUILD_DIR=${QOSC_BUILD_DIR:-build}
exec "$BUILD_DIR/tests/fuzz/fuzz_host_tables" --iterations "$iterations" --seed "$seed"
