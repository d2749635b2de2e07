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
 * meaningless indices) in the places left. Scores must not be NaN: a kernel's score is NaN
 * only after an overflow (inf - inf), and exact mode certifies no point whose fast-pass
 * intermediates could overflow (cert.h, fkm_cert_bound), so such a point's top-3 outputs,
 * whatever they are, decide nothing. */
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

/* min and max as the device's min.f32 / max.f32 (PTX ISA: a NaN operand gives the other one;
 * -0 < +0). On non-NaN floats that is a total order in which no two bit patterns tie, so
 * every min/max network that selects the k smallest elements of a multiset returns the same
 * bits, whatever its shape: what lets fkm_top3_tile below replace a sequential insertion by a
 * cheaper network without changing any output. On the device these are fminf / fmaxf, one
 * FMNMX each. On the host fminf / fmaxf leave the sign of a zero result open (x86's minss
 * returns its second operand on equal inputs), so the host copy spells the device rule out:
 * the host tests (tests/test_cert.c, tests/test_top3_sim.c) then compute what the device
 * does, signed zeros included. */
static inline FKM_HD float fkm_top3_min(float a, float b)
{
#ifdef __CUDA_ARCH__
    return fminf(a, b);
#else
    if (a != a) return b;
    if (b != b) return a;
    if (a == b) return signbit(a) ? a : b; /* -0 against +0; else the same bits */
    return a < b ? a : b;
#endif
}
static inline FKM_HD float fkm_top3_max(float a, float b)
{
#ifdef __CUDA_ARCH__
    return fmaxf(a, b);
#else
    if (a != a) return b;
    if (b != b) return a;
    if (a == b) return signbit(a) ? b : a;
    return a < b ? b : a;
#endif
}

/* Folds in one tile of scores as the MMA accumulator layout holds them for one row: pairs
 * a[4 q], a[4 q + 1] of columns col0 + 8 q and col0 + 8 q + 1, for q < nq, nq a power of two
 * at most 16 (the kernels: 16 and 8). Every column of the tile must exceed every column *t has
 * seen (tiles arrive in increasing column order), so that on equal scores the state's index,
 * the lower, is kept. The scores must not be NaN.
 *
 * The result is, bit for bit, that of inserting the tile's scores one at a time in column
 * order into (s1, s2, s3) with l3 = min(l3, max(l2, v)), l2 = min(l2, max(l1, v)),
 * l1 = min(l1, v), then searching i1 / i2 as the lowest columns holding l1 / l2 (the previous
 * version of this function, kept in tests/top3_sim.h; tests/test_top3_sim.c on the host and
 * tests/cuda/test_top3_device.cu on the GPU check the two against each other). The argument:
 *
 * Values. Both compute the three smallest elements of the multiset {s1, s2, s3} + tile,
 * sorted, with min and max only; under the device's total order (fkm_top3_min) those are
 * unique bit patterns. Here: (1) the tile's three smallest u1 <= u2 <= u3 by a knockout.
 * Pair the 2 nq scores: lows lo_i = min, highs hi_i = max. If some hi_j is among the three
 * smallest, so is lo_j <= hi_j, and any other hi_k < hi_j would bring lo_k, hi_k below it too
 * (rank >= 4); so the three smallest of the set are those of the lows plus h = min_k hi_k.
 * Repeating on the lows (nq, nq/2, ..., 1 values) leaves u1 = the tile's minimum and one h
 * per level: (u2, u3) = the two smallest of those log2(nq) + 1 values. 2 nq - 1 mins and
 * 2 nq - 1 maxes for the pairs, 2 nq - 2 - log2(nq) mins for the h, and for (u2, u3) 2 for
 * the first two h and 3 for each further one.
 * (2) The state merged with (u1, u2, u3) by a bitonic half-cleaner: c1 = min(s1, u3),
 * c2 = min(s2, u2), c3 = min(s3, u1) are the three smallest of the six (the state's first j
 * and the tile's first 3 - j, each c_i picking the one of its pair that belongs), in an order
 * that rises then falls, so l1 = min(c1, c3) and the other two are max(c1, c3) and c2,
 * sorted: 7 min/max. For the wgmma tile (nq = 16): 106 min/max per row, against 160 for the
 * insertion (5 per score).
 *
 * Indices, with < and == numeric (-0 == +0, as the old search compared): the old search ran
 * when l1 < s1 or l2 < s2, which for a sorted state is u1 < s2 (u1 < s1 gives l1 < s1;
 * s1 <= u1 < s2 gives l2 <= u1 < s2; u1 >= s2 leaves l1 = s1, l2 = s2). Then
 *   u1 < s1: the new best is u1, its column p1 the lowest holding u1 (the old j1, l1 = u1);
 *     the new second is l2 = min(s1, u2): u2 >= s1: s1, at the old i1 (the lowest column
 *     holding s1, all tile columns being higher; the old "l2 == s1 ? i1"); u2 < s1: u2, at
 *     the lowest column other than p1 holding u2 (the old j2, or j1b when u2 == u1);
 *   s1 <= u1 < s2: the best stays, the new second is l2 == u1 (numerically), at p1 (the old
 *     j2: the lowest column holding l2).
 * The search for p1 costs one compare and one select per score, the second search (u1 and u2
 * both below the old best) the same, or one more compare when u2 == u1. */
static inline FKM_HD void fkm_top3_tile(fkm_top3 *t, const float *a, int nq, int32_t col0)
{
    /* (1) the knockout: w holds the current level's lows, h[] each level's lowest high */
    float w[16], h[5];
    int nh = 0;
    {
        float hm = fkm_top3_max(a[0], a[1]);
        w[0] = fkm_top3_min(a[0], a[1]);
        FKM_UNROLL
        for (int q = 1; q < nq; q++) {
            w[q] = fkm_top3_min(a[4 * q], a[4 * q + 1]);
            hm = fkm_top3_min(hm, fkm_top3_max(a[4 * q], a[4 * q + 1]));
        }
        h[nh++] = hm;
    }
    FKM_UNROLL
    for (int lev = 0; lev < 4; lev++) {
        const int m = nq >> lev; /* lows at this level: 16, 8, 4, 2 for nq = 16 */
        if (m >= 2) {
            float hm = fkm_top3_max(w[0], w[1]);
            w[0] = fkm_top3_min(w[0], w[1]);
            FKM_UNROLL
            for (int i = 1; i < m / 2; i++) {
                const float x = w[2 * i], y = w[2 * i + 1];
                w[i] = fkm_top3_min(x, y);
                hm = fkm_top3_min(hm, fkm_top3_max(x, y));
            }
            h[nh++] = hm;
        }
    }
    const float u1 = w[0];
    float u2 = h[0], u3 = INFINITY;
    if (nh >= 2) {
        u2 = fkm_top3_min(h[0], h[1]);
        u3 = fkm_top3_max(h[0], h[1]);
        FKM_UNROLL
        for (int j = 2; j < nh; j++) {
            u3 = fkm_top3_min(u3, fkm_top3_max(u2, h[j]));
            u2 = fkm_top3_min(u2, h[j]);
        }
    }
    /* (2) the bitonic merge with the state */
    const float c1 = fkm_top3_min(t->s1, u3), c2 = fkm_top3_min(t->s2, u2), c3 = fkm_top3_min(t->s3, u1);
    const float lo = fkm_top3_min(c1, c3), hi = fkm_top3_max(c1, c3);
    const float l2 = fkm_top3_min(hi, c2), l3 = fkm_top3_max(hi, c2);
    /* the indices: positions are column offsets from col0, (q / 2) 8 + q % 2 for score q */
    if (u1 < t->s2) {
        int32_t p1 = 0;
        FKM_UNROLL
        for (int q = 2 * nq - 1; q >= 0; q--)
            if (a[(q >> 1) * 4 + (q & 1)] == u1) p1 = (q >> 1) * 8 + (q & 1);
        if (u1 < t->s1) {
            int32_t i2 = t->i1;
            if (u2 < t->s1) {
                int32_t p2 = 0;
                if (u2 != u1) {
                    FKM_UNROLL
                    for (int q = 2 * nq - 1; q >= 0; q--)
                        if (a[(q >> 1) * 4 + (q & 1)] == u2) p2 = (q >> 1) * 8 + (q & 1);
                } else { /* a tie for the best inside the tile: its second-lowest column. (== u2,
                          * numerically the same as == u1, keeps the compiler from holding the
                          * first search's 32 compares for this rare one, in a bit mask) */
                    FKM_UNROLL
                    for (int q = 2 * nq - 1; q >= 0; q--)
                        if (a[(q >> 1) * 4 + (q & 1)] == u2 && (q >> 1) * 8 + (q & 1) != p1) p2 = (q >> 1) * 8 + (q & 1);
                }
                i2 = col0 + p2;
            }
            t->i2 = i2;
            t->i1 = col0 + p1;
        } else {
            t->i2 = col0 + p1;
        }
    }
    t->s1 = lo, t->s2 = l2, t->s3 = l3;
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
    r.s3 = fkm_top3_min(fkm_top3_min(a.s3, b.s3), fkm_top3_min(fkm_top3_max(a.s2, b.s1), fkm_top3_max(a.s1, b.s2)));
    return r;
}

#endif
