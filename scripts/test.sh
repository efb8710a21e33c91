#!/usr/bin/env bash
# README command 2: set up and run the whole test suite (unit, property and end-to-end tests
# through the real binary). Builds once, in the debug profile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo nextest run --no-fail-fast "$@"
# Lints last, so a lint never hides a test result.
cargo clippy --workspace --all-targets -- -D warnings
