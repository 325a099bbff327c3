#!/usr/bin/env bash
# Builds the Debian package: build/qosc_<version>_<arch>.deb (CPack, DEB).
# Installs what is missing, configures ./build if needed, builds only qosc and
# qosrun, then packages them with the unit, the service script and the docs
# (packaging/CMakeLists.txt). Prints the package's path.
#   scripts/package.sh && apt-get install ./build/qosc_0.1.0_amd64.deb
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh qosc qosrun
BUILD_DIR=${QOSC_BUILD_DIR:-build}
(cd "$BUILD_DIR" && cpack -G DEB >cpack.log 2>&1) || { cat "$BUILD_DIR/cpack.log" >&2; exit 1; }
sed -n 's/^CPack: - package: \(.*\) generated\.$/\1/p' "$BUILD_DIR/cpack.log"
