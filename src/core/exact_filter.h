/* exact_filter.h — stage 1 of the exact argmin (docs/EXACTNESS.md section 4): a centroid's
 * score in double with a rigorous radius, inline for host C (exact.c); the CUDA filters
 * (src/cuda/exact.cu) sum the same terms in their own order and take the same radius, which
 * the proof allows (any summation order, fused or not). */
#ifndef FKM_EXACT_FILTER_H
#define FKM_EXACT_FILTER_H

#include "cert.h" /* FKM_HD */

#include <math.h>
#include <stdint.h>

/* 4 gamma^(64)_{d+2}: the radius of a double score's interval per unit of its computed sum
 * of term magnitudes (section 4), shared by this file and the CUDA filters (exact.cu). */
static inline FKM_HD double fkm_exact_radius_factor(int64_t d)
{
    const double nu = (double)(d + 2) * 0x1p-53, g = nu / (1.0 - nu);
    return 4.0 * g;
}

/* The double score sum_j (x_j - c_j)^2 (or -sum_j x_j c_j for dot), in a fixed order, and
 * through *radius a bound on its distance from the exact score: every term is exact (dot) or
 * meets at most two roundings (l2), the sum at most d - 1 more in any order, so |s - S| <= g M with
 * g = gamma^(64)_{d+2} and M the exact sum of the terms' magnitudes; 4 g mag covers that and
 * the roundings of the radius and of s +- radius (section 4). Fused multiply-adds only remove
 * roundings, so the bound holds with or without them. */
static inline FKM_HD double fkm_exact_approx(const float *x, const float *c, int64_t d, int dot, double *radius)
{
    /* four interleaved partial sums: a latency-bound single chain would make this filter
     * cost as much as a fast pass for the point; any summation order keeps the bound (each
     * term still meets at most d + 1 roundings) */
    double s[4] = {0.0, 0.0, 0.0, 0.0}, m[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t j = 0;
    if (dot) {
        for (; j + 4 <= d; j += 4)
            for (int l = 0; l < 4; l++) {
                const double t = (double)x[j + l] * (double)c[j + l];
                s[l] -= t;
                m[l] += fabs(t);
            }
        for (int l = 0; j < d; j++, l++) {
            const double t = (double)x[j] * (double)c[j];
            s[l] -= t;
            m[l] += fabs(t);
        }
    } else {
        for (; j + 4 <= d; j += 4)
            for (int l = 0; l < 4; l++) {
                const double t = (double)x[j + l] - (double)c[j + l];
                s[l] += t * t;
            }
        for (int l = 0; j < d; j++, l++) {
            const double t = (double)x[j] - (double)c[j];
            s[l] += t * t;
        }
    }
    const double sum = (s[0] + s[1]) + (s[2] + s[3]);
    const double mag = dot ? (m[0] + m[1]) + (m[2] + m[3]) : sum;
    *radius = fkm_exact_radius_factor(d) * mag;
    return sum;
}

#endif
