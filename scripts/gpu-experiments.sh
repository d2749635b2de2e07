#!/usr/bin/env bash
# The prepared GPU experiments of bench/experiments/README.md, each A/B against this tree on
# the same machine (scripts/ab-patch.sh), in as few device calls as possible:
#
#   bash scripts/gpu-experiments.sh GROUP        GROUP: kpp | wgmma | update
#
#   kpp     kpp-ring, kpp-pdl, kpp-ring-pdl (issue 5): bench_kpp_cuda on blobs, pruning on/off,
#           bitwise checks; test_kmeanspp (cuda); memcheck of test_kmeanspp (small)  ~8 min
#   wgmma   wgmma-c7517 (issue 4): bench_cuda on the CUDA issue's shapes with the single-set
#           kernel (FLASHKM_WGMMA_OVERLAP=0); test_cuda; memcheck + racecheck of test_cuda ~5 min
#   update  update-reduce (issue 4) if present: bench_cuda update stages; test_update   ~4 min
#
# The patched trees are built for sm_90a only. Logs: $OUT/GROUP.log (./gpu-experiments-out
# without $OUT). Branch-only experiments (wgmma-persistent, exact-cosine-gpu) change tests too:
# check out their branch instead (bench/experiments/README.md).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
GROUP="${1:-}"
OUTDIR="${OUT:-$ROOT/gpu-experiments-out}"
mkdir -p "$OUTDIR"
EXP=bench/experiments
run_ab() {  # run_ab PATCH TARGETS COMMAND
  [[ -f "$1" ]] || { echo "== $1: not present, skipped"; return 0; }
  echo "== $(date -u +%H:%M:%S) A/B $(basename "$1")"
  AB_DIR="/tmp/ab-$(basename "$1" .patch)" bash scripts/ab-patch.sh "$1" "$2" "$3"
}
SMALL='FLASHKM_TEST_SMALL=1 FLASHKM_TEST_BACKEND=cuda'
case "$GROUP" in
  kpp)
    cmd='$BUILD/bench/bench_kpp_cuda --reps 3 --data blobs --ab 1000000:1024:128:f16 &&
         (cd $BUILD/tests && FLASHKM_TEST_BACKEND=cuda ./test_kmeanspp | tail -1) &&
         '"$SMALL"' timeout 90 compute-sanitizer --tool memcheck --error-exitcode 99 $BUILD/tests/test_kmeanspp | tail -1'
    # KPP_PATCHES narrows the set: kpp-ring-pdl alone, plus its FLASHKM_KPP_NO_PDL=1 run below
    # (= ring alone), separates both effects in one build.
    for p in ${KPP_PATCHES:-kpp-ring kpp-pdl kpp-ring-pdl}; do
      run_ab "$EXP/$p.patch" flashkm,bench_kpp_cuda,test_kmeanspp "$cmd"
    done
    # PDL's share within one build
    [[ -x /tmp/ab-kpp-ring-pdl/build-gpu/bench/bench_kpp_cuda ]] && echo "== kpp-ring-pdl with FLASHKM_KPP_NO_PDL=1" &&
      FLASHKM_KPP_NO_PDL=1 /tmp/ab-kpp-ring-pdl/build-gpu/bench/bench_kpp_cuda --reps 3 --data blobs 1000000:1024:128:f16
    ;;
  wgmma)
    run_ab "$EXP/wgmma-c7517.patch" bench_cuda,test_cuda \
      'FLASHKM_WGMMA_OVERLAP=0 $BUILD/bench/bench_cuda --reps 10 1000000:1024:128 8000000:1024:128 75600:1000:128:f16:32 1000000:65536:128 1000000:1024:1024 &&
       $BUILD/tests/test_cuda | tail -1 &&
       '"$SMALL"' timeout 90 compute-sanitizer --tool memcheck --error-exitcode 99 $BUILD/tests/test_cuda | tail -1 &&
       '"$SMALL"' timeout 120 compute-sanitizer --tool racecheck --error-exitcode 99 $BUILD/tests/test_cuda | tail -1'
    ;;
  update)
    run_ab "$EXP/update-reduce.patch" bench_cuda,test_update \
      '$BUILD/bench/bench_cuda --reps 10 1000000:1024:128 8000000:1024:128 75600:1000:128:f16:32 1000000:65536:128 1000000:1024:1024 &&
       $BUILD/tests/test_update | tail -1'
    ;;
  *) echo "usage: $0 kpp|wgmma|update" >&2; exit 2 ;;
esac 2>&1 | tee "$OUTDIR/$GROUP.log"
