#!/usr/bin/env bash
# A/B one experiment patch against this tree on the same machine, in one command:
#
#   bash scripts/ab-patch.sh PATCH TARGETS 'COMMAND'
#
# PATCH    a patch against this tree (e.g. bench/experiments/kpp-stage-rows.patch); only its
#          src/ part is applied (docs in an old patch may no longer apply), all of it with
#          AB_APPLY_ALL=1 (a patch whose tests or bench changed too)
# TARGETS  comma-separated cmake targets to build in both trees (e.g. bench_kpp_cuda,test_kmeanspp)
# COMMAND  run twice by bash: first with BUILD=build-gpu (this tree), then with BUILD set to the
#          patched tree's build directory; $BUILD is exported, e.g.
#          '$BUILD/bench/bench_kpp_cuda --reps 3 --ab 1000000:1024:128:f16'
#
# The patched tree is a copy of the tracked files in ${AB_DIR:-/tmp/flashkm-ab}, built for
# sm_90a only (AB_GENCODE to change) to halve the nvcc time. This tree is built in build-gpu
# with the project's defaults (an existing build-gpu is reused). Logs on stdout; exit status 1
# when a build fails, else COMMAND's status on the patched tree.
set -uo pipefail
[[ $# -eq 3 ]] || { echo "usage: $0 PATCH TARGETS 'COMMAND'" >&2; exit 2; }
PATCH="$(realpath "$1")"; TARGETS="${2//,/ }"; CMD="$3"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AB_DIR="${AB_DIR:-/tmp/flashkm-ab}"
GENCODE="${AB_GENCODE:--gencode=arch=compute_90a,code=sm_90a}"
JOBS="${JOBS:-16}"
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)

cd "$ROOT" || exit 1
SRC_ONLY=--src-only; [[ "${AB_APPLY_ALL:-0}" == 1 ]] && SRC_ONLY=
bash scripts/patched-tree.sh "$AB_DIR" "$PATCH" $SRC_ONLY || exit 1

build() {  # build SOURCE_DIR BUILD_DIR [extra cmake args]
  local src="$1" dir="$2"; shift 2
  cmake -S "$src" -B "$dir" "${GEN[@]}" -DFLASHKM_CUDA=ON -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null &&
    cmake --build "$dir" -j "$JOBS" --target $TARGETS
}
t0=$(date +%s)
build "$ROOT" "$ROOT/build-gpu" > "$AB_DIR.base.log" 2>&1 || { tail -30 "$AB_DIR.base.log"; exit 1; }
build "$AB_DIR" "$AB_DIR/build-gpu" "-DFLASHKM_CUDA_GENCODE=$GENCODE" > "$AB_DIR.exp.log" 2>&1 ||
  { tail -30 "$AB_DIR.exp.log"; exit 1; }
echo "ab-patch: both trees built in $(( $(date +%s) - t0 )) s"

echo "==== A: this tree ($(git rev-parse --short HEAD 2>/dev/null))"
BUILD="$ROOT/build-gpu" bash -c "export BUILD; $CMD"
echo "==== B: with $(basename "$PATCH")"
BUILD="$AB_DIR/build-gpu" bash -c "export BUILD; $CMD"
