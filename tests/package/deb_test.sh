#!/usr/bin/env bash
# The Debian package: built by CPack from this build directory (into a temp
# directory, from the qosc and qosrun already built), its control data, then
# installed into an empty root with dpkg, used from there, removed and purged.
#   - Depends lists the libraries the binaries link (dpkg-shlibdeps)
#   - the files land: /usr/bin/qosc, /usr/bin/qosrun, the unit, the script, docs
#   - the installed binaries name no build or source path and run from the
#     root: qosc compiles an installed example (its BPF headers are embedded)
#   - the unit names the installed script; `systemd-analyze verify` has
#     nothing to say about it (when systemd-analyze is there)
#   - postinst made /etc/qosc; `dpkg -r` removes the files, `--purge` the rest
#   deb_test.sh BUILDDIR SRCDIR
set -uo pipefail
# With pipefail, `cmd | grep -q` fails when grep exits before cmd has written
# everything (SIGPIPE): outputs are captured first, `grep -q PAT <<<"$(cmd)"`.
BUILD=${1:?usage: deb_test.sh BUILDDIR SRCDIR}
SRC=${2:?usage: deb_test.sh BUILDDIR SRCDIR}
# dpkg --root needs root for the files' owners; building alone would not.
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: installing into a scratch root with dpkg needs root"; exit 0; fi
for t in cpack dpkg dpkg-deb readelf strings; do
  command -v $t >/dev/null || { echo "FAIL: '$t' is missing (scripts/setup.sh installs it)"; exit 1; }
done
TMP=/tmp/qt-deb
cleanup() { rm -rf "$TMP"; }
fail() {
  echo "FAIL: $*"
  for f in "$TMP"/*.log; do [ -s "$f" ] && { echo "--- $f"; tail -30 "$f"; }; done
  cleanup
  exit 1
}
cleanup
trap cleanup EXIT
mkdir -p "$TMP/out"

# ---- build (the same as scripts/package.sh, into $TMP/out)
t0=$(date +%s)
timeout -k 5 150 cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$TMP/out" >"$TMP/cpack.log" 2>&1 \
  || fail "cpack failed"
deb=$(ls "$TMP"/out/qosc_*_*.deb 2>/dev/null)
[ -f "$deb" ] || fail "no qosc_*.deb in $TMP/out"
version=$(sed -n 's/^project(qosc VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
[ "$(basename "$deb")" = "qosc_${version}_$(dpkg --print-architecture).deb" ] || fail "package named $(basename "$deb")"
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes) in $(( $(date +%s) - t0 )) s"

# ---- control data
dpkg-deb -I "$deb" >"$TMP/info.log" || fail "dpkg-deb -I failed"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libbpf1 libclang-cpp19 libllvm19 libfmt9 libelf1; do
  grep -qw "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
grep -q -- "-dev" <<<"$depends" && fail "Depends names a -dev package: $depends"
[ "$(dpkg-deb -f "$deb" Package)" = qosc ] && [ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "Package/Version"
echo "Depends: $depends"

# ---- install into an empty root. Maintainer scripts run on this machine
# (no chroot: the root has no shell) with DPKG_ROOT set, as dpkg does for
# packages that support it; postinst/postrm use it and call systemctl only for
# the running system.
R=$TMP/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
dpkgr() { timeout -k 5 60 dpkg --root="$R" --force-depends --force-script-chrootless --log=/dev/null "$@"; }
dpkgr -i "$deb" >"$TMP/install.log" 2>&1 || fail "dpkg -i into $R failed"
files="usr/bin/qosc usr/bin/qosrun usr/lib/systemd/system/qosrun@.service usr/libexec/qosc/qosc-service
       usr/share/doc/qosc/README.md usr/share/doc/qosc/docs/service.md usr/share/doc/qosc/docs/qosrun.md
       usr/share/doc/qosc/examples/gaming.qos usr/share/doc/qosc/examples/service/IFACE.conf.example"
for f in $files; do [ -e "$R/$f" ] || fail "/$f is not installed"; done
for f in usr/bin/qosc usr/bin/qosrun usr/libexec/qosc/qosc-service; do [ -x "$R/$f" ] || fail "/$f is not executable"; done
[ -d "$R/etc/qosc" ] || fail "postinst did not create /etc/qosc"
grep -q "^Status: install ok installed" <<<"$(dpkg --root="$R" -s qosc 2>/dev/null)" || fail "dpkg does not list qosc as installed"
echo "installed into a scratch root: $(dpkg --root="$R" -L qosc | grep -c .) paths, /etc/qosc made by postinst"

# ---- the installed binaries: no path of the build, libraries resolved, they run
for b in qosc qosrun; do
  f=$R/usr/bin/$b
  grep -qiE "rpath|runpath" <<<"$(readelf -d "$f")" && fail "$b has an RPATH/RUNPATH: $(readelf -d "$f" | grep -iE 'rpath|runpath')"
  for p in "$BUILD" "$SRC"; do grep -qF "$p" <<<"$(strings "$f")" && fail "$b contains the path $p"; done
  grep -q "not found" <<<"$(ldd "$f")" && fail "$b: $(ldd "$f" | grep 'not found')"
done
grep -qx "qosc $version" <<<"$("$R/usr/bin/qosc" --version)" || fail "qosc --version: $("$R/usr/bin/qosc" --version 2>&1)"
"$R/usr/bin/qosrun" --version >/dev/null 2>&1 || fail "qosrun --version failed"
(cd "$TMP" && timeout -k 5 60 "$R/usr/bin/qosc" "$R/usr/share/doc/qosc/examples/gaming.qos" -o "$TMP/g.bpf.o") \
  >"$TMP/compile.log" 2>&1 || fail "the installed qosc cannot compile the installed example"
[ -s "$TMP/g.bpf.o" ] || fail "no object from the installed qosc"
echo "installed binaries: no RUNPATH, no build path, qosc compiled examples/gaming.qos ($(stat -c %s "$TMP/g.bpf.o") bytes)"

# ---- the unit
unit=$R/usr/lib/systemd/system/qosrun@.service
for l in "ExecStartPre=/usr/libexec/qosc/qosc-service compile %I" "ExecStart=/usr/libexec/qosc/qosc-service run %I" \
         "ExecReload=/usr/libexec/qosc/qosc-service reload %I" "Environment=QOSC_BIN_DIR=/usr/bin"; do
  grep -qxF "$l" "$unit" || fail "the unit lacks '$l'"
done
if command -v systemd-analyze >/dev/null; then
  # verify wants the commands to exist: the same unit with them under $R,
  # checked as an instance (a template alone cannot be loaded).
  mkdir -p "$TMP/units"
  sed "s|=/usr/|=$R/usr/|" "$unit" >"$TMP/units/qosrun@.service"
  ln -s qosrun@.service "$TMP/units/qosrun@lo.service"
  timeout -k 5 60 systemd-analyze verify --man=no "$TMP/units/qosrun@lo.service" >"$TMP/verify.log" 2>&1
  rc=$?
  # It also reports on units of this machine it loads (and exits 0 on mere
  # warnings): only what it says about ours counts.
  if [ $rc -ne 0 ] || grep -q "qosrun@" "$TMP/verify.log"; then fail "systemd-analyze verify (exit $rc): $(cat "$TMP/verify.log")"; fi
  echo "systemd-analyze verify qosrun@lo.service: nothing to report"
else
  echo "note: systemd-analyze is not installed; the unit was not verified"
fi

# ---- remove, then purge
dpkgr -r qosc >"$TMP/remove.log" 2>&1 || fail "dpkg -r failed"
for f in $files; do [ -e "$R/$f" ] && fail "/$f is still there after dpkg -r"; done
[ -z "$(find "$R/usr" -type f 2>/dev/null)" ] || fail "files left under /usr after dpkg -r: $(find "$R/usr" -type f)"
# What the service made and what the administrator wrote: purge removes the
# compiled objects, never a policy.
mkdir -p "$R/var/lib/qosc"
cp "$TMP/g.bpf.o" "$R/var/lib/qosc/eth0.bpf.o"
cp "$SRC/examples/gaming.qos" "$R/etc/qosc/eth0.qos"
dpkgr --purge qosc >"$TMP/purge.log" 2>&1 || fail "dpkg --purge failed"
[ -e "$R/var/lib/qosc" ] && fail "/var/lib/qosc is still there after purge"
[ -f "$R/etc/qosc/eth0.qos" ] || fail "purge deleted the administrator's /etc/qosc/eth0.qos"
dpkg --root="$R" -s qosc >/dev/null 2>&1 && fail "dpkg still knows qosc after purge"
echo "dpkg -r: no file left under /usr; --purge: /var/lib/qosc gone, /etc/qosc/eth0.qos kept"
echo "1 passed, 0 failed"
