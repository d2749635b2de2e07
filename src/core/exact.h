/* exact.h — certified-exact assignment pieces shared by every backend (docs/EXACTNESS.md):
 * the error bound that certifies a fast-pass label, and the exact argmin that re-decides the
 * points the bound cannot certify. Plain C on the host: the CUDA backend copies its few
 * uncertain rows here. */
#ifndef FKM_EXACT_H
#define FKM_EXACT_H

#include "flashkm.h"

#include <stdint.h>

/* ---------------------------------------------------------------- certification
 *
 * Coefficients of the forward error bound of one computed score v_k of a fast pass:
 *   |v_k - t_k| <= a ||c_k||^2 + b ||x|| ||c_k|| + c
 * where t_k = ||c_k||^2 - 2 x.c_k (l2, cosine) or -x.c_k (dot) is the exact value of what the
 * pass computes, and the norms are the exact Euclidean norms of the f32 row and centroid.
 * valid = 0 when the bound's hypotheses fail (d too large): then nothing is certified. */
typedef struct fkm_cert {
    double a, b, c;
    int valid;
} fkm_cert;

/* The CPU kernel (src/cpu/kernel.c): bias fl32(sum_j c_j^2 in double), dot product over d
 * f32 multiply-adds in any order (fused or not), one final f32 multiply-add. */
fkm_cert fkm_cert_cpu(int64_t d, fkm_metric metric);

/* Whether a point's fast label is certified: best and second are the smallest and
 * second-smallest computed scores (second over all centroids but the best one), xnorm and
 * best_cnorm norms computed in double from the f32 values (sqrt of a sum of squares),
 * max_cnorm the largest such centroid norm. Rigorous for any inputs: non-finite or
 * overflow-prone values are simply not certified. */
int fkm_cert_ok(const fkm_cert *cert, float best, float second, double xnorm, double best_cnorm,
                double max_cnorm);

/* ---------------------------------------------------------------- exact argmin */

/* Doubles and int64 of scratch fkm_exact_argmin needs for k centroids. */
#define FKM_EXACT_SCRATCH_DOUBLES(k) (2 * (k))

/* The certified label of one point: argmin over the k centroids C (k x d f32, row-major) of
 * the exact ||x - c||^2 (dot: of -x.c), ties to the lowest index. x is the f32 row as the
 * contract defines it (normalised for cosine, as are the centroids). scratch holds
 * FKM_EXACT_SCRATCH_DOUBLES(k) doubles, cand k int64. Inputs must be finite. */
int32_t fkm_exact_argmin(const float *x, const float *C, int64_t k, int64_t d, int dot, double *scratch,
                         int64_t *cand);

#endif
