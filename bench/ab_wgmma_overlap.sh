#!/usr/bin/env bash
# A/B of the two Hopper FlashAssign kernels in one build (FLASHKM_WGMMA_OVERLAP=0 vs =1),
# on the GPU machine, after a CUDA build in build-gpu:
#
#   bash bench/ab_wgmma_overlap.sh [OUTDIR]
#
# 1. the kernels alone: build-gpu/bench/bench_cuda on the CUDA issue's configurations (D = 128);
# 2. whole fits through the CLI, fast and exact precision, f32 and f16 blobs 1M x 128, K = 1024,
#    --init random, 10 iterations: the progress lines' per-iteration times (steady state:
#    iterations 8-10) and exact mode's re-check split; the labels of the two kernels compared
#    with cmp (they must be identical).
# Logs in OUTDIR (default .), bench_cuda CSVs as ab_bench_{base,overlap}.csv.
set -uo pipefail
OUTDIR="${1:-.}"
B="${BUILD_DIR:-build-gpu}"
CFG="${AB_CONFIGS:-1000000:1024:128 8000000:1024:128 75600:1000:128:f16:32 1000000:65536:128 1000000:1024:128:f32}"
REPS="${AB_REPS:-10}"
mkdir -p "$OUTDIR"

# the variant names and the FLASHKM_WGMMA_OVERLAP value that selects each
declare -A OVERLAP=([base]=0 [overlap]=1)
for v in base overlap; do
  echo "== bench_cuda [$v]"
  FLASHKM_WGMMA_OVERLAP=${OVERLAP[$v]} "$B/bench/bench_cuda" --reps "$REPS" --csv "$OUTDIR/ab_bench_$v.csv" $CFG 2>&1 |
    grep -v '^ *$'
done

TMP="${TMPDIR:-/tmp}/fkm-ab"
mkdir -p "$TMP"
"$B/tools/make_blobs" "$TMP/b32.npy" 1000000 128 1024 1 >/dev/null || exit 1
python3 -c "import numpy as np; np.save('$TMP/b16.npy', np.load('$TMP/b32.npy').astype(np.float16))" || exit 1
for data in b32 b16; do
  for prec in fast exact; do
    for v in base overlap; do
      echo "== fit $data --precision $prec [$v]"
      FLASHKM_WGMMA_OVERLAP=${OVERLAP[$v]} "$B/tools/flashkm" fit "$TMP/$data.npy" -k 1024 --max-iter 10 --tol 0 --init random \
        --seed 1 --backend cuda --precision "$prec" --labels "$TMP/l_${data}_${prec}_$v.npy" 2>&1 |
        grep -E -i 'iter +(8|9|10)\b|re-?check|ms/iter|error' | head -12
    done
    if cmp -s "$TMP/l_${data}_${prec}_base.npy" "$TMP/l_${data}_${prec}_overlap.npy"; then
      echo "   labels $data $prec: identical"
    else
      echo "   labels $data $prec: DIFFER"
    fi
  done
done
