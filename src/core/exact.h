/* exact.h — certified-exact assignment pieces shared by every backend (docs/EXACTNESS.md):
 * the error bound that certifies a fast-pass label (cert.h), and the exact argmin that
 * re-decides the points the bound cannot certify. Plain C on the host: the CUDA backend
 * gathers its few uncertain rows and calls fkm_exact_argmin_rows. */
#ifndef FKM_EXACT_H
#define FKM_EXACT_H

#include "flashkm.h"
#include "cert.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Doubles of scratch fkm_exact_argmin needs for k centroids. */
#define FKM_EXACT_SCRATCH_DOUBLES(k) (2 * (k))

/* The certified label of one point: argmin over the k centroids C (k x d f32, row-major) of
 * the exact ||x - c||^2 (dot: of -x.c), ties to the lowest index. x is the f32 row as the
 * contract defines it (normalised for cosine, as are the centroids). scratch holds
 * FKM_EXACT_SCRATCH_DOUBLES(k) doubles, cand k int64. Inputs must be finite. */
int32_t fkm_exact_argmin(const float *x, const float *C, int64_t k, int64_t d, int dot, double *scratch,
                         int64_t *cand);

/* fkm_exact_argmin for m rows (m x d f32, row-major) on n_threads threads: labels[i] for row
 * i. For a backend that gathers its uncertain rows (the CUDA backend). Returns 0, or -1 when
 * the scratch could not be allocated (labels then unspecified). */
int fkm_exact_argmin_rows(const float *rows, int64_t m, const float *C, int64_t k, int64_t d, int dot,
                          int n_threads, int32_t *labels);

#ifdef __cplusplus
}
#endif

#endif
