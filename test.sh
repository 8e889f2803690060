#!/usr/bin/env bash
# Runs latchkey's whole test suite: vet, every test with the race detector,
# and a short fuzz smoke of each fuzz target. Installs and starts whatever
# the tests need when it is missing (Chromium, kubectl, a PostgreSQL server). Usage:
# ./test.sh
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

# The Kubernetes gateway tests drive Debian's kubectl against a fake API
# server started by the test.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "== installing kubectl (kubernetes gateway tests)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kubernetes-client >/dev/null
fi
# Here the kubectl tests fail rather than skip when kubectl is missing.
export LATCHKEY_KUBECTL_REQUIRED=1

# The PostgreSQL engine's tests run against a throwaway cluster started
# here (and stopped on exit), on 127.0.0.1 only, trust authentication,
# without fsync: test data only.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ] || [ ! -x "$(pg_bin)/pg_ctl" ]; then
  echo "== installing postgresql (store/postgres tests)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
PGBIN=$(pg_bin)
PGTMP=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-pg.XXXXXX")
# PostgreSQL refuses to run as root: as root, run it as the postgres user.
as_pg() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$PGTMP"
  as_pg() { runuser -u postgres -- "$@"; }
  # Some containers create /dev/null 0600; initdb and the server need to
  # write to it. 0666 is its standard mode.
  as_pg sh -c ': >/dev/null' 2>/dev/null || chmod 0666 /dev/null
fi
pg_stop() {
  as_pg "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PGTMP"
}
trap pg_stop EXIT
PGPORT=55432
while (exec 3<>"/dev/tcp/127.0.0.1/$PGPORT") 2>/dev/null; do PGPORT=$((PGPORT + 1)); done
echo "== starting a throwaway PostgreSQL ($("$PGBIN/postgres" --version)) on 127.0.0.1:$PGPORT"
as_pg "$PGBIN/initdb" -D "$PGTMP/data" -U postgres --auth=trust -E UTF8 --locale=C >"$PGTMP/initdb.log" 2>&1 || {
  cat "$PGTMP/initdb.log"; exit 1; }
as_pg "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGTMP -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500" \
  start >/dev/null || { cat "$PGTMP/server.log"; exit 1; }
export LATCHKEY_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PGPORT/postgres?sslmode=disable"
# Here the PostgreSQL tests fail rather than skip without a server.
export LATCHKEY_POSTGRES_REQUIRED=1

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
