/* cert.c — the forward error bound that certifies a fast-pass label (exact.h). The
 * derivation, hypothesis by hypothesis, is docs/EXACTNESS.md section 3; the names below
 * follow it. */
#include "exact.h"

#include <math.h>

#define U32 0x1p-24   /* unit roundoff of f32 (round to nearest) */
#define U64 0x1p-53   /* of double */
#define ETA32 0x1p-150 /* largest absolute error of one f32 rounding in the subnormal range */

fkm_cert fkm_cert_cpu(int64_t d, fkm_metric metric)
{
    fkm_cert c = {0.0, 0.0, 0.0, 0};
    if (d < 1 || d > ((int64_t)1 << 22)) return c; /* gamma_d needs d u < 1; keep d u <= 1/4 */
    const double D = (double)d;
    const double gam = D * U32 / (1.0 - D * U32);      /* gamma_d, f32 */
    const double gam64 = D * U64 / (1.0 - D * U64);    /* gamma_d, double */
    if (metric == FKM_METRIC_DOT) {
        /* v = -fl(x.c): E = gamma_d ||x|| ||c|| + 4 d eta */
        c.b = gam;
        c.c = 4.0 * D * ETA32;
    } else {
        /* bias fl32(fl64(||c||^2)): relative eps_b, then v = fl(bias - 2 fl(x.c)) */
        const double eps_b = U32 + (1.0 + U32) * gam64;
        c.a = eps_b + U32 * (1.0 + eps_b);
        c.b = 2.0 * gam + 2.0 * U32 * (1.0 + gam);
        c.c = (8.0 * D + 3.0) * ETA32;
    }
    c.valid = 1;
    return c;
}

int fkm_cert_ok(const fkm_cert *cert, float best, float second, double xnorm, double best_cnorm,
                double max_cnorm)
{
    if (!cert->valid || !isfinite(best) || !isfinite(second)) return 0;
    /* no f32 overflow anywhere in the fast pass: every intermediate is below
     * 2 (||x|| + max ||c||)^2 (EXACTNESS.md 3.1); the factor 2 more covers the norms'
     * own rounding */
    const double t = xnorm + max_cnorm;
    if (!(4.0 * t * t <= 0x1p126)) return 0;
    const double e_best = cert->a * best_cnorm * best_cnorm + cert->b * xnorm * best_cnorm + cert->c;
    const double e_other = cert->a * max_cnorm * max_cnorm + cert->b * xnorm * max_cnorm + cert->c;
    /* (1 + 2^-20) covers the double rounding of the norms and of this evaluation (3.4) */
    const double bound = (e_best + e_other) * (1.0 + 0x1p-20);
    return (double)second - (double)best > bound;
}
