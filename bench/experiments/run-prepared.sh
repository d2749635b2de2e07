#!/usr/bin/env bash
# The prepared GPU experiments of bench/experiments/README.md in one device call, from the
# repository root on the GPU machine:
#
#   bash bench/experiments/run-prepared.sh [OUTDIR]          (OUTDIR: $OUT, else ./prepared-out)
#
# EXPERIMENTS picks them (default: cand, exact mode's candidate pass on this tree; earlier ones: scan, lazy, overhead; merged ones left the
# script with their patch, git log has their cases; smallk stays for the record, dropped). Each is
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
EXPERIMENTS="${EXPERIMENTS:-cand}"
T_END=$(( $(date +%s) + ${PREP_BUDGET:-560} ))
SUMMARY="$OUTDIR/summary.txt"
: > "$SUMMARY"
exec 3>&1

nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$SUMMARY"
step "base build (this tree, sm_90a)" 240 "${SELF[@]}" __build "$ROOT" "$ROOT/build-prep" flashkm bench_cuda \
  flashkm_cli make_blobs > "$OUTDIR/base-build.log" 2>&1
B0="$ROOT/build-prep"

# prepare NAME PATCH TARGETS...: bench/experiments/PATCH applied to a copy of this tree and built
# (logged to $log); status 1, and a note, when the patch is absent or does not build
prepare() {
  local name="$1" patch="$2"; shift 2
  [[ -f bench/experiments/$patch ]] || { note "SKIP $name (no $patch)"; return 1; }
  step "$name: patch + build" 240 "${SELF[@]}" __prepare "$name" "$patch" "$@" > "$log" 2>&1
}
# blobs: make_blobs 1M x 128 with 1024 centres in /tmp/exb32.npy (f32) and /tmp/exb16.npy (f16)
blobs() {
  [[ -f /tmp/exb32.npy ]] || { "$B0/tools/make_blobs" /tmp/exb32.npy 1000000 128 1024 1 > /dev/null &&
    python3 -c "import numpy as np; np.save('/tmp/exb16.npy', np.load('/tmp/exb32.npy').astype(np.float16))"; }
}
# exact_fits TAG K ITERS RUN...: exact-mode fits of make_blobs 1M x 128 (f16 and f32) with K
# clusters and ITERS iterations, one per RUN "label:build dir:environment assignment" (e.g.
# FLASHKM_EXACT_CAND=0, or empty; the first is the reference), the last two iterations' lines and the re-check split into
# $log; each later run's labels and re-check counts compared with the first's (the same bits
# give the same counts, stage by stage: labels alone could hide a wrong score that certified a
# point it should not have)
exact_fits() {
  local tag="$1" kk="$2" iters="$3"; shift 3
  blobs
  local data run label bdir envv first out r c
  for data in exb16 exb32; do
    first=
    for run in "$@"; do
      IFS=: read -r label bdir envv <<< "$run"
      out="/tmp/${tag}_${data}_${kk}_$label"
      echo "== exact fit $data K=$kk [$label]" >> "$log"
      env $envv timeout 90 "$bdir/tools/flashkm" fit "/tmp/$data.npy" -k "$kk" \
        --max-iter "$iters" --tol 0 --init random --seed 1 --backend cuda --precision exact --labels "$out.npy" 2>&1 |
        grep -E "iter +($((iters - 1))|$iters) |re-checked" | tee "$out.txt" >> "$log"
      if [[ -z $first ]]; then first=$label; continue; fi
      local ref="/tmp/${tag}_${data}_${kk}_$first"
      cmp -s "$ref.npy" "$out.npy" && r=identical || r=DIFFER
      cmp -s <(grep re-checked "$ref.txt") <(grep re-checked "$out.txt") && c=identical || c=DIFFER
      echo "   $data K=$kk $label vs $first: labels $r, re-check counts $c" >> "$log"
    done
  done
  note "$tag: exact fits K=$kk (${*%%:*}) in $log"
}
# bench_runs CONFIGS RUN...: bench_cuda --reps 10 CONFIGS per RUN "label:build dir:environment
# assignment" (e.g. FLASHKM_UPDATE_SMALLK=0, or empty), the assignment kernel's part of each
# line left out (these experiments change the update)
bench_runs() {
  local cfg="$1" run label bdir envv; shift
  for run in "$@"; do
    IFS=: read -r label bdir envv <<< "$run"
    echo "== $label"
    env $envv "$bdir/bench/bench_cuda" --reps 10 $cfg
  done 2>&1 | grep -E "^(==|N=|GPU)" | sed -E 's/ \| atomic.*//; s/assign .*\[[a-z-]+\] \| //' >> "$log"
  note "bench_cuda update stages (${*%%:*}) in $log"
}

# fast_fits K ITERS BUILD: the same fits in fast mode (exact mode's overhead)
fast_fits() {
  local kk="$1" iters="$2" bdir="$3" data
  blobs
  for data in exb16 exb32; do
    echo "== fast fit $data K=$kk" >> "$log"
    timeout 90 "$bdir/tools/flashkm" fit "/tmp/$data.npy" -k "$kk" --max-iter "$iters" --tol 0 --init random \
      --seed 1 --backend cuda --labels "/tmp/fast_${data}_$kk.npy" 2>&1 | grep -E "iter +($((iters - 1))|$iters) " >> "$log"
  done
}

for e in $EXPERIMENTS; do
  log="$OUTDIR/$e.log"
  B=/tmp/fkm-$e/build-gpu
  case "$e" in
  carry) # exact mode's carried certificates (exact-carry.patch, EXACTNESS.md 5.5 on the branch)
    prepare carry exact-carry.patch flashkm flashkm_cli make_blobs test_exact test_cuda test_cert || continue
    step "carry: test_cert" 60 "$B/tests/test_cert" >> "$log" 2>&1
    step "carry: test_exact (cuda)" 150 env FLASHKM_TEST_BACKEND=cuda "$B/tests/test_exact" >> "$log" 2>&1
    step "carry: test_cuda" 150 "$B/tests/test_cuda" >> "$log" 2>&1
    step "carry: memcheck test_exact (cuda)" 150 env FLASHKM_TEST_BACKEND=cuda "${SELF[@]}" __san memcheck "$B" test_exact >> "$log" 2>&1
    for kk in 1024 16384 65536; do
      exact_fits carry "$kk" 10 "base:$B0:" "carry:$B:" "carry-off:$B:FLASHKM_EXACT_CARRY=0"
    done
    ;;
  cand) # exact mode's candidate pass (on main: no patch; FLASHKM_EXACT_CAND=0 is the old path)
    step "cand: build tests" 240 "${SELF[@]}" __build "$ROOT" "$B0" test_exact test_cuda test_cert >> "$log" 2>&1 || continue
    step "cand: test_exact (cuda)" 150 env FLASHKM_TEST_BACKEND=cuda "$B0/tests/test_exact" >> "$log" 2>&1
    step "cand: test_cuda" 150 "$B0/tests/test_cuda" >> "$log" 2>&1
    step "cand: memcheck test_exact (cuda)" 150 env FLASHKM_TEST_BACKEND=cuda "${SELF[@]}" __san memcheck "$B0" test_exact >> "$log" 2>&1
    for kk in 1024 16384 65536; do
      exact_fits cand "$kk" 4 "default:$B0:" "cand-mma:$B0:FLASHKM_CAND_KERNEL=mma" "cand-off:$B0:FLASHKM_EXACT_CAND=0"
      fast_fits "$kk" 4 "$B0"
    done
    for cfg in "exb16 1024" "exb32 1024" "exb16 16384" "exb32 16384"; do
      set -- $cfg
      echo "== ncu exact fit $1 K=$2, 2 iterations (3 assignments): kernel time, us x launches" >> "$log"
      timeout 120 ncu --metrics gpu__time_duration.sum --print-summary per-kernel "$B0/tools/flashkm" fit "/tmp/$1.npy" \
        -k "$2" --max-iter 2 --tol 0 --init random --seed 1 --backend cuda --precision exact 2>&1 |
        grep -E "^  [a-zA-Z_].*\(|gpu__time_duration" | paste - - | sed -E 's/\(.*Invocations/ inv/; s/gpu__time_duration.sum//' |
        awk '{u=$(NF-3); v=$(NF); if (u=="ms") v*=1000; n=$0; sub(/ inv.*/,"",n); split($0,a," inv "); split(a[2],b," ");
             printf "%10.1f us x %-4s %s\n", v, b[1], substr(n,1,70)}' | sort -rn | head -12 >> "$log"
    done
    note "cand: ncu of exact fits in $log"
    ;;
  smallk)
    prepare smallk update-smallk-columns.patch flashkm bench_cuda test_update test_stream test_cuda || continue
    step "smallk: test_update" 150 "$B/tests/test_update" >> "$log" 2>&1
    step "smallk: test_stream" 150 "$B/tests/test_stream" >> "$log" 2>&1
    step "smallk: test_stream (sort path)" 150 env FLASHKM_UPDATE_SMALLK=0 "$B/tests/test_stream" >> "$log" 2>&1
    step "smallk: test_cuda" 240 "$B/tests/test_cuda" >> "$log" 2>&1
    for tool in memcheck racecheck; do
      step "smallk: $tool test_update" 150 "${SELF[@]}" __san "$tool" "$B" test_update >> "$log" 2>&1
    done
    bench_runs "1000000:16:128 1000000:32:128 1000000:64:128 75600:16:128:f16:32 1000000:16:128:f32" \
      "base:$B0:" "smallk-off:$B:FLASHKM_UPDATE_SMALLK=0" "smallk-on:$B:FLASHKM_UPDATE_SMALLK=1"
    for lib in "$B0/src/libflashkm.so" "$B/src/libflashkm.so"; do
      step "smallk: side by side ($lib)" 120 python3 bench/gpu_side_by_side.py --lib "$lib" --isolate --skip flash-kmeans \
        --configs n1m_k16 --out-csv /tmp/smallk.csv --out-md /tmp/smallk.md >> "$log" 2>&1
    done
    ;;
  scan)
    # the data scan (scan-fast.patch): its test, sanitizers, per-kernel times of a 1-iteration
    # fit and the fixed cost of fits (bench/fit_overhead.py), base against patched
    prepare scan scan-fast.patch flashkm flashkm_cli test_scan test_stream test_cuda || continue
    step "scan: test_scan" 120 "$B/tests/test_scan" >> "$log" 2>&1
    step "scan: test_stream" 150 "$B/tests/test_stream" >> "$log" 2>&1
    step "scan: test_cuda" 240 "$B/tests/test_cuda" >> "$log" 2>&1
    for tool in memcheck racecheck; do
      step "scan: $tool test_scan" 120 "${SELF[@]}" __san "$tool" "$B" test_scan >> "$log" 2>&1
    done
    blobs
    for bdir in "$B0" "$B"; do
      echo "== ncu scan kernels, 1-iteration fit, f16 and cosine f32 ($bdir)" >> "$log"
      for args in "/tmp/exb16.npy" "/tmp/exb32.npy --metric cosine"; do
        timeout 60 ncu --metrics gpu__time_duration.sum --print-summary per-kernel \
          -k regex:"scan_chunks|combine_columns|row_scales" "$bdir/tools/flashkm" fit $args -k 1024 --max-iter 1 \
          --init random --seed 1 --backend cuda 2>&1 | grep -E "^  [a-z_ ]+.*\(|gpu__time_duration" >> "$log"
      done
    done
    for lib in "$B0/src/libflashkm.so" "$B/src/libflashkm.so"; do
      echo "== fit_overhead $lib" >> "$log"
      step "scan: fit_overhead ($lib)" 120 python3 bench/fit_overhead.py --lib "$lib" \
        --configs n1m_k1024 n8m_k1024 b32_k1000 --reps 5 >> "$log" 2>&1
    done
    ;;
  overhead)
    # fit-overhead.patch: no per-fit pinned copy of the centroids, final centroids straight to
    # the output, device init centroids validated and used on the device. Correctness first
    # (test_cuda's check_device_io: device/pinned/host init and outputs bitwise equal), then
    # the per-fit cost against the base, then memcheck (slowest, least needed) if time is left
    prepare overhead fit-overhead.patch flashkm test_cuda test_gpu_vs_cpu test_stream || continue
    step "overhead: test_cuda" 150 "$B/tests/test_cuda" >> "$log" 2>&1
    step "overhead: test_gpu_vs_cpu" 90 "$B/tests/test_gpu_vs_cpu" >> "$log" 2>&1
    step "overhead: test_stream" 120 "$B/tests/test_stream" >> "$log" 2>&1
    for lib in "$B0/src/libflashkm.so" "$B/src/libflashkm.so"; do
      echo "== fit_overhead $lib" >> "$log"
      step "overhead: fit_overhead ($lib)" 120 python3 bench/fit_overhead.py --lib "$lib" \
        --configs n1m_k1024 b32_k1000 n1m_k65536 --reps 7 >> "$log" 2>&1
    done
    step "overhead: memcheck test_cuda" 200 "${SELF[@]}" __san memcheck "$B" test_cuda >> "$log" 2>&1
    ;;
  lazy)
    # top3-lazy.patch: exact mode's top-3 fold skips tiles above the lane's third from column
    # 8192 on; exact fits (exact_fits: labels and re-check counts against the base) at K = 1024 (path unchanged),
    # 16384 and 65536, f16 and f32, iterations 3-4 (assign ms in the progress lines)
    prepare lazy top3-lazy.patch flashkm flashkm_cli test_top3_device test_cuda test_exact || continue
    # test_exact (cuda) includes a stage case at K = 10777 whose decisive centroids sit in the lazy columns
    step "lazy: test_top3_device" 120 "$B/tests/test_top3_device" >> "$log" 2>&1
    step "lazy: test_cuda" 240 "$B/tests/test_cuda" >> "$log" 2>&1
    step "lazy: test_exact (cuda)" 240 env FLASHKM_TEST_BACKEND=cuda "$B/tests/test_exact" >> "$log" 2>&1
    for kk in 1024 16384 65536; do exact_fits lazy "$kk" 4 "base:$B0:" "lazy:$B:"; done
    ;;
  *) note "unknown experiment $e" ;;
  esac
done
note "done, $(left) s of the budget left"
