#!/usr/bin/env bash
# README command 2: set up and run the whole test suite (unit, property and end-to-end tests
# through the real binary). Builds once, in the debug profile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# A venv of the test's own (never the server's plugin venv): pyarrow, so the storage tests
# read Weir's Parquet files with another engine; moto, a local S3-compatible server; and the
# official v1 client `influxdb`, which the InfluxQL tests drive unchanged.
if [ ! -x target/test-venv/bin/python ] || ! target/test-venv/bin/python -c 'import pyarrow, moto.server, influxdb' 2>/dev/null; then
  mkdir -p target
  /usr/bin/python3.11 -m venv target/test-venv
  target/test-venv/bin/pip install -q --disable-pip-version-check 'pyarrow>=15' 'moto[server]>=5' 'influxdb>=5.3'
fi
export WEIR_TEST_PYTHON="$PWD/target/test-venv/bin/python"
cargo nextest run --no-fail-fast "$@"
# Lints last, so a lint never hides a test result.
cargo clippy --workspace --all-targets -- -D warnings
