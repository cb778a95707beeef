#!/usr/bin/env bash
# deps.sh — installs the Debian packages zoff needs to build and test, only those missing.
# Idempotent and quiet when everything is there. Needs root (or sudo) only when installing.
# Usage: scripts/deps.sh [--with-python]   (--with-python also pip-installs numpy + pytest)
set -euo pipefail

pkgs=(build-essential cmake pkg-config liburing-dev libhwloc-dev libnuma-dev libcjson-dev
      libcmocka-dev libomp-dev fio gnuplot-nox hwloc-nox)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--with-python" ]; then
  PY=${PYTHON:-python3}
  need=()
  $PY -c 'import numpy' 2>/dev/null || need+=(numpy)
  $PY -c 'import pytest' 2>/dev/null || need+=(pytest)
  if [ ${#need[@]} -gt 0 ]; then
    echo "deps: pip installing ${need[*]}"
    $PY -m pip install -q --disable-pip-version-check "${need[@]}"
  fi
fi
exit 0
