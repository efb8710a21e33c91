#!/usr/bin/env bash
# Starts a staged release `weir` (the one the Dockerfile ships) as the image would run it and
# proves it serves: health, a write, a query, and a plugin trigger run by the embedded Python.
# Usage: scripts/smoke-release.sh [DEST]   (DEST as given to build-release.sh; default ./dist)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-dist}
bash scripts/runtime-deps.sh
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/plugins"
cp "$dest/share/weir/examples/count_rows.py" "$work/plugins/"
"$dest/bin/weir" serve --http-bind 127.0.0.1:0 --data-dir "$work/data" --plugin-dir "$work/plugins" \
  --wal-flush-interval 100ms >"$work/out" 2>"$work/log" &
pid=$!
for _ in $(seq 1 100); do
  grep -q "weir listening on" "$work/out" 2>/dev/null && break
  sleep 0.1
done
base=$(sed -n 's/^weir listening on \([^ ]*\).*/\1/p' "$work/out" | head -1)
[ -n "$base" ] || { echo "smoke: weir did not start"; cat "$work/log"; exit 1; }
fail() { echo "smoke: $*"; cat "$work/log"; exit 1; }
curl -fsS "$base/health" >/dev/null || fail "/health"
# Auth is on: without a token the API refuses; the operator token is made once, as a user would.
code=$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$base/api/v3/write_lp?db=smoke" --data-binary 'cpu v=1 1')
[ "$code" = 401 ] || fail "a write without a token got $code, not 401"
token=$("$dest/bin/weir" create token --admin --host "$base" --format json | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || fail "creating the operator token"
auth="Authorization: Bearer $token"
curl -fsS -XPOST "$base/api/v3/configure/database" -H "$auth" -H 'Content-Type: application/json' -d '{"db":"smoke"}' >/dev/null \
  || fail "creating the database"
curl -fsS -XPOST "$base/api/v3/configure/processing_engine_trigger" -H "$auth" -H 'Content-Type: application/json' \
  -d '{"db":"smoke","trigger_name":"counter","plugin_filename":"count_rows.py","trigger_specification":"table:cpu","trigger_settings":{}}' \
  >/dev/null || fail "creating a trigger"
curl -fsS -XPOST "$base/api/v3/write_lp?db=smoke" -H "$auth" --data-binary $'cpu,host=a usage=2 2\ncpu,host=b usage=3 3' || fail "second write"
for _ in $(seq 1 100); do
  out=$(curl -fsS -H "$auth" "$base/api/v3/query_sql?db=smoke&q=SELECT%20rows%20FROM%20row_counts" 2>/dev/null || true)
  case "$out" in *'"rows":2'*) echo "smoke: ok ($base: write, query, plugin trigger)"; exit 0 ;; esac
  sleep 0.1
done
fail "the plugin's count never appeared (last answer: $out)"
