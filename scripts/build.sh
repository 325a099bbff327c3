#!/usr/bin/env bash
# Configures and builds qosc in ./build (Release with debug info). Quiet on success.
#   scripts/build.sh                 # everything
#   scripts/build.sh qosc qosrun     # only these targets
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${QOSC_BUILD_DIR:-build}
JOBS=${QOSC_JOBS:-$(nproc)}
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD_DIR.configure.log" 2>&1 \
    || { cat "$BUILD_DIR.configure.log" >&2; exit 1; }
fi
cmake --build "$BUILD_DIR" -j"$JOBS" ${1:+--target "$@"} >"$BUILD_DIR.log" 2>&1 || { tail -50 "$BUILD_DIR.log" >&2; echo "build failed; full log: $BUILD_DIR.log" >&2; exit 1; }
