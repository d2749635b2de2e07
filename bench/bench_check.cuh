/* bench_check.cuh — the benchmarks' error checks: a benchmark stops at the first failed CUDA
 * or flashkm call with its file, line and message (benchmarks may exit; the library never). */
#ifndef FKM_BENCH_CHECK_CUH
#define FKM_BENCH_CHECK_CUH

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define CK(x)                                                                                       \
    do {                                                                                            \
        cudaError_t e_ = (x);                                                                       \
        if (e_ != cudaSuccess) {                                                                    \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));    \
            exit(1);                                                                                \
        }                                                                                           \
    } while (0)
#define FK(ctx, x)                                                                                  \
    do {                                                                                            \
        if ((x) != FKM_OK) {                                                                        \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, fkm_last_error(ctx));       \
            exit(1);                                                                                \
        }                                                                                           \
    } while (0)

#endif
