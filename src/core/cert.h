/* cert.h — the forward error bound that certifies a fast-pass label (docs/EXACTNESS.md,
 * sections 3 and 5), in one inline function that host C and CUDA device code both compile,
 * so that the CPU backend, the GPU certification kernel and the documentation share one
 * formula.
 *
 * A fast pass computes, for point x and centroid c (both f32), a score v approximating
 *   t = ||c||^2 - 2 x.c   (l2, cosine)   or   t = -x.c   (dot)
 * from operands xt = x rounded to the MMA type (relative u_x, absolute eta_x), ct = c rounded
 * (u_p, eta_p), a dot product accumulated with unit roundoff u_acc in any order, a norm term
 * n ~ ||ct||^2 with relative error eps_n, and one final f32 operation. fkm_cert_err bounds
 * |v - t| from the exact norms ||x||, ||c||. The CPU kernel is the case u_x = u_p = 0,
 * u_acc = 2^-24. */
#ifndef FKM_CERT_H
#define FKM_CERT_H

#include <math.h>

#ifdef __CUDACC__
#define FKM_HD __host__ __device__
#else
#define FKM_HD
#endif

#define FKM_CERT_U32 0x1p-24   /* f32 unit roundoff (round to nearest) */
#define FKM_CERT_ETA32 0x1p-150 /* largest absolute error of one f32 rounding below the normal range */

typedef struct fkm_cert {
    double d;
    double u_acc;        /* unit roundoff of the dot product's accumulation */
    double eta_acc;      /* absolute error of one of its operations below the normal range */
    double u_x, eta_x;   /* rounding of x to the operand type (0, 0: x used as is) */
    double u_p, eta_p;   /* rounding of c to the operand type */
    double eps_n;        /* relative error of the norm term against ||ct||^2 */
    double max_cnorm;    /* largest ||c|| the operand type holds without overflow */
    double sd, g;        /* sqrt(d) and gamma_d at u_acc, precomputed (fkm_cert_finish) */
    int dot;             /* score -x.c (no norm term) */
    int valid;           /* 0: the hypotheses fail (d too large): certify nothing */
} fkm_cert;

/* The bound E(x, c) >= |v - t| (EXACTNESS.md 5; 3.4 for the CPU), before the final inflation. */
static inline FKM_HD double fkm_cert_err(const fkm_cert *c, double nx, double nc)
{
    const double d = c->d, sd = c->sd, eta = FKM_CERT_ETA32, u = FKM_CERT_U32;
    const double ux = c->u_x, up = c->u_p, ex = c->eta_x, ep = c->eta_p;
    /* |xt.ct - x.c| and sum |xt_j ct_j| */
    const double cross = sd * ((1.0 + ux) * ep * nx + (1.0 + up) * ex * nc) + d * ex * ep;
    const double d1 = (ux + up + ux * up) * nx * nc + cross;
    const double p = (1.0 + ux) * (1.0 + up) * nx * nc + cross;
    /* accumulation: gamma_d at u_acc, plus underflow */
    const double g = c->g;
    const double d2 = g * p + 2.0 * d * c->eta_acc;
    if (c->dot) return d1 + d2; /* v = -q exactly */
    /* norm term: |n - ||c||^2| via ||ct||; then the final f32 operation on n - 2q */
    const double nct = (1.0 + up) * nc + sd * ep;
    const double dn = c->eps_n * nct * nct + 2.0 * d * eta + up * (2.0 + up) * nc * nc +
                      sd * ep * (2.0 + 2.0 * up) * nc + d * ep * ep;
    const double absn = (1.0 + c->eps_n) * nct * nct + 2.0 * d * eta;
    const double absq = (1.0 + g) * p + 2.0 * d * c->eta_acc;
    return dn + 2.0 * (d1 + d2) + u * (absn + 2.0 * absq) + eta;
}

/* Whether a point's fast label is certified (EXACTNESS.md 3.5): best and second are the
 * smallest and second-smallest computed scores (second over every centroid but the chosen
 * one), xnorm, best_cnorm and max_cnorm norms computed in double. Non-finite scores and
 * inputs that could overflow are never certified. */
static inline FKM_HD int fkm_cert_ok(const fkm_cert *c, float best, float second, double xnorm, double best_cnorm,
                                     double max_cnorm)
{
    if (!c->valid || !isfinite(best) || !isfinite(second) || !(max_cnorm <= c->max_cnorm)) return 0;
    const double t = xnorm + max_cnorm;
    if (!(4.0 * t * t <= 0x1p126)) return 0; /* every intermediate below 2^127 (3.5) */
    /* (1 + 2^-20) covers the double rounding of the norms and of this evaluation (3.5) */
    const double bound = (fkm_cert_err(c, xnorm, best_cnorm) + fkm_cert_err(c, xnorm, max_cnorm)) * (1.0 + 0x1p-20);
    return (double)second - (double)best > bound;
}

/* ---------------------------------------------------------------- cosine (EXACTNESS.md 5.1)
 *
 * The tensor-core pass scores v_k ~ -x.C_k on the RAW row x (fkm_cert_err with dot = 1 bounds
 * that error), while the contract compares y = fl32(fl64(inv x_j)), inv = the double
 * 1/sqrt(sum x_j^2) of fkm_load_row, with centroids C_k that are normalised only up to f32
 * rounding. Ranking by v is ranking by 1 + 2 inv v_k, and
 *   |(||C_k||^2 - 2 y.C_k) - (1 + 2 inv v_k)| <= mu + 2 inv E_k + 2 |(y - inv x).C_k|,
 * mu >= max_k | ||C_k||^2 - 1 |, |(y - inv x).C_k| <= u_y inv ||x|| ||C_k|| + eta32 sqrt(d) ||C_k||.
 * Divided by 2 inv (with 1 / (inv ||x||) <= 1 + 2^-30), the extra width in units of v is
 * fkm_cert_cos_extra. Library code and tests share these lines. */

#define FKM_CERT_U64 0x1p-53
/* An upper bound on ||y|| for every row normalised as fkm_load_row does (||y|| <= 1 + 2^-23,
 * or 0): the norm the f32 filter's CPU-kernel bound takes for cosine rows (EXACTNESS.md 5.1). */
#define FKM_CERT_COS_YNORM (1.0 + 0x1p-22)

/* mu_k >= | ||C_k||^2 - 1 |, from ss = a double sum (any order) of the exact squares of an f32
 * row of d <= 2^22 elements: |ss - ||C||^2| <= gamma^(64)_{d-1} ||C||^2 <= 2 (d + 1) u64 ss.
 * The four roundings of this evaluation (each relative <= u64, all terms non-negative) are
 * covered by the factor 1 + 2^-50 >= (1 - u64)^-4, so the value returned is itself a bound. */
static inline FKM_HD double fkm_cert_cos_mu(double ss, double d)
{
    return (fabs(ss - 1.0) + 2.0 * (d + 1.0) * FKM_CERT_U64 * ss) * (1.0 + 0x1p-50);
}

/* The cosine terms of the bound in units of v, for the best centroid and the largest norm
 * (both grow with ||C||); mu_max = the largest fkm_cert_cos_mu of the problem's centroids. */
static inline FKM_HD double fkm_cert_cos_extra(const fkm_cert *c, double xnorm, double best_cnorm, double max_cnorm,
                                               double mu_max)
{
    /* y_j = fl32(fl64(inv x_j)): two roundings, |y_j - inv x_j| <= u_y inv |x_j| + eta32 */
    const double uy = FKM_CERT_U32 + FKM_CERT_U64 + FKM_CERT_U32 * FKM_CERT_U64;
    const double rho = 1.0 + 0x1p-30; /* >= 1 / (inv ||x||) for d <= 2^22 */
    return xnorm * (rho * mu_max + (best_cnorm + max_cnorm) * (uy + rho * FKM_CERT_ETA32 * c->sd));
}

/* fkm_cert_ok for cosine (EXACTNESS.md 5.1): best and second (or third, for the pair test of
 * 3.6) are the computed -x.C scores of the raw row, c the tensor pass's dot-product bound
 * (c->dot = 1), xnorm = ||x|| of the raw row. Zero rows (no inv) are never certified. */
static inline FKM_HD int fkm_cert_cos_ok(const fkm_cert *c, float best, float second, double xnorm,
                                         double best_cnorm, double max_cnorm, double mu_max)
{
    if (!c->valid || !c->dot || !isfinite(best) || !isfinite(second) || !(max_cnorm <= c->max_cnorm) ||
        !(xnorm > 0.0) || !(mu_max >= 0.0))
        return 0;
    const double t = xnorm + max_cnorm;
    if (!(4.0 * t * t <= 0x1p126)) return 0; /* the fast pass's intermediates (3.5) */
    /* (1 + 2^-20): the double evaluation and the computed norms, as in fkm_cert_ok (3.5) */
    const double bound = (fkm_cert_err(c, xnorm, best_cnorm) + fkm_cert_err(c, xnorm, max_cnorm) +
                          fkm_cert_cos_extra(c, xnorm, best_cnorm, max_cnorm, mu_max)) *
                         (1.0 + 0x1p-20);
    return (double)second - (double)best > bound;
}

/* A cheaper sufficient test for the common case of a wide gap. For fixed ||c|| = max_cnorm,
 * fkm_cert_err is affine in ||x|| (every term is), and it grows with ||c||, so
 * E(x, c_best) + E(x, c_max) <= 2 (a + b ||x||) with a = E(0, max_cnorm) and
 * b = E(1, max_cnorm) - E(0, max_cnorm), each widened by 2^-44 relative for the double
 * evaluation of E (a few dozen roundings of 2^-53). Computed once per assignment. */
typedef struct fkm_cert_lin {
    double a, b, max_cnorm;
} fkm_cert_lin;

static inline FKM_HD fkm_cert_lin fkm_cert_linear(const fkm_cert *c, double max_cnorm)
{
    const double e0 = fkm_cert_err(c, 0.0, max_cnorm), e1 = fkm_cert_err(c, 1.0, max_cnorm);
    fkm_cert_lin l;
    l.a = e0 * (1.0 + 0x1p-44);
    l.b = (e1 - e0) + (e1 + e0) * 0x1p-44;
    l.max_cnorm = max_cnorm;
    return l;
}

/* fkm_cert_ok, trying the affine bound first (the same checks, then the same full test when
 * the cheap one does not decide). */
static inline FKM_HD int fkm_cert_ok_lin(const fkm_cert *c, const fkm_cert_lin *l, float best, float second,
                                         double xnorm, double best_cnorm)
{
    if (!c->valid || !isfinite(best) || !isfinite(second) || !(l->max_cnorm <= c->max_cnorm)) return 0;
    const double t = xnorm + l->max_cnorm;
    if (!(4.0 * t * t <= 0x1p126)) return 0;
    if ((double)second - (double)best > 2.0 * (l->a + l->b * xnorm) * (1.0 + 0x1p-20)) return 1;
    return fkm_cert_ok(c, best, second, xnorm, best_cnorm, l->max_cnorm);
}

#ifdef __cplusplus
extern "C" {
#endif
/* The CPU kernel (src/cpu/kernel.c): bias fl32(sum c_j^2 in double), f32 dot product with
 * one or two roundings per step, one final f32 multiply-add. */
fkm_cert fkm_cert_cpu(long long d, int dot);
/* The tensor-core kernels (src/cuda/assign.cu): dtype 0 = f32 input (TF32 operands: x
 * truncated, c rounded to nearest), 1 = f16, 2 = bf16 (fkm_dtype values); norm term an f32
 * sum of the rounded centroid's squares; accumulation per assumption (A), u_acc = 2^-22. */
fkm_cert fkm_cert_tensor(long long d, int dot, int dtype);
#ifdef __cplusplus
}
#endif

#endif
