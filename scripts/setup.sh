#!/usr/bin/env bash
# Installs everything qosc needs to build, test and run, from Debian's packages.
# Idempotent: when every package is present it prints nothing and does nothing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  clang-19 libclang-19-dev libclang-cpp19-dev llvm-19-dev libclang-rt-19-dev lld-19
  libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev
  tao-pegtl-dev libfmt-dev libgtest-dev libgmock-dev
  nlohmann-json3-dev libcli11-dev
  iproute2 iperf3 irtt iputils-ping ethtool procps nftables
  python3 python3-scapy python3-matplotlib
  netsniff-ng   # trafgen: the packet generator of bench/wire
  prometheus   # for promtool only (the metrics lint test); its server is not wanted, see below
  dpkg-dev systemd   # the package: dpkg-shlibdeps computes Depends; systemd-analyze verifies the unit
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "setup: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Installed for promtool: where systemd started Prometheus' server, stop it again.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null && systemctl is-active -q prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
echo "setup: done"
