#!/usr/bin/env bash
# Installs the side-by-side peers and load tools the benchmarks and `weir-loadtest` use, from
# Debian's packages: InfluxDB 1.6 (`influxd`), VictoriaMetrics, wrk and hyperfine; and DuckDB
# from PyPI in target/peers-venv (`weir-loadtest query --duckdb-python target/peers-venv/bin/python`).
# Nothing is installed if it is already there. Safe to run again. The test suite never needs these.
set -euo pipefail

need=()
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
command -v victoria-metrics >/dev/null 2>&1 || [ -x /usr/bin/victoria-metrics ] || need+=(victoria-metrics)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-peers: please install as root: ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  # The packages' own services must not start: the harness starts its peers itself, on free
  # loopback ports with temporary data dirs.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  rm -f /usr/sbin/policy-rc.d
fi
cd "$(dirname "$0")/.."
if ! target/peers-venv/bin/python -c 'import duckdb' 2>/dev/null; then
  mkdir -p target
  /usr/bin/python3.11 -m venv target/peers-venv
  target/peers-venv/bin/pip install -q --disable-pip-version-check 'duckdb>=1.1'
fi
