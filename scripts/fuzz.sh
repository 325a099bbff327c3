#!/bin/sh
# Long, coverage-guided fuzzing of the policy front end with libFuzzer.
#   scripts/fuzz.sh [SECONDS]      (default 600)
# Builds with clang++-19 into build-fuzz/ and runs tests/fuzz/fuzz_parser on
# a corpus seeded from the golden files and the examples. Crashes are saved
# as build-fuzz/crash-* (rerun one with: build-fuzz/tests/fuzz/fuzz_parser FILE).
set -eu
cd "$(dirname "$0")/.."
secs=${1:-600}
CC=clang-19 CXX=clang++-19 cmake -S . -B build-fuzz -DQOSC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j2 --target fuzz_parser
mkdir -p build-fuzz/corpus
cp tests/frontend/golden/*.qos examples/*.qos examples/*.tests tests/fuzz/corpus/* build-fuzz/corpus/ 2>/dev/null || true
cd build-fuzz
exec ./tests/fuzz/fuzz_parser -max_total_time="$secs" -timeout=5 corpus
