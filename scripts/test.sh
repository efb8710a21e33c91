#!/usr/bin/env bash
# README command 2: set up and run the whole test suite (unit, property and end-to-end tests
# through the real binary). Builds once, in the debug profile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# A venv of the test's own (never the server's plugin venv): pyarrow, so the storage tests
# read Weir's Parquet files with another engine; moto, a local S3-compatible server; and the
# official clients the query tests drive unchanged: `influxdb` (v1, InfluxQL) and
# `influxdb3-python` with pandas (Arrow Flight), and the ADBC Flight SQL driver.
if [ ! -x target/test-venv/bin/python ] || ! target/test-venv/bin/python -c 'import pyarrow, moto.server, influxdb, influxdb_client_3, pandas, adbc_driver_flightsql' 2>/dev/null; then
  mkdir -p target
  /usr/bin/python3.11 -m venv target/test-venv
  target/test-venv/bin/pip install -q --disable-pip-version-check 'pyarrow>=15' 'moto[server]>=5' 'influxdb>=5.3' \
    'influxdb3-python>=0.21' pandas adbc-driver-flightsql
fi
export WEIR_TEST_PYTHON="$PWD/target/test-venv/bin/python"
# The official JavaScript client, from the npm registry, with the machine's Node.js.
if [ ! -d target/test-node/node_modules/@influxdata/influxdb3-client ]; then
  mkdir -p target/test-node
  (cd target/test-node && npm install --silent --no-audit --no-fund '@influxdata/influxdb3-client@2')
fi
export WEIR_TEST_NODE_MODULES="$PWD/target/test-node/node_modules"
cargo nextest run --no-fail-fast "$@"
# Lints last, so a lint never hides a test result.
cargo clippy --workspace --all-targets -- -D warnings
