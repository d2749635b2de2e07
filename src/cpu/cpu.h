/* cpu.h — state of the CPU backend for one call, shared by its files. */
#ifndef FKM_CPU_H
#define FKM_CPU_H

#include "core/internal.h"
#include "kernel.h"

/* Points per block of the assignment (a multiple of every kernel's MR). A block's f32 copy
 * (BLOCK_ROWS x d) stays in L2 while centroid panels stream through L1. */
#define FKM_CPU_BLOCK_ROWS 240
/* Points per work item of the reduction: fixed, so the summation order never depends on the
 * thread count. */
#define FKM_CPU_REDUCE_CHUNK 4096

typedef struct cpu_state {
    fkm_problem pb;
    const fkm_cpu_kernel *kern;
    int32_t *labels;        /* n */
    double *objective;      /* n: per-point objective of the last reduce */
    int have_labels;
    /* packed centroids (kernel.h layout) and the bias term */
    float *cpack;
    float *cbias;
    int64_t npanels;
    /* certified mode (precision = exact): centroid norms, computed in double */
    double *cnorm;          /* k, or NULL in the other modes */
    double cnorm_max;
    double *xnorm;          /* n: ||x|| of each row, computed by the first assignment (X does
                               not change during a call) */
    int have_xnorm;
    /* carried certificates (EXACTNESS.md 5.5; exact mode, l2 and dot, unless
     * FLASHKM_EXACT_CARRY=0): each row's bounds (lo > hi: valid), the centroids they were
     * computed against, the centroids' moves */
    double *clo, *chi;      /* n, or NULL */
    float *cprev;           /* k x d */
    double *cmove;          /* k */
    int have_prev;
    /* counting sort of points by label */
    int64_t *order;         /* n */
    int64_t *offsets;       /* k + 1 */
} cpu_state;

/* Whether rows need converting to an f32 copy (dtype other than f32, or cosine). */
int fkm_cpu_needs_copy(const fkm_problem *pb);
fkm_status fkm_cpu_assign(fkm_ctx *ctx, void *state, const float *centroids, int64_t *n_changed);
fkm_status fkm_cpu_reduce(fkm_ctx *ctx, void *state, const float *centroids, fkm_partials *out);
fkm_status fkm_cpu_kmeanspp(fkm_ctx *ctx, void *state, int64_t problem, uint64_t seed, float *C);

#endif
