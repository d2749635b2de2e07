/* test_top3_sim.c — the exact mode's per-tile top-3 fold (fkm_top3_tile, src/core/top3.h: the
 * function every tensor-core kernel's TOP3 epilogue runs, compiled here for the host) against
 * its previous version (top3_tile_old in tests/top3_sim.h, a verbatim copy of the code before the
 * knockout network: sequential insertion of every score, then the index search), bit for bit: the three
 * scores and both indices after every tile, on sequences of tiles in the kernels' accumulator
 * layout with increasing columns, as one lane of the kernels folds them.
 *
 * min/max are fkm_top3_min/max, which on the host spell out the device's min.f32 / max.f32
 * (-0 < +0, NaN-skipping): what fminf/fmaxf compile to on the device, so both versions
 * compute here what they compute there, signed zeros included. The inputs are NaN-free (the
 * contract: NaN scores arise only from overflow, which certification excludes): ties at every
 * level, +-0, +-inf, FLT_MAX, subnormals, tiles of one repeated value, tiles that repeat an
 * earlier tile's scores (duplicate centroids), sorted, reversed, and arbitrary sorted states.
 * nq = 16 (wgmma) and 8 (mma.sync), and the other powers of two the host allows.
 *
 * Whole-row results are also checked against brute force (the definition in top3.h) after
 * the kernels' quad merge, as tests/test_cert.c does. tests/cuda/test_top3_device.cu runs both
 * versions on the GPU itself, and this emulation against the device's results. */
#include "common.h" /* CHECK, tc_finish */
#include "top3_sim.h"

#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- the checks */

static int64_t folds, searched, second_search, tie_search, states_injected, rows_brute;

/* One tile from the same state through both versions; 0 and a report on a difference. */
static int fold_both(fkm_top3 *t, const float *a, int nq, int32_t col0, const char *what)
{
    fkm_top3 o = *t, w = *t;
    top3_tile_old(&o, a, nq, col0);
    fkm_top3_tile(&w, a, nq, col0);
    folds++;
    if (o.i1 != t->i1 || o.i2 != t->i2) searched++;
    if (!same(&o, &w)) {
        fprintf(stderr, "%s nq=%d col0=%d: state (%a %a %a %d %d)\n  scores:", what, nq, col0, (double)t->s1,
                (double)t->s2, (double)t->s3, t->i1, t->i2);
        for (int q = 0; q < 2 * nq; q++) fprintf(stderr, " %a", (double)a[(q >> 1) * 4 + (q & 1)]);
        fprintf(stderr, "\n  old (%a %a %a %d %d)\n  new (%a %a %a %d %d)\n", (double)o.s1, (double)o.s2,
                (double)o.s3, o.i1, o.i2, (double)w.s1, (double)w.s2, (double)w.s3, w.i1, w.i2);
        return 0;
    }
    *t = w;
    return 1;
}

/* Sequences of tiles for one lane of a row, old and new in lockstep, compared after every
 * tile; sometimes restarted from an arbitrary sorted state. The lane's whole row (4 lanes,
 * merged as the kernels' quad butterfly) is compared with brute force at the end. */
static void run_sequences(int64_t nseq, uint64_t seed)
{
    uint64_t s = seed;
    static float a[4][4 * MAXNQ * 64]; /* per lane: up to 64 tiles */
    static float row[8 * MAXNQ * 64];
    for (int64_t it = 0; it < nseq; it++) {
        const int nq = it % 3 == 2 ? 8 : it % 3 == 1 ? 16 : 1 << rng_below(&s, 5); /* 1..16 */
        const int mode = (int)rng_below(&s, 5), levels = 1 + (int)rng_below(&s, 6);
        const int ntiles = 1 + (int)rng_below(&s, it % 16 == 0 ? 64 : 12);
        const int tile_cols = 8 * nq; /* 4 lanes x nq pairs */
        const int inject = rng_below(&s, 4) == 0;
        fkm_top3 st[4];
        int ok = 1;
        for (int l = 0; l < 4; l++) st[l] = (fkm_top3){INFINITY, INFINITY, INFINITY, 0, 0};
        for (int tile = 0; tile < ntiles && ok; tile++) {
            const int shape = rng_below(&s, 3) == 0 ? 1 + (int)rng_below(&s, 6) : 0;
            for (int l = 0; l < 4; l++) {
                float *al = a[l] + tile * 4 * nq;
                const int32_t col0 = tile * tile_cols + 2 * l;
                make_tile(&s, al, tile ? al - 4 * nq : NULL, nq, mode, levels, shape);
                for (int q = 0; q < nq; q++)
                    for (int e = 0; e < 2; e++) row[tile * tile_cols + 8 * q + 2 * l + e] = al[4 * q + e];
                ok = fold_both(&st[l], al, nq, col0, "sequence");
                if (!ok) break;
                if (inject && rng_below(&s, 8) == 0) { /* an arbitrary state: checks old against new only */
                    const fkm_top3 r = random_state(&s, mode, levels, col0 + tile_cols);
                    states_injected++;
                    fkm_top3 u = r;
                    float b[4 * MAXNQ];
                    make_tile(&s, b, al, nq, mode, levels, rng_below(&s, 7));
                    ok = fold_both(&u, b, nq, col0 + tile_cols * ntiles + 64, "injected state");
                    if (!ok) break;
                }
            }
        }
        CHECK(ok, "top3 fold: new and old versions differ (above)");
        if (!ok) return;
        /* the quad butterfly, then brute force over the row's columns */
        fkm_top3 q[4], nx[4];
        memcpy(q, st, sizeof q);
        for (int o = 1; o <= 2; o <<= 1) {
            for (int l = 0; l < 4; l++) nx[l] = fkm_top3_merge(q[l], q[l ^ o]);
            memcpy(q, nx, sizeof q);
        }
        const fkm_top3 want = brute(row, ntiles * tile_cols);
        const int good = q[0].s1 == want.s1 && q[0].s2 == want.s2 && q[0].s3 == want.s3 &&
                         (!isfinite(want.s1) || q[0].i1 == want.i1) && (!isfinite(want.s2) || q[0].i2 == want.i2);
        CHECK(good, "top3 row of %d tiles (nq %d): (%g %d, %g %d, %g), brute force (%g %d, %g %d, %g)", ntiles, nq,
              (double)q[0].s1, q[0].i1, (double)q[0].s2, q[0].i2, (double)q[0].s3, (double)want.s1, want.i1,
              (double)want.s2, want.i2, (double)want.s3);
        if (!good) return;
        rows_brute++;
    }
}

/* Exhaustive over a small alphabet: every tile of 2 nq = 4 scores from {-1, -0, +0, 1, +inf}
 * and every sorted state from the same values (625 x 35 x index choices), and nq = 2 tiles
 * of 4 scores after every prefix tile: the tie and signed-zero corners, all of them. */
static void run_exhaustive(void)
{
    const float alpha[5] = {-1.0f, -0.0f, 0.0f, 1.0f, INFINITY};
    int ok = 1;
    for (int code = 0; code < 625 && ok; code++) {
        float a[8];
        int c = code;
        for (int q = 0; q < 4; q++, c /= 5) a[(q >> 1) * 4 + (q & 1)] = alpha[c % 5];
        a[2] = a[3] = a[6] = a[7] = POISON;
        for (int x = 0; x < 5 && ok; x++)
            for (int y = x; y < 5 && ok; y++)
                for (int z = y; z < 5 && ok; z++) { /* alpha is sorted in the total order */
                    for (int idx = 0; idx < 2 && ok; idx++) {
                        fkm_top3 t = {alpha[x], alpha[y], alpha[z], idx ? 3 : 0, idx ? 1 : 2};
                        ok = fold_both(&t, a, 2, 8, "exhaustive");
                    }
                }
    }
    CHECK(ok, "top3 exhaustive: new and old versions differ (above)");
}

/* How often the index searches ran (a test that never took them would check little). */
static void run_search_counts(void)
{
    uint64_t s = 99;
    int64_t any = 0, both = 0, tie = 0;
    for (int it = 0; it < 200000; it++) {
        float a[4 * 16];
        make_tile(&s, a, NULL, 16, it % 5, 1 + it % 6, it % 7 == 0 ? 6 : 0);
        fkm_top3 t = random_state(&s, it % 5, 1 + it % 6, 1024);
        /* the conditions of fkm_top3_tile, from brute force over the tile */
        float v[32];
        for (int q = 0; q < 32; q++) v[q] = a[(q >> 1) * 4 + (q & 1)];
        const fkm_top3 u = brute(v, 32);
        any += u.s1 < t.s2;
        both += u.s1 < t.s1 && u.s2 < t.s1;
        tie += u.s1 < t.s1 && u.s2 < t.s1 && u.s2 == u.s1;
        CHECK(fold_both(&t, a, 16, 1024, "search counts"), "top3: new and old versions differ (above)");
    }
    second_search = both, tie_search = tie;
    printf("searches over 200000 folds: p1 %lld, second %lld (of which ties u2 == u1: %lld)\n", (long long)any,
           (long long)both, (long long)tie);
    CHECK(any > 10000 && both > 1000 && tie > 100, "the searches were not exercised");
}

int main(void)
{
    const int small = getenv("FLASHKM_TEST_SMALL") != NULL;
    run_exhaustive();
    run_search_counts();
    run_sequences(small ? 20000 : 200000, 12345);
    printf("top-3 fold: %lld tiles folded by both versions (%lld changed an index; %lld from injected states), "
           "bit-identical; %lld rows against brute force\n",
           (long long)folds, (long long)searched, (long long)states_injected, (long long)rows_brute);
    return tc_finish("test_top3_sim");
}
