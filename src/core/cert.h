/* cert.h — the forward error bound that certifies a fast-pass label (docs/EXACTNESS.md,
 * sections 3 and 5), in one inline function that host C and CUDA device code both compile,
 * so that the CPU backend, the GPU certification kernel and the documentation share one
 * formula.
 *
 * A fast pass computes, for point x and centroid c (both f32), a score v approximating
 *   t = ||c||^2 - 2 x.c   (l2, cosine)   or   t = -x.c   (dot)
 * from operands xt = x rounded to the MMA type (relative u_x, absolute eta_x), ct = c rounded
 * (u_p, eta_p), a dot product accumulated with unit roundoff u_acc in any order, a norm term
 * n ~ ||ct||^2 with relative error eps_n, and one final f32 operation. fkm_cert_err_d bounds
 * |v - t| from the norms ||x||, ||c|| and bounds on ||xt - x||, ||ct - c||: those of the model
 * (fkm_cert_err), or, tighter, measured on the operands the kernels actually use
 * (fkm_cert_elem_err, fkm_cert_delta: EXACTNESS.md 5.2). The CPU kernel is the case
 * u_x = u_p = 0, u_acc = 2^-24. */
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

/* The bound E >= |v - t| (EXACTNESS.md 5.2; 3.4 for the CPU), before the final inflation, from
 * the norms ||x||, ||c|| and upper bounds dx >= ||xt - x||, dc >= ||ct - c|| on the rounding of
 * the operands to the MMA type (the values the tensor cores use, flushes included), either
 * measured (fkm_cert_delta) or from the model (fkm_cert_dx, fkm_cert_dc). E grows with each of
 * nx, dx, nc, dc (every coefficient is non-negative). */
static inline FKM_HD double fkm_cert_err_d(const fkm_cert *c, double nx, double dx, double nc, double dc)
{
    const double d = c->d, eta = FKM_CERT_ETA32, u = FKM_CERT_U32;
    const double nct = nc + dc; /* >= ||ct|| */
    /* |xt.ct - x.c| <= ||xt - x|| ||ct|| + ||x|| ||ct - c||, and sum |xt_j ct_j| <= ||xt|| ||ct|| */
    const double d1 = dx * nct + nx * dc;
    const double p = (nx + dx) * nct;
    /* accumulation: gamma_d at u_acc, plus underflow */
    const double g = c->g;
    const double d2 = g * p + 2.0 * d * c->eta_acc;
    if (c->dot) return d1 + d2; /* v = -q exactly */
    /* norm term: |n - ||c||^2| <= |n - ||ct||^2| + ||ct - c|| (||ct|| + ||c||); then the final
     * f32 operation on n - 2q */
    const double dn = c->eps_n * nct * nct + 2.0 * d * eta + dc * (nct + nc);
    const double absn = (1.0 + c->eps_n) * nct * nct + 2.0 * d * eta;
    const double absq = (1.0 + g) * p + 2.0 * d * c->eta_acc;
    return dn + 2.0 * (d1 + d2) + u * (absn + 2.0 * absq) + eta;
}

/* The model's bounds on the operand rounding: ||xt - x|| <= u_x ||x|| + sqrt(d) eta_x,
 * ||ct - c|| <= u_p ||c|| + sqrt(d) eta_p (elementwise |a_j| <= u |v_j| + eta, then the
 * triangle inequality). 0 for the CPU kernel. */
static inline FKM_HD double fkm_cert_dx(const fkm_cert *c, double nx) { return c->u_x * nx + c->sd * c->eta_x; }
static inline FKM_HD double fkm_cert_dc(const fkm_cert *c, double nc) { return c->u_p * nc + c->sd * c->eta_p; }

/* The bound with the model's operand rounding (EXACTNESS.md 5; 3.4 for the CPU). */
static inline FKM_HD double fkm_cert_err(const fkm_cert *c, double nx, double nc)
{
    return fkm_cert_err_d(c, nx, fkm_cert_dx(c, nx), nc, fkm_cert_dc(c, nc));
}

/* ---------------------------------------------------------------- measured operand rounding
 *
 * EXACTNESS.md 5.2: for one element v (an f32 value) and vt, its operand copy as the kernels
 * store it (both exact in double), a bound on |v' - v| for every value v' the tensor core may
 * use: vt itself, or, when flush is set (bf16 and TF32 operands, assumption (A')) and vt is
 * below the f32 normal range, possibly 0. vt is a rounding of v to nearest (so |v - vt| <= |v|)
 * or, for the TF32 x operand, the truncation rz(v), which bounds the rounding to nearest too. */
#define FKM_CERT_NORMAL32 0x1p-126 /* the smallest normal f32 */

static inline FKM_HD double fkm_cert_elem_err(float v, float vt, int flush)
{
    const double a = (double)v, e = fabs(a - (double)vt);
    return flush && fabs((double)vt) < FKM_CERT_NORMAL32 ? fmax(e, fabs(a)) : e;
}

/* An upper bound on ||e|| from ss = a double sum, in any order, of the d <= 2^22 squares
 * e_j * e_j of fkm_cert_elem_err's values: the computed sum is >= (1 - gamma^(64)_{d+1}) ||e||^2
 * (each e_j and its square meet at most two roundings, the sum d - 1 more; no underflow, every
 * nonzero e_j >= 2^-149), the sqrt and the product below one each; the factor 1 + 2^-30
 * covers all of it: (1 - 2^-30.9)^(1/2) (1 - u64)^2 (1 + 2^-30) > 1. */
static inline FKM_HD double fkm_cert_delta(double ss) { return sqrt(ss) * (1.0 + 0x1p-30); }

/* A point's operand data for the tests below: norms computed in double (any order), and
 * upper bounds on the operand rounding, measured (fkm_cert_delta) or from the model. "max"
 * are the largest over the problem's centroids (E grows with both, so E(x, c_k) <=
 * E(x, max) for every k: EXACTNESS.md 3.5, 5.2); they need not belong to one centroid. */
typedef struct fkm_cert_pt {
    double xnorm, xdelta;           /* ||x||, >= ||xt - x|| */
    double best_cnorm, best_cdelta; /* the chosen centroid's ||c||, >= ||ct - c|| */
    double max_cnorm, max_cdelta;   /* the problem's largest ||c_k||, largest bound on ||ct_k - c_k|| */
} fkm_cert_pt;

/* The model's operand bounds (fkm_cert_dx, fkm_cert_dc) for the given norms: the CPU path
 * (all 0) and the tests of the unmeasured bound. */
static inline FKM_HD fkm_cert_pt fkm_cert_pt_model(const fkm_cert *c, double xnorm, double best_cnorm,
                                                   double max_cnorm)
{
    fkm_cert_pt p;
    p.xnorm = xnorm, p.xdelta = fkm_cert_dx(c, xnorm);
    p.best_cnorm = best_cnorm, p.best_cdelta = fkm_cert_dc(c, best_cnorm);
    p.max_cnorm = max_cnorm, p.max_cdelta = fkm_cert_dc(c, max_cnorm);
    return p;
}

/* E(x, c_best) + E(x, c_max) + extra (cosine's terms, 5.1; else 0), inflated by (1 + 2^-20)
 * for the double rounding of the norms and of this evaluation (3.5); +inf where the point may
 * not be certified at all (the hypotheses fail, a centroid norm beyond the operand type's
 * range, or an intermediate of the fast pass that could overflow). */
static inline FKM_HD double fkm_cert_bound(const fkm_cert *c, const fkm_cert_pt *p, double extra)
{
    if (!c->valid || !(p->max_cnorm <= c->max_cnorm)) return INFINITY;
    const double t = p->xnorm + p->max_cnorm;
    if (!(4.0 * t * t <= 0x1p126)) return INFINITY; /* every intermediate below 2^127 (3.5) */
    return (fkm_cert_err_d(c, p->xnorm, p->xdelta, p->best_cnorm, p->best_cdelta) +
            fkm_cert_err_d(c, p->xnorm, p->xdelta, p->max_cnorm, p->max_cdelta) + extra) *
           (1.0 + 0x1p-20);
}

/* Whether a point's fast label is certified (EXACTNESS.md 3.5): best and second are the
 * smallest and second-smallest computed scores (second over every centroid but the chosen
 * one; or the third, for the pair test of 3.6). Non-finite scores and inputs that could
 * overflow are never certified (a NaN bound compares false). */
static inline FKM_HD int fkm_cert_ok_pt(const fkm_cert *c, float best, float second, const fkm_cert_pt *p)
{
    if (!isfinite(best) || !isfinite(second)) return 0;
    return (double)second - (double)best > fkm_cert_bound(c, p, 0.0);
}

/* The same with the model's operand bounds: the CPU kernel (no operand rounding). */
static inline FKM_HD int fkm_cert_ok(const fkm_cert *c, float best, float second, double xnorm, double best_cnorm,
                                     double max_cnorm)
{
    const fkm_cert_pt p = fkm_cert_pt_model(c, xnorm, best_cnorm, max_cnorm);
    return fkm_cert_ok_pt(c, best, second, &p);
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

/* fkm_cert_ok_pt for cosine (EXACTNESS.md 5.1): best and second (or third, for the pair test
 * of 3.6) are the computed -x.C scores of the raw row, c the tensor pass's dot-product bound
 * (c->dot = 1), p->xnorm = ||x|| of the raw row (its operand bounds likewise). Zero rows (no
 * inv) are never certified. */
static inline FKM_HD int fkm_cert_cos_ok_pt(const fkm_cert *c, float best, float second, const fkm_cert_pt *p,
                                            double mu_max)
{
    if (!c->dot || !isfinite(best) || !isfinite(second) || !(p->xnorm > 0.0) || !(mu_max >= 0.0)) return 0;
    const double extra = fkm_cert_cos_extra(c, p->xnorm, p->best_cnorm, p->max_cnorm, mu_max);
    return (double)second - (double)best > fkm_cert_bound(c, p, extra);
}

/* The candidate threshold (EXACTNESS.md 5.4): for a point whose computed best score is best
 * (over every centroid), every exact argmin k has a computed score v_k <= the value returned,
 * in any pass whose scores obey the same bound (E_k <= E_max: every tensor-core kernel, the
 * same operands). l2 and dot: t_k <= t_i gives v_k <= t_k + E_k <= t_i + E_max <= best + E_i +
 * E_max. Cosine (c the dot product's bound, mu_max as for fkm_cert_cos_ok_pt): the same in
 * units of v with 5.1's terms. Rounded up: the double sum is widened by 2^-50 of itself (one rounding of 2^-53);
 * the float compare is the caller's (round up again). +inf where the point may not be
 * certified at all (fkm_cert_bound's conditions, a zero cosine row, a non-finite best). */
static inline FKM_HD double fkm_cert_threshold_pt(const fkm_cert *c, float best, const fkm_cert_pt *p, int cosine,
                                                  double mu_max)
{
    if (!isfinite(best)) return INFINITY;
    double extra = 0.0;
    if (cosine) {
        if (!c->dot || !(p->xnorm > 0.0) || !(mu_max >= 0.0)) return INFINITY;
        extra = fkm_cert_cos_extra(c, p->xnorm, p->best_cnorm, p->max_cnorm, mu_max);
    }
    const double t = (double)best + fkm_cert_bound(c, p, extra);
    return t + fabs(t) * 0x1p-50;
}

/* The same with the model's operand bounds. */
static inline FKM_HD int fkm_cert_cos_ok(const fkm_cert *c, float best, float second, double xnorm,
                                         double best_cnorm, double max_cnorm, double mu_max)
{
    const fkm_cert_pt p = fkm_cert_pt_model(c, xnorm, best_cnorm, max_cnorm);
    return fkm_cert_cos_ok_pt(c, best, second, &p, mu_max);
}

/* ---------------------------------------------------------------- carried certificates (EXACTNESS.md 5.5)
 *
 * A point certified at one assignment (label a) keeps bounds that stay valid when the
 * centroids move, so that it needs no assignment while they still separate (Hamerly's
 * bounds, here with every rounding accounted for):
 *   l2: hi >= ||x - c_a|| and lo <= min_{k != a} ||x - c_k||. After a move by Delta_k, the
 *       triangle inequality gives hi' = hi + ||Delta_a||, lo' = lo - max_k ||Delta_k||; while
 *       lo > hi, a is the unique exact argmin (the contract's score is ||x - c||^2 up to the
 *       constant ||x||^2, the same order).
 *   dot: g <= min_{k != a} (t_k - t_a) with t = -x.c; t'_k - t'_a = (t_k - t_a) - x.(Delta_k -
 *       Delta_a) >= g - ||x|| (||Delta_k|| + ||Delta_a||); while g > 0, a is the unique argmin.
 * Cosine is not carried (its scores are those of the normalised row). */
typedef struct fkm_carry {
    double lo, hi; /* l2: the distance bounds; dot: lo = the gap bound g, hi = 0 */
} fkm_carry;

/* The bounds of a point certified from its computed best and second scores (fkm_cert_ok_pt's
 * test, whose bound B >= E_a + E_max also bounds E_a): the gap min_{k != a} t_k - t_a >= G =
 * (second - best) - B, and for l2, with s = ||x - c||^2 = ||x||^2 + t, s_a in [xx + best - B,
 * xx + best + B] (xx = ||x||^2 from the computed norm, widened by 2^-40: its relative error is
 * below 2 (d + 2) 2^-53 + 2^-53 < 2^-29 for d <= 2^22), hi = sqrt of the upper end, lo = sqrt(lower end + G). Each double
 * operation's rounding (<= 2^-53 of its operands) is covered by taking 2^-50 of the operands
 * off (lower bounds) or adding it (upper bounds). Returns 0 (no certificate) unless lo > hi
 * (dot: g > 0). */
static inline FKM_HD int fkm_cert_carry_init(const fkm_cert *c, float best, float second, const fkm_cert_pt *p,
                                             fkm_carry *out)
{
    out->lo = -INFINITY, out->hi = INFINITY;
    if (!isfinite(best) || !isfinite(second)) return 0;
    const double b = fkm_cert_bound(c, p, 0.0);
    if (!(b < INFINITY)) return 0;
    const double diff = (double)second - (double)best;
    const double g = (diff - b) - (fabs(diff) + b) * 0x1p-50;
    if (!(g > 0.0)) return 0;
    if (c->dot) {
        out->lo = g, out->hi = 0.0;
        return 1;
    }
    const double xx = p->xnorm * p->xnorm;
    const double up = (xx * (1.0 + 0x1p-28) + (double)best + b) * (1.0 + 0x1p-50);
    double low = (xx * (1.0 - 0x1p-28) + (double)best - b);
    low = low - fabs(low) * 0x1p-50 - (xx + fabs((double)best) + b) * 0x1p-50;
    if (low < 0.0) low = 0.0;
    const double lo2 = (low + g) * (1.0 - 0x1p-50);
    out->hi = sqrt(up > 0.0 ? up : 0.0) * (1.0 + 0x1p-50);
    out->lo = sqrt(lo2) * (1.0 - 0x1p-50);
    return out->lo > out->hi;
}

/* The bounds after a move: da >= ||Delta_a|| (the label's centroid), dmax >= max_k ||Delta_k||
 * (fkm_cert_delta of the element differences: upper bounds), xnorm = ||x|| (dot). Returns
 * whether the label is still certified (lo > hi; dot: g > 0). */
static inline FKM_HD int fkm_cert_carry_move(fkm_carry *b, int dot, double xnorm, double da, double dmax)
{
    if (dot) {
        const double s = xnorm * (da + dmax) * (1.0 + 0x1p-20);
        b->lo = (b->lo - s) - (fabs(b->lo) + s) * 0x1p-50;
        return b->lo > 0.0;
    }
    b->hi = (b->hi + da) * (1.0 + 0x1p-50);
    b->lo = (b->lo - dmax) - (fabs(b->lo) + dmax) * 0x1p-50;
    return b->lo > b->hi;
}

/* A cheaper sufficient test for the common case of a wide gap. With dx the model's
 * fkm_cert_dx(||x||) (an upper bound on every point's ||xt - x||, 5.2) and, for fixed
 * ||c|| = max_cnorm and dc = max_cdelta, E is affine in ||x|| (every term is) and grows with
 * ||c|| and dc, so E(x, c_best) + E(x, c_max) <= 2 (a + b ||x||) with a = E(0, max) and
 * b = E(1, max) - E(0, max), each widened by 2^-44 relative for the double evaluation of E (a
 * few dozen roundings of 2^-53). Computed once per assignment. */
typedef struct fkm_cert_lin {
    double a, b, max_cnorm, max_cdelta;
} fkm_cert_lin;

static inline FKM_HD fkm_cert_lin fkm_cert_linear_d(const fkm_cert *c, double max_cnorm, double max_cdelta)
{
    const double e0 = fkm_cert_err_d(c, 0.0, fkm_cert_dx(c, 0.0), max_cnorm, max_cdelta);
    const double e1 = fkm_cert_err_d(c, 1.0, fkm_cert_dx(c, 1.0), max_cnorm, max_cdelta);
    fkm_cert_lin l;
    l.a = e0 * (1.0 + 0x1p-44);
    l.b = (e1 - e0) + (e1 + e0) * 0x1p-44;
    l.max_cnorm = max_cnorm;
    l.max_cdelta = max_cdelta;
    return l;
}

/* With the model's centroid bound (the CPU path: 0). */
static inline FKM_HD fkm_cert_lin fkm_cert_linear(const fkm_cert *c, double max_cnorm)
{
    return fkm_cert_linear_d(c, max_cnorm, fkm_cert_dc(c, max_cnorm));
}

/* fkm_cert_ok_pt, trying the affine bound first (the same checks, then the same full test when
 * the cheap one does not decide); p's max_cnorm and max_cdelta are l's. */
static inline FKM_HD int fkm_cert_ok_lin_pt(const fkm_cert *c, const fkm_cert_lin *l, float best, float second,
                                            const fkm_cert_pt *p)
{
    if (!c->valid || !isfinite(best) || !isfinite(second) || !(l->max_cnorm <= c->max_cnorm)) return 0;
    const double t = p->xnorm + l->max_cnorm;
    if (!(4.0 * t * t <= 0x1p126)) return 0;
    if ((double)second - (double)best > 2.0 * (l->a + l->b * p->xnorm) * (1.0 + 0x1p-20)) return 1;
    return fkm_cert_ok_pt(c, best, second, p);
}

/* The CPU path's form: the model's operand bounds (0 for the CPU kernel). */
static inline FKM_HD int fkm_cert_ok_lin(const fkm_cert *c, const fkm_cert_lin *l, float best, float second,
                                         double xnorm, double best_cnorm)
{
    fkm_cert_pt p = fkm_cert_pt_model(c, xnorm, best_cnorm, l->max_cnorm);
    p.max_cdelta = l->max_cdelta;
    return fkm_cert_ok_lin_pt(c, l, best, second, &p);
}

#ifdef __cplusplus
extern "C" {
#endif
/* The CPU kernel (src/cpu/kernel.c): bias fl32(sum c_j^2 in double), f32 dot product with
 * one or two roundings per step, one final f32 multiply-add. */
fkm_cert fkm_cert_cpu(long long d, int dot);
/* The tensor-core kernels (src/cuda/assign.cu): dtype 0 = f32 input (TF32 operands: x rounded
 * to nearest by mma.sync's cvt.rna or truncated by wgmma, c rounded to nearest), 1 = f16,
 * 2 = bf16 (fkm_dtype values); norm term an f32 sum of the rounded centroid's squares;
 * accumulation per assumption (A), u_acc = 2^-22. */
fkm_cert fkm_cert_tensor(long long d, int dot, int dtype);
#ifdef __cplusplus
}
#endif

#endif
