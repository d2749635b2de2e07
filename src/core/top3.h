/* top3.h — a point's three smallest fast-pass scores and the indices of the first two, as the
 * exact mode's tensor-core instantiations keep them (docs/EXACTNESS.md 3.6). Inline code for
 * the CUDA kernels (src/cuda/assign.cu, assign_wgmma.cu) that host C compiles too, so that
 * tests/test_cert.c checks the very functions the kernels run against brute force.
 *
 * Semantics, over the columns (centroid indices) a state has seen, with v_k their scores:
 *   s1, i1: the smallest score, i1 the lowest index holding it;
 *   s2, i2: the smallest score over every column but i1, i2 the lowest such index holding it;
 *   s3:     the smallest score over every column but i1 and i2.
 * s1 <= s2 <= s3 are the three smallest elements of the multiset {v_k} (so an exact tie in v
 * gives equal values), whatever the tie rules; only i1 and i2 depend on them. Columns never
 * seen count as +inf; a state that has seen fewer than three finite scores holds +inf (and
 * meaningless indices) in the places left. NaN scores are skipped by the minima (fminf). */
#ifndef FKM_TOP3_H
#define FKM_TOP3_H

#include "cert.h" /* FKM_HD */

#include <math.h>
#include <stdint.h>

#ifdef __CUDA_ARCH__ /* the device pass; host compilers do not know the pragma */
#define FKM_UNROLL _Pragma("unroll")
#else
#define FKM_UNROLL
#endif

typedef struct fkm_top3 {
    float s1, s2, s3;
    int32_t i1, i2;
} fkm_top3;

/* Folds in one tile of scores as the MMA accumulator layout holds them for one row: pairs
 * a[4 q], a[4 q + 1] of columns col0 + 8 q and col0 + 8 q + 1, for q < nq. Every column of the
 * tile must exceed every column *t has seen (tiles arrive in increasing column order), so
 * that on equal scores the state's index, the lower, is kept. The three values cost 5
 * min/max per score; the indices are searched only when s1 or s2 drops, which after the first
 * tiles is rare (the fast kernels find their best index the same lazy way). */
static inline FKM_HD void fkm_top3_tile(fkm_top3 *t, const float *a, int nq, int32_t col0)
{
    float l1 = t->s1, l2 = t->s2, l3 = t->s3;
    FKM_UNROLL
    for (int q = 0; q < 2 * nq; q++) {
        const float v = a[(q >> 1) * 4 + (q & 1)];
        l3 = fminf(l3, fmaxf(l2, v));
        l2 = fminf(l2, fmaxf(l1, v));
        l1 = fminf(l1, v);
    }
    if (l1 < t->s1 || l2 < t->s2) {
        /* scanning down: j1, j1b = the lowest and second-lowest tile columns holding l1,
         * j2 = the lowest holding l2 */
        int32_t j1 = -1, j1b = -1, j2 = -1;
        FKM_UNROLL
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

/* The state of the union of two disjoint column sets (lanes or warps of one row). */
static inline FKM_HD fkm_top3 fkm_top3_merge(fkm_top3 a, fkm_top3 b)
{
    const int a_best = a.s1 < b.s1 || (a.s1 == b.s1 && a.i1 < b.i1);
    fkm_top3 r;
    r.s1 = a_best ? a.s1 : b.s1;
    r.i1 = a_best ? a.i1 : b.i1;
    /* without the best, its own set offers its second, the other set its best */
    const float ps = a_best ? a.s2 : a.s1, qs = a_best ? b.s1 : b.s2;
    const int32_t pi = a_best ? a.i2 : a.i1, qi = a_best ? b.i1 : b.i2;
    const int p_wins = ps < qs || (ps == qs && pi < qi);
    r.s2 = p_wins ? ps : qs;
    r.i2 = p_wins ? pi : qi;
    /* the third smallest of two sorted triples: min over i + j = 3 of max(a_i, b_j) */
    r.s3 = fminf(fminf(a.s3, b.s3), fminf(fmaxf(a.s2, b.s1), fmaxf(a.s1, b.s2)));
    return r;
}

#endif
