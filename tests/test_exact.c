/* test_exact.c — certified-exact mode (FKM_PRECISION_EXACT, docs/EXACTNESS.md) against an
 * independent exact reference, on adversarial data built to defeat the fast path:
 *   - points exactly equidistant to 2 or 4 centroids (a "box" of centroids that differ only
 *     in one or two coordinates, symmetric about the point's value there),
 *   - the same points moved by one unit in the last place of the input type (or, for dot
 *     and cosine, by 2^-12 off zero), so that two distances differ in their last bits only,
 *   - a large common offset (1e4 in f32) that makes ||x||^2 - 2 x.c + ||c||^2 cancel,
 *   - duplicate centroids (exact ties that must go to the lowest index), points sitting on
 *     centroids, and plain random points;
 * for f32, f16 and bf16 input, l2, cosine and dot, d from 1 to 4096.
 *
 * The reference is written differently from the library: every value of a case is an
 * integer times 2^-q (q found per case), so distances are computed with exact integer
 * arithmetic (128-bit products, 192-bit sums) on the scaled integers. Cosine rows and
 * centroids are first normalised the way the contract states (flashkm.h).
 *
 * A stage case feeds each of the GPU's re-check stages (pair test, device filters, host) and
 * requires, on the CUDA backend, that each decided some points (fkm_exact_stats_stages).
 *
 * Exact mode must match the reference on every point. The fast mode's mismatches on the same
 * data and the fraction of points exact mode re-checked are printed, not asserted. Under
 * FLASHKM_TEST_SMALL (or a sanitizer build) the sizes shrink about 20-fold.
 *
 * On the GPU the device filters may split a point tile's centroids over several blocks
 * (src/cuda/exact.cu, ex_slices): the slicing cases run the same data under
 * FLASHKM_EXACT_FILTER_SLICES = default, 1, 2, 7 and max and require bitwise-equal labels,
 * exact counters (and for fits centroids and results), all equal to the reference. The same
 * cases run with the candidate pass forced on and off (FLASHKM_EXACT_CAND = 1, 0: exact.cu,
 * EXACTNESS.md 5.4; on also with the mma.sync kernel where wgmma would run it): the same labels, centroids and results, and the same points re-checked
 * and decided by the pair test (the filters' and the host's shares may differ); the crowd
 * case gives points more candidates than the pass keeps, which go back to the filters. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "common.h"

#include <math.h>
#include <string.h>
#include <time.h>

__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

/* ---------------------------------------------------------------- the exact reference */

/* A signed 192-bit integer: hi * 2^128 + lo. */
typedef struct big {
    int64_t hi;
    u128 lo;
} big;

static void big_add(big *a, i128 t)
{
    const u128 old = a->lo;
    a->lo += (u128)t;
    a->hi += (a->lo < old) + (t < 0 ? -1 : 0);
}

static int big_cmp(const big *a, const big *b)
{
    if (a->hi != b->hi) return a->hi < b->hi ? -1 : 1;
    if (a->lo != b->lo) return a->lo < b->lo ? -1 : 1;
    return 0;
}

/* The exponent of the lowest set bit of v (v = odd * 2^e), for v != 0. */
static int low_exp(double v)
{
    int e;
    double f = frexp(fabs(v), &e); /* |v| = f 2^e */
    int64_t m = (int64_t)ldexp(f, 53);
    int z = 0;
    while (!(m & 1)) m >>= 1, z++;
    return e - 53 + z;
}

/* Scales every value of a and b to integers: q such that all are integers times 2^-q.
 * Returns 0 (and the test fails) when the scaled values do not fit 61 bits. */
static int scale_ints(const float *a, int64_t na, const float *b, int64_t nb, int64_t *ia, int64_t *ib)
{
    int q = -10000;
    double mx = 0.0;
    for (int64_t i = 0; i < na + nb; i++) {
        const double v = i < na ? a[i] : b[i - na];
        if (v == 0.0) continue;
        if (-low_exp(v) > q) q = -low_exp(v);
        if (fabs(v) > mx) mx = fabs(v);
    }
    if (q == -10000) q = 0;
    if (ldexp(mx, q) >= 0x1p61) return 0;
    for (int64_t i = 0; i < na; i++) ia[i] = (int64_t)ldexp(a[i], q);
    for (int64_t i = 0; i < nb; i++) ib[i] = (int64_t)ldexp(b[i], q);
    return 1;
}

/* Reference labels: argmin of the exact ||x - c||^2 (or of -x.c), ties to the lowest k. */
static void reference_labels(const int64_t *X, const int64_t *C, int64_t n, int64_t k, int64_t d, int dot,
                             int32_t *labels)
{
    for (int64_t i = 0; i < n; i++) {
        big best = {0, 0};
        int32_t bl = -1;
        for (int64_t c = 0; c < k; c++) {
            big s = {0, 0};
            for (int64_t j = 0; j < d; j++) {
                const i128 x = X[i * d + j], y = C[c * d + j];
                big_add(&s, dot ? -(x * y) : (x - y) * (x - y));
            }
            if (bl < 0 || big_cmp(&s, &best) < 0) best = s, bl = (int32_t)c;
        }
        labels[i] = bl;
    }
}

/* The contract's normalisation (flashkm.h): scale by 1/sqrt(sum of squares) in double, round
 * once to f32; a zero row stays zero. */
static void normalise(float *rows, int64_t n, int64_t d)
{
    for (int64_t i = 0; i < n; i++) {
        float *r = rows + i * d;
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) ss += (double)r[j] * r[j];
        if (ss > 0.0) {
            const double inv = 1.0 / sqrt(ss);
            for (int64_t j = 0; j < d; j++) r[j] = (float)(r[j] * inv);
        }
    }
}

/* The contract's labels (argmin, ties to the lowest index) of the stored rows X (n x d, the
 * values tc_store kept) against the f32 centroids C (k x d) for metric: the rows as f32,
 * both sides normalised for cosine, then exact integer arithmetic. Returns 0, ref untouched,
 * when the values do not fit the reference's integer range. */
static int contract_labels(const double *X, const float *C, int64_t n, int64_t k, int64_t d, fkm_metric metric,
                           int32_t *ref)
{
    float *xf = malloc((size_t)(n * d) * sizeof *xf), *cf = malloc((size_t)(k * d) * sizeof *cf);
    int64_t *xi = malloc((size_t)(n * d) * sizeof *xi), *ci = malloc((size_t)(k * d) * sizeof *ci);
    for (int64_t t = 0; t < n * d; t++) xf[t] = (float)X[t];
    memcpy(cf, C, (size_t)(k * d) * sizeof *cf);
    if (metric == FKM_METRIC_COSINE) normalise(xf, n, d), normalise(cf, k, d);
    const int fits = scale_ints(xf, n * d, cf, k * d, xi, ci);
    if (fits) reference_labels(xi, ci, n, k, d, metric == FKM_METRIC_DOT, ref);
    free(xf), free(cf), free(xi), free(ci);
    return fits;
}

/* ---------------------------------------------------------------- the adversarial generator */

static double ulp_in(fkm_dtype t, double m)
{
    int e;
    frexp(fabs(m), &e); /* |m| in [2^(e-1), 2^e) */
    const int p = t == FKM_F32 ? 24 : t == FKM_F16 ? 11 : 8;
    return ldexp(1.0, e - p);
}

static double grid(tc_rng *r, double lo, double hi, double step)
{
    return lo + step * floor((hi - lo) / step * tc_uniform(r));
}

typedef struct totals {
    int64_t points, fast_mismatch, rechecked, skipped;
    int l2_ran[8]; /* by dtype: the l2 cases ran (then cosine must too, on every backend) */
    double exact_s, fast_s;
} totals;

static double now(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void run_case(fkm_ctx *ctx, fkm_dtype dtype, fkm_metric metric, int64_t d, int64_t n, uint64_t seed,
                     totals *tot)
{
    enum { K = 16 };
    const int dot = metric == FKM_METRIC_DOT, l2 = metric == FKM_METRIC_L2;
    tc_rng r = {seed * 0x9e3779b97f4a7c15ull + 12345};
    /* the offset: as large as the input type holds integers plus a few fractional bits */
    const double offset = dtype == FKM_F32 ? (metric == FKM_METRIC_COSINE ? 64.0 : 10000.0)
                          : dtype == FKM_F16 ? 256.0 : 0.0;
    const int64_t j0 = 0, j1 = d > 1 ? 1 : 0;
    const double m = l2 ? (offset > 0 ? offset : 1.0) : 0.0; /* the box's centre coordinate */
    double *B = malloc((size_t)d * sizeof *B);
    for (int64_t j = 0; j < d; j++) B[j] = offset + grid(&r, -8, 8, 1);
    B[j0] = B[j1] = m;
    /* a "wide" coordinate (d >= 3): points far out (2^19, 2^15 for f16) against centroids
     * with tiny full-precision values (24 bits at 2^-17), so that x_j - c_j needs ~60 bits and
     * its square ~120: an fp64 distance rounds, and the tie below is decided only by exact
     * arithmetic */
    const int64_t j2 = d >= 3 ? 2 : -1;
    if (j2 >= 0) B[j2] = (dtype == FKM_F16 ? 32768.0 : 524288.0) + (dtype == FKM_F32 ? grid(&r, -8, 8, 1) : 0);
    const double tiny0 = ldexp(1.0 + grid(&r, 0, 1, 0x1p-23), -17);

    /* centroids: a box of 4 (2 when d = 1) about the tie coordinates, two duplicates, the
     * rest random, then shuffled so that duplicates and ties land at any index */
    float *C = malloc((size_t)(K * d) * sizeof *C);
    const double h0 = 1 + floor(4 * tc_uniform(&r)), h1 = 1 + floor(4 * tc_uniform(&r));
    for (int c = 0; c < K; c++) {
        float *row = C + c * d;
        if (c < 4) {
            for (int64_t j = 0; j < d; j++) row[j] = (float)B[j];
            row[j0] = (float)(m + (c & 1 ? h0 : -h0));
            if (j1 != j0) row[j1] = (float)(m + (c & 2 ? h1 : -h1));
            if (j2 >= 0) row[j2] = (float)tiny0;
        } else if (c < 6) {
            memcpy(row, C + (c - 4) * d, (size_t)d * sizeof *row);
        } else {
            for (int64_t j = 0; j < d; j++) row[j] = (float)(B[j] + grid(&r, -6, 6, 0.25));
            if (j2 >= 0) row[j2] = (float)ldexp(1.0 + grid(&r, 0, 1, 0x1p-23), -17);
        }
    }
    for (int c = K - 1; c > 0; c--) { /* Fisher-Yates with the test's generator */
        const int o = (int)floor((c + 1) * tc_uniform(&r));
        for (int64_t j = 0; j < d; j++) {
            const float t = C[c * d + j];
            C[c * d + j] = C[o * d + j], C[o * d + j] = t;
        }
    }

    /* points, in four kinds by index */
    double *X = malloc((size_t)(n * d) * sizeof *X);
    for (int64_t i = 0; i < n; i++) {
        double *x = X + i * d;
        const int kind = (int)(i % 4);
        if (kind == 3) { /* random around the centres */
            for (int64_t j = 0; j < d; j++) x[j] = B[j] + grid(&r, -6, 6, 1.0 / 256);
            continue;
        }
        if (kind == 2) { /* on a centroid (possibly duplicated), nudged on one coordinate */
            const int64_t c = (int64_t)floor(K * tc_uniform(&r));
            for (int64_t j = 0; j < d; j++) x[j] = C[c * d + j];
            const int64_t j = (int64_t)floor((double)d * tc_uniform(&r));
            x[j] += grid(&r, -2, 2, 1.0 / 16);
            continue;
        }
        /* on the box's bisecting planes: equidistant to 2 or 4 of its centroids */
        for (int64_t j = 0; j < d; j++) x[j] = B[j] + grid(&r, -3, 3, 1.0 / 64);
        x[j0] = x[j1] = m;
        if (j2 >= 0) x[j2] = B[j2];
        if (kind == 1) { /* one ulp (dot, cosine: 2^-12) off the tie */
            const double step = l2 ? ulp_in(dtype, m) : 0x1p-12;
            x[j0] += tc_uniform(&r) < 0.5 ? -step : step;
        }
    }
    void *Xs = tc_store(X, n, d, d, dtype); /* X now holds the stored values */

    /* the reference on the rows and centroids as the contract defines them */
    int32_t *ref = malloc((size_t)n * sizeof *ref), *got = malloc((size_t)n * sizeof *got);
    const int fits = contract_labels(X, C, n, K, d, metric, ref);
    CHECK(fits, "d=%lld: the case's values do not fit the reference's integer range", (long long)d);

    const char *mname = l2 ? "l2" : dot ? "dot" : "cosine";
    double t0 = now();
    fkm_status s = fkm_predict_precision(ctx, metric, FKM_PRECISION_EXACT, Xs, dtype, n, d, d, C, K, got, NULL);
    tot->exact_s += now() - t0;
    /* cosine is certified wherever l2 is (the GPU since EXACTNESS.md 5.1) */
    CHECK(!(s == FKM_E_UNSUPPORTED && metric == FKM_METRIC_COSINE && tot->l2_ran[dtype]),
          "%s cosine d=%lld: refused where l2 ran: %s", fkm_dtype_name(dtype), (long long)d, fkm_last_error(ctx));
    if (s == FKM_OK && l2) tot->l2_ran[dtype] = 1;
    if (s == FKM_E_UNSUPPORTED && fkm_ctx_backend(ctx) != FKM_BACKEND_CPU) {
        /* a combination the GPU backend does not certify yet: say so, test the others */
        if (tot->skipped++ == 0) printf("  skipped on %s: %s\n", fkm_backend_name(fkm_ctx_backend(ctx)), fkm_last_error(ctx));
        free(B), free(C), free(X), free(Xs), free(ref), free(got);
        return;
    }
    CHECK(s == FKM_OK, "exact predict: %s", fkm_last_error(ctx));
    int64_t pts = 0, rech = 0;
    fkm_exact_stats(ctx, &pts, &rech);
    int64_t bad = 0;
    for (int64_t i = 0; fits && s == FKM_OK && i < n; i++) {
        if (got[i] != ref[i] && bad++ < 3)
            fprintf(stderr, "  %s %s d=%lld point %lld (kind %d): exact %d, reference %d\n",
                    fkm_dtype_name(dtype), mname, (long long)d, (long long)i, (int)(i % 4), got[i], ref[i]);
    }
    CHECK(bad == 0, "%s %s d=%lld: %lld of %lld exact-mode labels differ from the reference",
          fkm_dtype_name(dtype), mname, (long long)d, (long long)bad, (long long)n);
    CHECK(pts == n, "exact stats: %lld points for n = %lld", (long long)pts, (long long)n);

    t0 = now();
    s = fkm_predict(ctx, metric, Xs, dtype, n, d, d, C, K, got, NULL);
    tot->fast_s += now() - t0;
    CHECK(s == FKM_OK, "fast predict: %s", fkm_last_error(ctx));
    for (int64_t i = 0; fits && i < n; i++) tot->fast_mismatch += got[i] != ref[i];
    tot->points += n;
    tot->rechecked += rech;

    free(B), free(C), free(X), free(Xs), free(ref), free(got);
}

/* Near-ties no double computation can resolve: two centroids a = (1 - 1, 0, a2, ...) and
 * b = (1 + 1, 0, a2 + 2^-30, ...) with a2 ~ 2^-17 at full precision, points
 * x = (1 - 2^-12 + e, 0, 2^19 + t, ...). Then ||x - a||^2 - ||x - b||^2 = 4e + 2^-29 t
 * - 2^-30 (a2 + b2) is at most of order 2^-20 and often 2^-46, while the distances are of
 * order 2^38; x_2 - a_2 needs 60 bits, so its double rounds (TwoSum's error term matters),
 * and the two doubles differ, so the roundings of their squares differ (TwoProduct's error
 * term matters): only exact arithmetic gets every sign right. */
static void hard_case(fkm_ctx *ctx, int64_t n, int64_t d, totals *tot)
{
    tc_rng r = {99 + (uint64_t)d};
    float *C = calloc((size_t)(2 * d), sizeof *C);
    const double a2 = ldexp(1.0 + grid(&r, 0, 1, 0x1p-23), -17);
    C[0] = 0.0f, C[2] = (float)a2;
    C[d + 0] = 2.0f, C[d + 2] = (float)(a2 + 0x1p-30);
    for (int64_t j = 3; j < d; j++) C[j] = C[d + j] = (float)grid(&r, -4, 4, 1.0 / 8);
    double *X = malloc((size_t)(n * d) * sizeof *X);
    for (int64_t i = 0; i < n; i++) {
        double *x = X + i * d;
        x[0] = 1.0 - 0x1p-12 + grid(&r, -2, 3, 1) * 0x1p-23;
        x[1] = 0.0;
        x[2] = 524288.0 + grid(&r, -2, 3, 1) * 0x1p-4;
        for (int64_t j = 3; j < d; j++) x[j] = grid(&r, -4, 4, 1.0 / 64);
    }
    void *Xs = tc_store(X, n, d, d, FKM_F32);
    int32_t *ref = malloc((size_t)n * sizeof *ref), *got = malloc((size_t)n * sizeof *got);
    const int fits = contract_labels(X, C, n, 2, d, FKM_METRIC_L2, ref);
    CHECK(fits, "hard case: values outside the reference's range");
    fkm_status s = fkm_predict_precision(ctx, FKM_METRIC_L2, FKM_PRECISION_EXACT, Xs, FKM_F32, n, d, d, C, 2, got, NULL);
    CHECK(s == FKM_OK, "exact predict: %s", fkm_last_error(ctx));
    int64_t bad = 0, rech = 0, ones = 0;
    for (int64_t i = 0; fits && s == FKM_OK && i < n; i++) bad += got[i] != ref[i], ones += ref[i];
    CHECK(bad == 0, "hard case d=%lld: %lld of %lld exact-mode labels differ from the reference", (long long)d,
          (long long)bad, (long long)n);
    CHECK(ones > 0 && ones < n, "hard case: the reference picks one side only (%lld of %lld)", (long long)ones,
          (long long)n);
    fkm_exact_stats(ctx, NULL, &rech);
    s = fkm_predict(ctx, FKM_METRIC_L2, Xs, FKM_F32, n, d, d, C, 2, got, NULL);
    for (int64_t i = 0; fits && s == FKM_OK && i < n; i++) tot->fast_mismatch += got[i] != ref[i];
    tot->points += n;
    tot->rechecked += rech;
    free(C), free(X), free(Xs), free(ref), free(got);
}

/* 0..K-1 in a random order (Fisher-Yates from r): centroid slots, so that the special
 * centroids of a case sit at any index. The caller frees it. */
static int64_t *shuffled_slots(tc_rng *r, int64_t K)
{
    int64_t *slot = malloc((size_t)K * sizeof *slot);
    for (int64_t c = 0; c < K; c++) slot[c] = c;
    for (int64_t c = K - 1; c > 0; c--) {
        const int64_t o = (int64_t)floor((double)(c + 1) * tc_uniform(r)), t = slot[c];
        slot[c] = slot[o], slot[o] = t;
    }
    return slot;
}

/* The stages of the GPU's re-check (EXACTNESS.md 3.6 and 5), each fed points that must reach
 * it, f32 l2, d = 16, K = 16 (the mma kernel) or 200 (wgmma on sm_90, two tiles of 128):
 *   - pair: points near the bisector of two centroids a, b = P -+ e_0 (every coordinate of P
 *     is 32, so the TF32 bound is ~80 while the gap is 4 |x_0 - 32| <= 4 and the rest of the
 *     centroids are >= 64 away): the bound cannot certify the label, the top-3 test proves the
 *     argmin is a or b, and the double scores decide unless x_0 = 32 exactly (an exact tie,
 *     then the host). TF32 rounds x_0 to 2^-5 while the offsets are multiples of 2^-8, so the
 *     fast label is often wrong and the pair stage must take the second;
 *   - filter: points near the circumcentre of three centroids Q + 2 e_1, Q - 2 e_1,
 *     Q + 2 e_2, Q = P + 64 e_5: no two-way test applies, the double filter decides unless the
 *     best are exactly tied (then the host; every 16th point sits on the circumcentre);
 *   - the rest of the centroids far away, with points near them.
 * Labels must equal the integer reference; on the CUDA backend each stage must have
 * decided some points, on the CPU backend all go to the host. */
static void stage_case(fkm_ctx *ctx, int64_t K, int64_t n)
{
    const int64_t d = 16;
    tc_rng r = {4242 + (uint64_t)K};
    double *P = malloc((size_t)d * sizeof *P), *X = malloc((size_t)(n * d) * sizeof *X);
    float *C = malloc((size_t)(K * d) * sizeof *C);
    for (int64_t j = 0; j < d; j++) P[j] = 32.0;
    /* centroid slots in a shuffled order, so that the pair and the triple sit at any index */
    int64_t *slot = shuffled_slots(&r, K);
    for (int64_t c = 0; c < K; c++) {
        float *row = C + slot[c] * d;
        for (int64_t j = 0; j < d; j++) row[j] = (float)P[j];
        switch (c) {
        case 0: row[0] -= 1.0f; break;
        case 1: row[0] += 1.0f; break;
        case 2: row[5] += 64.0f, row[1] += 2.0f; break;
        case 3: row[5] += 64.0f, row[1] -= 2.0f; break;
        case 4: row[5] += 64.0f, row[2] += 2.0f; break;
        default:
            row[7] += 128.0f;
            for (int64_t j = 0; j < d; j++) row[j] += (float)grid(&r, -8, 8, 0.25);
        }
    }
    for (int64_t i = 0; i < n; i++) {
        double *x = X + i * d;
        const int kind = (int)(i % 3);
        if (kind == 2) { /* near a far centroid */
            const float *c = C + slot[5 + (int64_t)floor((double)(K - 5) * tc_uniform(&r))] * d;
            for (int64_t j = 0; j < d; j++) x[j] = c[j] + grid(&r, -2, 2, 1.0 / 64);
            continue;
        }
        for (int64_t j = 0; j < d; j++) x[j] = P[j] + grid(&r, -2, 2, 1.0 / 64);
        const int tie = (i / 3) % 16 == 0;
        if (kind == 0) {
            x[0] = 32.0 + (tie ? 0.0 : grid(&r, -1, 1, 0x1p-8));
        } else {
            x[5] = 96.0;
            x[1] = 32.0 + (tie ? 0.0 : grid(&r, -0.5, 0.5, 0x1p-8));
            x[2] = 32.0 + (tie ? 0.0 : grid(&r, -0.5, 0.5, 0x1p-8));
        }
    }
    void *Xs = tc_store(X, n, d, d, FKM_F32);
    int32_t *ref = malloc((size_t)n * sizeof *ref), *got = malloc((size_t)n * sizeof *got);
    const int fits = contract_labels(X, C, n, K, d, FKM_METRIC_L2, ref);
    CHECK(fits, "stage case: values outside the reference's range");
    fkm_status s = fkm_predict_precision(ctx, FKM_METRIC_L2, FKM_PRECISION_EXACT, Xs, FKM_F32, n, d, d, C, K, got, NULL);
    CHECK(s == FKM_OK, "stage case: exact predict: %s", fkm_last_error(ctx));
    int64_t bad = 0;
    for (int64_t i = 0; fits && s == FKM_OK && i < n; i++) {
        if (got[i] != ref[i] && bad++ < 3)
            fprintf(stderr, "  stage case K=%lld point %lld (kind %d): exact %d, reference %d\n", (long long)K,
                    (long long)i, (int)(i % 3), got[i], ref[i]);
    }
    CHECK(bad == 0, "stage case K=%lld: %lld of %lld exact-mode labels differ from the reference", (long long)K,
          (long long)bad, (long long)n);
    int64_t rech = 0, pair = 0, filter = 0, host = 0;
    fkm_exact_stats(ctx, NULL, &rech);
    CHECK(fkm_exact_stats_stages(ctx, &pair, &filter, &host) == FKM_OK, "fkm_exact_stats_stages");
    printf("  stage case K=%lld: %lld of %lld re-checked: pair %lld, filter %lld, host %lld\n", (long long)K,
           (long long)rech, (long long)n, (long long)pair, (long long)filter, (long long)host);
    CHECK(pair + filter + host == rech, "stage counts %lld + %lld + %lld != %lld re-checked", (long long)pair,
          (long long)filter, (long long)host, (long long)rech);
    if (fkm_ctx_backend(ctx) == FKM_BACKEND_CPU) {
        CHECK(pair == 0 && filter == 0, "cpu backend: pair %lld, filter %lld (no device stages)", (long long)pair,
              (long long)filter);
    } else {
        CHECK(pair > 0 && filter > 0 && host > 0, "stage case K=%lld: a stage decided nothing (pair %lld, filter "
              "%lld, host %lld)", (long long)K, (long long)pair, (long long)filter, (long long)host);
    }
    /* the fast pass gets many pair points wrong (TF32 rounds x_0): the pair stage mattered */
    s = fkm_predict(ctx, FKM_METRIC_L2, Xs, FKM_F32, n, d, d, C, K, got, NULL);
    int64_t fast_bad = 0;
    for (int64_t i = 0; fits && s == FKM_OK && i < n; i++) fast_bad += got[i] != ref[i];
    printf("  stage case K=%lld: fast mode gets %lld labels wrong\n", (long long)K, (long long)fast_bad);
    free(P), free(X), free(C), free(slot), free(Xs), free(ref), free(got);
}

/* The GPU's re-check stages for cosine (EXACTNESS.md 5.1), where the device must read the
 * normalised rows y bit for bit as the CPU makes them: d = 16, centroids e_0 .. e_4 (exactly
 * unit: normalising leaves them as they are) and K - 5 normalised random rows pointing away
 * (negative on coordinates 0..4), in a shuffled order; raw rows at scale 2^6..2^12 (their
 * norms are far from 1, the tensor pass sees them unnormalised):
 *   - pair: x_0 = s (1 + delta), x_1 = s, the rest small: e_0 and e_1 within the bound, the
 *     others far; delta = 0 for every 16th point (then y_0 = y_1 exactly: a tie for the host);
 *   - filter: x_2, x_3, x_4 = s (1 + delta_i): three near-equal scores; every 16th point all
 *     equal (a three-way exact tie);
 *   - points near a far centroid.
 * Labels must equal the integer reference on the normalised rows; with f32 input on the CUDA
 * backend every stage must have decided some points. */
static void cosine_stage_case(fkm_ctx *ctx, fkm_dtype dtype, int64_t K, int64_t n)
{
    const int64_t d = 16;
    tc_rng r = {777 + (uint64_t)K + 1000 * (uint64_t)dtype};
    /* delta's grid: exact in the input type; for f32 finer than TF32 (2^-10 relative), so that
     * the operand rounding the bound measures (EXACTNESS.md 5.2) is not zero and near-ties
     * reach the device stages */
    const double q = dtype == FKM_BF16 ? 0x1p-7 : dtype == FKM_F16 ? 0x1p-10 : 0x1p-13;
    double *X = malloc((size_t)(n * d) * sizeof *X);
    float *C = malloc((size_t)(K * d) * sizeof *C);
    int64_t *slot = shuffled_slots(&r, K);
    for (int64_t c = 0; c < K; c++) {
        float *row = C + slot[c] * d;
        for (int64_t j = 0; j < d; j++) row[j] = c < 5 ? (float)(j == c) : (float)grid(&r, -1, 1, 1.0 / 64);
        if (c >= 5)
            for (int64_t j = 0; j < 5; j++) row[j] = -(float)grid(&r, 0.25, 1, 1.0 / 64);
    }
    for (int64_t i = 0; i < n; i++) {
        double *x = X + i * d;
        const int kind = (int)(i % 3);
        const double sc = ldexp(1.0, 6 + (int)(tc_uniform(&r) * 7));
        const int tie = (i / 3) % 16 == 0;
        for (int64_t j = 0; j < d; j++) x[j] = sc * grid(&r, -1.0 / 64, 1.0 / 64, 1.0 / 1024);
        if (kind == 2) {
            const float *c = C + slot[5 + (int64_t)floor((double)(K - 5) * tc_uniform(&r))] * d;
            for (int64_t j = 0; j < d; j++) x[j] = sc * (c[j] + grid(&r, -1.0 / 16, 1.0 / 16, 1.0 / 256));
        } else if (kind == 0) {
            x[0] = sc * (1.0 + (tie ? 0.0 : q * grid(&r, -8, 9, 1)));
            x[1] = sc;
        } else {
            for (int64_t j = 2; j < 5; j++) x[j] = sc * (1.0 + (tie ? 0.0 : q * grid(&r, -8, 9, 1)));
        }
    }
    void *Xs = tc_store(X, n, d, d, dtype);
    int32_t *ref = malloc((size_t)n * sizeof *ref), *got = malloc((size_t)n * sizeof *got);
    const int fits = contract_labels(X, C, n, K, d, FKM_METRIC_COSINE, ref);
    CHECK(fits, "cosine stage case: values outside the reference's range");
    fkm_status s = fkm_predict_precision(ctx, FKM_METRIC_COSINE, FKM_PRECISION_EXACT, Xs, dtype, n, d, d, C, K, got,
                                         NULL);
    CHECK(s == FKM_OK, "cosine stage case: exact predict: %s", fkm_last_error(ctx));
    int64_t bad = 0;
    for (int64_t i = 0; fits && s == FKM_OK && i < n; i++) {
        if (got[i] != ref[i] && bad++ < 3)
            fprintf(stderr, "  cosine stage case %s K=%lld point %lld (kind %d): exact %d, reference %d\n",
                    fkm_dtype_name(dtype), (long long)K, (long long)i, (int)(i % 3), got[i], ref[i]);
    }
    CHECK(bad == 0, "cosine stage case %s K=%lld: %lld of %lld exact-mode labels differ from the reference",
          fkm_dtype_name(dtype), (long long)K, (long long)bad, (long long)n);
    int64_t rech = 0, pair = 0, filter = 0, host = 0;
    fkm_exact_stats(ctx, NULL, &rech);
    CHECK(fkm_exact_stats_stages(ctx, &pair, &filter, &host) == FKM_OK, "fkm_exact_stats_stages");
    printf("  cosine stage case %s K=%lld: %lld of %lld re-checked: pair %lld, filter %lld, host %lld\n",
           fkm_dtype_name(dtype), (long long)K, (long long)rech, (long long)n, (long long)pair, (long long)filter,
           (long long)host);
    CHECK(pair + filter + host == rech, "cosine stage counts %lld + %lld + %lld != %lld re-checked", (long long)pair,
          (long long)filter, (long long)host, (long long)rech);
    if (fkm_ctx_backend(ctx) != FKM_BACKEND_CPU && dtype == FKM_F32 && s == FKM_OK)
        CHECK(pair > 0 && filter > 0 && host > 0, "cosine stage case K=%lld: a stage decided nothing (pair %lld, "
              "filter %lld, host %lld)", (long long)K, (long long)pair, (long long)filter, (long long)host);
    free(X), free(C), free(slot), free(Xs), free(ref), free(got);
}

/* A whole fit in exact mode: labels equal the reference against the returned centroids, and
 * the result is the same for 1 and 2 threads. */
static void fit_case(fkm_ctx *ctx, fkm_metric metric)
{
    const int64_t n = 3000, d = 8, k = 12;
    double *X = tc_blobs(7, n, d, 6, 3.0, 1000.0);
    void *Xs = tc_store(X, n, d, d, FKM_F32);
    float *C[2] = {malloc((size_t)(k * d) * sizeof(float)), malloc((size_t)(k * d) * sizeof(float))};
    int32_t *L[2] = {malloc((size_t)n * sizeof(int32_t)), malloc((size_t)n * sizeof(int32_t))};
    for (int t = 0; t < 2; t++) {
        fkm_params p = fkm_params_default();
        p.k = k;
        p.max_iter = 20;
        p.metric = metric;
        p.precision = FKM_PRECISION_EXACT;
        p.n_threads = t + 1;
        fkm_status s = fkm_fit(ctx, &p, Xs, FKM_F32, n, d, d, NULL, C[t], L[t], NULL);
        if (s == FKM_E_UNSUPPORTED && fkm_ctx_backend(ctx) != FKM_BACKEND_CPU) {
            printf("  fit (metric %d) skipped: %s\n", (int)metric, fkm_last_error(ctx));
            free(X), free(Xs), free(C[0]), free(C[1]), free(L[0]), free(L[1]);
            return;
        }
        CHECK(s == FKM_OK, "exact fit: %s", fkm_last_error(ctx));
    }
    CHECK(memcmp(C[0], C[1], (size_t)(k * d) * sizeof(float)) == 0, "exact fit: centroids depend on threads");
    CHECK(memcmp(L[0], L[1], (size_t)n * sizeof(int32_t)) == 0, "exact fit: labels depend on threads");
    int32_t *ref = malloc((size_t)n * sizeof *ref);
    if (contract_labels(X, C[0], n, k, d, metric, ref)) {
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += ref[i] != L[0][i];
        CHECK(bad == 0, "exact fit (metric %d): %lld final labels differ from the reference", (int)metric,
              (long long)bad);
    } else {
        /* fitted centroids are arbitrary f32 values: too wide a range for the integer
         * reference is possible in principle; then only determinism is checked */
        printf("  fit (metric %d): centroids outside the reference's range, labels not compared\n", (int)metric);
    }
    free(X), free(Xs), free(C[0]), free(C[1]), free(L[0]), free(L[1]);
    free(ref);
}

/* fkm_fit_batch in exact mode: three problems in one launch (the GPU's lists are per problem,
 * a point's problem is its index / n); each problem's final labels must equal the reference
 * against its returned centroids. K = 100 (wgmma on sm_90) on blobs with a large offset and
 * many centroids per blob: many near-ties, so every stage sees points of every problem. */
static void batch_case(fkm_ctx *ctx)
{
    enum { B = 3 };
    const int64_t n = 3000, d = 8, k = 100;
    float *Xall = malloc((size_t)(B * n * d) * sizeof *Xall), *C = malloc((size_t)(B * k * d) * sizeof *C);
    int32_t *L = malloc((size_t)(B * n) * sizeof *L), *ref = malloc((size_t)n * sizeof *ref);
    int64_t *xi = malloc((size_t)(n * d) * sizeof *xi), *ci = malloc((size_t)(k * d) * sizeof *ci);
    for (int b = 0; b < B; b++) {
        double *X = tc_blobs(11 + (uint64_t)b, n, d, 6, 3.0, 1000.0);
        for (int64_t t = 0; t < n * d; t++) Xall[b * n * d + t] = (float)X[t];
        free(X);
    }
    fkm_params p = fkm_params_default();
    p.k = k;
    p.max_iter = 8;
    p.precision = FKM_PRECISION_EXACT;
    fkm_result res[B];
    fkm_status s = fkm_fit_batch(ctx, &p, Xall, FKM_F32, B, n, d, d, n * d, NULL, C, L, res);
    if (s == FKM_E_UNSUPPORTED && fkm_ctx_backend(ctx) != FKM_BACKEND_CPU) {
        printf("  batch case skipped: %s\n", fkm_last_error(ctx));
    } else {
        CHECK(s == FKM_OK, "exact fit_batch: %s", fkm_last_error(ctx));
        int64_t rech = 0, pair = 0, filter = 0, host = 0;
        fkm_exact_stats(ctx, NULL, &rech);
        fkm_exact_stats_stages(ctx, &pair, &filter, &host);
        printf("  batch case: %lld re-checked: pair %lld, filter %lld, host %lld\n", (long long)rech, (long long)pair,
               (long long)filter, (long long)host);
        for (int b = 0; s == FKM_OK && b < B; b++) {
            if (!scale_ints(Xall + b * n * d, n * d, C + b * k * d, k * d, xi, ci)) {
                printf("  batch case problem %d: centroids outside the reference's range, not compared\n", b);
                continue;
            }
            reference_labels(xi, ci, n, k, d, 0, ref);
            int64_t bad = 0;
            for (int64_t i = 0; i < n; i++) bad += ref[i] != L[b * n + i];
            CHECK(bad == 0, "exact fit_batch problem %d: %lld final labels differ from the reference", b,
                  (long long)bad);
        }
    }
    free(Xall), free(C), free(L), free(ref), free(xi), free(ci);
}

/* ---------------------------------------------------------------- filter slicing (GPU)
 *
 * Data for the device filters with many centroid tiles (K = 1000: 8 tiles of 128, the last
 * partial; K = 300: 3): bases on a 1/8 grid in [-4, 4]^16; one base in four is "copied" into
 * four centroids, itself and three copies moved by delta in {2^-3, 2^-10, 2^-16} on one
 * coordinate (either sign), the others are single centroids; all in shuffled slots, so that
 * a point's near-equal candidates sit in different centroid tiles, hence in different slices.
 * Points: a base plus noise on a 1/64 grid in [-1/4, 1/4], every 8th point near a copied base
 * exactly on it (exact ties between copies: the host). Points near copied bases fail the
 * top-3 test (four candidates within the tensor-core bound) and fill the filter lists; the
 * others are certified, so the lists hold a fraction of n and the default slicing splits
 * them. The f32 filter certifies the large deltas, the double filter the small ones. */
static void copies_data(uint64_t seed, int64_t n, int64_t d, int64_t K, double *X, float *C)
{
    tc_rng r = {seed};
    const int64_t H = K * 4 / 7 > 1 ? K * 4 / 7 : 1; /* bases: H - H/4 single, H/4 with 4 centroids */
    const int64_t hc = (K - H) / 3;                  /* copied bases: 3 extra centroids each */
    double *B = malloc((size_t)(H * d) * sizeof *B);
    for (int64_t t = 0; t < H * d; t++) B[t] = grid(&r, -4, 4, 0.125);
    int64_t *slot = shuffled_slots(&r, K);
    static const double deltas[3] = {0x1p-3, 0x1p-10, 0x1p-16};
    for (int64_t c = 0; c < K; c++) {
        /* centroids 0..H-1: the bases; then copies of bases 0..hc-1; any rest: more bases */
        const int64_t h = c < H ? c : c - H < 3 * hc ? (c - H) / 3 : c % H;
        float *row = C + slot[c] * d;
        for (int64_t j = 0; j < d; j++) row[j] = (float)B[h * d + j];
        if (c >= H) {
            const int64_t j = (int64_t)floor((double)d * tc_uniform(&r));
            const double dl = deltas[(int)floor(3 * tc_uniform(&r))];
            row[j] = (float)(B[h * d + j] + (tc_uniform(&r) < 0.5 ? -dl : dl));
        }
    }
    for (int64_t i = 0; i < n; i++) {
        const int copied = tc_uniform(&r) < 0.25 && hc > 0;
        const int64_t h = copied ? (int64_t)floor((double)hc * tc_uniform(&r)) : (int64_t)floor((double)H * tc_uniform(&r));
        const int exact = copied && i % 8 == 0;
        for (int64_t j = 0; j < d; j++) X[i * d + j] = B[h * d + j] + (exact ? 0.0 : grid(&r, -0.25, 0.25, 1.0 / 64));
    }
    free(B), free(slot);
}

/* The knobs the slicing cases run under: FLASHKM_EXACT_FILTER_SLICES values, and the
 * candidate pass forced on or off (FLASHKM_EXACT_CAND). The default first; sanitizer runs
 * take the first four. same_split: the counters must equal the default's (the slicing moves
 * no point between stages; the candidate pass may move points between the filters and the
 * host, never the pair test's). */
typedef struct knob {
    const char *slices, *cand, *cand_kernel, *name;
    int same_split;
} knob;
static const knob knobs[] = {{NULL, NULL, NULL, "default", 1},      {"1", NULL, NULL, "slices=1", 1},
                             {"max", NULL, NULL, "slices=max", 1},  {NULL, "1", NULL, "cand=1", 0},
                             {"2", NULL, NULL, "slices=2", 1},      {"7", NULL, NULL, "slices=7", 1},
                             {NULL, "0", NULL, "cand=0", 0},        {NULL, "1", "mma", "cand=1 mma", 0}};
#define N_KNOBS (int)(sizeof knobs / sizeof knobs[0])

static void set_env(const char *name, const char *v)
{
    if (v) setenv(name, v, 1);
    else unsetenv(name);
}

static void set_knob(const knob *k)
{
    set_env("FLASHKM_EXACT_FILTER_SLICES", k ? k->slices : NULL);
    set_env("FLASHKM_EXACT_CAND", k ? k->cand : NULL);
    set_env("FLASHKM_CAND_KERNEL", k ? k->cand_kernel : NULL);
}

/* Counters that must agree: all five, or points, re-checked and the pair test's. */
static int same_counters(const int64_t a[5], const int64_t b[5], int all)
{
    return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && (!all || (a[3] == b[3] && a[4] == b[4]));
}

/* fkm_exact_stats and fkm_exact_stats_stages of the last call. */
static void exact_counters(fkm_ctx *ctx, int64_t out[5])
{
    fkm_exact_stats(ctx, &out[0], &out[1]);
    fkm_exact_stats_stages(ctx, &out[2], &out[3], &out[4]);
}

/* One predict case under every slicing: labels equal to the integer reference and, with the
 * counters, bitwise equal across slicings. */
static void slices_predict_case(fkm_ctx *ctx, fkm_dtype dtype, fkm_metric metric, int64_t K, int64_t n,
                                uint64_t seed, int nknobs)
{
    const int64_t d = 16;
    const int dot = metric == FKM_METRIC_DOT;
    double *X = malloc((size_t)(n * d) * sizeof *X);
    float *C = malloc((size_t)(K * d) * sizeof *C);
    copies_data(seed, n, d, K, X, C);
    void *Xs = tc_store(X, n, d, d, dtype);
    int32_t *ref = malloc((size_t)n * sizeof *ref), *got = malloc((size_t)n * sizeof *got);
    int32_t *first = malloc((size_t)n * sizeof *first);
    const int fits = contract_labels(X, C, n, K, d, metric, ref);
    CHECK(fits, "slices case: values outside the reference's range");
    const char *mname = metric == FKM_METRIC_L2 ? "l2" : dot ? "dot" : "cosine";
    int64_t c0[5] = {0}, c[5];
    for (int v = 0; v < nknobs; v++) {
        set_knob(&knobs[v]);
        const fkm_status s =
            fkm_predict_precision(ctx, metric, FKM_PRECISION_EXACT, Xs, dtype, n, d, d, C, K, got, NULL);
        CHECK(s == FKM_OK, "slices case %s %s K=%lld %s: %s", fkm_dtype_name(dtype), mname, (long long)K,
              knobs[v].name, fkm_last_error(ctx));
        if (s != FKM_OK) break;
        exact_counters(ctx, c);
        int64_t bad = 0;
        for (int64_t i = 0; fits && i < n; i++) bad += got[i] != ref[i];
        CHECK(bad == 0, "slices case %s %s K=%lld %s: %lld of %lld labels differ from the reference",
              fkm_dtype_name(dtype), mname, (long long)K, knobs[v].name, (long long)bad, (long long)n);
        if (v == 0) {
            memcpy(first, got, (size_t)n * sizeof *got), memcpy(c0, c, sizeof c);
            printf("  slices case %s %s K=%lld n=%lld: %lld re-checked: pair %lld, filter %lld, host %lld\n",
                   fkm_dtype_name(dtype), mname, (long long)K, (long long)n, (long long)c[1], (long long)c[2],
                   (long long)c[3], (long long)c[4]);
        } else {
            CHECK(memcmp(first, got, (size_t)n * sizeof *got) == 0,
                  "slices case %s %s K=%lld: labels with %s differ from the default's", fkm_dtype_name(dtype),
                  mname, (long long)K, knobs[v].name);
            if (!knobs[v].same_split)
                printf("    %s: %lld re-checked: pair %lld, filter %lld, host %lld\n", knobs[v].name, (long long)c[1],
                       (long long)c[2], (long long)c[3], (long long)c[4]);
            CHECK(same_counters(c0, c, knobs[v].same_split),
                  "slices case %s %s K=%lld %s: counters (%lld %lld %lld %lld %lld) differ from the "
                  "default's (%lld %lld %lld %lld %lld)", fkm_dtype_name(dtype), mname, (long long)K, knobs[v].name,
                  (long long)c[0], (long long)c[1], (long long)c[2], (long long)c[3], (long long)c[4],
                  (long long)c0[0], (long long)c0[1], (long long)c0[2], (long long)c0[3], (long long)c0[4]);
        }
    }
    set_knob(NULL);
    free(X), free(C), free(Xs), free(ref), free(got), free(first);
}

/* fkm_fit_batch (B = 3) from the copies data as initial centroids under every slicing: the
 * final labels, centroids, results and counters bitwise equal across slicings, each problem's
 * labels equal to the reference against its returned centroids (where they fit its range). */
static void slices_batch_case(fkm_ctx *ctx, fkm_dtype dtype, fkm_metric metric, int64_t K, int64_t n, int nknobs)
{
    enum { B = 3 };
    const int64_t d = 16;
    double *X = malloc((size_t)(B * n * d) * sizeof *X);
    float *init = malloc((size_t)(B * K * d) * sizeof *init);
    for (int b = 0; b < B; b++) copies_data(900 + (uint64_t)b, n, d, K, X + b * n * d, init + b * K * d);
    void *Xs = tc_store(X, B * n, d, d, dtype);
    float *Cv[2] = {malloc((size_t)(B * K * d) * sizeof(float)), malloc((size_t)(B * K * d) * sizeof(float))};
    int32_t *Lv[2] = {malloc((size_t)(B * n) * sizeof(int32_t)), malloc((size_t)(B * n) * sizeof(int32_t))};
    fkm_result res[2][B];
    int64_t c0[5] = {0}, c[5];
    const char *mname = metric == FKM_METRIC_L2 ? "l2" : metric == FKM_METRIC_DOT ? "dot" : "cosine";
    for (int v = 0; v < nknobs; v++) {
        const int o = v == 0 ? 0 : 1;
        set_knob(&knobs[v]);
        fkm_params p = fkm_params_default();
        p.k = K;
        p.max_iter = 2;
        p.tol = 0;
        p.metric = metric;
        p.init = FKM_INIT_USER;
        p.init_centroids = init;
        p.precision = FKM_PRECISION_EXACT;
        const fkm_status s = fkm_fit_batch(ctx, &p, Xs, dtype, B, n, d, d, n * d, NULL, Cv[o], Lv[o], res[o]);
        CHECK(s == FKM_OK, "slices batch case %s %s %s: %s", fkm_dtype_name(dtype), mname, knobs[v].name,
              fkm_last_error(ctx));
        if (s != FKM_OK) break;
        exact_counters(ctx, c);
        if (v == 0) {
            memcpy(c0, c, sizeof c);
            printf("  slices batch case %s %s K=%lld B=%d n=%lld: %lld re-checked: pair %lld, filter %lld, host "
                   "%lld\n", fkm_dtype_name(dtype), mname, (long long)K, B, (long long)n, (long long)c[1],
                   (long long)c[2], (long long)c[3], (long long)c[4]);
            continue;
        }
        CHECK(memcmp(Lv[0], Lv[1], (size_t)(B * n) * sizeof(int32_t)) == 0,
              "slices batch case %s %s: labels with %s differ from the default's", fkm_dtype_name(dtype),
              mname, knobs[v].name);
        CHECK(memcmp(Cv[0], Cv[1], (size_t)(B * K * d) * sizeof(float)) == 0,
              "slices batch case %s %s: centroids with %s differ from the default's", fkm_dtype_name(dtype),
              mname, knobs[v].name);
        for (int b = 0; b < B; b++)
            CHECK(memcmp(&res[0][b].inertia, &res[1][b].inertia, sizeof(double)) == 0 &&
                      res[0][b].n_iter == res[1][b].n_iter && res[0][b].converged == res[1][b].converged,
                  "slices batch case %s %s problem %d: result with %s differs", fkm_dtype_name(dtype), mname,
                  b, knobs[v].name);
        CHECK(same_counters(c0, c, knobs[v].same_split), "slices batch case %s %s: counters with %s differ",
              fkm_dtype_name(dtype), mname, knobs[v].name);
    }
    set_knob(NULL);
    /* the default run's final labels against its returned centroids */
    int32_t *ref = malloc((size_t)n * sizeof *ref);
    for (int b = 0; b < B; b++) {
        if (!contract_labels(X + b * n * d, Cv[0] + b * K * d, n, K, d, metric, ref)) {
            printf("  slices batch case problem %d: centroids outside the reference's range, not compared\n", b);
            continue;
        }
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += ref[i] != Lv[0][b * n + i];
        CHECK(bad == 0, "slices batch case %s %s problem %d: %lld final labels differ from the reference",
              fkm_dtype_name(dtype), mname, b, (long long)bad);
    }
    free(X), free(init), free(Xs), free(Cv[0]), free(Cv[1]), free(Lv[0]), free(Lv[1]);
    free(ref);
}

/* The crowd case (candidate pass forced on): 48 of the K centroids are copies of one base
 * moved by +-2^-12 on one coordinate, the others single bases, and a third of the points lie
 * near that base, so that they have more candidates than the pass keeps (EX_CAND_CAP = 32) and
 * go back to the filters; every label equal to the reference, the same as without the pass. */
static void crowd_case(fkm_ctx *ctx, fkm_dtype dtype, int64_t K, int64_t n)
{
    const int64_t d = 16, crowd = 48;
    tc_rng r = {77};
    double *X = malloc((size_t)(n * d) * sizeof *X), *B = malloc((size_t)(K * d) * sizeof *B);
    float *C = malloc((size_t)(K * d) * sizeof *C);
    for (int64_t t = 0; t < K * d; t++) B[t] = grid(&r, -4, 4, 0.125);
    for (int64_t c = 0; c < K; c++) {
        const int64_t h = c < crowd ? 0 : c;
        for (int64_t j = 0; j < d; j++) C[c * d + j] = (float)B[h * d + j];
        if (c > 0 && c < crowd)
            C[c * d + (int64_t)floor((double)d * tc_uniform(&r))] += tc_uniform(&r) < 0.5 ? -0x1p-12f : 0x1p-12f;
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t h = i % 3 == 0 ? 0 : (int64_t)floor((double)K * tc_uniform(&r));
        for (int64_t j = 0; j < d; j++) X[i * d + j] = B[h * d + j] + grid(&r, -0.25, 0.25, 1.0 / 64);
    }
    void *Xs = tc_store(X, n, d, d, dtype);
    int32_t *ref = malloc((size_t)n * sizeof *ref), *got[2] = {malloc((size_t)n * sizeof(int32_t)),
                                                               malloc((size_t)n * sizeof(int32_t))};
    const int fits = contract_labels(X, C, n, K, d, FKM_METRIC_L2, ref);
    CHECK(fits, "crowd case: values outside the reference's range");
    for (int v = 0; v < 2; v++) {
        const knob kn = {NULL, v ? "1" : "0", NULL, v ? "cand=1" : "cand=0", 0};
        set_knob(&kn);
        const fkm_status s =
            fkm_predict_precision(ctx, FKM_METRIC_L2, FKM_PRECISION_EXACT, Xs, dtype, n, d, d, C, K, got[v], NULL);
        CHECK(s == FKM_OK, "crowd case %s %s: %s", fkm_dtype_name(dtype), kn.name, fkm_last_error(ctx));
        if (s != FKM_OK) break;
        int64_t c[5], bad = 0;
        exact_counters(ctx, c);
        for (int64_t i = 0; fits && i < n; i++) bad += got[v][i] != ref[i];
        CHECK(bad == 0, "crowd case %s %s: %lld of %lld labels differ from the reference", fkm_dtype_name(dtype),
              kn.name, (long long)bad, (long long)n);
        printf("  crowd case %s K=%lld n=%lld %s: %lld re-checked: pair %lld, filter %lld, host %lld\n",
               fkm_dtype_name(dtype), (long long)K, (long long)n, kn.name, (long long)c[1], (long long)c[2],
               (long long)c[3], (long long)c[4]);
    }
    CHECK(memcmp(got[0], got[1], (size_t)n * sizeof(int32_t)) == 0, "crowd case %s: labels differ with cand=0, 1",
          fkm_dtype_name(dtype));
    set_knob(NULL);
    free(X), free(B), free(C), free(Xs), free(ref), free(got[0]), free(got[1]);
}

/* The slicing and candidate cases (GPU only: on the CPU the knobs mean nothing). Sanitizer
 * runs: l2 f32 and one batch case under the first four knobs, a K = 1500 case (the candidate
 * pass by default) and the crowd case. Lists of up to n / 4 points: several point tiles in
 * either filter. */
static void slices_cases(fkm_ctx *ctx, int small, int sanitize)
{
    if (fkm_ctx_backend(ctx) == FKM_BACKEND_CPU) {
        printf("  slicing cases: cpu backend, nothing to slice\n");
        return;
    }
    const int64_t n = small ? 1500 : 6000;
    if (sanitize) {
        slices_predict_case(ctx, FKM_F32, FKM_METRIC_L2, 1000, n, 31, 4);
        slices_predict_case(ctx, FKM_F16, FKM_METRIC_L2, 1500, n, 61, 4);
        slices_batch_case(ctx, FKM_F32, FKM_METRIC_L2, 300, 600, 4);
        crowd_case(ctx, FKM_F32, 200, 600);
        return;
    }
    static const fkm_metric metrics[] = {FKM_METRIC_L2, FKM_METRIC_DOT, FKM_METRIC_COSINE};
    for (int m = 0; m < 3; m++) {
        slices_predict_case(ctx, FKM_F32, metrics[m], 1000, n, 31 + (uint64_t)m, N_KNOBS);
        slices_predict_case(ctx, FKM_F16, metrics[m], 1000, n, 41 + (uint64_t)m, N_KNOBS);
        slices_predict_case(ctx, m == 1 ? FKM_BF16 : FKM_F32, metrics[m], 1500, n, 61 + (uint64_t)m, N_KNOBS);
    }
    slices_predict_case(ctx, FKM_BF16, FKM_METRIC_L2, 300, n, 51, N_KNOBS);
    slices_batch_case(ctx, FKM_F32, FKM_METRIC_L2, 300, small ? 800 : 3000, N_KNOBS);
    slices_batch_case(ctx, FKM_F16, FKM_METRIC_DOT, 300, small ? 800 : 3000, N_KNOBS);
    slices_batch_case(ctx, FKM_F32, FKM_METRIC_COSINE, 300, small ? 800 : 3000, N_KNOBS);
    slices_batch_case(ctx, FKM_BF16, FKM_METRIC_L2, 1100, small ? 1200 : 2000, N_KNOBS);
    crowd_case(ctx, FKM_F32, 200, small ? 600 : 3000);
    crowd_case(ctx, FKM_F16, 2000, small ? 2400 : 3000);
}

/* Carried certificates (CPU and GPU, EXACTNESS.md 5.5): long fits (30 iterations, tol 0: the late
 * ones move the centroids little, so most points keep their certificates) with the carry on
 * (the default) and off (FLASHKM_EXACT_CARRY=0): labels, centroids and results bitwise equal,
 * the final labels equal to the reference against the returned centroids. l2 f32 and f16,
 * dot bf16. */
static void carry_case(fkm_ctx *ctx, fkm_dtype dtype, fkm_metric metric, int64_t n, int64_t k)
{
    const int64_t d = 16;
    double *X = tc_blobs(21 + (uint64_t)dtype, n, d, k / 2, 3.0, 1000.0);
    void *Xs = tc_store(X, n, d, d, dtype);
    float *C[2] = {malloc((size_t)(k * d) * sizeof(float)), malloc((size_t)(k * d) * sizeof(float))};
    int32_t *L[2] = {malloc((size_t)n * sizeof(int32_t)), malloc((size_t)n * sizeof(int32_t))};
    fkm_result res[2];
    const char *mname = metric == FKM_METRIC_L2 ? "l2" : "dot";
    for (int v = 0; v < 2; v++) {
        set_env("FLASHKM_EXACT_CARRY", v ? "0" : NULL);
        fkm_params p = fkm_params_default();
        p.k = k;
        p.max_iter = 30;
        p.tol = 0;
        p.metric = metric;
        p.seed = 5;
        p.precision = FKM_PRECISION_EXACT;
        const fkm_status s = fkm_fit(ctx, &p, Xs, dtype, n, d, d, NULL, C[v], L[v], &res[v]);
        CHECK(s == FKM_OK, "carry case %s %s: %s", fkm_dtype_name(dtype), mname, fkm_last_error(ctx));
        if (s != FKM_OK) break;
    }
    set_env("FLASHKM_EXACT_CARRY", NULL);
    CHECK(memcmp(L[0], L[1], (size_t)n * sizeof(int32_t)) == 0, "carry case %s %s: labels differ with the carry off",
          fkm_dtype_name(dtype), mname);
    CHECK(memcmp(C[0], C[1], (size_t)(k * d) * sizeof(float)) == 0,
          "carry case %s %s: centroids differ with the carry off", fkm_dtype_name(dtype), mname);
    CHECK(memcmp(&res[0].inertia, &res[1].inertia, sizeof(double)) == 0 && res[0].n_iter == res[1].n_iter,
          "carry case %s %s: results differ with the carry off", fkm_dtype_name(dtype), mname);
    int32_t *ref = malloc((size_t)n * sizeof *ref);
    if (contract_labels(X, C[0], n, k, d, metric, ref)) {
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += ref[i] != L[0][i];
        CHECK(bad == 0, "carry case %s %s: %lld final labels differ from the reference", fkm_dtype_name(dtype), mname,
              (long long)bad);
    }
    printf("  carry case %s %s n=%lld k=%lld: %d iterations, same with the carry off\n", fkm_dtype_name(dtype), mname,
           (long long)n, (long long)k, (int)res[0].n_iter);
    free(X), free(Xs), free(C[0]), free(C[1]), free(L[0]), free(L[1]), free(ref);
}

static void carry_cases(fkm_ctx *ctx, int small)
{
    const int64_t n = small ? 3000 : fkm_ctx_backend(ctx) == FKM_BACKEND_CPU ? 12000 : 40000;
    carry_case(ctx, FKM_F32, FKM_METRIC_L2, n, 60);
    carry_case(ctx, FKM_F16, FKM_METRIC_L2, n, 200);
    carry_case(ctx, FKM_BF16, FKM_METRIC_DOT, n, 60);
}

int main(void)
{
    fkm_ctx *ctx = tc_create();
#if defined(FKM_TEST_SANITIZED)
    const int small = 1;
#else
    const int small = getenv("FLASHKM_TEST_SMALL") != NULL;
#endif
    static const int64_t dims[] = {1, 2, 3, 5, 8, 16, 32, 64, 128, 256, 1024, 4096};
    static const fkm_dtype dtypes[] = {FKM_F32, FKM_F16, FKM_BF16};
    static const fkm_metric metrics[] = {FKM_METRIC_L2, FKM_METRIC_COSINE, FKM_METRIC_DOT};
    /* FLASHKM_TEST_SANITIZE (gpu-check's compute-sanitizer runs): dimensions 1, 5, 128 and
     * 1024 (a partial 16-byte piece, one tile, split-D) and the K = 16 stage cases, so that
     * racecheck can finish */
    const int sanitize = getenv("FLASHKM_TEST_SANITIZE") != NULL;
    totals tot = {0};
    uint64_t seed = 1;
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t c = 0; c < sizeof dims / sizeof dims[0]; c++) {
                const int64_t d = dims[c];
                seed++;
                if (sanitize && d != 1 && d != 5 && d != 128 && d != 1024) continue;
                int64_t n = d <= 16 ? 20000 : (int64_t)1 << 19 >> (int)log2((double)d);
                if (n < 128) n = 128;
                if (small) n = n / 20 < 64 ? 64 : n / 20;
                run_case(ctx, dtypes[a], metrics[b], d, n, seed - 1, &tot);
            }
    hard_case(ctx, small ? 500 : 20000, 3, &tot);
    hard_case(ctx, small ? 500 : 20000, 64, &tot);
    stage_case(ctx, 16, small ? 3000 : 30000);
    if (!sanitize) stage_case(ctx, 200, small ? 3000 : 30000);
    for (int t = 0; t < 3; t++) {
        cosine_stage_case(ctx, dtypes[t], 16, small ? 3000 : 30000);
        if (!sanitize) cosine_stage_case(ctx, dtypes[t], 200, small ? 3000 : 30000);
    }
    if (tot.points == 0) {
        printf("SKIP: exact mode ran on no case on this backend\n");
        fkm_destroy(ctx);
        return TC_SKIP;
    }
    if (tot.skipped) printf("  (%lld cases skipped as unsupported on this backend)\n", (long long)tot.skipped);
    printf("exact mode: %lld points, labels equal to the exact reference: %s\n", (long long)tot.points,
           tc_failures ? "NO" : "yes");
    printf("exact mode: %lld points re-checked (%.2f%%) -- adversarial data, most points are near-ties\n",
           (long long)tot.rechecked, 100.0 * (double)tot.rechecked / (double)tot.points);
    printf("fast mode:  %lld labels differ from the exact reference (%.2f%%)\n", (long long)tot.fast_mismatch,
           100.0 * (double)tot.fast_mismatch / (double)tot.points);
    printf("time: exact %.2f s, fast %.2f s\n", tot.exact_s, tot.fast_s);
    fit_case(ctx, FKM_METRIC_L2);
    fit_case(ctx, FKM_METRIC_COSINE);
    fit_case(ctx, FKM_METRIC_DOT);
    batch_case(ctx);
    slices_cases(ctx, small, sanitize);
    carry_cases(ctx, small);
    fkm_destroy(ctx);
    return tc_finish("test_exact");
}
