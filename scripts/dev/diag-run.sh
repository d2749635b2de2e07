#!/usr/bin/env bash
# Development helper for one short device call (not CI): build, the GPU tests, memcheck on the
# newest GPU code, racecheck on the k-means++ pass, the memory-mapped streaming case alone.
set -u
GPU_CHECK_STAGES=build bash scripts/gpu-check.sh >/dev/null 2>&1; tail -2 "$OUT/summary.txt"
(cd build-gpu && timeout 150 ctest -R "cuda|gpu|update|stream|exact|cert" -E mapped --output-on-failure 2>&1 | tail -22)
cd build-gpu/tests
for t in "memcheck --leak-check full:test_exact:FLASHKM_TEST_BACKEND=cuda" "memcheck --leak-check full:test_kmeanspp:FLASHKM_TEST_BACKEND=cuda" "racecheck:test_kmeanspp:FLASHKM_TEST_BACKEND=cuda"; do
  IFS=: read -r tool exe envs <<< "$t"
  echo "== $tool $exe"; env FLASHKM_TEST_SMALL=1 $envs timeout 70 compute-sanitizer --tool $tool ./$exe 2>&1 | grep -E "SUMMARY|checks passed|failed" | tail -4
done
echo "== test_stream mapped (30 s)"; timeout 30 stdbuf -oL ./test_stream mapped 2>&1 | tail -5; echo "exit ${PIPESTATUS[0]}"
