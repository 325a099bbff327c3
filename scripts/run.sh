#!/usr/bin/env bash
# The main job. Installs what is missing, builds qosc, checks every example
# policy and prints its IR summary, then:
#   scripts/run.sh            runs the demo in network namespaces it creates
#   scripts/run.sh IFACE      compiles examples/gaming.qos and runs it on IFACE
#                             (qosrun in the foreground; Ctrl-C detaches cleanly)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
BIN=${QOSC_BUILD_DIR:-build}/bin
for f in examples/*.qos; do
  "$BIN/qosc" check "$f"
done
"$BIN/qosc" --dump ir examples/gaming.qos
mkdir -p out
if [ $# -ge 1 ]; then
  "$BIN/qosc" examples/gaming.qos -o out/gaming.bpf.o
  exec "$BIN/qosrun" out/gaming.bpf.o "$1"
fi
exec bash scripts/demo.sh
