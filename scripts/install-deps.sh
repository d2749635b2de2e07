#!/usr/bin/env bash
# Installs what building and testing flashkm needs, when it is missing: a C compiler with
# OpenMP (gcc), cmake >= 3.20, make, and for the Python package's tests python3 with venv
# and pip (python3-venv; the rest comes from PyPI in scripts/test-python.sh). Debian/Ubuntu
# packages through apt-get.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# venv with ensurepip (Debian splits it out as python3-venv / python3.X-venv)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need+=(python3-venv)
fi
if ((${#need[@]})); then
  echo "install-deps: installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}"
fi
ver=$(cmake --version | head -1 | awk '{print $3}')
if [ "$(printf '%s\n3.20\n' "$ver" | sort -V | head -1)" != "3.20" ]; then
  echo "install-deps: cmake $ver is older than 3.20; installing a newer one with pip"
  python3 -m pip install -q 'cmake>=3.20'
fi
