#!/bin/sh
# The step scenario of issue 12 (modem 100 -> 30 -> 60 Mbit/s, 15 s each,
# cubic upload and a game flow at 10 ms) for the static policy and the
# adaptive one, the idle link for 60 s and the reflector faults, then the
# plot. Needs root (network namespaces); takes about 4 minutes.
#
#   bench/adaptive/run.sh [BUILD_DIR [OUT_DIR]]     # defaults: build, bench/adaptive/results
#
# Writes OUT_DIR/{static,adaptive,idle,reflector-killed}.{csv,json} (the
# series every 0.5 s and the per-phase table), OUT_DIR/wire_test.log, and
# docs/img/adaptive.png. Run it on a quiet machine: the log records the load
# average. QT_ADAPTIVE_PHASE_S / QT_ADAPTIVE_IDLE_S override the durations.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
out=${2:-$here/results}
mkdir -p "$out"
test_bin=$build/tests/wire/adaptive_wire_test
[ -x "$test_bin" ] || { echo "$test_bin is not built (cmake --build $build --target adaptive_wire_test)" >&2; exit 1; }
rm -f "$out"/static.* "$out"/adaptive.* "$out"/idle.* "$out"/reflector-killed.*
rc=0
QT_ADAPTIVE_OUT=$out QT_ADAPTIVE_PHASE_S=${QT_ADAPTIVE_PHASE_S:-15} QT_ADAPTIVE_IDLE_S=${QT_ADAPTIVE_IDLE_S:-60} \
  timeout -k 10 900 "$test_bin" --gtest_filter="${QT_ADAPTIVE_FILTER:-AdaptiveWire.*}" >"$out/wire_test.log" 2>&1 || rc=$?
# The log without this checkout's location (it is committed with the results).
sed -i "s|$src/||g" "$out/wire_test.log"
grep -E '^\[ *(measured|RUN|OK|FAILED|SKIPPED) *\]' "$out/wire_test.log" || true
/usr/bin/python3 "$here/plot.py" "$out" "$src/docs/img/adaptive.png"
exit $rc
