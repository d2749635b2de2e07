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
#include "top3_sim.h" /* brute */

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

/* An exact fixed-point number, two's complement in 20 32-bit limbs, in units of 2^-300 (bits
 * up to 2^339): every product of two f32 values (a multiple of 2^-298 below 2^256) and every
 * sum of a few thousand of them is held with no rounding at all. Independent of the library's
 * fkm_acc. */
typedef struct xfix {
    uint32_t w[20];
} xfix;
__extension__ typedef __int128 xi128;

/* a += m 2^e, |m| < 2^62, -300 <= e and e + 62 < 330. */
static void xfix_add(xfix *a, int64_t m, int e)
{
    const int sh = e + 300;
    xi128 v = (xi128)m * ((int64_t)1 << (sh % 32)), carry = 0;
    for (int i = sh / 32; i < 20; i++) {
        const xi128 t = (xi128)a->w[i] + (v & 0xffffffffu) + carry;
        a->w[i] = (uint32_t)t;
        carry = t >> 32; /* arithmetic shifts: the sign extends through the top limbs */
        v >>= 32;
    }
}

/* a += v exactly (v a double whose lowest set bit is at least 2^-300). */
static void xfix_add_double(xfix *a, double v)
{
    if (v == 0.0) return;
    int e;
    const double f = frexp(v, &e); /* v = f 2^e, 0.5 <= |f| < 1 */
    int64_t m = (int64_t)ldexp(f, 53);
    e -= 53;
    while (e < -300 && m % 2 == 0) m /= 2, e++; /* trailing zero bits */
    CHECK(e >= -300 && e + 62 < 330, "xfix: %a outside the fixed-point range", v);
    xfix_add(a, m, e);
}

static int xfix_cmp(const xfix *a, const xfix *b)
{
    if ((int32_t)a->w[19] != (int32_t)b->w[19]) return (int32_t)a->w[19] < (int32_t)b->w[19] ? -1 : 1;
    for (int i = 18; i >= 0; i--)
        if (a->w[i] != b->w[i]) return a->w[i] < b->w[i] ? -1 : 1;
    return 0;
}

/* ---------------------------------------------------------------- the operands (EXACTNESS.md 5.2)
 *
 * The copies the kernels make, modelled: a centroid element rounded to nearest TF32 with ties
 * away (cvt.rna) for f32 input, to nearest-even f16 / bf16 otherwise; the reference copy of an
 * x element for the measured bound: rz(x) (the upper 19 bits) for TF32, x itself for bf16 (and
 * no rounding at all for f16 input). dtype < 0: the CPU kernel (no operands). */
static float op_centroid(float c, int dtype)
{
    return (float)(dtype == FKM_F32 ? round_to(c, 11, -126, 1)
                   : dtype == FKM_F16 ? round_to(c, 11, -14, 0) : round_to(c, 8, -126, 0));
}

/* The measured bounds as exact.cu computes them (fkm_cert_elem_err, fkm_cert_delta), summed in
 * reverse order (the device sums lane-strided partial sums: any order is allowed). */
static double delta_x(const float *x, int64_t d, int dtype)
{
    double ss = 0.0;
    if (dtype == FKM_F32 || dtype == FKM_BF16)
        for (int64_t j = d - 1; j >= 0; j--) {
            const float xt = dtype == FKM_F32 ? (float)round_to(x[j], 11, -126, 2) : x[j];
            const double e = fkm_cert_elem_err(x[j], xt, 1);
            ss += e * e;
        }
    return fkm_cert_delta(ss);
}

static double delta_c(const float *c, int64_t d, int dtype)
{
    double ss = 0.0;
    if (dtype >= 0)
        for (int64_t j = d - 1; j >= 0; j--) {
            const double e = fkm_cert_elem_err(c[j], op_centroid(c[j], dtype), dtype != FKM_F16);
            ss += e * e;
        }
    return fkm_cert_delta(ss);
}

/* Whether |v - t| <= bound, decided exactly: t = ||c||^2 - 2 x.c (or -x.c) held in the
 * fixed-point reference with no rounding. */
static int within(double v, double bound, const float *x, const float *c, int64_t d, int dot)
{
    xfix lo = {{0}}, hi = {{0}}, z = {{0}};
    for (int64_t j = 0; j < d; j++) {
        const double a = x[j], b = c[j];
        /* lo = t - v - bound, hi = v - bound - t: both <= 0 */
        xfix_add_double(&lo, -(dot ? 1.0 : 2.0) * a * b);
        xfix_add_double(&hi, (dot ? 1.0 : 2.0) * a * b);
        if (!dot) xfix_add_double(&lo, b * b), xfix_add_double(&hi, -b * b);
    }
    xfix_add_double(&lo, -v), xfix_add_double(&lo, -bound);
    xfix_add_double(&hi, v), xfix_add_double(&hi, -bound);
    return xfix_cmp(&lo, &z) <= 0 && xfix_cmp(&hi, &z) <= 0;
}

typedef struct stats {
    double worst, worst_model, tight_sum; /* largest err / bound (measured, model); sum of measured / model bound */
    int64_t tried, skipped;
} stats;

/* The computed score v of (x, c) against both bounds: the model's (fkm_cert_err) and the one
 * from the measured operand rounding (fkm_cert_err_d), decided exactly. */
static void check(const fkm_cert *cert, stats *st, const char *what, int64_t d, const float *x, const float *c,
                  double v, int dot, int dtype)
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
    const double err = (double)fabsl((long double)v - t), model = fkm_cert_err(cert, nx, nc);
    const double dx = delta_x(x, d, dtype), dc = delta_c(c, d, dtype);
    const double bound = fkm_cert_err_d(cert, nx, dx, nc, dc);
    st->tried++;
    st->tight_sum += bound / model;
    if (err / model > st->worst_model) st->worst_model = err / model;
    if (err / bound > st->worst) {
        st->worst = err / bound;
        if (getenv("FLASHKM_TEST_VERBOSE"))
            fprintf(stderr, "%s d=%lld dot=%d: err %.4g bound %.4g (model %.4g) |x| %.4g |c| %.4g v %.6g\n", what,
                    (long long)d, dot, err, bound, model, nx, nc, v);
    }
    CHECK(within(v, model, x, c, d, dot), "%s d=%lld: |v - t| ~ %.6g exceeds the model's bound %.6g", what,
          (long long)d, err, model);
    CHECK(within(v, bound, x, c, d, dot), "%s d=%lld: |v - t| ~ %.6g exceeds the measured bound %.6g", what,
          (long long)d, err, bound);
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

/* An operand element the tensor core may use (assumption (A')): for bf16 and TF32, a value
 * below the f32 normal range flushed to zero half of the time. */
static double tc_flush(double v, int dtype, tc_rng *r)
{
    return dtype != FKM_F16 && fabs(v) < 0x1p-126 && tc_uniform(r) < 0.5 ? 0.0 : v;
}

/* The tensor-core model on one (x, c); dtype as in fkm_cert_tensor. TF32 x is rounded to
 * nearest with ties away (mma.sync's cvt.rna) or truncated (wgmma), at random per call. The
 * norm term uses the stored centroid copy, the products the possibly flushed operands. */
static double tc_score(const float *x, const float *c, int64_t d, int dot, int dtype, tc_rng *r, double *prod,
                       int64_t *perm)
{
    const int xmode = tc_uniform(r) < 0.5 ? 1 : 2;
    float n = 0.0f;
    for (int64_t j = 0; j < d; j++) {
        const double ct = op_centroid(c[j], dtype);
        const double xt = dtype == FKM_F32 ? round_to(x[j], 11, -126, xmode) : x[j];
        prod[j] = tc_flush(xt, dtype, r) * tc_flush(ct, dtype, r); /* exact: at most 22 significant bits */
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
        const fkm_top3 want = brute(v, k); /* tests/top3_sim.h: the definition by brute force */
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

/* ---------------------------------------------------------------- cosine certification */

/* The contract's normalisation (EXACTNESS.md 1, fkm_load_row): ss in double in index order,
 * inv = 1 / sqrt(ss), y_j = fl32(fl64(x_j inv)); a zero row stays zero. Returns inv (0 for a
 * zero row). */
static double cos_normalise(const float *x, int64_t d, float *y)
{
    double ss = 0.0;
    for (int64_t j = 0; j < d; j++) ss += (double)x[j] * (double)x[j];
    const double inv = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
    for (int64_t j = 0; j < d; j++) y[j] = ss > 0.0 ? (float)((double)x[j] * inv) : x[j];
    return inv;
}

/* The exact argmin over k of s_k = sum_j (y_j - C_kj)^2, ties to the lowest index: each
 * s_k summed exactly as y_j^2 - 2 y_j C_kj + C_kj^2 (every product exact in double). */
static int cos_exact_argmin(const float *y, const float *C, int K, int64_t d)
{
    xfix best = {{0}};
    int bl = -1;
    for (int k = 0; k < K; k++) {
        xfix s = {{0}};
        for (int64_t j = 0; j < d; j++) {
            const double a = y[j], c = C[k * d + j];
            xfix_add_double(&s, a * a);
            xfix_add_double(&s, -2.0 * a * c);
            xfix_add_double(&s, c * c);
        }
        if (bl < 0 || xfix_cmp(&s, &best) < 0) best = s, bl = k;
    }
    return bl;
}

/* mu of the centroids as the GPU computes it (a double sum of squares, any order), checked
 * against the exact | ||C||^2 - 1 |; also their norms. */
static double cos_mu_max(const float *C, int K, int64_t d, double *cn, double *cmax)
{
    double mu = 0.0;
    *cmax = 0.0;
    for (int k = 0; k < K; k++) {
        double ss = 0.0;
        xfix e = {{0}}, m = {{0}};
        for (int64_t j = d - 1; j >= 0; j--) { /* reversed: "any order" */
            const double c = C[k * d + j];
            ss += c * c;
            xfix_add_double(&e, c * c);
        }
        const double muk = fkm_cert_cos_mu(ss, (double)d);
        /* exact: |S - 1| <= mu_k, i.e. both S - 1 - mu <= 0 and 1 - S - mu <= 0 */
        xfix_add_double(&e, -1.0);
        xfix_add_double(&e, -muk);
        CHECK(xfix_cmp(&e, &m) <= 0, "cosine mu: ||C||^2 - 1 > mu = %g (d=%lld)", muk, (long long)d);
        xfix f = {{0}};
        for (int64_t j = 0; j < d; j++) xfix_add_double(&f, -(double)C[k * d + j] * C[k * d + j]);
        xfix_add_double(&f, 1.0);
        xfix_add_double(&f, -muk);
        CHECK(xfix_cmp(&f, &m) <= 0, "cosine mu: 1 - ||C||^2 > mu = %g (d=%lld)", muk, (long long)d);
        cn[k] = sqrt(ss);
        if (cn[k] > *cmax) *cmax = cn[k];
        if (muk > mu) mu = muk;
    }
    return mu;
}

/* Indices of the smallest and second-smallest v (lowest index on ties) and the third value. */
static void cos_top3(const float *v, int K, int *i1, int *i2, float *v3)
{
    *i1 = 0;
    for (int k = 1; k < K; k++)
        if (v[k] < v[*i1]) *i1 = k;
    *i2 = -1;
    for (int k = 0; k < K; k++)
        if (k != *i1 && (*i2 < 0 || v[k] < v[*i2])) *i2 = k;
    *v3 = INFINITY;
    for (int k = 0; k < K; k++)
        if (k != *i1 && k != *i2 && v[k] < *v3) *v3 = v[k];
}

/* fkm_cert_threshold_pt rounded up to f32, as exact.cu's cand_gather does (__double2float_ru). */
static float threshold_f32(double t)
{
    float f = (float)t;
    if ((double)f < t) f = nextafterf(f, INFINITY);
    return f;
}

/* The candidate pass's promise (EXACTNESS.md 5.4): the exact argmin's computed score is within
 * the threshold. Returns whether the threshold with half its margin would have missed it. */
static int cand_check(const fkm_cert *cert, const char *what, int dtype, int dot, const float *v, int i1, int want,
                      const fkm_cert_pt *p, int cosine, double mu)
{
    const double t = fkm_cert_threshold_pt(cert, v[i1], p, cosine, mu);
    CHECK(v[want] <= threshold_f32(t), "%s, dtype %d dot %d: the exact argmin %d scores %.9g above the candidate "
          "threshold %.9g (best %.9g)", what, dtype, dot, want, (double)v[want], t, (double)v[i1]);
    return !(v[want] <= threshold_f32((double)v[i1] + 0.5 * (t - (double)v[i1])));
}

typedef struct cos_stats {
    int64_t trials, cert, pair, fast_wrong, fast_wrong_refused, naive_wrong;
    int64_t cand_miss_half; /* as dstats */
} cos_stats;

/* One point against K centroids with computed scores v (v_k ~ -x.C_k of the raw row x within
 * fkm_cert_err): whenever fkm_cert_cos_ok certifies (best, second), the best is the exact
 * argmin of the contract; whenever it certifies (best, third), the exact argmin is the best or
 * the second. Also counts what the bound without the cosine terms (fkm_cert_ok on the dot
 * product alone, the natural mistake) would have certified wrongly. */
static void cos_check(const fkm_cert *cert, const char *what, const float *x, const float *C, const float *v, int K,
                      int64_t d, cos_stats *st)
{
    float y[1024];
    double cn[8], cmax, xn = 0.0;
    cos_normalise(x, d, y);
    const int want = cos_exact_argmin(y, C, K, d);
    const double mu = cos_mu_max(C, K, d, cn, &cmax);
    for (int64_t j = 0; j < d; j++) xn += (double)x[j] * x[j];
    xn = sqrt(xn);
    int i1, i2;
    float v3;
    cos_top3(v, K, &i1, &i2, &v3);
    st->trials++;
    const int ok2 = fkm_cert_cos_ok(cert, v[i1], v[i2], xn, cn[i1], cmax, mu);
    const int ok3 = K == 2 || fkm_cert_cos_ok(cert, v[i1], v3, xn, cn[i1], cmax, mu);
    st->cert += ok2, st->pair += !ok2 && ok3;
    if (i1 != want) st->fast_wrong++, st->fast_wrong_refused += !ok2;
    if (i1 != want && fkm_cert_ok(cert, v[i1], v[i2], xn, cn[i1], cmax)) st->naive_wrong++;
    CHECK(!ok2 || i1 == want, "cosine %s d=%lld: certified %d, exact argmin %d (v %.9g %.9g, |x| %g)", what,
          (long long)d, i1, want, (double)v[i1], (double)v[i2], xn);
    CHECK(!ok3 || want == i1 || want == i2, "cosine %s d=%lld: pair test certified {%d, %d}, exact argmin %d", what,
          (long long)d, i1, i2, want);
    const fkm_cert_pt p = fkm_cert_pt_model(cert, xn, cn[i1], cmax);
    st->cand_miss_half += cand_check(cert, "cosine", -1, 1, v, i1, want, &p, 1, mu);
}

/* The adversary of the theorem: every score off by (nearly) its whole allowance fkm_cert_err,
 * the exact argmin's upwards and every other downwards; returns 0 if a score could not be
 * placed inside the allowance (then the case is not used). */
static int cos_adversarial(const fkm_cert *cert, const float *x, const float *C, int K, int64_t d, int want,
                           double frac, float *v)
{
    double xn = 0.0;
    for (int64_t j = 0; j < d; j++) xn += (double)x[j] * x[j];
    xn = sqrt(xn);
    for (int k = 0; k < K; k++) {
        long double t = 0.0L;
        double cc = 0.0;
        for (int64_t j = 0; j < d; j++) {
            t -= (long double)((double)x[j] * C[k * d + j]);
            cc += (double)C[k * d + j] * C[k * d + j];
        }
        /* the exact norms may be below the computed ones by ~d 2^-53: stay inside by 2^-20 */
        const double e = fkm_cert_err(cert, xn, sqrt(cc)) * (1.0 - 0x1p-20);
        float f = (float)(t + (long double)(k == want ? frac : -frac) * e);
        while (fabsl((long double)f - t) > (long double)e) f = nextafterf(f, (float)t);
        if (!isfinite(f)) return 0;
        v[k] = f;
    }
    return 1;
}

/* Crafted cases in which a term of the cosine bound is necessary: without it a wrong label is
 * certified (so this test would catch its removal); with it, nothing wrong is. */
static void cos_crafted(void)
{
    const double rho = 1.0 + 0x1p-30;
    /* an exact scorer: E = 0, so only the cosine terms separate */
    fkm_cert z = fkm_cert_cpu(2, 1);
    z.u_acc = 0.0, z.eta_acc = 0.0, z.g = 0.0;
    CHECK(fkm_cert_err(&z, 3.0, 1.5) == 0.0, "the zero-error scorer has error %g", fkm_cert_err(&z, 3.0, 1.5));
    double cn[8], cmax;

    /* (1) mu: a centroid of norm 1.5 (not normalised). x = y = (1, 0); C_0 = (1, 0),
     * C_1 = (1.5, 0): -x.C ranks C_1 first by 0.5, but s_0 = 0 < s_1 = 0.25. */
    {
        const float x[2] = {1.0f, 0.0f}, C[4] = {1.0f, 0.0f, 1.5f, 0.0f}, v[2] = {-1.0f, -1.5f};
        float y[2];
        cos_normalise(x, 2, y);
        CHECK(cos_exact_argmin(y, C, 2, 2) == 0, "crafted mu: the exact argmin is not 0");
        const double mu = cos_mu_max(C, 2, 2, cn, &cmax);
        CHECK(!fkm_cert_cos_ok(&z, v[1], v[0], 1.0, cn[1], cmax, mu), "crafted mu: wrong label certified");
        CHECK(fkm_cert_cos_ok(&z, v[1], v[0], 1.0, cn[1], cmax, 0.0),
              "crafted mu: the case does not need mu (it would not catch its removal)");
    }
    /* (2) the rounding of y: C_0 = (0, 1, 0), C_1 = (1, 0, 0) (mu ~ 2^-50), x = (a, b, t), b the
     * f32 below a: -x.C ranks C_1 first by one ulp, but for a suitable t, a and b normalise to
     * the same f32, an exact tie that goes to C_0. */
    {
        const float C[6] = {0.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f};
        float x[3] = {1.75f, nextafterf(1.75f, 0.0f), 0.0f}, y[3] = {0};
        int found = 0;
        for (int s = 0; s < 2000 && !found; s++) {
            x[2] = (float)(0.1 + 0.01 * s);
            cos_normalise(x, 3, y);
            found = y[0] == y[1];
        }
        CHECK(found, "crafted rounding: no row found");
        if (found) {
            const float v[2] = {-x[1], -x[0]};
            const double xn = sqrt((double)x[0] * x[0] + (double)x[1] * x[1] + (double)x[2] * x[2]);
            fkm_cert z3 = fkm_cert_cpu(3, 1);
            z3.u_acc = 0.0, z3.eta_acc = 0.0, z3.g = 0.0;
            const double mu = cos_mu_max(C, 2, 3, cn, &cmax);
            CHECK(cos_exact_argmin(y, C, 2, 3) == 0, "crafted rounding: the exact argmin is not 0");
            CHECK(!fkm_cert_cos_ok(&z3, v[1], v[0], xn, cn[1], cmax, mu), "crafted rounding: wrong label certified");
            /* the same bound without the y-rounding term would certify it */
            const double no_r =
                (fkm_cert_err(&z3, xn, cn[1]) + fkm_cert_err(&z3, xn, cmax) + xn * rho * mu) * (1 + 0x1p-20);
            CHECK((double)v[0] - (double)v[1] > no_r,
                  "crafted rounding: the case does not need the rounding term (gap %g, bound without it %g)",
                  (double)v[0] - (double)v[1], no_r);
        }
    }
    /* (3) the norms: ||y|| <= FKM_CERT_COS_YNORM and 1 / (inv ||x||) <= 1 + 2^-30 on rows of every
     * scale (the f32 filter and fkm_cert_cos_extra rely on them) */
    tc_rng r = {31337};
    float x[1024], y[1024];
    for (int t = 0; t < 3000; t++) {
        const int64_t d = 1 + (int64_t)(tc_uniform(&r) * (t % 3 == 0 ? 1024 : 8));
        const double sc = ldexp(1.0, (int)(tc_uniform(&r) * 270) - 145);
        for (int64_t j = 0; j < d; j++) x[j] = (float)(sc * tc_normal(&r));
        const double inv = cos_normalise(x, d, y);
        long double xx = 0.0L, yy = 0.0L;
        for (int64_t j = 0; j < d; j++) xx += (long double)x[j] * x[j], yy += (long double)y[j] * y[j];
        if (xx == 0.0L) continue;
        CHECK(sqrtl(yy) <= FKM_CERT_COS_YNORM, "||y|| = %.12Lg above the bound", sqrtl(yy));
        CHECK(1.0L / ((long double)inv * sqrtl(xx)) <= 1.0L + 0x1p-30L, "1 / (inv ||x||) above 1 + 2^-30");
    }
    printf("cosine crafted cases: mu and the rounding of y are both needed\n");
}

/* A test row: near centroid ka (kind 0), near the bisector of ka and kb (1) or near the
 * common point base (2), scaled by sc, jittered by jit, then rounded to the input type dtype
 * (f16 or bf16; f32 stays as is). Shared by the cosine and the measured-bound tests. */
static void near_row(float *x, const float *C, const float *base, int64_t d, int kind, int ka, int kb, double sc,
                     double jit, int dtype, tc_rng *r)
{
    for (int64_t j = 0; j < d; j++) {
        const double cj = kind == 0 ? C[ka * d + j] : kind == 1 ? 0.5 * (C[ka * d + j] + C[kb * d + j]) : base[j];
        double xv = sc * (cj + jit * tc_normal(r));
        if (dtype == FKM_F16) xv = round_to(xv, 11, -14, 0);
        if (dtype == FKM_BF16) xv = round_to(xv, 8, -126, 0);
        x[j] = (float)xv;
    }
}

static void test_cosine(void)
{
    cos_crafted();
    enum { K = 6 };
    static const int64_t dims[] = {2, 3, 16, 128, 1024};
    static const char *const names[4] = {"cpu", "tf32", "f16", "bf16"};
    tc_rng r = {515};
    float *x = malloc(1024 * sizeof *x), *C = malloc(K * 1024 * sizeof *C), v[K], base[1024];
    double *prod = malloc(1024 * sizeof *prod);
    int64_t *perm = malloc(1024 * sizeof *perm);
    cos_stats st[2][4] = {{{0}}};
    for (size_t a = 0; a < sizeof dims / sizeof dims[0]; a++) {
        const int64_t d = dims[a];
        const int trials = d >= 1024 ? 40 : d >= 128 ? 150 : 600;
        for (int trial = 0; trial < trials; trial++)
            for (int pth = 0; pth < 4; pth++) { /* 0: the CPU kernel's bound, 1..3: tensor cores */
                const int dtype = pth == 1 ? FKM_F32 : pth == 2 ? FKM_F16 : FKM_BF16;
                const fkm_cert cert = pth == 0 ? fkm_cert_cpu(d, 1) : fkm_cert_tensor(d, 1, dtype);
                /* centroids: a common direction plus a spread from wide to below f32's resolution,
                 * normalised as flashkm does; some with ||C||^2 moved off 1 by a few ulps, some
                 * duplicated (exact ties) */
                const double spread = ldexp(1.0, -(int)(tc_uniform(&r) * 26));
                for (int64_t j = 0; j < d; j++) base[j] = (float)tc_normal(&r);
                for (int k = 0; k < K; k++) {
                    float *c = C + k * d;
                    for (int64_t j = 0; j < d; j++) c[j] = (float)(base[j] + spread * tc_normal(&r));
                    cos_normalise(c, d, c);
                    if (tc_uniform(&r) < 0.2) {
                        const int ulps = (int)(tc_uniform(&r) * 7) - 3;
                        for (int64_t j = 0; j < d; j++)
                            for (int u = 0; u < (ulps < 0 ? -ulps : ulps); u++)
                                c[j] = nextafterf(c[j], ulps < 0 ? 0.0f : 2.0f * c[j]);
                    }
                }
                if (tc_uniform(&r) < 0.15) memcpy(C + 4 * d, C + 1 * d, (size_t)d * sizeof *C);
                /* the row: near a centroid, or near the bisector of two, at a scale from tiny to
                 * huge (f16: within its range) */
                const int kind = (int)(tc_uniform(&r) * 3);
                const int ka = (int)(tc_uniform(&r) * K), kb = (ka + 1) % K;
                const int lo = dtype == FKM_F16 && pth ? -8 : -140, hi = dtype == FKM_F16 && pth ? 8 : 70;
                const double sc = tc_uniform(&r) < 0.5 ? 1.0 : ldexp(1.0, lo + (int)(tc_uniform(&r) * (hi - lo)));
                const double jit = spread * ldexp(1.0, -(int)(tc_uniform(&r) * 12));
                near_row(x, C, base, d, kind, ka, kb, sc, jit, pth == 0 ? FKM_F32 : dtype, &r);
                if (pth == 2) { /* an f16 input: within range */
                    int big = 0;
                    for (int64_t j = 0; j < d; j++) big |= !(fabsf(x[j]) <= 65504.0f);
                    if (big) continue;
                }
                float y[1024];
                cos_normalise(x, d, y);
                const int want = cos_exact_argmin(y, C, K, d);
                /* (a) the scores the modelled kernels compute (test 'check' above bounds them) */
                for (int k = 0; k < K; k++)
                    v[k] = (float)(pth == 0 ? cpu_score(x, C + k * d, d, 1)
                                            : tc_score(x, C + k * d, d, 1, dtype, &r, prod, perm));
                cos_check(&cert, names[pth], x, C, v, K, d, &st[0][pth]);
                /* (b) the adversary, at the full allowance and at a random fraction of it */
                const double frac = trial & 1 ? 1.0 : tc_uniform(&r);
                if (cos_adversarial(&cert, x, C, K, d, want, frac, v))
                    cos_check(&cert, names[pth], x, C, v, K, d, &st[1][pth]);
            }
    }
    int64_t fw = 0, fwr = 0, naive = 0, cert_all = 0, miss = 0;
    for (int m = 0; m < 2; m++)
        for (int p = 0; p < 4; p++) {
            const cos_stats *s = &st[m][p];
            printf("cosine %-11s %-4s: %6lld points, %6lld certified, %5lld by the pair test, fast label wrong "
                   "%5lld (all refused: %s), dot-only bound would certify %lld wrong\n",
                   m ? "adversarial" : "modelled", names[p], (long long)s->trials, (long long)s->cert,
                   (long long)s->pair, (long long)s->fast_wrong, s->fast_wrong == s->fast_wrong_refused ? "yes" : "NO",
                   (long long)s->naive_wrong);
            fw += s->fast_wrong, fwr += s->fast_wrong_refused, naive += s->naive_wrong, cert_all += s->cert;
            miss += s->cand_miss_half;
        }
    printf("cosine candidate threshold: the exact argmin within it on every point; at half its margin it missed "
           "%lld\n", (long long)miss);
    CHECK(miss > 0, "cosine candidate threshold: half the margin never missed: the data do not test it");
    /* the data must reach the bound from both sides: labels certified, and wrong fast labels
     * (which a bound too small would have certified) refused */
    CHECK(cert_all > 0 && fw > 0 && fw == fwr, "cosine: %lld certified, %lld wrong fast labels, %lld refused",
          (long long)cert_all, (long long)fw, (long long)fwr);
    CHECK(naive > 0, "cosine: the dot-only bound never certified a wrong label: the data do not need the cosine terms");
    free(x), free(C), free(prod), free(perm);
}

/* ---------------------------------------------------------------- the measured bound in the certification
 *
 * l2 and dot on the three tensor paths, with the bound from the measured operand rounding
 * (fkm_cert_ok_pt, as exact.cu's certify runs it): whatever it certifies must be the exact
 * argmin (the fixed-point reference), for the modelled kernels' scores and for an adversary
 * that moves every score by (a fraction of) its whole allowance E_k against the exact argmin.
 * Each weakened variant must certify a wrong label somewhere: the centroid term halved, the
 * problem's largest centroid term replaced by the chosen centroid's, the x term halved
 * (TF32), so the test would catch any of these mistakes. */

/* The exact argmin of ||x - c_k||^2 (or of -x.c_k), ties to the lowest index. */
static int exact_argmin(const float *x, const float *C, int K, int64_t d, int dot)
{
    xfix best = {{0}};
    int bl = -1;
    for (int k = 0; k < K; k++) {
        xfix s = {{0}};
        for (int64_t j = 0; j < d; j++) {
            const double a = x[j], c = C[k * d + j];
            if (dot) xfix_add_double(&s, -a * c);
            else xfix_add_double(&s, a * a), xfix_add_double(&s, -2.0 * a * c), xfix_add_double(&s, c * c);
        }
        if (bl < 0 || xfix_cmp(&s, &best) < 0) best = s, bl = k;
    }
    return bl;
}

typedef struct dstats {
    int64_t trials, cert, pair, cert_model, fast_wrong, wrong_half_dc, wrong_max_best, wrong_half_dx;
    int64_t cand_miss_half; /* the candidate threshold at half its margin missed the exact argmin */
} dstats;

static void delta_case(const fkm_cert *cert, int dtype, int dot, const float *x, const float *C, const float *v,
                       int K, int64_t d, dstats *st)
{
    double nc[8], dc[8], cmax = 0.0, dcmax = 0.0, nx = 0.0;
    for (int64_t j = 0; j < d; j++) nx += (double)x[j] * x[j];
    nx = sqrt(nx);
    const double dx = delta_x(x, d, dtype);
    for (int k = 0; k < K; k++) {
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) ss += (double)C[k * d + j] * C[k * d + j];
        nc[k] = sqrt(ss), dc[k] = delta_c(C + k * d, d, dtype);
        cmax = fmax(cmax, nc[k]), dcmax = fmax(dcmax, dc[k]);
    }
    const int want = exact_argmin(x, C, K, d, dot);
    int i1, i2;
    float v3;
    cos_top3(v, K, &i1, &i2, &v3);
    const fkm_cert_pt p = {nx, dx, nc[i1], dc[i1], cmax, dcmax};
    const int ok2 = fkm_cert_ok_pt(cert, v[i1], v[i2], &p);
    const int ok3 = K == 2 || fkm_cert_ok_pt(cert, v[i1], v3, &p);
    const int okm = fkm_cert_ok(cert, v[i1], v[i2], nx, nc[i1], cmax);
    st->trials++, st->cert += ok2, st->pair += !ok2 && ok3, st->cert_model += okm;
    CHECK(!ok2 || i1 == want, "measured bound, dtype %d dot %d d=%lld: certified %d, exact argmin %d", dtype, dot,
          (long long)d, i1, want);
    CHECK(!ok3 || want == i1 || want == i2, "measured bound, dtype %d dot %d d=%lld: pair {%d, %d}, exact %d", dtype,
          dot, (long long)d, i1, i2, want);
    CHECK(!okm || i1 == want, "model bound, dtype %d dot %d d=%lld: certified %d, exact argmin %d", dtype, dot,
          (long long)d, i1, want);
    st->cand_miss_half += cand_check(cert, "measured bound", dtype, dot, v, i1, want, &p, 0, 0.0);
    if (i1 == want) return;
    st->fast_wrong++;
    fkm_cert_pt q = p;
    q.best_cdelta *= 0.5, q.max_cdelta *= 0.5;
    st->wrong_half_dc += fkm_cert_ok_pt(cert, v[i1], v[i2], &q);
    q = p, q.max_cdelta = p.best_cdelta;
    st->wrong_max_best += fkm_cert_ok_pt(cert, v[i1], v[i2], &q);
    q = p, q.xdelta *= 0.5;
    st->wrong_half_dx += fkm_cert_ok_pt(cert, v[i1], v[i2], &q);
}

/* The adversary: every score off by frac of its allowance E_k (measured bound), the exact
 * argmin's upwards, every other downwards. 0: a score could not be placed (case unused). */
static int delta_adversarial(const fkm_cert *cert, int dtype, int dot, const float *x, const float *C, int K,
                             int64_t d, int want, double frac, float *v)
{
    double nx = 0.0;
    for (int64_t j = 0; j < d; j++) nx += (double)x[j] * x[j];
    nx = sqrt(nx);
    const double dx = delta_x(x, d, dtype);
    for (int k = 0; k < K; k++) {
        long double t = 0.0L;
        double cc = 0.0;
        for (int64_t j = 0; j < d; j++) {
            const double c = C[k * d + j];
            t += dot ? -(long double)((double)x[j] * c) : (long double)(c * c) - 2.0L * (long double)((double)x[j] * c);
            cc += c * c;
        }
        const double e = fkm_cert_err_d(cert, nx, dx, sqrt(cc), delta_c(C + k * d, d, dtype)) * (1.0 - 0x1p-20);
        float f = (float)(t + (long double)(k == want ? frac : -frac) * e);
        while (isfinite(f) && fabsl((long double)f - t) > (long double)e) f = nextafterf(f, (float)t);
        if (!isfinite(f)) return 0;
        v[k] = f;
    }
    return 1;
}

/* Crafted cases on which the computed score's error reaches the measured term: halving it
 * leaves a score outside the bound. (1) bf16 centroids c_j = 1 + k_j 2^-10 (k_j in 1..3) round
 * to 1, x_j = k_j: x.(c - ct) = ||x|| ||c - ct|| exactly. (2) TF32 x_j = 1 + r_j, r_j below
 * half an ulp, so that both the mma (nearest) and the wgmma (truncation) copies are 1, c_j
 * = r_j 2^20 (TF32 integers): (x - xt).c = ||x - xt|| ||c||. (3) wgmma's truncation at its
 * worst, x_j = 1 + 2^-10 - 2^-23, c_j = 1: the error ~ d 2^-10, twice what the former
 * x-rounding term 2^-11 ||x|| ||c|| allowed (the reason u_x is 2^-10 now). */
static void delta_crafted(void)
{
    enum { D = 64 };
    float x[D], c[D];
    tc_rng r = {4242};
    for (int cse = 0; cse < 3; cse++) {
        const int dtype = cse == 0 ? FKM_BF16 : FKM_F32;
        for (int j = 0; j < D; j++) {
            const int k = cse == 0 ? 1 + (int)(tc_uniform(&r) * 3) : 1 + (int)(tc_uniform(&r) * 511);
            if (cse == 0) c[j] = 1.0f + (float)k * 0x1p-10f, x[j] = (float)k;
            else if (cse == 1) x[j] = 1.0f + (float)k * 0x1p-20f, c[j] = (float)k;
            else x[j] = 1.0f + 0x1p-10f - 0x1p-23f, c[j] = 1.0f;
        }
        const fkm_cert cert = fkm_cert_tensor(D, 1, dtype);
        /* the kernels' dot score, exactly: the operand products are integers (or 1) here */
        double q = 0.0, nx = 0.0, nc = 0.0;
        for (int j = 0; j < D; j++) {
            const double xt = dtype == FKM_F32 ? round_to(x[j], 11, -126, cse == 2 ? 2 : 1 + (j & 1)) : x[j];
            q += xt * op_centroid(c[j], dtype);
            nx += (double)x[j] * x[j], nc += (double)c[j] * c[j];
        }
        nx = sqrt(nx), nc = sqrt(nc);
        const double dx = delta_x(x, D, dtype), dc = delta_c(c, D, dtype);
        const double full = fkm_cert_err_d(&cert, nx, dx, nc, dc);
        const double weak = cse == 0 ? fkm_cert_err_d(&cert, nx, dx, nc, 0.5 * dc)
                            : cse == 1 ? fkm_cert_err_d(&cert, nx, 0.5 * dx, nc, dc)
                                       : fkm_cert_err_d(&cert, nx, 0x1p-11 * nx + cert.sd * cert.eta_x, nc, dc);
        CHECK(within(-q, full, x, c, D, 1), "crafted case %d: the score is outside the measured bound", cse);
        CHECK(!within(-q, weak, x, c, D, 1), "crafted case %d: the weakened bound still holds (the case is no test)",
              cse);
        CHECK(within(-q, fkm_cert_err(&cert, nx, nc), x, c, D, 1), "crafted case %d: outside the model's bound", cse);
    }
    printf("measured bound, crafted cases: the centroid term, the x term and u_x = 2^-10 are each needed\n");
}

static void test_delta(void)
{
    delta_crafted();
    enum { K = 6 };
    static const int64_t dims[] = {2, 3, 16, 128, 512};
    static const int dts[3] = {FKM_F32, FKM_F16, FKM_BF16};
    static const char *const names[3] = {"tf32", "f16", "bf16"};
    tc_rng r = {9091};
    float *x = malloc(512 * sizeof *x), *C = malloc(K * 512 * sizeof *C), v[K], base[512];
    double *prod = malloc(512 * sizeof *prod);
    int64_t *perm = malloc(512 * sizeof *perm);
    dstats st[2][3] = {{{0}}};
    for (size_t a = 0; a < sizeof dims / sizeof dims[0]; a++) {
        const int64_t d = dims[a];
        const int trials = d >= 512 ? 60 : d >= 128 ? 200 : 600;
        for (int trial = 0; trial < trials; trial++)
            for (int t = 0; t < 3; t++) {
                const int dtype = dts[t], dot = trial & 1;
                const fkm_cert cert = fkm_cert_tensor(d, dot, dtype);
                /* centroids around a common point, spreads from wide to below the operand's
                 * resolution; some already representable in the operand type (measured term 0),
                 * some duplicated (exact ties) */
                const double spread = ldexp(1.0, -(int)(tc_uniform(&r) * 20));
                const double off = tc_uniform(&r) < 0.3 ? 8.0 : 0.0;
                for (int64_t j = 0; j < d; j++) base[j] = (float)(off + tc_normal(&r));
                for (int k = 0; k < K; k++) {
                    float *c = C + k * d;
                    const int exact_op = tc_uniform(&r) < 0.3;
                    for (int64_t j = 0; j < d; j++) {
                        c[j] = (float)(base[j] + spread * tc_normal(&r));
                        if (exact_op) c[j] = op_centroid(c[j], dtype);
                    }
                }
                if (tc_uniform(&r) < 0.15) memcpy(C + 4 * d, C + 1 * d, (size_t)d * sizeof *C);
                /* the row: near a centroid, the bisector of two, or the common point */
                const int kind = (int)(tc_uniform(&r) * 3);
                const int ka = (int)(tc_uniform(&r) * K), kb = (ka + 1) % K;
                const double sc = tc_uniform(&r) < 0.7 ? 1.0 : ldexp(1.0, (int)(tc_uniform(&r) * 8) - 4);
                const double jit = spread * ldexp(1.0, -(int)(tc_uniform(&r) * 12));
                near_row(x, C, base, d, kind, ka, kb, sc, jit, dtype, &r);
                const int want = exact_argmin(x, C, K, d, dot);
                for (int k = 0; k < K; k++) v[k] = (float)tc_score(x, C + k * d, d, dot, dtype, &r, prod, perm);
                delta_case(&cert, dtype, dot, x, C, v, K, d, &st[0][t]);
                const double frac = trial & 2 ? 1.0 : tc_uniform(&r);
                if (delta_adversarial(&cert, dtype, dot, x, C, K, d, want, frac, v))
                    delta_case(&cert, dtype, dot, x, C, v, K, d, &st[1][t]);
            }
    }
    int64_t hdc = 0, mb = 0, hdx = 0, miss = 0;
    for (int m = 0; m < 2; m++)
        for (int t = 0; t < 3; t++) {
            const dstats *s = &st[m][t];
            printf("measured bound %-11s %-4s: %5lld points, %5lld certified (model's bound: %5lld), %4lld by the "
                   "pair test, fast label wrong %4lld; certified wrongly with the centroid term halved %lld, with the "
                   "chosen centroid's term for the largest %lld, with the x term halved %lld\n",
                   m ? "adversarial" : "modelled", names[t], (long long)s->trials, (long long)s->cert,
                   (long long)s->cert_model, (long long)s->pair, (long long)s->fast_wrong, (long long)s->wrong_half_dc,
                   (long long)s->wrong_max_best, (long long)s->wrong_half_dx);
            hdc += s->wrong_half_dc, mb += s->wrong_max_best, hdx += t == 0 ? s->wrong_half_dx : 0;
            miss += s->cand_miss_half;
        }
    printf("candidate threshold: the exact argmin within it on every point; at half its margin it missed %lld\n",
           (long long)miss);
    CHECK(miss > 0, "candidate threshold: half the margin never missed the exact argmin: the data do not test it");
    CHECK(hdc > 0 && mb > 0 && hdx > 0,
          "measured bound: a weakened variant never certified a wrong label (%lld, %lld, %lld): the data do not "
          "test those terms", (long long)hdc, (long long)mb, (long long)hdx);
    free(x), free(C), free(prod), free(perm);
}

/* ---------------------------------------------------------------- carried certificates (EXACTNESS.md 5.5)
 *
 * A point certified with the measured operand terms (modelled or adversarial scores) gets
 * fkm_cert_carry_init's bounds; they must hold exactly (l2: hi >= ||x - c_a||, lo <= every
 * other distance, checked on squares in the fixed-point reference; dot: g <= every t_k - t_a).
 * Then the centroids move, at random (every one, by 2^-30 to 2^2 of the data's scale, some not
 * at all) or against the label (its centroid away from x, the runner-up towards it, by a
 * random fraction of up to twice the margin), and whenever fkm_cert_carry_move keeps the
 * certificate, the label must be the unique exact argmin at the new centroids. Weakened
 * variants must carry a wrong label somewhere: the label's own move left out, and the bounds
 * taken from the computed scores without their error bound. */

/* Exact t (l2: the full squared distance; dot: -x.c) of every centroid. */
static void exact_t(const float *x, const float *C, int K, int64_t d, int dot, xfix *t)
{
    for (int k = 0; k < K; k++) {
        memset(&t[k], 0, sizeof t[k]);
        for (int64_t j = 0; j < d; j++) {
            const double xv = x[j], c = C[k * d + j];
            if (dot) xfix_add_double(&t[k], -xv * c);
            else xfix_add_double(&t[k], xv * xv), xfix_add_double(&t[k], -2.0 * xv * c), xfix_add_double(&t[k], c * c);
        }
    }
}

/* v <= t exactly (v a double; 0 for values below the reference's grain, which only lowers them). */
static int le_exact(double v, const xfix *t)
{
    xfix z = {{0}};
    if (fabs(v) >= 0x1p-250) xfix_add_double(&z, v);
    else if (v > 0.0) xfix_add_double(&z, 0x1p-250);
    return xfix_cmp(&z, t) <= 0;
}

/* The certificate's bounds hold at the centroids C. */
static int carry_holds(const fkm_carry *b, const float *x, const float *C, int K, int64_t d, int dot, int a)
{
    xfix t[8];
    exact_t(x, C, K, d, dot, t);
    for (int k = 0; k < K; k++) {
        if (k == a) continue;
        if (dot) { /* t_k - t_a >= g: t_a + g <= t_k */
            xfix s = t[a];
            if (fabs(b->lo) >= 0x1p-250) xfix_add_double(&s, b->lo);
            if (xfix_cmp(&s, &t[k]) > 0) return 0;
        } else if (!le_exact(b->lo * b->lo * (1.0 - 0x1p-50), &t[k])) { /* lo^2 <= s_k */
            return 0;
        }
    }
    if (dot) return 1;
    xfix up = {{0}}; /* s_a <= hi^2 */
    xfix_add_double(&up, b->hi * b->hi * (1.0 + 0x1p-50));
    return xfix_cmp(&t[a], &up) <= 0;
}

/* a is the exact argmin at C and no other centroid ties it. */
static int unique_argmin(const float *x, const float *C, int K, int64_t d, int dot, int a)
{
    xfix t[8];
    exact_t(x, C, K, d, dot, t);
    for (int k = 0; k < K; k++)
        if (k != a && xfix_cmp(&t[k], &t[a]) <= 0) return 0;
    return 1;
}

/* max_k ||C2_k - C_k|| as the device would bound it (fkm_cert_delta of double differences), and
 * the label's own. */
static double move_norm(const float *C, const float *C2, int k, int64_t d)
{
    double ss = 0.0;
    for (int64_t j = 0; j < d; j++) {
        const double e = (double)C2[k * d + j] - (double)C[k * d + j];
        ss += e * e;
    }
    return fkm_cert_delta(ss);
}

static void test_carry(void)
{
    enum { K = 6 };
    static const int64_t dims[] = {2, 3, 16, 64};
    tc_rng r = {5151};
    float *x = malloc(64 * sizeof *x), *C = malloc(K * 64 * sizeof *C), *C2 = malloc(K * 64 * sizeof *C2), v[K],
          base[64];
    double *prod = malloc(64 * sizeof *prod);
    int64_t *perm = malloc(64 * sizeof *perm);
    int64_t trials = 0, certified = 0, carried = 0, bad_bounds = 0, wrong_own = 0, wrong_noerr = 0;
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        const int64_t d = dims[di];
        for (int trial = 0; trial < 3000; trial++) {
            const int dtype = trial % 3 == 0 ? FKM_F32 : trial % 3 == 1 ? FKM_F16 : FKM_BF16, dot = (trial >> 2) & 1;
            const fkm_cert cert = fkm_cert_tensor(d, dot, dtype);
            const double spread = ldexp(1.0, -(int)(tc_uniform(&r) * 8));
            const double off = tc_uniform(&r) < 0.3 ? 8.0 : 0.0;
            for (int64_t j = 0; j < d; j++) base[j] = (float)(off + tc_normal(&r));
            for (int k = 0; k < K; k++)
                for (int64_t j = 0; j < d; j++) C[k * d + j] = (float)(base[j] + spread * tc_normal(&r));
            const int kind = (int)(tc_uniform(&r) * 3), ka = (int)(tc_uniform(&r) * K), kb = (ka + 1) % K;
            near_row(x, C, base, d, kind, ka, kb, 1.0, spread * ldexp(1.0, -(int)(tc_uniform(&r) * 6)), dtype, &r);
            const int want = exact_argmin(x, C, K, d, dot);
            if (trial & 2) {
                for (int k = 0; k < K; k++) v[k] = (float)tc_score(x, C + k * d, d, dot, dtype, &r, prod, perm);
            } else if (!delta_adversarial(&cert, dtype, dot, x, C, K, d, want, 0.5 + 0.5 * tc_uniform(&r), v)) {
                continue;
            }
            trials++;
            double nc[K], dc[K], cmax = 0.0, dcmax = 0.0, nx = 0.0;
            for (int64_t j = 0; j < d; j++) nx += (double)x[j] * x[j];
            nx = sqrt(nx);
            for (int k = 0; k < K; k++) {
                double ss = 0.0;
                for (int64_t j = 0; j < d; j++) ss += (double)C[k * d + j] * C[k * d + j];
                nc[k] = sqrt(ss), dc[k] = delta_c(C + k * d, d, dtype);
                cmax = fmax(cmax, nc[k]), dcmax = fmax(dcmax, dc[k]);
            }
            int i1, i2;
            float v3;
            cos_top3(v, K, &i1, &i2, &v3);
            const fkm_cert_pt p = {nx, delta_x(x, d, dtype), nc[i1], dc[i1], cmax, dcmax};
            fkm_carry b;
            const int ok = fkm_cert_carry_init(&cert, v[i1], v[i2], &p, &b);
            /* the weakened bounds: the computed scores taken as exact (a zero bound) */
            fkm_cert weak = cert;
            weak.valid = 1;
            fkm_cert_pt pw = p;
            pw.xdelta = pw.best_cdelta = pw.max_cdelta = 0.0;
            weak.u_acc = weak.eta_acc = weak.eps_n = 0.0, weak.g = 0.0;
            fkm_carry bw;
            const int okw = fkm_cert_carry_init(&weak, v[i1], v[i2], &pw, &bw);
            /* the move: at random, or against the label by a fraction of twice the margin */
            const int runner = i1 == 0 ? 1 : 0;
            const int against = tc_uniform(&r) < 0.5 && ok && !dot;
            const double frac = 2.0 * tc_uniform(&r);
            const double step = spread * ldexp(1.0, -(int)(tc_uniform(&r) * 32) + 2);
            for (int k = 0; k < K; k++) {
                const int still = tc_uniform(&r) < 0.2;
                double dir[64], dn = 0.0;
                for (int64_t j = 0; j < d; j++) {
                    dir[j] = against ? (double)C[k * d + j] - x[j] : tc_normal(&r);
                    dn += dir[j] * dir[j];
                }
                dn = sqrt(dn);
                double len = step;
                if (against) len = k == i1 ? frac * 0.5 * (b.lo - b.hi) : k == runner ? -frac * 0.5 * (b.lo - b.hi) : 0.0;
                for (int64_t j = 0; j < d; j++)
                    C2[k * d + j] = (still && !against) || dn == 0.0 ? C[k * d + j]
                                                                      : (float)(C[k * d + j] + len * dir[j] / dn);
            }
            double dmax = 0.0;
            for (int k = 0; k < K; k++) dmax = fmax(dmax, move_norm(C, C2, k, d));
            const double da = move_norm(C, C2, i1, d);
            if (ok) {
                certified++;
                if (!carry_holds(&b, x, C, K, d, dot, i1)) bad_bounds++;
                fkm_carry m = b;
                if (fkm_cert_carry_move(&m, dot, nx, da, dmax)) {
                    carried++;
                    CHECK(unique_argmin(x, C2, K, d, dot, i1),
                          "carry: label %d kept (lo %.9g hi %.9g -> %.9g %.9g, d=%lld dot %d dtype %d%s) but the exact "
                          "argmin at the new centroids is %d", i1, b.lo, b.hi, m.lo, m.hi, (long long)d, dot, dtype,
                          against ? ", a move against it" : "", exact_argmin(x, C2, K, d, dot));
                }
                fkm_carry m1 = b;
                if (fkm_cert_carry_move(&m1, dot, nx, 0.0, dmax) && !unique_argmin(x, C2, K, d, dot, i1)) wrong_own++;
            }
            fkm_carry m2 = bw;
            if (okw && fkm_cert_carry_move(&m2, dot, nx, da, dmax) && !unique_argmin(x, C2, K, d, dot, i1))
                wrong_noerr++;
        }
    }
    printf("carried certificates: %lld points, %lld certified (bounds exact: %s), %lld kept after a move, all exact; "
           "wrong labels kept with the label's own move left out %lld, with the scores taken as exact %lld\n",
           (long long)trials, (long long)certified, bad_bounds ? "NO" : "yes", (long long)carried,
           (long long)wrong_own, (long long)wrong_noerr);
    CHECK(bad_bounds == 0, "carry: %lld certificates whose bounds do not hold", (long long)bad_bounds);
    CHECK(carried > 500, "carry: only %lld points kept: the moves test nothing", (long long)carried);
    CHECK(wrong_own > 0 && wrong_noerr > 0,
          "carry: a weakened variant never kept a wrong label (%lld, %lld): the data do not test the bounds",
          (long long)wrong_own, (long long)wrong_noerr);
    free(x), free(C), free(C2), free(prod), free(perm);
}

/* The f32 path's x term at its worst: the wgmma kernels give the tensor cores the raw f32 x,
 * of which they read the upper 19 bits (truncation), so x_j = 1 + 2^-10 - 2^-23 enters as 1,
 * and c_j = 1 + 2^-11 - 2^-23 rounds (nearest) to 1 as well: the dot score's error is
 * d (a + b + ab), a = 2^-10 - 2^-23, b = 2^-11 - 2^-23, which u_x = 2^-11 (rounding only)
 * did not cover and u_x = 2^-10 does. */
static void test_tf32_truncation(void)
{
    enum { D = 64 };
    float x[D], c[D];
    double q = 0.0, nx = 0.0, nc = 0.0;
    long double t = 0.0L;
    for (int j = 0; j < D; j++) {
        x[j] = 1.0f + 0x1p-10f - 0x1p-23f, c[j] = 1.0f + 0x1p-11f - 0x1p-23f;
        q += round_to(x[j], 11, -126, 2) * round_to(c[j], 11, -126, 0); /* 1 x 1, exact */
        t -= (long double)((double)x[j] * c[j]);
        nx += (double)x[j] * x[j], nc += (double)c[j] * c[j];
    }
    nx = sqrt(nx), nc = sqrt(nc);
    const double err = (double)fabsl((long double)(-q) - t);
    const fkm_cert cert = fkm_cert_tensor(D, 1, FKM_F32);
    fkm_cert rounding_only = cert;
    rounding_only.u_x = 0x1p-11;
    CHECK(err <= fkm_cert_err(&cert, nx, nc), "TF32 truncation: error %.6g exceeds the bound %.6g", err,
          fkm_cert_err(&cert, nx, nc));
    CHECK(err > fkm_cert_err(&rounding_only, nx, nc),
          "TF32 truncation: the rounding-only bound %.6g covers the error %.6g (the case is no test)",
          fkm_cert_err(&rounding_only, nx, nc), err);
    printf("TF32 x truncated by wgmma: error %.6g, bound %.6g (u_x = 2^-11 would allow %.6g)\n", err,
           fkm_cert_err(&cert, nx, nc), fkm_cert_err(&rounding_only, nx, nc));
}

int main(void)
{
    test_tf32_truncation();
    test_top3();
    test_cosine();
    test_delta();
    test_carry();
    static const int64_t dims[] = {1, 3, 16, 128, 1024, 4096};
    static const char *const kinds[] = {"offset 1e4", "mixed signs", "tiny (1e-30..1e-5)", "mixed scales",
                                        "straddling 2^-126"};
    stats cpu = {0}, tc[3] = {{0}};
    float *x = malloc(4096 * sizeof *x), *c = malloc(4096 * sizeof *c);
    double *prod = malloc(4096 * sizeof *prod);
    int64_t *perm = malloc(4096 * sizeof *perm);
    tc_rng r = {2024};
    for (size_t a = 0; a < sizeof dims / sizeof dims[0]; a++) {
        const int64_t d = dims[a];
        const int trials = d >= 1024 ? 60 : 400;
        for (int kind = 0; kind < 5; kind++)
            for (int trial = 0; trial < trials; trial++) {
                const int dot = trial & 1;
                for (int64_t j = 0; j < d; j++) {
                    double xv, cv;
                    switch (kind) {
                    case 0: xv = 1e4 + tc_normal(&r), cv = 1e4 + tc_normal(&r); break;
                    case 1: xv = tc_normal(&r), cv = tc_normal(&r); break;
                    case 2: xv = 1e-30 * exp(57.0 * tc_uniform(&r)) * (tc_uniform(&r) < 0.5 ? -1 : 1);
                            cv = 1e-30 * exp(57.0 * tc_uniform(&r)); break;
                    case 3: xv = tc_normal(&r) * exp(20.0 * tc_normal(&r) / 3.0);
                            cv = tc_normal(&r) * exp(20.0 * tc_normal(&r) / 3.0); break;
                    default: /* some elements near and below the f32 normal range (the flushes) */
                        xv = tc_normal(&r) * (tc_uniform(&r) < 0.5 ? 1.0 : ldexp(1.0, -120 - (int)(tc_uniform(&r) * 12)));
                        cv = tc_normal(&r) * (tc_uniform(&r) < 0.5 ? 1.0 : ldexp(1.0, -120 - (int)(tc_uniform(&r) * 12)));
                        break;
                    }
                    x[j] = (float)xv, c[j] = (float)cv;
                }
                const fkm_cert cc = fkm_cert_cpu((long long)d, dot);
                check(&cc, &cpu, "cpu", d, x, c, cpu_score(x, c, d, dot), dot, -1);
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
                    check(&ct, &tc[t], "tensor model", d, x, c, tc_score(x, c, d, dot, dts[t], &r, prod, perm), dot,
                          dts[t]);
                }
            }
        (void)kinds;
    }
    printf("cpu kernel:        %lld scores, largest error / bound %.3g\n", (long long)cpu.tried, cpu.worst);
    static const char *const names[3] = {"tf32", "f16", "bf16"};
    for (int t = 0; t < 3; t++)
        printf("tensor model %-4s: %lld scores (%lld outside the operand range), largest error / bound %.3g "
               "(model's bound: %.3g), measured bound / model's on average %.3f\n",
               names[t], (long long)tc[t].tried, (long long)tc[t].skipped, tc[t].worst, tc[t].worst_model,
               tc[t].tight_sum / (double)(tc[t].tried ? tc[t].tried : 1));
    free(x), free(c), free(prod), free(perm);
    return tc_finish("test_cert");
}
