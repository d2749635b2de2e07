/* test_filter_slice_sim.c — a host emulation of the device filters' per-point state
 * (src/cuda/exact.cu: ex_state, ex_state_add, ex_state_merge, ex_slices) with and without
 * centroid slicing. filter_tiles gives lane l of a warp the centroids c0 + l + 32 c (c < 4) of
 * each 128-centroid tile c0 of its range, adds them in increasing order, and merges the 32
 * lanes with a butterfly; with several slices, each slice does that over its whole tiles and
 * filter_merge merges the slices' states in slice order. The emulation runs that for every
 * slicing 1..qt (and the default rule's on several grids) on random (lo, hi) with many exact
 * ties, duplicate values across tiles, infinities and NaNs, for the f32 filter (lo = hi) and
 * the double one, and requires the states to be bitwise equal to the unsliced one (and, as a
 * check of the emulation, to the plain definition: minima and the lowest index). This checks
 * the algebra; tests/test_exact.c (on a GPU) checks the kernels with
 * FLASHKM_EXACT_FILTER_SLICES. Runs on any machine, no GPU. */
#include "splitmix.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FT_Q 128
#define FT_CC 4

static int failures = 0;

/* the device code's min and max on floats and doubles: fmin / fmax (a NaN operand loses) */
typedef struct state {
    double lo1, lo2, hi;
    int32_t c1;
} state;

static double round_to(double v, int f32) { return f32 ? (double)(float)v : v; }

static void st_init(state *s) { s->lo1 = s->lo2 = s->hi = INFINITY, s->c1 = 0; }

/* ex_state_add */
static void st_add(state *s, double lo, double hi, int32_t c)
{
    s->hi = fmin(s->hi, hi);
    if (lo < s->lo1) s->lo2 = s->lo1, s->lo1 = lo, s->c1 = c;
    else s->lo2 = fmin(s->lo2, lo);
}

/* ex_state_merge */
static void st_merge(state *s, const state *o)
{
    s->hi = fmin(s->hi, o->hi);
    s->lo2 = fmin(fmax(s->lo1, o->lo1), fmin(s->lo2, o->lo2));
    if (o->lo1 < s->lo1 || (o->lo1 == s->lo1 && o->c1 < s->c1)) s->lo1 = o->lo1, s->c1 = o->c1;
}

/* ex_slices */
static int64_t ex_slices(int64_t m, int P, int64_t k, int64_t grid, int64_t cap, int force)
{
    const int64_t tiles = (m + P - 1) / P, qt = (k + FT_Q - 1) / FT_Q;
    if (tiles < 1) return 1;
    int64_t s = force > 0 ? (int64_t)force : force < 0 ? qt : grid / tiles;
    if (s > qt) s = qt;
    if (s > 1 && s > cap / tiles) s = cap / tiles;
    return s < 1 ? 1 : s;
}

/* One warp's state over centroid tiles [q_lo, q_hi) of k: lanes add their centroids in
 * increasing order, then the butterfly (every lane merges lane ^ o's state of the previous
 * round); lane 0's result. */
static state warp_state(const double *lo, const double *hi, int64_t k, int64_t q_lo, int64_t q_hi)
{
    state st[32], nx[32];
    for (int l = 0; l < 32; l++) st_init(&st[l]);
    for (int64_t c0 = q_lo * FT_Q; c0 < q_hi * FT_Q; c0 += FT_Q)
        for (int l = 0; l < 32; l++)
            for (int c = 0; c < FT_CC; c++) {
                const int64_t cc = c0 + l + 32 * c;
                if (cc < k) st_add(&st[l], lo[cc], hi[cc], (int32_t)cc);
            }
    for (int o = 16; o > 0; o >>= 1) {
        for (int l = 0; l < 32; l++) nx[l] = st[l], st_merge(&nx[l], &st[l ^ o]);
        memcpy(st, nx, sizeof st);
    }
    return st[0];
}

/* filter_tiles' item loop and filter_merge for one point tile. */
static state sliced_state(const double *lo, const double *hi, int64_t k, int64_t slices)
{
    const int64_t qt = (k + FT_Q - 1) / FT_Q;
    state part[64], s;
    for (int64_t sl = 0; sl < slices; sl++) part[sl] = warp_state(lo, hi, k, sl * qt / slices, (sl + 1) * qt / slices);
    s = part[0];
    for (int64_t sl = 1; sl < slices; sl++) st_merge(&s, &part[sl]);
    return s;
}

static int same(const state *a, const state *b)
{
    return memcmp(&a->lo1, &b->lo1, sizeof(double)) == 0 && memcmp(&a->lo2, &b->lo2, sizeof(double)) == 0 &&
           memcmp(&a->hi, &b->hi, sizeof(double)) == 0 && a->c1 == b->c1;
}

/* The definition: hi = min hi, lo1 = min lo with its lowest index, lo2 = min over the others
 * (NaN ignored; (inf, inf, inf, 0) for none). */
static state plain(const double *lo, const double *hi, int64_t k)
{
    state s;
    st_init(&s);
    for (int64_t c = 0; c < k; c++) {
        if (hi[c] < s.hi) s.hi = hi[c];
        if (lo[c] < s.lo1) s.lo1 = lo[c], s.c1 = (int32_t)c;
    }
    for (int64_t c = 0; c < k; c++)
        if (c != s.c1 && lo[c] < s.lo2) s.lo2 = lo[c];
    return s;
}

int main(void)
{
    uint64_t seed = 12345;
    static double lo[2048], hi[2048];
    int64_t cases = 0, sliced = 0;
    static const int64_t ks[] = {2, 100, 128, 129, 255, 300, 640, 1000, 1024, 1100, 2048};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        const int64_t k = ks[ki], qt = (k + FT_Q - 1) / FT_Q;
        for (int rep = 0; rep < 60; rep++) {
            const int f32 = rep & 1;
            /* scores from a small set (exact ties, duplicates across tiles), a few non-finite */
            const int levels = 1 + (int)(rng_next(&seed) % 12);
            for (int64_t c = 0; c < k; c++) {
                const uint64_t u = rng_next(&seed);
                double v = round_to(1.0 + (double)(u % (uint64_t)levels) * 0x1p-20 + (rep % 3 == 0 ? 1e3 : 0.0), f32);
                const int odd = (int)((u >> 20) % 200);
                if (odd == 0) v = NAN;
                else if (odd == 1) v = INFINITY;
                else if (odd == 2) v = -INFINITY;
                const double r = f32 ? 0.0 : (double)((u >> 32) % 4) * 0x1p-21;
                lo[c] = f32 ? v : v - r;
                hi[c] = f32 ? v : v + r;
            }
            const state ref = sliced_state(lo, hi, k, 1), def = plain(lo, hi, k);
            if (!same(&ref, &def)) {
                if (failures++ < 5)
                    fprintf(stderr, "k=%lld rep %d: unsliced state (%g %g %g %d) != definition (%g %g %g %d)\n",
                            (long long)k, rep, ref.lo1, ref.lo2, ref.hi, ref.c1, def.lo1, def.lo2, def.hi, def.c1);
            }
            for (int64_t s = 2; s <= qt && s <= 64; s++) {
                const state got = sliced_state(lo, hi, k, s);
                cases++, sliced++;
                if (!same(&got, &ref) && failures++ < 5)
                    fprintf(stderr, "k=%lld rep %d slices %lld: (%g %g %g %d) != unsliced (%g %g %g %d)\n",
                            (long long)k, rep, (long long)s, got.lo1, got.lo2, got.hi, got.c1, ref.lo1, ref.lo2,
                            ref.hi, ref.c1);
            }
        }
    }
    /* ex_slices: within [1, qt], slices x tiles within the buffer when > 1, the default rule
     * one slice for lists of >= grid / 2 tiles, and every slice non-empty */
    for (int t = 0; t < 200000; t++) {
        const int64_t m = (int64_t)(rng_next(&seed) % 100000), k = 1 + (int64_t)(rng_next(&seed) % 70000);
        const int P = rng_next(&seed) & 1 ? 64 : 32;
        const int64_t grid = 1 + (int64_t)(rng_next(&seed) % 2000), cap = (int64_t)(rng_next(&seed) % 5000);
        const int force = (int)(rng_next(&seed) % 12) - 1;
        const int64_t s = ex_slices(m, P, k, grid, cap, force), tiles = (m + P - 1) / P, qt = (k + FT_Q - 1) / FT_Q;
        int ok = s >= 1 && s <= qt && (s == 1 || s * tiles <= cap);
        if (force == 0 && tiles >= 1 && 2 * tiles > grid) ok = ok && s == 1;
        for (int64_t sl = 0; ok && sl < s; sl++) ok = (sl + 1) * qt / s > sl * qt / s;
        if (!ok && failures++ < 5)
            fprintf(stderr, "ex_slices(m=%lld, P=%d, k=%lld, grid=%lld, cap=%lld, force=%d) = %lld\n", (long long)m, P,
                    (long long)k, (long long)grid, (long long)cap, force, (long long)s);
    }
    printf("filter slicing emulation: %lld sliced states compared with the unsliced ones: %s\n", (long long)sliced,
           failures ? "MISMATCH" : "all bitwise equal");
    (void)cases;
    return failures ? 1 : 0;
}
