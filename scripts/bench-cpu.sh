#!/usr/bin/env bash
# Benchmark flashkm's CPU backend against scikit-learn KMeans (Lloyd) and the OpenBLAS
# sgemm ceiling, in one command:
#
#   scripts/bench-cpu.sh [cpu_vs_sklearn.py options]
#   e.g. scripts/bench-cpu.sh --threads 2 --iters 10 --configs 100000:256:64 200000:1024:128
#
# It creates (or reuses) a virtual environment in .venv with numpy, scikit-learn and
# threadpoolctl, configures and builds bench_cpu in Release in build-bench (BUILD_DIR to
# change it), and runs bench/cpu_vs_sklearn.py with the arguments given. Results go to
# bench/results/cpu_vs_sklearn.csv and docs/BENCH_CPU.md unless --out-csv / --out-md say
# otherwise. See bench/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-bench}"
VENV="${VENV:-$ROOT/.venv}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
cd "$ROOT"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "== creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import numpy, sklearn, threadpoolctl" 2>/dev/null; then
  echo "== installing numpy scikit-learn threadpoolctl into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    numpy scikit-learn threadpoolctl
fi

echo "== building bench_cpu (Release) in $BUILD_DIR"
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DFLASHKM_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS" --target bench_cpu

echo "== running bench/cpu_vs_sklearn.py $*"
"$VENV/bin/python" "$ROOT/bench/cpu_vs_sklearn.py" --build-dir "$BUILD_DIR" "$@"

echo "== done: results in the CSV and Markdown files named above"
echo "   (default: bench/results/cpu_vs_sklearn.csv and docs/BENCH_CPU.md)"
