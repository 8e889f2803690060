#!/usr/bin/env bash
# Runs latchkey's whole test suite: vet, every test with the race detector,
# and a short fuzz smoke of each fuzz target. Installs and starts whatever
# the tests need when it is missing. Usage: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"

# A count, not a duration: go1.26's fuzz coordinator can report a bare
# "context deadline exceeded" when a duration runs out mid-exec
# (golang/go#75804, fixed in go1.27). A count has no deadline to race.
FUZZTIME=${FUZZTIME:-30000x}

# The web console's browser tests drive Debian's headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (browser tests)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# Here the browser tests fail rather than skip when Chromium is missing.
export LATCHKEY_BROWSER_REQUIRED=1

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== fuzz smoke (-fuzztime $FUZZTIME per target)"
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "-- $pkg $target"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg" >/tmp/latchkey-fuzz.log 2>&1 || {
      cat /tmp/latchkey-fuzz.log; exit 1; }
  done
done
echo "== all tests passed"
