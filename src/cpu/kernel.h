/* kernel.h — the CPU assignment micro-kernel, compiled once per SIMD level from kernel.c.
 *
 * Centroids are packed in panels of NR centroids: panel p holds, for each feature j, the NR
 * values c[p*NR + 0..NR-1][j] contiguously (so one vector load gives feature j of NR
 * centroids). Centroids past K are zero, with cbias = +inf, so they are never chosen.
 *
 * For each point x of a block, the kernel finds argmin_k (cbias[k] + alpha * x.c_k):
 * alpha = -2 with cbias = ||c||^2 gives squared L2 distance minus ||x||^2; alpha = -1 with
 * cbias = 0 gives the negated inner product. The point-independent ||x||^2 is never needed.
 * Ties go to the lowest k. The dot products accumulate over j in increasing order with one
 * fused multiply-add per step, whatever the SIMD width, so a label does not depend on the
 * thread count or the position of the point in its block. */
#ifndef FKM_CPU_KERNEL_H
#define FKM_CPU_KERNEL_H

#include <stdint.h>

/* Candidates per k-means++ distance pass (one vector of 16 floats on AVX-512). */
#define FKM_KPP_LANES 16
/* Points per fixed summation chunk of k-means++ (src/cpu/kmeanspp.c); the CUDA version
 * (src/cuda/kmeanspp.cu) sums in the same chunks to choose the same centroids. */
#define FKM_KPP_CHUNK 4096

typedef struct fkm_cpu_kernel {
    const char *name;   /* "avx512", "avx2", "generic" */
    int nr;             /* centroids per panel */
    int mr;             /* points per register tile */
    /* x: rows x d floats with row stride ldx. best_out may be NULL. scratch: at least
     * rows * nr/… see fkm_cpu_scratch_floats(). */
    void (*assign_block)(const float *x, int64_t ldx, int64_t rows, int64_t d,
                         const float *cpack, const float *cbias, int64_t npanels, float alpha,
                         float *scratch, int32_t *labels_out, float *best_out);
    /* assign_block that also writes, per point, the second-smallest score over all
     * centroids but the chosen one (+inf when k = 1): certified mode's gap. */
    void (*assign_block_top2)(const float *x, int64_t ldx, int64_t rows, int64_t d,
                              const float *cpack, const float *cbias, int64_t npanels, float alpha,
                              float *scratch, int32_t *labels_out, float *best_out, float *second_out);
    /* Floats of scratch assign_block (and assign_block_top2) needs for `rows` points. */
    int64_t (*scratch_floats)(int64_t rows);
    /* The update's per-point work: acc[j] += w * x[j] (acc may be NULL) and the point's
     * objective against c in double: ||x - c||^2, or -(x . c) when dot is set. Eight
     * interleaved partial sums combined in a fixed order. */
    double (*accumulate)(const float *x, const float *c, int64_t d, int dot, double w, double *acc);
    /* k-means++: out[r * FKM_KPP_LANES + t] = ||x_r - c_t||^2 in f32 for `rows` rows of x
     * (stride ldx) and FKM_KPP_LANES candidates given transposed: cT[j * FKM_KPP_LANES + t]
     * (unused lanes zero). One multiply-add per feature in increasing order per (row,
     * candidate), fused where the level has FMA (the same result on AVX2 and AVX-512). */
    void (*sqdist_many)(const float *x, int64_t ldx, int64_t rows, const float *cT, int64_t d, float *out);
} fkm_cpu_kernel;

extern const fkm_cpu_kernel fkm_cpu_kernel_generic;
extern const fkm_cpu_kernel fkm_cpu_kernel_avx2;
extern const fkm_cpu_kernel fkm_cpu_kernel_avx512;

/* The best kernel this CPU runs. */
const fkm_cpu_kernel *fkm_cpu_select_kernel(void);

#endif
