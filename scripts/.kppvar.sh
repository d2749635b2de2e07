GPU_CHECK_STAGES=build bash scripts/gpu-check.sh >/dev/null 2>&1; tail -2 $OUT/summary.txt
for v in "8 2 1" "8 2 2"; do set -- $v
  cmake -S . -B build-v$1$2$3 -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHKM_CUDA=ON -DFLASHKM_BUILD_TESTS=OFF -DFLASHKM_CUDA_GENCODE="-gencode=arch=compute_90a,code=sm_90a" -DCMAKE_CUDA_FLAGS="-DKPP_CWARPS=$1 -DKPP_PPT=$2 -DKPP_PIECES=$3" >/dev/null && cmake --build build-v$1$2$3 -j16 --target bench_kpp_cuda >/dev/null 2>&1 &
done; wait
ctest --test-dir build-gpu -R "kmeanspp_cuda" 2>&1 | grep -E "tests passed|Failed"
echo "== A 16/1/1"; build-gpu/bench/bench_kpp_cuda --reps 3 --cpu-n 0 2>&1 | tail -3
for v in 821 822; do echo "== $v"; build-v$v/bench/bench_kpp_cuda --reps 3 --cpu-n 0 2>&1 | tail -3; done
