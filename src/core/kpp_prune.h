/* kpp_prune.h — the triangle-inequality test that lets k-means++ skip a distance without
 * changing any output bit (docs/BENCH_KPP.md, "Pruning"), in one inline function that host
 * C (src/cpu/kmeanspp.c) and CUDA (src/cuda/kmeanspp.cu) both compile.
 *
 * Setting. Every squared distance k-means++ computes is an f32 chain over the d features of
 * two f32 rows: u = x_j - c_j rounded, then u * u added to the accumulator (one FMA, or a
 * rounded product and a rounded sum), features in any order, every term >= 0; or partial
 * chains of that kind over disjoint sets of features added together in any tree (the GPU's
 * table kpp_cc: 32 lane chains and a shuffle butterfly). Point x keeps
 * D = the computed distance to a centre c_a (the smallest so far). For a new row c (a
 * candidate, or the newest centre) and cc = the computed distance between c_a and c (the
 * same kind of chain), the test below proves that the computed distance d(x, c) is >= D,
 * so min(D, d(x, c)) == D and the distance need not be computed.
 *
 * Error model. A chain over d features has at most d + 3 roundings on the path of any term
 * (2 for u squared, 1 for a separate product, at most d for the additions: in a tree too,
 * each inexact addition on a term's path brings in a nonzero operand holding other terms,
 * disjoint from the previous ones', so there are at most d - 1 of them; adding an exact zero,
 * as an empty partial chain, is exact), and an addition
 * or subtraction whose result is subnormal is exact, so only an FMA or a product underflowing
 * adds an absolute error, <= 2^-150 each, at most d of them, each grown by <= (1 + u)^d < 2 on
 * its way. Hence, for a finite computed value v of the exact value s (finite v implies no
 * overflow anywhere in the chain, the accumulator being non-decreasing):
 *     (1 - g) s - A  <=  v  <=  (1 + g) s + A,    g = gamma_{d+3} = (d+3)u / (1 - (d+3)u),
 *     u = 2^-24,  A = d 2^-149.
 * Proof of the test. With r = ||x - c_a||, q = ||c_a - c||, t = ||x - c|| (exact, on the f32
 * rows), R^2 = (D + A) / (1 - g) >= r^2, and q^2 >= (cc - A) / (1 + g):
 *     cc >= 4 (D + A)(1 + g)/(1 - g) + A  =>  q >= 2R  =>  t >= q - r >= 2R - R = R
 *     =>  d(x, c) >= (1 - g) t^2 - A >= (1 - g) R^2 - A = D
 * (an infinite d(x, c) is >= D anyway). The limit is evaluated in double: the ~10 roundings of
 * 2^-53 are covered, with room, by the factor (1 + 2^-20); it is then rounded up to a float,
 * which changes no comparison with a float cc. A non-finite D (no centre yet) or cc (overflow)
 * proves nothing; weights do not enter. */
#ifndef FKM_KPP_PRUNE_H
#define FKM_KPP_PRUNE_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cert.h" /* FKM_HD */

typedef struct fkm_kpp_prune {
    double factor; /* 4 (1 + g) / (1 - g), times the safety factor; 0: pruning off */
    double slack;  /* A = d 2^-149 */
} fkm_kpp_prune;

/* The constants for rows of d features; enabled = 0 (or d too large for the model) gives a
 * test that never prunes. */
static inline FKM_HD fkm_kpp_prune fkm_kpp_prune_make(int64_t d, int enabled)
{
    fkm_kpp_prune p = {0.0, 0.0};
    const double nu = (double)(d + 3) * 0x1p-24;
    if (!enabled || d < 1 || !(nu <= 0.25)) return p;
    const double g = nu / (1.0 - nu);
    p.factor = 4.0 * (1.0 + g) / (1.0 - g) * (1.0 + 0x1p-20);
    p.slack = (double)d * 0x1p-149;
    return p;
}

/* The smallest cc (computed distance between the centre x is nearest to and a new row) that
 * proves d(x, new row) >= D, for x's computed distance D; +inf when nothing can be proved.
 * The bound is evaluated in double and rounded up to the next float: for a float cc,
 * cc >= that float exactly when cc >= the bound, and the test stays in f32 (vectorisable). */
static inline FKM_HD float fkm_kpp_prune_limit(const fkm_kpp_prune *p, float D)
{
    if (!(p->factor > 0.0) || !(D <= FLT_MAX)) return INFINITY;
    const double limit = ((double)D + p->slack) * p->factor + p->slack;
    float f = (float)limit;
    uint32_t b; /* rounded down: the next float up (f >= 0, so its bits + 1); no branch, the
                   outcome is a coin toss */
    memcpy(&b, &f, sizeof b);
    b += (uint32_t)((double)f < limit);
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Whether the new row at computed distance cc from x's centre is proved no closer than D
 * (limit from fkm_kpp_prune_limit): min(D, d(x, row)) == D bit for bit. */
static inline FKM_HD int fkm_kpp_pruned(float limit, float cc)
{
    return (cc <= FLT_MAX) & (cc >= limit); /* & not &&: no branch in the callers' loops */
}

/* Folds cc into m, the smallest cc of a centre's row (start from +inf), so that one test of
 * the fold decides whether every new row is pruned: a non-finite cc, which proves nothing,
 * makes the fold -1 for good, and -1 is never pruned. */
static inline FKM_HD float fkm_kpp_fold(float m, float cc)
{
    return cc <= FLT_MAX ? fminf(m, cc) : -1.0f;
}

/* Pruning is on unless the environment sets FLASHKM_KPP_NO_PRUNE=1 (an A/B switch for
 * benchmarks and tests: the outputs are the same either way). Host code only. */
static inline int fkm_kpp_prune_wanted(void)
{
    const char *e = getenv("FLASHKM_KPP_NO_PRUNE");
    return !(e && e[0] == '1' && e[1] == '\0');
}

#endif
