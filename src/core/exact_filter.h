/* exact_filter.h — stage 1 of the exact argmin (docs/EXACTNESS.md section 4): a centroid's
 * score in double with a rigorous radius, inline for host C (exact.c) and CUDA device code
 * (src/cuda/exact.cu), so both backends filter with the same proven arithmetic. */
#ifndef FKM_EXACT_FILTER_H
#define FKM_EXACT_FILTER_H

#include "cert.h" /* FKM_HD */

#include <math.h>
#include <stdint.h>

/* The double score sum_j (x_j - c_j)^2 (or -sum_j x_j c_j for dot), in index order, and
 * through *radius a bound on its distance from the exact score: every term is exact (dot) or
 * meets at most two roundings (l2), the sum d - 1 more, so |s - S| <= g M with
 * g = gamma^(64)_{d+2} and M the exact sum of the terms' magnitudes; 4 g mag covers that and
 * the roundings of the radius and of s +- radius (section 4). Fused multiply-adds only remove
 * roundings, so the bound holds with or without them. */
static inline FKM_HD double fkm_exact_approx(const float *x, const float *c, int64_t d, int dot, double *radius)
{
    double s = 0.0, m = 0.0;
    if (dot) {
        for (int64_t j = 0; j < d; j++) {
            const double t = (double)x[j] * (double)c[j];
            s -= t;
            m += fabs(t);
        }
    } else {
        for (int64_t j = 0; j < d; j++) {
            const double t = (double)x[j] - (double)c[j];
            s += t * t;
        }
        m = s;
    }
    const double nu = (double)(d + 2) * 0x1p-53, g = nu / (1.0 - nu);
    *radius = 4.0 * g * m;
    return s;
}

#endif
