#!/usr/bin/env bash
# The Dockerfile's runtime stage: what a built `weir` needs to run, and nothing to build with.
# The embedded interpreter is Debian's Python 3.11 (its libpython, its stdlib at
# /usr/lib/python3.11, and the venv module for plugin packages); certificates for gh: plugins.
set -euo pipefail
need=()
dpkg -s libpython3.11 >/dev/null 2>&1 || need+=(libpython3.11)
[ -x /usr/bin/python3.11 ] || need+=(python3.11)
dpkg -s python3.11-venv >/dev/null 2>&1 || need+=(python3.11-venv)
dpkg -s ca-certificates >/dev/null 2>&1 || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  rm -rf /var/lib/apt/lists/*
fi
