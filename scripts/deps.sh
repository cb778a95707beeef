#!/usr/bin/env bash
# deps.sh — installs the Debian packages zoff needs to build and test, only those missing.
# Idempotent and quiet when everything is there. Needs root (or sudo) only when installing.
# Usage: scripts/deps.sh [--with-python]   (--with-python also pip-installs numpy, pytest,
#        safetensors)
#        scripts/deps.sh --with-torch    (--with-python, then pip-installs torch for the zoff.torch
#        tests: ~3 GB of wheels with its CUDA libraries, ~1.5 min here; a failure only warns and
#        those tests are then skipped — docs/python.md)
set -euo pipefail

pkgs=(build-essential cmake pkg-config liburing-dev libhwloc-dev libnuma-dev libcjson-dev
      libcmocka-dev libomp-dev fio gnuplot-nox hwloc-nox openmpi-bin libopenmpi-dev)
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

if [ "${1:-}" = "--with-python" ] || [ "${1:-}" = "--with-torch" ]; then
  PY=${PYTHON:-python3}
  need=()
  $PY -c 'import numpy' 2>/dev/null || need+=(numpy)
  $PY -c 'import pytest' 2>/dev/null || need+=(pytest)
  $PY -c 'import safetensors' 2>/dev/null || need+=(safetensors)
  if [ ${#need[@]} -gt 0 ]; then
    echo "deps: pip installing ${need[*]}"
    $PY -m pip install -q --disable-pip-version-check "${need[@]}"
  fi
fi

if [ "${1:-}" = "--with-torch" ]; then
  PY=${PYTHON:-python3}
  free_kb=$(df -Pk "$($PY -c 'import site; print(site.getsitepackages()[0])')" | awk 'NR==2 {print $4}')
  if $PY -c 'import torch' 2>/dev/null; then
    :
  elif [ "${free_kb:-0}" -lt $((12 * 1024 * 1024)) ]; then
    echo "deps: WARNING: less than 12 GiB free for torch's ~5 GB install; the zoff.torch tests will be skipped"
  else
    echo "deps: pip installing torch (about 3 GB of wheels with its CUDA libraries)"
    if ! timeout 1200 $PY -m pip install -q --disable-pip-version-check torch; then
      echo "deps: WARNING: torch could not be installed; the zoff.torch tests will be skipped"
    fi
  fi
fi
exit 0
