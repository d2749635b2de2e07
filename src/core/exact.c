/* exact.c — the exact argmin of certified mode (exact.h; the proof is in docs/EXACTNESS.md).
 *
 * Two stages. (1) Every centroid's score in double with a rigorous error radius: a centroid
 * whose lowest possible score exceeds the highest possible score of another cannot be the
 * argmin. (2) The survivors (usually one; several only for ties or near-ties within ~d * 2^-53
 * relative) are compared exactly: each score is summed with no rounding in a fixed-point
 * accumulator, after error-free transformations (TwoSum, TwoProduct) split every term into
 * doubles. The lowest index wins exact ties. */
#include "exact.h"
#include "exact_acc.h"
#include "exact_filter.h"

#include <math.h>
#include <stdlib.h>

/* a - b = s + e exactly (Knuth's TwoSum; no overflow for f32 inputs held in doubles). */
static void two_sum(double a, double b, double *s, double *e)
{
    const double x = a + b, bv = x - a, av = x - bv;
    *s = x;
    *e = (a - av) + (b - bv);
}

/* a * b = p + e exactly: e = fma(a, b, -p) is exact when the exponents of a and b sum to at
 * least -969, true here (every operand is a multiple of 2^-149). */
static void add_product(fkm_acc *acc, double a, double b)
{
    const double p = a * b;
    fkm_acc_add(acc, p);
    fkm_acc_add(acc, fma(a, b, -p));
}

/* The exact score: sum_j (x_j - c_j)^2, or -sum_j x_j c_j for dot. */
static void exact_score(const float *x, const float *c, int64_t d, int dot, fkm_acc *acc)
{
    fkm_acc_zero(acc);
    for (int64_t j = 0; j < d; j++) {
        if (dot) {
            fkm_acc_add(acc, -((double)x[j] * (double)c[j])); /* 48-bit product: exact */
            continue;
        }
        double s, e;
        two_sum((double)x[j], -(double)c[j], &s, &e); /* x_j - c_j = s + e */
        add_product(acc, s, s);                       /* (s + e)^2 = s^2 + 2se + e^2 */
        add_product(acc, 2.0 * s, e);
        add_product(acc, e, e);
    }
}

int32_t fkm_exact_argmin(const float *x, const float *C, int64_t k, int64_t d, int dot, double *scratch,
                         int64_t *cand)
{
    /* Stage 1 (exact_filter.h): each score's interval [s - r, s + r] holds the exact
     * score; a centroid whose interval lies above another's cannot be the argmin. */
    double *lo = scratch, *hi = scratch + k;
    double best_hi = INFINITY;
    for (int64_t c = 0; c < k; c++) {
        double r;
        const double s = fkm_exact_approx(x, C + c * d, d, dot, &r);
        lo[c] = s - r;
        hi[c] = s + r;
        if (hi[c] < best_hi) best_hi = hi[c];
    }
    int64_t m = 0;
    for (int64_t c = 0; c < k; c++)
        if (lo[c] <= best_hi) cand[m++] = c;
    if (m == 1) return (int32_t)cand[0];

    /* Stage 2: exact comparison of the survivors, in increasing index order, strict
     * improvement only (ties keep the lower index). */
    fkm_acc best, cur;
    int32_t label = (int32_t)cand[0];
    exact_score(x, C + cand[0] * d, d, dot, &best);
    for (int64_t i = 1; i < m; i++) {
        exact_score(x, C + cand[i] * d, d, dot, &cur);
        if (fkm_acc_cmp(&cur, &best) < 0) {
            best = cur;
            label = (int32_t)cand[i];
        }
    }
    return label;
}

int fkm_exact_argmin_rows(const float *rows, int64_t m, const float *C, int64_t k, int64_t d, int dot,
                          int n_threads, int32_t *labels)
{
    int failed = 0;
#pragma omp parallel num_threads(n_threads > 0 ? n_threads : 1) reduction(| : failed)
    {
        double *scratch = malloc((size_t)FKM_EXACT_SCRATCH_DOUBLES(k) * sizeof(double));
        int64_t *cand = malloc((size_t)k * sizeof(int64_t));
        if (!scratch || !cand) failed = 1;
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < m; i++)
            if (scratch && cand) labels[i] = fkm_exact_argmin(rows + i * d, C, k, d, dot, scratch, cand);
        free(scratch);
        free(cand);
    }
    return failed ? -1 : 0;
}
