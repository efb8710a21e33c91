#!/usr/bin/env bash
# The Dockerfile's build stage, runnable outside Docker (CI runs it, to prove the steps work):
# installs what the build needs, builds the release `weir`, and stages it under DEST
# (default ./dist): DEST/bin/weir and the example plugins in DEST/share/weir/examples.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-dist}
bash scripts/setup.sh --build-only
cargo build --release --locked --bin weir
mkdir -p "$dest/bin" "$dest/share/weir"
cp target/release/weir "$dest/bin/weir"
rm -rf "$dest/share/weir/examples"
cp -r plugins/examples "$dest/share/weir/examples"
echo "staged $dest/bin/weir"
