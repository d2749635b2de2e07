#!/usr/bin/env bash
# Downloads the wheels the GPU machine's offline Python needs for gpu-check.sh's python stage
# (the build backend, pytest, scikit-learn and their dependencies, for CPython 3.12 on x86-64
# Linux) into .whl/ (git-ignored). Carry it with the device tool: carry ["third_party_ref", ".whl"].
# numpy is included: the GPU machine's Python has torch but no numpy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p .whl
pip download -q -d .whl --only-binary=:all: --python-version "${PY_VERSION:-3.12}" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  scikit-build-core pytest scikit-learn

du -sh .whl
