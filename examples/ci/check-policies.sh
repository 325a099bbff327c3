#!/usr/bin/env bash
# CI for a repository of qosc policies (copy it into yours). From the
# repository's top, for every tracked *.qos:
#   1. qosc fmt --check        the canonical layout (prints a unified diff)
#   2. qosc check --werror     errors and warnings (rules that can never
#                              match, caps above the link, ...) fail the job;
#      qosc check --strict     then, for the reviewer only, rules part of
#                              whose traffic an earlier rule of another class
#                              takes (first-match overlaps a policy may mean)
#   3. qosc test P.qos P.tests the team's expectations, where P.tests exists
#                              (as root also through the compiled programs)
#   4. qosc diff BASE:P P      for the reviewer: which traffic changes class,
#                              what changes in the classes, what a reload does
# Steps 1-3 fail the job (but for --strict's overlaps); the diff only
# informs (it fails the job only when a side cannot be read).
#   check-policies.sh [BASE]   BASE: the revision to diff against (origin/main)
# $QOSC names the qosc binary (default: qosc on PATH).
set -uo pipefail
QOSC=${QOSC:-qosc}
BASE=${1:-origin/main}
cd "$(git rev-parse --show-toplevel)" || exit 2
command -v "$QOSC" >/dev/null || { echo "check-policies: no qosc ($QOSC); set QOSC=path/to/qosc" >&2; exit 2; }
mapfile -t policies < <(git ls-files '*.qos')
[ ${#policies[@]} -gt 0 ] || { echo "check-policies: no *.qos file tracked here"; exit 0; }
failed=0

echo "== qosc fmt --check"
"$QOSC" fmt --check "${policies[@]}" || failed=1

echo "== qosc check --werror, then --strict for the reviewer"
for p in "${policies[@]}"; do
  if "$QOSC" check --werror "$p"; then
    "$QOSC" check --strict "$p" || true
  else
    failed=1
  fi
done

echo "== qosc test"
for p in "${policies[@]}"; do
  t=${p%.qos}.tests
  [ -f "$t" ] || continue
  "$QOSC" test "$p" "$t" || failed=1
done

echo "== qosc diff $BASE"
if git rev-parse -q --verify "$BASE^{commit}" >/dev/null; then
  for p in "${policies[@]}"; do
    if git cat-file -e "$BASE:$p" 2>/dev/null; then
      "$QOSC" diff "$BASE:$p" "$p"
      [ $? -le 1 ] || failed=1
    else
      echo "$p: new in this change"
    fi
  done
else
  echo "(no revision $BASE here: nothing to compare with)"
fi
exit $failed
