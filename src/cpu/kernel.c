/* kernel.c — fused distance + argmin over a block of points, one source for every SIMD
 * level. CMake compiles this file once per level with FKM_SIMD_NAME = generic | avx2 | avx512
 * and the matching -m flags (and -ffp-contract=fast so a*b+c becomes one FMA); the vector
 * width follows from the flags through GCC/Clang vector extensions. See kernel.h. */
#include "kernel.h"

#include <math.h>
#include <string.h>

#if defined(__AVX512F__)
#define VW 16   /* floats per vector */
#define MR 12   /* register tile: MR points x NV vectors of centroids = 24 accumulators */
#elif defined(__AVX2__)
#define VW 8
#define MR 6
#else
#define VW 4
#define MR 6
#endif
#define NV 2
#define NR (VW * NV)

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define SYM(name) CAT(CAT(fkm_, FKM_SIMD_NAME), CAT(_, name))

typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));

static inline vf loadv(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void storev(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vi loadi(const float *p)
{
    vi v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void storei(float *p, vi v) { memcpy(p, &v, sizeof v); }

/* select(m, a, b) = m ? a : b lane-wise (m lanes are all-ones or zero). */
static inline vf selectf(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }
static inline vi selecti(vi m, vi a, vi b) { return (m & a) | (~m & b); }
static inline vf vminf(vf a, vf b) { return selectf(a < b, a, b); }
static inline vf vmaxf(vf a, vf b) { return selectf(a < b, b, a); }

/* Scratch per point: VW best values, VW best indices (stored as raw int bits), and for the
 * top-2 variant VW second values. */
static int64_t SYM(scratch_floats)(int64_t rows) { return rows * 3 * VW; }

/* One register tile: rows [0, MR) of x (rows beyond `rows` alias the last real row and are
 * discarded) against one panel; merges lane-wise into the per-point running best. */
/* TOP2 (a compile-time constant: each caller gets its own specialised copy, so the fast
 * path's code is the same as without the flag) also keeps, per lane, the second-smallest
 * score; certified mode (docs/EXACTNESS.md) needs the gap between best and second. */
static inline __attribute__((always_inline)) void tile(const float *x, int64_t ldx, int rows, int64_t d,
                                                      const float *panel, const float *bias, float alpha,
                                                      vi idx0, float *best, const int TOP2)
{
    const float *xr[MR];
    for (int r = 0; r < MR; r++) xr[r] = x + (r < rows ? r : rows - 1) * ldx;

    vf acc[MR][NV];
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = (vf){0};

    for (int64_t j = 0; j < d; j++) {
        vf c[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) c[v] = loadv(panel + j * NR + v * VW);
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            vf xv = (vf){0} + xr[r][j];
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = acc[r][v] + xv * c[v];
        }
    }

    vf b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = loadv(bias + v * VW);
    const vf av = (vf){0} + alpha;
    for (int r = 0; r < rows; r++) {
        if (TOP2) {
            /* lane-wise (best, index, second). The panel's NV scores first: the smallest
             * (lo, earlier vector wins ties) and the smallest of the rest (hi); then the
             * second of the running pair b1 <= b2 and the new pair lo <= hi is
             * min(max(b1, lo), min(b2, hi)). An equal score becomes the second, so an exact
             * tie leaves a zero gap. */
            float *bv = best + (int64_t)r * 3 * VW;
            vf lo = b[0] + av * acc[r][0], hi = (vf){0} + INFINITY;
            vi li = idx0;
#pragma GCC unroll 4
            for (int v = 1; v < NV; v++) {
                const vf t = b[v] + av * acc[r][v];
                const vi m = t < lo;
                hi = vminf(hi, selectf(m, lo, t));
                lo = selectf(m, t, lo);
                li = selecti(m, idx0 + v * VW, li);
            }
            const vf b1 = loadv(bv), b2 = loadv(bv + 2 * VW);
            const vi m = lo < b1;
            storev(bv + 2 * VW, vminf(vmaxf(b1, lo), vminf(b2, hi)));
            storev(bv, selectf(m, lo, b1));
            storei(bv + VW, selecti(m, li, loadi(bv + VW)));
            continue;
        }
        /* merge the NV vectors of this point (earlier vector = lower index wins ties) */
        vf val = b[0] + av * acc[r][0];
        vi idx = idx0;
#pragma GCC unroll 4
        for (int v = 1; v < NV; v++) {
            vf t = b[v] + av * acc[r][v];
            vi m = t < val;
            val = selectf(m, t, val);
            idx = selecti(m, idx0 + v * VW, idx);
        }
        /* merge with the running best (earlier panels = lower indices win ties) */
        float *bv = best + (int64_t)r * 2 * VW;
        vf old = loadv(bv);
        vi oldi = loadi(bv + VW);
        vi m = val < old;
        storev(bv, selectf(m, val, old));
        storei(bv + VW, selecti(m, idx, oldi));
    }
}

static inline __attribute__((always_inline)) void assign_impl(const float *x, int64_t ldx, int64_t rows,
                                                               int64_t d, const float *cpack,
                                                               const float *cbias, int64_t npanels,
                                                               float alpha, float *scratch,
                                                               int32_t *labels_out, float *best_out,
                                                               float *second_out, const int TOP2)
{
    const int64_t per = (TOP2 ? 3 : 2) * VW; /* scratch floats per point */
    vi lane;
    for (int l = 0; l < VW; l++) lane[l] = l;
    for (int64_t r = 0; r < rows; r++) {
        storev(scratch + r * per, (vf){0} + INFINITY);
        storei(scratch + r * per + VW, (vi){0});
        if (TOP2) storev(scratch + r * per + 2 * VW, (vf){0} + INFINITY);
    }
    for (int64_t p = 0; p < npanels; p++) {
        const float *panel = cpack + p * d * NR;
        const vi idx0 = lane + (int32_t)(p * NR);
        for (int64_t r0 = 0; r0 < rows; r0 += MR) {
            int nrows = (int)(rows - r0 < MR ? rows - r0 : MR);
            tile(x + r0 * ldx, ldx, nrows, d, panel, cbias + p * NR, alpha, idx0, scratch + r0 * per, TOP2);
        }
    }
    /* across lanes: the smallest value, then the lowest index among lanes holding it */
    for (int64_t r = 0; r < rows; r++) {
        const float *bv = scratch + r * per;
        vi bi = loadi(bv + VW);
        float m = bv[0];
        for (int l = 1; l < VW; l++) m = bv[l] < m ? bv[l] : m;
        int32_t best = INT32_MAX;
        int bl = 0;
        for (int l = 0; l < VW; l++)
            if (bv[l] == m && bi[l] < best) best = bi[l], bl = l;
        if (best == INT32_MAX) best = 0; /* every value +inf: cannot happen for finite data */
        labels_out[r] = best;
        if (best_out) best_out[r] = m;
        if (TOP2) {
            /* the second over all centroids: every lane's second, and the other lanes' best */
            float s2 = INFINITY;
            for (int l = 0; l < VW; l++) {
                if (bv[2 * VW + l] < s2) s2 = bv[2 * VW + l];
                if (l != bl && bv[l] < s2) s2 = bv[l];
            }
            second_out[r] = s2;
        }
    }
}

static void SYM(assign_block)(const float *x, int64_t ldx, int64_t rows, int64_t d,
                              const float *cpack, const float *cbias, int64_t npanels,
                              float alpha, float *scratch, int32_t *labels_out, float *best_out)
{
    assign_impl(x, ldx, rows, d, cpack, cbias, npanels, alpha, scratch, labels_out, best_out, NULL, 0);
}

static void SYM(assign_block_top2)(const float *x, int64_t ldx, int64_t rows, int64_t d,
                                   const float *cpack, const float *cbias, int64_t npanels, float alpha,
                                   float *scratch, int32_t *labels_out, float *best_out, float *second_out)
{
    assign_impl(x, ldx, rows, d, cpack, cbias, npanels, alpha, scratch, labels_out, best_out, second_out, 1);
}

/* See kernel.h. Written lane by lane over a fixed 8-wide interleave so that the compiler
 * vectorises it at this file's SIMD level and every level sums in the same order. */
#define LANES 8
static double SYM(accumulate)(const float *x, const float *c, int64_t d, int dot, double w, double *acc)
{
    double a[LANES] = {0};
    int64_t j = 0;
    if (acc)
        for (int64_t t = 0; t < d; t++) acc[t] += w * (double)x[t];
    if (dot) {
        for (; j + LANES <= d; j += LANES)
            for (int l = 0; l < LANES; l++) a[l] += (double)x[j + l] * c[j + l];
        for (int l = 0; j < d; j++, l++) a[l] += (double)x[j] * c[j];
    } else {
        for (; j + LANES <= d; j += LANES)
            for (int l = 0; l < LANES; l++) {
                const double t = (double)x[j + l] - c[j + l];
                a[l] += t * t;
            }
        for (int l = 0; j < d; j++, l++) {
            const double t = (double)x[j] - c[j];
            a[l] += t * t;
        }
    }
    const double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    return dot ? -s : s;
}

/* Four rows at a time: four independent accumulator vectors hide the FMA latency; the
 * candidates are the vector (GCC vector extension: one zmm on AVX-512, two ymm on AVX2).
 * With -ffp-contract=fast, acc + u * u is one FMA where the level has FMA. */
typedef float fkm_v16 __attribute__((vector_size(FKM_KPP_LANES * sizeof(float))));

static void SYM(sqdist_many)(const float *x, int64_t ldx, int64_t rows, const float *cT, int64_t d, float *out)
{
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        fkm_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        const float *x0 = x + r * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
        for (int64_t j = 0; j < d; j++) {
            fkm_v16 c;
            memcpy(&c, cT + j * FKM_KPP_LANES, sizeof c);
            const fkm_v16 u0 = x0[j] - c, u1 = x1[j] - c, u2 = x2[j] - c, u3 = x3[j] - c;
            a0 += u0 * u0;
            a1 += u1 * u1;
            a2 += u2 * u2;
            a3 += u3 * u3;
        }
        memcpy(out + (r + 0) * FKM_KPP_LANES, &a0, sizeof a0);
        memcpy(out + (r + 1) * FKM_KPP_LANES, &a1, sizeof a1);
        memcpy(out + (r + 2) * FKM_KPP_LANES, &a2, sizeof a2);
        memcpy(out + (r + 3) * FKM_KPP_LANES, &a3, sizeof a3);
    }
    for (; r < rows; r++) {
        fkm_v16 a0 = {0};
        for (int64_t j = 0; j < d; j++) {
            fkm_v16 c;
            memcpy(&c, cT + j * FKM_KPP_LANES, sizeof c);
            const fkm_v16 u0 = x[r * ldx + j] - c;
            a0 += u0 * u0;
        }
        memcpy(out + r * FKM_KPP_LANES, &a0, sizeof a0);
    }
}

#define STR2(a) #a
#define STR(a) STR2(a)

const fkm_cpu_kernel CAT(fkm_cpu_kernel_, FKM_SIMD_NAME) = {
    .name = STR(FKM_SIMD_NAME),
    .nr = NR,
    .mr = MR,
    .assign_block = SYM(assign_block),
    .assign_block_top2 = SYM(assign_block_top2),
    .scratch_floats = SYM(scratch_floats),
    .accumulate = SYM(accumulate),
    .sqdist_many = SYM(sqdist_many),
};
