/* top3_sim.h — shared by tests/test_top3_sim.c (host) and tests/cuda/test_top3_device.cu
 * (device): the previous version of the exact mode's per-tile top-3 fold, kept to check the
 * current one (fkm_top3_tile, src/core/top3.h) against it bit for bit, and the generators of
 * adversarial score tiles in the kernels' accumulator layout. */
#ifndef FKM_TEST_TOP3_SIM_H
#define FKM_TEST_TOP3_SIM_H

#include "core/top3.h"
#include "splitmix.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAXNQ 16
#define POISON -1e30f /* the accumulator slots of the other row: reading them would show */

/* ---------------------------------------------------------------- the previous version */

/* fkm_top3_tile as of b92a4fe, fminf / fmaxf written as the device's min / max. */
static inline FKM_HD void top3_tile_old(fkm_top3 *t, const float *a, int nq, int32_t col0)
{
    float l1 = t->s1, l2 = t->s2, l3 = t->s3;
    for (int q = 0; q < 2 * nq; q++) {
        const float v = a[(q >> 1) * 4 + (q & 1)];
        l3 = fkm_top3_min(l3, fkm_top3_max(l2, v));
        l2 = fkm_top3_min(l2, fkm_top3_max(l1, v));
        l1 = fkm_top3_min(l1, v);
    }
    if (l1 < t->s1 || l2 < t->s2) {
        /* scanning down: j1, j1b = the lowest and second-lowest tile columns holding l1,
         * j2 = the lowest holding l2 */
        int32_t j1 = -1, j1b = -1, j2 = -1;
        for (int q = 2 * nq - 1; q >= 0; q--) {
            const float v = a[(q >> 1) * 4 + (q & 1)];
            const int32_t col = col0 + (q >> 1) * 8 + (q & 1);
            if (v == l2) j2 = col;
            if (v == l1) j1b = j1, j1 = col;
        }
        if (l1 < t->s1) { /* a new best, from the tile; the old best is a candidate second */
            t->i2 = l2 == t->s1 ? t->i1 : l2 == l1 ? j1b : j2;
            t->i1 = j1;
        } else { /* the best stays (an equal tile score has a higher index); l2 < s2 is new */
            t->i2 = j2;
        }
    }
    t->s1 = l1, t->s2 = l2, t->s3 = l3;
}

/* ---------------------------------------------------------------- helpers */

static inline uint32_t rng_below(uint64_t *s, uint32_t n) { return (uint32_t)(((rng_next(s) >> 32) * (uint64_t)n) >> 32); }

static inline FKM_HD uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* bit-for-bit equality of two states: every field, indices included (the kernels store i2
 * even where s2 is +inf) */
static inline FKM_HD int same(const fkm_top3 *x, const fkm_top3 *y)
{
    return fbits(x->s1) == fbits(y->s1) && fbits(x->s2) == fbits(y->s2) && fbits(x->s3) == fbits(y->s3) &&
           x->i1 == y->i1 && x->i2 == y->i2;
}

static const float top3_special[] = {0.0f, -0.0f, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN,
                                0x1p-149f, -0x1p-149f, 1.0f, -1.0f, 2.0f, 0x1.000002p0f};

/* One score of the kind the sequence draws: mode 0 a few levels (ties everywhere), 1 a few
 * levels and special values, 2 continuous, 3 continuous with rare specials, 4 two levels. */
static inline float draw(uint64_t *s, int mode, int levels)
{
    switch (mode) {
    case 0: return (float)rng_below(s, (uint32_t)levels) - 2.0f;
    case 1:
        if (rng_below(s, 4) == 0) return top3_special[rng_below(s, sizeof top3_special / sizeof top3_special[0])];
        return (float)rng_below(s, (uint32_t)levels) - 2.0f;
    case 2: return (float)((double)(rng_next(s) >> 11) * 0x1p-53 * 200.0 - 100.0);
    case 3:
        if (rng_below(s, 64) == 0) return top3_special[rng_below(s, sizeof top3_special / sizeof top3_special[0])];
        return (float)((double)(rng_next(s) >> 11) * 0x1p-53 * 2.0 - 1.0);
    default: return rng_below(s, 2) ? 0.0f : -0.0f;
    }
}


/* A tile of 2 nq scores in the accumulator layout (a[4 q + e], e < 2; e >= 2 poison). shape:
 * 0 independent draws, 1 one value repeated, 2 the previous tile's scores (duplicate
 * centroids), 3 sorted ascending, 4 sorted descending, 5 all +inf (padding), 6 a few columns
 * drawn, the rest copies of them. */
static inline void make_tile(uint64_t *s, float *a, const float *prev, int nq, int mode, int levels, int shape)
{
    float v[2 * MAXNQ];
    const int n = 2 * nq;
    if (shape == 1) {
        const float x = draw(s, mode, levels);
        for (int q = 0; q < n; q++) v[q] = x;
    } else if (shape == 2 && prev) {
        for (int q = 0; q < n; q++) v[q] = prev[(q >> 1) * 4 + (q & 1)];
        if (rng_below(s, 2)) v[rng_below(s, (uint32_t)n)] = draw(s, mode, levels);
    } else if (shape == 5) {
        for (int q = 0; q < n; q++) v[q] = INFINITY;
    } else if (shape == 6) {
        const int k = 1 + (int)rng_below(s, 3);
        float base[3];
        for (int j = 0; j < k; j++) base[j] = draw(s, mode, levels);
        for (int q = 0; q < n; q++) v[q] = base[rng_below(s, (uint32_t)k)];
    } else {
        for (int q = 0; q < n; q++) v[q] = draw(s, mode, levels);
        if (shape == 3 || shape == 4) { /* insertion sort by the numeric order (ties keep their order) */
            for (int i = 1; i < n; i++)
                for (int j = i; j > 0 && (shape == 3 ? v[j] < v[j - 1] : v[j] > v[j - 1]); j--) {
                    const float x = v[j];
                    v[j] = v[j - 1], v[j - 1] = x;
                }
        }
    }
    for (int q = 0; q < nq; q++) a[4 * q] = v[2 * q], a[4 * q + 1] = v[2 * q + 1], a[4 * q + 2] = a[4 * q + 3] = POISON;
}

/* The definition in top3.h by brute force over columns 0..k-1 (numeric < : the lowest index
 * among numerically equal scores). Values are compared numerically only (brute force does not
 * order -0 and +0). */
static inline fkm_top3 brute(const float *v, int k)
{
    fkm_top3 t = {INFINITY, INFINITY, INFINITY, -1, -1};
    for (int c = 0; c < k; c++)
        if (v[c] < t.s1) t.s1 = v[c], t.i1 = c;
    for (int c = 0; c < k; c++)
        if (c != t.i1 && v[c] < t.s2) t.s2 = v[c], t.i2 = c;
    for (int c = 0; c < k; c++)
        if (c != t.i1 && c != t.i2 && v[c] < t.s3) t.s3 = v[c];
    return t;
}

/* A state as the kernels could hold one: three values sorted in the device's total order
 * (fkm_top3_min), i1 != i2 below col0. */
static inline fkm_top3 random_state(uint64_t *s, int mode, int levels, int32_t col0)
{
    float x[3];
    for (int j = 0; j < 3; j++) x[j] = draw(s, mode, levels);
    for (int j = 0; j < 2; j++) /* three compare-exchanges */
        for (int i = 0; i < 2 - j; i++) {
            const float lo = fkm_top3_min(x[i], x[i + 1]), hi = fkm_top3_max(x[i], x[i + 1]);
            x[i] = lo, x[i + 1] = hi;
        }
    fkm_top3 t = {x[0], x[1], x[2], 0, 0};
    if (col0 >= 2) {
        t.i1 = (int32_t)rng_below(s, (uint32_t)col0);
        do t.i2 = (int32_t)rng_below(s, (uint32_t)col0);
        while (t.i2 == t.i1);
    }
    return t;
}

#endif
