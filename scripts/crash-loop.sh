#!/usr/bin/env bash
# The crash loop: N cycles of concurrent writers, kill -9 at a random moment, restart, and a
# check that every acked write is there exactly once (tests/crash_loop.rs). CI runs 3 cycles as
# part of the test suite; docs/RELIABILITY.md records a run of 100 or more.
#   scripts/crash-loop.sh 100            # against a debug build
#   scripts/crash-loop.sh 100 --release  # against a release build
# The server binary is copied first, so rebuilding meanwhile does not change it mid-run. The
# whole output goes to target/crash-loop.log.
set -euo pipefail
cd "$(dirname "$0")/.."
cycles="${1:-100}"
profile=debug
if [[ "${2:-}" == "--release" ]]; then
    profile=release
    cargo build --release -p weir --bin weir
fi
cargo nextest run -p weir --test crash_loop --no-run
bin="$(mktemp -d)/weir"
cp "target/$profile/weir" "$bin"
WEIR_TEST_BIN="$bin" WEIR_CRASH_CYCLES="$cycles" cargo nextest run -p weir --test crash_loop --no-capture \
    > target/crash-loop.log 2>&1 && status=0 || status=$?
grep -E "crash loop|panicked|lost|duplicates|failed" -A2 target/crash-loop.log | head -40
rm -rf "$(dirname "$bin")"
exit "$status"
