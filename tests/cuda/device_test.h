/* device_test.h — what the CUDA tests in this folder share: a failure counter with its EXPECT
 * (reports, counts and goes on), CU (a CUDA runtime call that must succeed, else exit 1), the
 * splitmix64 generator their data comes from (tests/splitmix.h), the skip for machines
 * without a GPU and the kernel tests' start. */
#ifndef FKM_TESTS_DEVICE_TEST_H
#define FKM_TESTS_DEVICE_TEST_H

#include "../splitmix.h"
#include "flashkm.h"

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int failures = 0;

/* the first 60 failures are printed, all are counted */
#define EXPECT(cond, ...)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            failures++;                                                                \
            if (failures < 60) {                                                       \
                fprintf(stderr, "%s:%d: EXPECT(%s) failed: ", __FILE__, __LINE__, #cond); \
                fprintf(stderr, __VA_ARGS__);                                          \
                fputc('\n', stderr);                                                   \
            }                                                                          \
        }                                                                              \
    } while (0)

#define CU(expr)                                                                       \
    do {                                                                               \
        cudaError_t e_ = (expr);                                                       \
        if (e_ != cudaSuccess) {                                                       \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* Exit status 77 (ctest's skip) when there is no CUDA device. */
static inline void skip_without_gpu(void)
{
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        (void)cudaGetLastError();
        printf("SKIP: no CUDA device\n");
        exit(77);
    }
}

/* The kernel tests' start: the skip without a GPU, then a context for the library's error
 * reporting (the kernels run on the tests' own streams); exit 1 when it cannot be made. */
static inline fkm_ctx *kernel_test_start(void)
{
    skip_without_gpu();
    fkm_ctx *ctx = NULL;
    if (fkm_create(&ctx, FKM_BACKEND_CPU) != FKM_OK) {
        fprintf(stderr, "fkm_create failed\n");
        exit(1);
    }
    return ctx;
}

#endif
