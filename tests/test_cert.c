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
 * The largest ratio error / bound is printed (the bound's slack).
 *
 * Also the exact mode's top-3 state (src/core/top3.h), the functions the tensor-core kernels
 * run, against brute force on scores with many ties, folded in the kernels' accumulator
 * layout and merged as their lane butterflies and in random trees. */
#include "common.h"
#include "core/cert.h"
#include "core/top3.h"

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

/* ---------------------------------------------------------------- the top-3 state */

/* The definition in top3.h, by brute force over columns 0..k-1. */
static fkm_top3 top3_brute(const float *v, int k)
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

static int top3_equal(fkm_top3 a, fkm_top3 b)
{
    /* indices are meaningful only where their score is finite */
    return a.s1 == b.s1 && a.s2 == b.s2 && a.s3 == b.s3 && (!isfinite(a.s1) || a.i1 == b.i1) &&
           (!isfinite(a.s2) || a.i2 == b.i2);
}

/* One lane of the kernels' layout: tiles of `tile` columns, this lane owning the pairs
 * col0 + 8 q + {0, 1} (q < nq) of each, col0 = tile start + 2 lane; columns >= k are padding
 * (+inf, as the kernels' norm offsets make them). The accumulator's other two slots of each
 * group of four belong to another row: filled with a score lower than any, so that reading
 * them would show. */
static fkm_top3 top3_lane(const float *v, int k, int kpad, int nq, int lane)
{
    fkm_top3 t = {INFINITY, INFINITY, INFINITY, 0, 0};
    float a[64];
    for (int t0 = 0; t0 < kpad; t0 += 8 * nq) {
        const int col0 = t0 + 2 * lane;
        for (int q = 0; q < nq; q++)
            for (int e = 0; e < 4; e++) {
                const int col = col0 + 8 * q + e;
                a[4 * q + e] = e >= 2 ? -1e30f : col < k ? v[col] : INFINITY;
            }
        fkm_top3_tile(&t, a, nq, col0);
    }
    return t;
}

static void test_top3(void)
{
    tc_rng r = {77};
    float v[700];
    int64_t cases = 0;
    for (int trial = 0; trial < 4000; trial++) {
        const int nq = trial & 1 ? 16 : 8; /* wgmma, mma */
        const int tile = 8 * nq, k = 1 + (int)(tc_uniform(&r) * (trial % 3 == 0 ? 8 : 600));
        const int kpad = (k + tile - 1) / tile * tile;
        /* few distinct values: ties everywhere; sometimes a NaN-free +inf (overflow) */
        const int levels = 1 + (int)(tc_uniform(&r) * 6);
        for (int c = 0; c < k; c++) {
            v[c] = (float)(int)(tc_uniform(&r) * levels) - 2.0f;
            if (tc_uniform(&r) < 0.02) v[c] = INFINITY;
        }
        const fkm_top3 want = top3_brute(v, k);
        /* the quad butterfly of the kernels: lanes 0..3, xor 1 then 2; every lane ends with
         * the whole row's state */
        fkm_top3 q[4], nx[4];
        for (int l = 0; l < 4; l++) q[l] = top3_lane(v, k, kpad, nq, l);
        for (int o = 1; o <= 2; o <<= 1) {
            for (int l = 0; l < 4; l++) nx[l] = fkm_top3_merge(q[l], q[l ^ o]);
            memcpy(q, nx, sizeof q);
        }
        for (int l = 0; l < 4; l++) {
            CHECK(top3_equal(q[l], want),
                  "top3 k=%d nq=%d lane %d: (%g %d, %g %d, %g), brute force (%g %d, %g %d, %g)", k, nq, l,
                  (double)q[l].s1, q[l].i1, (double)q[l].s2, q[l].i2, (double)q[l].s3, (double)want.s1, want.i1,
                  (double)want.s2, want.i2, (double)want.s3);
        }
        /* any partition into groups of increasing columns, merged in any order */
        const int groups = 1 + (int)(tc_uniform(&r) * 5);
        fkm_top3 g[5];
        for (int j = 0; j < groups; j++) g[j] = (fkm_top3){INFINITY, INFINITY, INFINITY, 0, 0};
        for (int c = 0; c < k; c++) { /* one column at a time: a tile of one pair, its twin +inf */
            const float a[4] = {v[c], INFINITY, -1e30f, -1e30f};
            fkm_top3_tile(&g[(int)(tc_uniform(&r) * groups)], a, 1, c);
        }
        for (int left = groups; left > 1; left--) {
            const int a = (int)(tc_uniform(&r) * left), b = (a + 1 + (int)(tc_uniform(&r) * (left - 1))) % left;
            g[a] = fkm_top3_merge(g[a], g[b]);
            g[b] = g[left - 1];
        }
        CHECK(top3_equal(g[0], want), "top3 k=%d: merged groups differ from brute force", k);
        cases++;
    }
    printf("top-3 state: %lld cases against brute force\n", (long long)cases);
}

int main(void)
{
    test_top3();
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
