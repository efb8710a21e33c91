#!/usr/bin/env bash
# Installs what building and testing Weir needs on a fresh Debian machine of this project's
# kind, and nothing if it is already there. Safe to run again.
set -euo pipefail
# --build-only: what building the release binary needs, not the test tools (the Dockerfile).
build_only=false
[ "${1:-}" = "--build-only" ] && build_only=true

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The embedded Python (pyo3 links Debian's libpython3.11, pinned in .cargo/config.toml) and the
# venv module the plugin environment is made with.
[ -x /usr/bin/python3.11 ] || need_apt+=(python3.11)
dpkg -s libpython3.11-dev >/dev/null 2>&1 || need_apt+=(libpython3.11-dev)
dpkg -s python3.11-venv >/dev/null 2>&1 || need_apt+=(python3.11-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "setup: please install: ${need_apt[*]}" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install a Rust toolchain (rustup) first" >&2
  exit 1
fi

if ! $build_only && ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
