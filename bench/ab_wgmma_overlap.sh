#!/usr/bin/env bash
# A/B of the Hopper FlashAssign kernels in one build, on the GPU machine, after a CUDA build in
# build-gpu. FLASHKM_WGMMA_OVERLAP=0: single accumulator set, two blocks per SM, =2: ping-pong
# (two consumer warpgroups taking turns, a producer warp), =3: the ping-pong kernel on a
# persistent grid (one block per SM walking row blocks, the next X tile loaded ahead); without
# the variable the shape picks (assign.cu). AB_VARIANTS picks (default "0 2 3"):
#
#   AB_VARIANTS="0 2 3" bash bench/ab_wgmma_overlap.sh [OUTDIR]
#
# 1. the kernels alone: build-gpu/bench/bench_cuda on the CUDA issue's configurations (D = 128);
#    each line names the kernel that ran ([wgmma], [wgmma-pingpong],
#    [wgmma-pingpong-persistent]);
# 2. whole fits through the CLI, fast and exact precision, f32 and f16 blobs 1M x 128, K = 1024,
#    --init random, 10 iterations: the progress lines' per-iteration times (steady state:
#    iterations 8-10) and exact mode's re-check split; each variant's labels compared with the
#    first variant's with cmp (they must be identical).
# Logs in OUTDIR (default .), bench_cuda CSVs as ab_bench_ov<V>.csv.
set -uo pipefail
OUTDIR="${1:-.}"
B="${BUILD_DIR:-build-gpu}"
CFG="${AB_CONFIGS:-1000000:1024:128 8000000:1024:128 75600:1000:128:f16:32 1000000:65536:128 1000000:1024:128:f32}"
REPS="${AB_REPS:-10}"
read -r -a VARS <<< "${AB_VARIANTS:-0 2 3}"
for v in "${VARS[@]}"; do
  case "$v" in 0|2|3) ;; *) echo "AB_VARIANTS: unknown variant '$v' (0, 2 or 3)" >&2; exit 2 ;; esac
done
mkdir -p "$OUTDIR"

for v in "${VARS[@]}"; do
  echo "== bench_cuda [FLASHKM_WGMMA_OVERLAP=$v]"
  FLASHKM_WGMMA_OVERLAP=$v "$B/bench/bench_cuda" --reps "$REPS" --csv "$OUTDIR/ab_bench_ov$v.csv" $CFG 2>&1 |
    grep -v '^ *$'
done

TMP="${TMPDIR:-/tmp}/fkm-ab"
mkdir -p "$TMP"
"$B/tools/make_blobs" "$TMP/b32.npy" 1000000 128 1024 1 >/dev/null || exit 1
python3 -c "import numpy as np; np.save('$TMP/b16.npy', np.load('$TMP/b32.npy').astype(np.float16))" || exit 1
for data in b32 b16; do
  for prec in fast exact; do
    for v in "${VARS[@]}"; do
      echo "== fit $data --precision $prec [FLASHKM_WGMMA_OVERLAP=$v]"
      FLASHKM_WGMMA_OVERLAP=$v "$B/tools/flashkm" fit "$TMP/$data.npy" -k 1024 --max-iter 10 --tol 0 --init random \
        --seed 1 --backend cuda --precision "$prec" --labels "$TMP/l_${data}_${prec}_$v.npy" 2>&1 |
        grep -E -i 'iter +(8|9|10)\b|re-?check|ms/iter|error' | head -12
    done
    for v in "${VARS[@]:1}"; do
      if cmp -s "$TMP/l_${data}_${prec}_${VARS[0]}.npy" "$TMP/l_${data}_${prec}_$v.npy"; then
        echo "   labels $data $prec =$v vs =${VARS[0]}: identical"
      else
        echo "   labels $data $prec =$v vs =${VARS[0]}: DIFFER"
      fi
    done
  done
done
