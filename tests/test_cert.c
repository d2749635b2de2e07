/* test_cert.c — the certification bound (src/core/cert.h, docs/EXACTNESS.md sections 3 and 5)
 * against the computations it bounds, on inputs chosen to stress it (large common offsets,
 * mixed signs, tiny values near and below the normal ranges, d up to 4096):
 *
 *   - the CPU kernel's score, computed here with the same operations (a double sum of
 *     squares rounded to f32, an f32 fmaf chain in index order, one final fmaf): a check of
 *     the bound itself;
 *   - a model of the tensor-core paths (centroids rounded to f16 / bf16 / TF32, x to TF32 with
 *     ties away, products exact, accumulation in blocks of 8 summed exactly and added with
 *     truncation (round toward zero) in a shuffled order, f32 norm term, final fmaf):
 *     a check that the bound's formula covers assumption (A) as EXACTNESS.md states it; the
 *     hardware itself is tested by test_exact_cuda.
 *
 * Each score's error |v - t| is measured against t = ||c||^2 - 2 x.c (or -x.c) in long double
 * (its own error is ~2^-64 relative, far below the bound's) and must not exceed the bound.
 * The largest ratio error / bound is printed (the bound's slack). */
#include "common.h"
#include "core/cert.h"

#include <math.h>
#include <string.h>

/* v rounded to p significant bits with exponent range down to emin (subnormal spacing
 * 2^(emin - p + 1)); mode 0 nearest-even, 1 nearest-away, 2 toward zero. */
static double round_to(double v, int p, int emin, int mode)
{
    if (v == 0.0 || !isfinite(v)) return v;
    int e;
    frexp(v, &e); /* |v| in [2^(e-1), 2^e) */
    const int q = (e - 1 > emin ? e - 1 : emin) - (p - 1);
    const double s = ldexp(v, -q);
    const double r = mode == 0 ? nearbyint(s) : mode == 1 ? round(s) : trunc(s);
    return ldexp(r, q);
}

static double f32_rz(double v) { return round_to(v, 24, -126, 2); }

typedef struct stats {
    double worst;
    int64_t tried, skipped;
} stats;

static void check(const fkm_cert *cert, stats *st, const char *what, int64_t d, const float *x, const float *c,
                  double v, int dot)
{
    double nx = 0.0, nc = 0.0;
    long double xc = 0.0L, cc = 0.0L;
    for (int64_t j = 0; j < d; j++) {
        nx += (double)x[j] * x[j];
        nc += (double)c[j] * c[j];
        xc += (long double)((double)x[j] * c[j]);
        cc += (long double)((double)c[j] * c[j]);
    }
    nx = sqrt(nx), nc = sqrt(nc);
    if (!(nc <= cert->max_cnorm) || !cert->valid || !isfinite(v)) {
        st->skipped++;
        return;
    }
    const long double t = dot ? -xc : cc - 2.0L * xc;
    const double err = (double)fabsl((long double)v - t), bound = fkm_cert_err(cert, nx, nc);
    st->tried++;
    if (err / bound > st->worst) {
        st->worst = err / bound;
        if (getenv("FLASHKM_TEST_VERBOSE"))
            fprintf(stderr, "%s d=%lld dot=%d: err %.4g bound %.4g |x| %.4g |c| %.4g v %.6g\n", what, (long long)d, dot,
                    err, bound, nx, nc, v);
    }
    CHECK(err <= bound, "%s d=%lld: |v - t| = %.6g exceeds the bound %.6g", what, (long long)d, err, bound);
}

/* The CPU kernel's operations on one (x, c). */
static double cpu_score(const float *x, const float *c, int64_t d, int dot)
{
    double ss = 0.0;
    for (int64_t j = 0; j < d; j++) ss += (double)c[j] * c[j];
    float acc = 0.0f;
    for (int64_t j = 0; j < d; j++) acc = fmaf(x[j], c[j], acc);
    return dot ? -(double)acc : (double)fmaf(-2.0f, acc, (float)ss);
}

/* The tensor-core model on one (x, c); dtype as in fkm_cert_tensor. */
static double tc_score(const float *x, const float *c, int64_t d, int dot, int dtype, tc_rng *r, double *prod,
                       int64_t *perm)
{
    const int p = dtype == FKM_BF16 ? 8 : 11, emin = dtype == FKM_F16 ? -14 : -126;
    float n = 0.0f;
    for (int64_t j = 0; j < d; j++) {
        const double ct = round_to(c[j], p, emin, 0);
        const double xt = dtype == FKM_F32 ? round_to(x[j], 11, -126, 1) : x[j];
        prod[j] = xt * ct; /* exact: at most 22 significant bits */
        n = fmaf((float)ct, (float)ct, n);
        perm[j] = j;
    }
    for (int64_t j = d - 1; j > 0; j--) { /* a shuffled accumulation order */
        const int64_t o = (int64_t)floor((double)(j + 1) * tc_uniform(r));
        const int64_t t = perm[j];
        perm[j] = perm[o], perm[o] = t;
    }
    double q = 0.0;
    for (int64_t j = 0; j < d; j += 8) { /* blocks of 8 added exactly, then truncated */
        double blk = 0.0;
        for (int64_t i = j; i < d && i < j + 8; i++) blk += prod[perm[i]];
        q = f32_rz(q + blk);
    }
    return dot ? -q : (double)fmaf(-2.0f, (float)q, n);
}

int main(void)
{
    static const int64_t dims[] = {1, 3, 16, 128, 1024, 4096};
    static const char *const kinds[] = {"offset 1e4", "mixed signs", "tiny (1e-30..1e-5)", "mixed scales"};
    stats cpu = {0}, tc[3] = {{0}};
    float *x = malloc(4096 * sizeof *x), *c = malloc(4096 * sizeof *c);
    double *prod = malloc(4096 * sizeof *prod);
    int64_t *perm = malloc(4096 * sizeof *perm);
    tc_rng r = {2024};
    for (size_t a = 0; a < sizeof dims / sizeof dims[0]; a++) {
        const int64_t d = dims[a];
        const int trials = d >= 1024 ? 60 : 400;
        for (int kind = 0; kind < 4; kind++)
            for (int trial = 0; trial < trials; trial++) {
                const int dot = trial & 1;
                for (int64_t j = 0; j < d; j++) {
                    double xv, cv;
                    switch (kind) {
                    case 0: xv = 1e4 + tc_normal(&r), cv = 1e4 + tc_normal(&r); break;
                    case 1: xv = tc_normal(&r), cv = tc_normal(&r); break;
                    case 2: xv = 1e-30 * exp(57.0 * tc_uniform(&r)) * (tc_uniform(&r) < 0.5 ? -1 : 1);
                            cv = 1e-30 * exp(57.0 * tc_uniform(&r)); break;
                    default: xv = tc_normal(&r) * exp(20.0 * tc_normal(&r) / 3.0);
                             cv = tc_normal(&r) * exp(20.0 * tc_normal(&r) / 3.0); break;
                    }
                    x[j] = (float)xv, c[j] = (float)cv;
                }
                const fkm_cert cc = fkm_cert_cpu((long long)d, dot);
                check(&cc, &cpu, "cpu", d, x, c, cpu_score(x, c, d, dot), dot);
                static const int dts[3] = {FKM_F32, FKM_F16, FKM_BF16};
                for (int t = 0; t < 3; t++) {
                    /* f16 and bf16 inputs hold x in that type: round it first */
                    if (dts[t] != FKM_F32)
                        for (int64_t j = 0; j < d; j++)
                            x[j] = (float)round_to(x[j], dts[t] == FKM_F16 ? 11 : 8, dts[t] == FKM_F16 ? -14 : -126, 0);
                    if (dts[t] == FKM_F16) {
                        int big = 0;
                        for (int64_t j = 0; j < d; j++) big |= fabsf(x[j]) > 65504.0f;
                        if (big) continue; /* not an f16 input */
                    }
                    const fkm_cert ct = fkm_cert_tensor((long long)d, dot, dts[t]);
                    check(&ct, &tc[t], "tensor model", d, x, c, tc_score(x, c, d, dot, dts[t], &r, prod, perm), dot);
                }
            }
        (void)kinds;
    }
    printf("cpu kernel:        %lld scores, largest error / bound %.3g\n", (long long)cpu.tried, cpu.worst);
    static const char *const names[3] = {"tf32", "f16", "bf16"};
    for (int t = 0; t < 3; t++)
        printf("tensor model %-4s: %lld scores (%lld outside the operand range), largest error / bound %.3g\n",
               names[t], (long long)tc[t].tried, (long long)tc[t].skipped, tc[t].worst);
    free(x), free(c), free(prod), free(perm);
    return tc_finish("test_cert");
}
