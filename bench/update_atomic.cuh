/* update_atomic.cuh — the plain atomicAdd centroid update, kept only for benchmarks and tests:
 * the baseline that the sort-inverse update (src/cuda/update.cuh) is compared against.
 *
 * One warp per point (lanes over columns, like the sort-inverse reduce): the point, as f32
 * and normalised for cosine exactly as fkm_cuda_update does it, is added with atomicAdd into
 * its cluster's row of sums, and its weight into the cluster's weight. With FKM_ATOMIC_F32 the
 * atomics go to f32 buffers that are then widened to the double outputs; with FKM_ATOMIC_F64
 * they go straight to the double outputs. The order of the atomics is up to the hardware, so
 * the result is NOT deterministic (f64 sums differ run to run in the last bits, f32 sums by
 * much more): that is what the comparison shows. No per-point objective is computed.
 *
 * Same inputs and the same sums / weight outputs as fkm_cuda_update (all device memory,
 * everything in `stream`); the outputs are overwritten (no accumulate). */
#ifndef FKM_BENCH_UPDATE_ATOMIC_CUH
#define FKM_BENCH_UPDATE_ATOMIC_CUH

#include "cuda/common.cuh"

typedef enum fkm_atomic_precision {
    FKM_ATOMIC_F32 = 0, /* atomicAdd on float, widened to double at the end */
    FKM_ATOMIC_F64 = 1  /* atomicAdd on double */
} fkm_atomic_precision;

typedef struct fkm_atomic_update_ws fkm_atomic_update_ws;

/* Per-stage device times of the last call in ms (CUDA events), when timing is on:
 * zero = clearing the accumulators, scatter = the atomic kernel, convert = f32 -> double
 * (0 for FKM_ATOMIC_F64). */
typedef struct fkm_atomic_update_times {
    float zero, scatter, convert;
} fkm_atomic_update_times;

/* Allocates the f32 accumulators (batch*k*d + batch*k floats) for problems of pb's shape
 * (k and d exact, batch and n at most those of pb). */
fkm_status fkm_atomic_update_create(fkm_ctx *ctx, const fkm_dev_problem *pb, fkm_atomic_update_ws **out);
/* NULL-safe. */
void fkm_atomic_update_destroy(fkm_atomic_update_ws *ws);
void fkm_atomic_update_set_timing(fkm_atomic_update_ws *ws, int on);
fkm_atomic_update_times fkm_atomic_update_last_times(const fkm_atomic_update_ws *ws);

/* sums: batch*k*d doubles, weight: batch*k doubles (either may be NULL = not wanted). */
fkm_status fkm_atomic_update(fkm_ctx *ctx, fkm_atomic_update_ws *ws, const fkm_dev_problem *pb,
                             const int32_t *labels, fkm_atomic_precision precision, double *sums,
                             double *weight, cudaStream_t stream);

#endif
