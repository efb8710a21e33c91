#!/usr/bin/env bash
# README command 1: set up, build (release) and run `weir serve` on embedded defaults:
# data under ./data, plugins in ./plugins, HTTP on 127.0.0.1:8181. Extra arguments go to serve.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --bin weir
mkdir -p data plugins
exec ./target/release/weir serve --data-dir ./data --plugin-dir ./plugins "$@"
