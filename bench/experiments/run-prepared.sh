#!/usr/bin/env bash
# The prepared GPU experiments of bench/experiments/README.md in one device call, from the
# repository root on the GPU machine:
#
#   bash bench/experiments/run-prepared.sh [OUTDIR]          (OUTDIR: $OUT, else ./prepared-out)
#
# EXPERIMENTS picks them (default "top3 exfilter smallk reduce hist"; the pppersistent and pieces cases ran and were
# merged on 2026-11-27, kept as examples: they skip without their patch). Each is
# the tree with bench/experiments/<patch> applied whole (tests and bench included), copied to
# /tmp/fkm-<name> and built for sm_90a beside a base build of this tree (build-prep, sm_90a),
# then tested under `timeout` (a synchronisation bug is a hang: exit status 124) and measured
# against the base in the same run. Logs: OUTDIR/<name>.log, a line per step in
# OUTDIR/summary.txt. Budget: PREP_BUDGET seconds in all (default 560: the device tool stops a
# command at 600 s); a step that would start with less than 20 s left is skipped and says so.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 1
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
SM90=-DFLASHKM_CUDA_GENCODE=-gencode=arch=compute_90a,code=sm_90a
note() { echo "$*" >> "$SUMMARY"; echo "$*" >&3; } # fd 3: the terminal, whatever a step redirects
left() { echo $(( T_END - $(date +%s) )); }
# step NAME CAP COMMAND...: runs COMMAND under timeout min(CAP, time left), records its status
step() {
  local name="$1" cap="$2"; shift 2
  local t; t=$(left); (( t > cap )) && t=$cap
  if (( t < 20 )); then note "SKIP $name (out of time)"; return 1; fi
  local t0=$SECONDS
  timeout -k 10 "$t" "$@"; local rc=$?
  note "$( ((rc == 0)) && echo PASS || echo "FAIL($rc)") $name ($(( SECONDS - t0 )) s)"
  return $rc
}
# build SRC DIR TARGETS...
build() {
  local src="$1" dir="$2"; shift 2
  cmake -S "$src" -B "$dir" "${GEN[@]}" -DFLASHKM_CUDA=ON -DCMAKE_BUILD_TYPE=Release "$SM90" >/dev/null &&
    cmake --build "$dir" -j "${JOBS:-16}" --target "$@"
}
# tree NAME PATCH: this tree with bench/experiments/PATCH applied whole, in /tmp/fkm-NAME
tree() { bash "$ROOT/scripts/patched-tree.sh" "/tmp/fkm-$1" "$ROOT/bench/experiments/$2"; }
san() { # san TOOL BUILD TEST: compute-sanitizer on a small run of a GPU test
  (cd "$2/tests" && FLASHKM_TEST_SMALL=1 FLASHKM_TEST_SANITIZE=1 \
     compute-sanitizer --tool "$1" --error-exitcode 99 "./$3" 2>&1 | tail -3; exit "${PIPESTATUS[0]}")
}
# `timeout` runs programs, not shell functions: the steps call this script again
case "${1:-}" in
  __build) shift; build "$@"; exit ;;
  __prepare) shift; tree "$1" "$2" && build "/tmp/fkm-$1" "/tmp/fkm-$1/build-gpu" "${@:3}"; exit ;;
  __san) shift; san "$@"; exit ;;
esac
SELF=(bash "$ROOT/bench/experiments/run-prepared.sh")
OUTDIR="${1:-${OUT:-prepared-out}}"
mkdir -p "$OUTDIR"
EXPERIMENTS="${EXPERIMENTS:-top3 exfilter smallk reduce hist}"
T_END=$(( $(date +%s) + ${PREP_BUDGET:-560} ))
SUMMARY="$OUTDIR/summary.txt"
: > "$SUMMARY"
exec 3>&1

nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$SUMMARY"
step "base build (this tree, sm_90a)" 240 "${SELF[@]}" __build "$ROOT" "$ROOT/build-prep" flashkm bench_cuda \
  flashkm_cli make_blobs > "$OUTDIR/base-build.log" 2>&1
B0="$ROOT/build-prep"

for e in $EXPERIMENTS; do
  log="$OUTDIR/$e.log"
  case "$e" in
  exfilter)
    [[ -f bench/experiments/exact-filter-split.patch ]] || { note "SKIP exfilter (no patch)"; continue; }
    step "exfilter: patch + build" 240 "${SELF[@]}" __prepare exfilter exact-filter-split.patch flashkm test_exact \
      flashkm_cli make_blobs > "$log" 2>&1 || continue
    B=/tmp/fkm-exfilter/build-gpu
    step "exfilter: test_exact (cuda)" 240 env FLASHKM_TEST_BACKEND=cuda "$B/tests/test_exact" >> "$log" 2>&1
    for tool in memcheck racecheck; do
      step "exfilter: $tool test_exact (cuda)" 150 env FLASHKM_TEST_BACKEND=cuda "${SELF[@]}" __san "$tool" "$B" test_exact \
        >> "$log" 2>&1
    done
    "$B0/tools/make_blobs" /tmp/exb32.npy 1000000 128 1024 1 > /dev/null &&
      python3 -c "import numpy as np; np.save('/tmp/exb16.npy', np.load('/tmp/exb32.npy').astype(np.float16))"
    for data in exb16 exb32; do
      for run in "main:$B0:" "patched:$B:" "patched-slices1:$B:1"; do
        IFS=: read -r label bdir slices <<< "$run"
        echo "== fit $data exact [$label]" >> "$log"
        FLASHKM_EXACT_FILTER_SLICES=$slices timeout 60 "$bdir/tools/flashkm" fit "/tmp/$data.npy" -k 1024 --max-iter 10 \
          --tol 0 --init random --seed 1 --backend cuda --precision exact --labels "/tmp/ex_${data}_$label.npy" 2>&1 |
          grep -E "iter +(8|9|10) |re-checked" >> "$log"
      done
      for label in patched patched-slices1; do
        cmp -s "/tmp/ex_${data}_main.npy" "/tmp/ex_${data}_$label.npy" && r=identical || r=DIFFER
        echo "   labels $data $label vs main: $r" >> "$log"
      done
    done
    note "exfilter: exact fits (main, patched, FLASHKM_EXACT_FILTER_SLICES=1) in $log"
    ;;
  top3)
    [[ -f bench/experiments/top3-epilogue.patch ]] || { note "SKIP top3 (no patch)"; continue; }
    step "top3: patch + build" 240 "${SELF[@]}" __prepare top3 top3-epilogue.patch flashkm test_cuda test_exact \
      test_top3_device flashkm_cli make_blobs > "$log" 2>&1 || continue
    B=/tmp/fkm-top3/build-gpu
    step "top3: test_top3_device" 120 "$B/tests/test_top3_device" >> "$log" 2>&1
    step "top3: test_cuda" 240 "$B/tests/test_cuda" >> "$log" 2>&1
    step "top3: test_exact (cuda)" 240 env FLASHKM_TEST_BACKEND=cuda "$B/tests/test_exact" >> "$log" 2>&1
    step "top3: memcheck test_cuda" 150 "${SELF[@]}" __san memcheck "$B" test_cuda >> "$log" 2>&1
    [[ -f /tmp/exb32.npy ]] || { "$B0/tools/make_blobs" /tmp/exb32.npy 1000000 128 1024 1 > /dev/null &&
      python3 -c "import numpy as np; np.save('/tmp/exb16.npy', np.load('/tmp/exb32.npy').astype(np.float16))"; }
    for data in exb16 exb32; do
      for run in "main:$B0" "patched:$B"; do
        IFS=: read -r label bdir <<< "$run"
        echo "== fit $data exact [$label]" >> "$log"
        timeout 60 "$bdir/tools/flashkm" fit "/tmp/$data.npy" -k 1024 --max-iter 10 --tol 0 --init random --seed 1 \
          --backend cuda --precision exact --labels "/tmp/t3_${data}_$label.npy" 2>&1 |
          grep -E "iter +(8|9|10) |re-checked" >> "$log"
      done
      cmp -s "/tmp/t3_${data}_main.npy" "/tmp/t3_${data}_patched.npy" && r=identical || r=DIFFER
      echo "   labels $data patched vs main: $r" >> "$log"
    done
    note "top3: exact fits (main, patched) in $log"
    ;;
  smallk)
    [[ -f bench/experiments/update-smallk-columns.patch ]] || { note "SKIP smallk (no patch)"; continue; }
    step "smallk: patch + build" 240 "${SELF[@]}" __prepare smallk update-smallk-columns.patch flashkm bench_cuda \
      test_update test_stream test_cuda > "$log" 2>&1 || continue
    B=/tmp/fkm-smallk/build-gpu
    step "smallk: test_update" 150 "$B/tests/test_update" >> "$log" 2>&1
    step "smallk: test_stream" 150 "$B/tests/test_stream" >> "$log" 2>&1
    step "smallk: test_stream (sort path)" 150 env FLASHKM_UPDATE_SMALLK=0 "$B/tests/test_stream" >> "$log" 2>&1
    step "smallk: test_cuda" 240 "$B/tests/test_cuda" >> "$log" 2>&1
    for tool in memcheck racecheck; do
      step "smallk: $tool test_update" 150 "${SELF[@]}" __san "$tool" "$B" test_update >> "$log" 2>&1
    done
    CFG="1000000:16:128 1000000:32:128 1000000:64:128 75600:16:128:f16:32 1000000:16:128:f32"
    {
      echo "== base"; "$B0/bench/bench_cuda" --reps 10 $CFG
      for v in 0 1; do echo "== smallk FLASHKM_UPDATE_SMALLK=$v"; FLASHKM_UPDATE_SMALLK=$v "$B/bench/bench_cuda" --reps 10 $CFG; done
    } 2>&1 | grep -E "^(==|N=|GPU)" | sed -E 's/ \| atomic.*//' >> "$log"
    for lib in "$B0/src/libflashkm.so" "$B/src/libflashkm.so"; do
      step "smallk: side by side ($lib)" 120 python3 bench/gpu_side_by_side.py --lib "$lib" --isolate --skip flash-kmeans \
        --configs n1m_k16 --out-csv /tmp/smallk.csv --out-md /tmp/smallk.md >> "$log" 2>&1
    done
    ;;
  reduce|hist)
    # update-kernel patches: test_update on the GPU, its sanitizers, bench_cuda against the base
    patch=$([[ $e == reduce ]] && echo reduce-diet.patch || echo hist-tile-major.patch)
    [[ -f bench/experiments/$patch ]] || { note "SKIP $e (no patch)"; continue; }
    step "$e: patch + build" 240 "${SELF[@]}" __prepare "$e" "$patch" bench_cuda test_update > "$log" 2>&1 || continue
    B=/tmp/fkm-$e/build-gpu
    step "$e: test_update" 150 "$B/tests/test_update" >> "$log" 2>&1
    for tool in memcheck racecheck; do
      step "$e: $tool test_update" 200 "${SELF[@]}" __san "$tool" "$B" test_update >> "$log" 2>&1
    done
    CFG="1000000:1024:128 8000000:1024:128 75600:1000:128:f16:32 1000000:4096:128 1000000:65536:128 1000000:1024:1024"
    {
      echo "== base"; "$B0/bench/bench_cuda" --reps 10 $CFG
      echo "== $e"; "$B/bench/bench_cuda" --reps 10 $CFG
    } 2>&1 | grep -E "^(==|N=|GPU)" | sed -E 's/ \| atomic.*//; s/assign .*\[[a-z-]+\] \| //' >> "$log"
    note "$e: bench_cuda update stages (base, patched) in $log"
    ;;
  pppersistent)
    [[ -f bench/experiments/wgmma-pp-persistent.patch ]] || { note "SKIP pppersistent (no patch)"; continue; }
    step "pppersistent: patch + build" 240 "${SELF[@]}" __prepare pppersistent wgmma-pp-persistent.patch test_cuda \
      bench_cuda flashkm_cli make_blobs > "$log" 2>&1 || continue
    B=/tmp/fkm-pppersistent/build-gpu
    step "pppersistent: test_cuda (small)" 240 env FLASHKM_TEST_SMALL=1 "$B/tests/test_cuda" >> "$log" 2>&1 || continue
    step "pppersistent: test_cuda" 240 "$B/tests/test_cuda" >> "$log" 2>&1 || continue
    step "pppersistent: synccheck test_cuda" 150 "${SELF[@]}" __san synccheck "$B" test_cuda >> "$log" 2>&1
    step "pppersistent: memcheck test_cuda" 150 "${SELF[@]}" __san memcheck "$B" test_cuda >> "$log" 2>&1
    step "pppersistent: A/B of the kernels and fits" 200 env BUILD_DIR="$B" AB_VARIANTS="0 2 3" AB_REPS=5 \
      AB_CONFIGS="${PP_AB_CONFIGS:-1000000:1024:128 1000000:4096:128 75600:1000:128:f16:32 1000000:1024:128:f32 1000000:1024:64 1000000:1024:256}" \
      bash /tmp/fkm-pppersistent/bench/ab_wgmma_overlap.sh "$OUTDIR/pppersistent-ab" >> "$log" 2>&1
    ;;
  pieces)
    [[ -f bench/experiments/update-batched-pieces.patch ]] || { note "SKIP pieces (no patch)"; continue; }
    step "pieces: patch + build" 240 "${SELF[@]}" __prepare pieces update-batched-pieces.patch flashkm test_update \
      test_stream > "$log" 2>&1 || continue
    B=/tmp/fkm-pieces/build-gpu
    step "pieces: test_update" 120 "$B/tests/test_update" >> "$log" 2>&1
    step "pieces: test_stream" 150 "$B/tests/test_stream" >> "$log" 2>&1
    for lib in "$B0/src/libflashkm.so" "$B/src/libflashkm.so"; do
      step "pieces: side by side ($lib)" 120 python3 bench/gpu_side_by_side.py --lib "$lib" --isolate --skip flash-kmeans \
        --configs n8m_k1024 n1m_k1024_d1024 n1m_k1024 --out-csv /tmp/pieces.csv --out-md /tmp/pieces.md >> "$log" 2>&1
    done
    ;;
  *) note "unknown experiment $e" ;;
  esac
done
note "done, $(left) s of the budget left"
