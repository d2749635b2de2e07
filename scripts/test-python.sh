#!/usr/bin/env bash
# The Python package's tests (make test-python): builds and installs the package into a
# virtual environment (build-py/venv, created once and reused), then runs pytest on
# tests/python. CPU-only build (FLASHKM_CUDA=OFF) unless FLASHKM_CUDA is set, to keep CI fast;
# the CMake build tree build-py/<wheel tag> is kept between runs, so a rerun is incremental.
#   PYTHON=python3.12 bash scripts/test-python.sh     another interpreter
#   bash scripts/test-python.sh -k batch              extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${FLASHKM_VENV:-build-py/venv}
py=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "test-python: creating $venv"
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
# Build and test dependencies, only what is missing (a warm venv makes no network call).
if ! "$venv/bin/python" -c 'import scikit_build_core, numpy, sklearn, pytest, pandas' 2>/dev/null; then
  "${pip[@]}" install -q 'scikit-build-core>=0.10' numpy 'scikit-learn>=1.6' pytest pandas
fi
export FLASHKM_CUDA=${FLASHKM_CUDA:-OFF}
echo "test-python: pip install . (FLASHKM_CUDA=$FLASHKM_CUDA)"
"${pip[@]}" install -q --no-build-isolation --no-deps --force-reinstall .
# From tests/python, so that nothing in the source tree shadows the installed package.
cd tests/python
exec "../../$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .
