/* kmeanspp.cu — greedy k-means++ on the GPU (see kmeanspp.cuh).
 *
 * The CPU version (src/cpu/kmeanspp.c) fixes every rounding: f32 distances with one fused
 * multiply-add per feature in feature order; potentials and prefix sums of w * D in double,
 * point by point inside fixed chunks of FKM_KPP_CHUNK points and chunk by chunk across them;
 * a binary search for the first prefix sum reaching u * total. This file performs the same
 * operations in the same order, so it draws the same rows, without the CPU's N x T distance
 * matrix and without any host round trip per step:
 *
 *  - the uniforms do not depend on the data (T per step, drawn in order from the seeded
 *    generator, whatever the search finds), so the host draws them all up front and copies
 *    them once;
 *  - per step, one pass over X (kpp_pass: three kernels per group of chunks) finishes the
 *    previous step, D = min(D, d(x, newest centre)) (D kept in f32: it only ever holds f32
 *    distances), and computes the distances to the T candidates: kpp_mark lists the points
 *    that pruning leaves, kpp_rows computes their distances, one listed point per thread
 *    over the whole GPU, and kpp_sums, one block per chunk, adds w * min(D, d_t) point by
 *    point in double for each candidate (the CPU's order), storing the running sums every
 *    KPP_SEG points (checkpoints);
 *  - one single-block kernel (kpp_tail) adds the chunk sums in chunk order (each candidate's
 *    potential, the chunk offsets), keeps the best candidate (the first on ties), and samples
 *    the next T candidates: the chunk, then the segment, holding the first prefix sum >= u *
 *    total follow from chunk sums and checkpoints; inside that one segment the prefix sums
 *    are recomputed (<= KPP_SEG points against the new centre) with the CPU's additions.
 *  After committing candidate t, the CPU's chunk total is exactly the candidate's chunk
 *  potential (the same values added in the same order): that is why no commit pass over the
 *  points is needed, and why the new centre's distances can wait for the next pass.
 *
 * Products w * min(D, d) of two floats are exact in double, so an FMA or a multiply-add gives
 * the same sum on either side.
 *
 * Pruning (core/kpp_prune.h, docs/BENCH_KPP.md): each point also keeps `near`, a centre at
 * computed distance D. Before each pass a small kernel (kpp_cc) computes the distances of the
 * centres chosen so far to the pass's T + 1 rows; in the pass, a point whose every row is
 * proved (triangle inequality with rounding margins) no closer than D needs no distance:
 * min(D, d_t) == D bit for bit, so it contributes D to every sum and its row is not read.
 * The other points are listed and computed in full, so every value the sums add is unchanged,
 * pruned or not (FLASHKM_KPP_NO_PRUNE=1 turns it off to compare). Five launches per step and group; the stream is synchronised once. */
#include "cuda/kmeanspp.cuh"

extern "C" {
#include "core/init.h"
#include "cpu/kernel.h"
}
#include "core/kpp_prune.h"

#include <cub/cub.cuh>
#include <math.h>
#include <stdlib.h>

#define KPP_CHUNK FKM_KPP_CHUNK            /* the CPU's summation chunk */
#define KPP_SEG 64                         /* points per checkpoint */
#define KPP_SEGS (KPP_CHUNK / KPP_SEG)
#define KPP_MAXT FKM_KPP_LANES             /* most candidates per step (the CPU's cap) */
#define KPP_DTILE 256                      /* most candidate features staged in shared memory at once */
#define KPP_TAIL_THREADS (KPP_MAXT * KPP_SEG)
#define KPP_TAIL_TILE 256                  /* chunks per shared-memory tile of the tail */

static_assert(KPP_DTILE % 8 == 0, "a tile holds whole 16-byte pieces of every dtype");

/* What every kernel of one k-means++ run reads; all pointers are device memory. */
struct kpp_args {
    const void *X;        /* the problem's rows */
    int64_t n, d, ld;
    int64_t dpad;         /* stride of a candidate row: d rounded up to 8, zeros past d */
    int64_t nfeat;        /* features a pass reads: d rounded up to whole 16-byte pieces */
    int64_t ctile;        /* candidate features per shared-memory tile */
    int64_t nchunks;
    const float *w;       /* weights or NULL */
    const double *inv;    /* cosine: 1 / ||row|| as the CPU computes it (0 for a zero row); else NULL */
    float *D;             /* n: squared distance to the nearest centre (+inf before the first) */
    float *cand;          /* (KPP_MAXT + 1) x dpad: slot 0 the newest centre, 1..T the candidates */
    double *pot;          /* nchunks x tc: each candidate's potential over each chunk */
    double *off;          /* nchunks x tc: sum of the chunks before, per candidate */
    double *cp;           /* nchunks x KPP_SEGS x tc: running sums at segment ends */
    float *C;             /* k x d: the centroids chosen */
    /* the pass's group (kpp_mark -> kpp_rows -> kpp_sums) */
    int *nlist;           /* 1: points listed so far in the group (0 between groups) */
    int32_t *slot;        /* group point: its place in list, or -1 (needs no distance) */
    int32_t *list;        /* the group's points needing a distance (group-local numbers) */
    float *vals;          /* place x T: min(D, d_t) for each candidate of a listed point */
    int T;                /* candidates per step */
    /* pruning (core/kpp_prune.h) */
    fkm_kpp_prune prune;  /* the test's constants (factor 0: pruning off) */
    int32_t *near;        /* n: a centre at computed distance D (set whenever D becomes finite) */
    float *cc;            /* k x (T + 1): computed distance from centre a to row s of cand */
    float *ccmin;         /* k: each row of cc folded (fkm_kpp_fold) */
    int64_t newest;       /* index in C of the newest centre (slot 0 of cand) */
    unsigned long long *stats; /* 2: rows read, (point, row) pairs left by the test */
};

/* ---------------------------------------------------------------- rows as the CPU sees them */

/* Element of a row as fkm_load_row makes it: f32, or for cosine (inv != 1 path) the f32
 * value times 1 / ||row|| in double, rounded once to f32. */
template <typename T> __device__ __forceinline__ float kpp_value(T v, bool cosine, double inv)
{
    return cosine ? __double2float_rn(__dmul_rn(fkm_to_double(v), inv)) : fkm_to_float(v);
}

/* A 16-byte piece of a row converted to f32. */
template <typename T> __device__ __forceinline__ void kpp_piece(const uint4 &raw, bool cosine, double inv, float *xf)
{
    constexpr int E = 16 / (int)sizeof(T);
    T v[E];
    memcpy(v, &raw, 16);
#pragma unroll
    for (int e = 0; e < E; e++) xf[e] = kpp_value(v[e], cosine, inv);
}

/* ||x - c||^2 in f32 as the CPU's sqdist_many: u = x - c, acc = fma(u, u, acc), features in
 * increasing order, over the nfeat features of 16-byte pieces (the padding adds exactly 0,
 * as in the pass). Pieces are loaded KPP_ROW_BATCH at a time so that a row costs a few
 * memory latencies, not one per feature. */
#define KPP_ROW_BATCH 4
template <typename T>
__device__ float kpp_row_dist(const T *x, int64_t nfeat, bool cosine, double inv, const float *c)
{
    constexpr int E = 16 / (int)sizeof(T);
    float acc = 0.0f;
    for (int64_t j0 = 0; j0 < nfeat; j0 += KPP_ROW_BATCH * E) {
        uint4 raw[KPP_ROW_BATCH];
#pragma unroll
        for (int q = 0; q < KPP_ROW_BATCH; q++)
            if (j0 + q * E < nfeat) raw[q] = __ldg((const uint4 *)(x + j0 + q * E));
#pragma unroll
        for (int q = 0; q < KPP_ROW_BATCH; q++) {
            if (j0 + q * E >= nfeat) break;
            float xf[E];
            kpp_piece<T>(raw[q], cosine, inv, xf);
#pragma unroll
            for (int e = 0; e < E; e++) {
                const float u = __fsub_rn(xf[e], c[j0 + q * E + e]);
                acc = __fmaf_rn(u, u, acc);
            }
        }
    }
    return acc;
}

/* 1 / sqrt(sum of squares) per row, summed in feature order in double as fkm_load_row does
 * (0 for a zero row, which leaves the row's zeros as they are). */
template <typename T> __global__ void kpp_inv_norms(const void *X, int64_t n, int64_t d, int64_t ld, double *inv)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const T *x = (const T *)X + i * ld;
    double ss = 0.0;
    for (int64_t j = 0; j < d; j++) {
        const double v = fkm_to_double(x[j]);
        ss = __dadd_rn(ss, __dmul_rn(v, v));
    }
    inv[i] = ss > 0.0 ? __ddiv_rn(1.0, __dsqrt_rn(ss)) : 0.0;
}

/* ---------------------------------------------------------------- the per-step pass */

/* The pass is three kernels over one group of chunks (at most KPP_GROUP_CHUNKS, which bounds
 * the workspace): kpp_mark lists the points needing a distance, kpp_rows computes them
 * spread evenly over the whole GPU, and kpp_sums adds every point's values in the CPU's
 * order. (One block per chunk doing all three, the earlier design, left each block waiting
 * on its listed rows' memory latencies one sub-chunk after another: 123 us per step on the
 * H100 for 16% of the rows read.) */
#define KPP_GROUP_CHUNKS 512               /* chunks per group: 2M points */
#define KPP_MARK_THREADS 1024              /* kpp_mark: threads of a block */
#define KPP_MARK_PPT 4                     /* kpp_mark: points per thread */
#define KPP_ROWS_THREADS 256               /* kpp_rows: threads of a block, one listed row each */
#define KPP_ROWS_BLOCKS 3                  /* kpp_rows: blocks per SM aimed at */
#define KPP_ROWS_DEPTH 4                   /* kpp_rows: 16-byte pieces of a row in flight */

/* Candidate features [j0, j0 + ctile) transposed into cs (feature-major, stride NCP). */
template <int NC, int NCP>
__device__ void kpp_stage(const kpp_args &a, int64_t j0, float *cs, int t, int nthreads)
{
    for (int64_t q = t; q < (int64_t)NC * a.ctile; q += nthreads) {
        const int s = (int)(q / a.ctile);
        const int64_t jl = q % a.ctile, j = j0 + jl;
        cs[jl * NCP + s] = j < a.dpad ? a.cand[s * a.dpad + j] : 0.0f;
    }
}

/* Adds the features [j0, j0 + jend) of the R rows xr to their NC accumulators, against the
 * candidate tile cs; u = x - c and fma(u, u, acc) in feature order, the CPU's arithmetic.
 * P 16-byte pieces of each row are in flight (a ring: piece q + P is requested when piece q
 * is converted), so a row costs nfeat / (E P) memory latencies, not one per piece. */
template <typename T, int NC, int NCP, int R, int P>
__device__ __forceinline__ void kpp_tile(const T *const (&xr)[R], const double (&inv)[R], bool cosine, int64_t j0,
                                         int64_t jend, const float *cs, float (&acc)[R][NC])
{
    constexpr int E = 16 / (int)sizeof(T);
    uint4 raw[P][R];
#pragma unroll
    for (int q = 0; q < P; q++)
        if (q * E < jend)
#pragma unroll
            for (int r = 0; r < R; r++) raw[q][r] = __ldg((const uint4 *)(xr[r] + j0 + q * E));
    for (int64_t jl0 = 0; jl0 < jend; jl0 += P * E) {
#pragma unroll
        for (int q = 0; q < P; q++) {
            const int64_t jl = jl0 + q * E;
            if (jl >= jend) break;
            float xf[R][E];
#pragma unroll
            for (int r = 0; r < R; r++) kpp_piece<T>(raw[q][r], cosine, inv[r], xf[r]);
            if (jl + P * E < jend)
#pragma unroll
                for (int r = 0; r < R; r++) raw[q][r] = __ldg((const uint4 *)(xr[r] + j0 + jl + P * E));
#pragma unroll
            for (int e = 0; e < E; e++) {
                float cv[NCP];
                const float4 *c4 = (const float4 *)(cs + (jl + e) * NCP);
#pragma unroll
                for (int q4 = 0; q4 < NCP / 4; q4++) {
                    const float4 v = c4[q4];
                    cv[4 * q4] = v.x, cv[4 * q4 + 1] = v.y, cv[4 * q4 + 2] = v.z, cv[4 * q4 + 3] = v.w;
                }
#pragma unroll
                for (int s = 0; s < NC; s++)
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        const float u = __fsub_rn(xf[r][e], cv[s]);
                        acc[r][s] = __fmaf_rn(u, u, acc[r][s]);
                    }
            }
        }
    }
}

/* 1. Which points of the group (gp0, gn points) need a distance: point i does when some
 * row of cand (slot 0 the newest centre, then the candidates) is not proved by
 * fkm_kpp_pruned to be no closer than D, from the rows' distances to the point's centre
 * (a.cc; the common case of every row far takes one test, against the fold a.ccmin). The
 * needed points get consecutive places in a.list (group-local point numbers) and a.slot[l]
 * their place (-1: none). One atomic per block takes the block's places: the list's order
 * depends on the blocks' timing, but no value does (kpp_rows computes each listed point
 * alone, kpp_sums adds in point order). Adds the rows to read and the (point, row) pairs
 * left to a.stats. */
__global__ void __launch_bounds__(KPP_MARK_THREADS) kpp_mark(kpp_args a, int64_t gp0, int64_t gn, int nc)
{
    typedef cub::BlockScan<int, KPP_MARK_THREADS> count_scan;
    typedef cub::BlockReduce<unsigned, KPP_MARK_THREADS> pair_sum;
    __shared__ union {
        typename count_scan::TempStorage scan;
        typename pair_sum::TempStorage sum;
    } tmp;
    __shared__ int block_base;
    const int tid = threadIdx.x;
    const int64_t l0 = (int64_t)blockIdx.x * KPP_MARK_THREADS * KPP_MARK_PPT;
    float Dv[KPP_MARK_PPT];
    int nr[KPP_MARK_PPT];
#pragma unroll
    for (int r = 0; r < KPP_MARK_PPT; r++) { /* all loads first: their latencies overlap */
        const int64_t l = l0 + tid + r * KPP_MARK_THREADS;
        Dv[r] = l < gn ? a.D[gp0 + l] : 0.0f;
        nr[r] = l < gn ? a.near[gp0 + l] : 0;
    }
    unsigned needbits = 0, pairs = 0;
#pragma unroll
    for (int r = 0; r < KPP_MARK_PPT; r++) {
        const int64_t l = l0 + tid + r * KPP_MARK_THREADS;
        if (l >= gn) continue;
        const float lim = fkm_kpp_prune_limit(&a.prune, Dv[r]);
        int nn = nc;
        if (lim < INFINITY) { /* near is set only where D is finite */
            nn = 0;
            if (!fkm_kpp_pruned(lim, a.ccmin[nr[r]]))
                for (int s = 0; s < nc; s++) nn += !fkm_kpp_pruned(lim, a.cc[(int64_t)nr[r] * nc + s]);
        }
        pairs += (unsigned)nn;
        needbits |= (unsigned)(nn > 0) << r;
    }
    /* the block's exclusive prefix of the counts and their total; the pairs' sum */
    int pos, total;
    count_scan(tmp.scan).ExclusiveSum(__popc(needbits), pos, total);
    __syncthreads(); /* tmp is reused */
    const unsigned pairs_block = pair_sum(tmp.sum).Sum(pairs); /* valid in thread 0 */
    if (tid == 0) {
        block_base = total > 0 ? atomicAdd(a.nlist, total) : 0;
        atomicAdd(&a.stats[0], (unsigned long long)total); /* every listed row is read once */
        atomicAdd(&a.stats[1], (unsigned long long)pairs_block);
    }
    __syncthreads();
    pos += block_base;
#pragma unroll
    for (int r = 0; r < KPP_MARK_PPT; r++) {
        const int64_t l = l0 + tid + r * KPP_MARK_THREADS;
        if (l >= gn) continue;
        if ((needbits >> r) & 1u) {
            a.slot[l] = pos;
            a.list[pos++] = (int)l;
        } else {
            a.slot[l] = -1;
        }
    }
}

/* 2. The listed points' distances, one per thread, spread over the whole GPU: for listed
 * point i the values the sums add (min(D, d_t) for each candidate, with D the newest
 * centre's minimum) into a.vals at its place, and the update of D (and near) by the newest
 * centre (slot 0). Blocks walk the list by whole blocks (barriers around the candidate
 * tiles when the candidates do not fit one). */
template <typename T, int NC>
__global__ void __launch_bounds__(KPP_ROWS_THREADS, KPP_ROWS_BLOCKS) kpp_rows(kpp_args a, int64_t gp0)
{
    constexpr int TT = NC - 1, NCP = (NC + 3) / 4 * 4;
    extern __shared__ __align__(16) float kpp_sm[];
    float *cs = kpp_sm; /* ctile x NCP */
    const int64_t count = *a.nlist;
    const bool cosine = a.inv != nullptr, one_tile = a.nfeat <= a.ctile;
    const int tid = threadIdx.x;
    if ((int64_t)blockIdx.x * KPP_ROWS_THREADS >= count) return; /* whole blocks */
    if (one_tile) {
        kpp_stage<NC, NCP>(a, 0, cs, tid, KPP_ROWS_THREADS);
        __syncthreads();
    }
    for (int64_t q0 = (int64_t)blockIdx.x * KPP_ROWS_THREADS; q0 < count; q0 += (int64_t)gridDim.x * KPP_ROWS_THREADS) {
        const int64_t q = q0 + tid;
        const bool has = q < count;
        const int64_t i = gp0 + (has ? a.list[q] : 0);
        const T *const xr[1] = {(const T *)a.X + i * a.ld};
        const double inv[1] = {cosine && has ? a.inv[i] : 1.0};
        const float D = has ? a.D[i] : 0.0f;
        float acc[1][NC];
#pragma unroll
        for (int s = 0; s < NC; s++) acc[0][s] = 0.0f;
        for (int64_t j0 = 0; j0 < a.nfeat; j0 += a.ctile) {
            if (!one_tile) { /* every thread stages and waits, listed point or not */
                __syncthreads(); /* everyone is done with the previous tile */
                kpp_stage<NC, NCP>(a, j0, cs, tid, KPP_ROWS_THREADS);
                __syncthreads();
            }
            if (has) kpp_tile<T, NC, NCP, 1, KPP_ROWS_DEPTH>(xr, inv, cosine, j0, min(a.nfeat - j0, a.ctile), cs, acc);
        }
        if (!has) continue;
        const float d0 = acc[0][0], Dn = fminf(D, d0);
        if (d0 < D) { /* only a strictly smaller distance moves the centre: D stays its distance */
            a.D[i] = d0;
            a.near[i] = (int)a.newest;
        }
        float *o = a.vals + q * TT;
#pragma unroll
        for (int t = 0; t < TT; t++) o[t] = fminf(Dn, acc[0][1 + t]);
    }
}

#define KPP_CWARPS 8                       /* gathering warps of a sums block (+1 summing warp) */
#define KPP_CTHREADS (KPP_CWARPS * 32)
#define KPP_PPT 2                          /* points per gathering thread and sub-chunk */
#define KPP_SUB (KPP_CTHREADS * KPP_PPT)   /* points per sub-chunk */
static_assert(KPP_CHUNK % KPP_SUB == 0 && KPP_SUB % KPP_SEG == 0, "sub-chunks hold whole segments");

/* Sub-chunk `sb` of the chunk at `base` (group-local lbase), by the gathering threads: each
 * point's terms for the summing warp, w * min(D, d_t) per candidate in double, into out:
 * min(D, d_t) from a.vals for a listed point, D itself for the others (every row proved no
 * closer than D: min(D, d_t) == D bit for bit; their D is unchanged). The product of two
 * floats is exact in double, so adding it equals the CPU's fma(w, v, run) bit for bit, and
 * the summing warp's chain is one addition per point with nothing else on it. */
template <int NC>
__device__ __forceinline__ void kpp_gather(const kpp_args &a, int64_t base, int64_t lbase, int cnt, int sb, double *out)
{
    constexpr int TT = NC - 1;
    const int tid = threadIdx.x;
    int slot[KPP_PPT];
#pragma unroll
    for (int r = 0; r < KPP_PPT; r++) {
        const int p = sb + tid + r * KPP_CTHREADS;
        slot[r] = p < cnt ? a.slot[lbase + p] : -1;
    }
#pragma unroll
    for (int r = 0; r < KPP_PPT; r++) {
        const int p = sb + tid + r * KPP_CTHREADS;
        if (p >= cnt) continue;
        double *o = out + (p - sb) * TT;
        const double w = a.w ? (double)a.w[base + p] : 1.0;
        if (slot[r] >= 0) {
            const float *v = a.vals + (int64_t)slot[r] * TT;
#pragma unroll
            for (int t = 0; t < TT; t++) o[t] = __dmul_rn(w, (double)v[t]);
        } else {
            const double wD = __dmul_rn(w, (double)a.D[base + p]);
#pragma unroll
            for (int t = 0; t < TT; t++) o[t] = wD;
        }
    }
}

/* 3. One block per chunk of the group: KPP_CWARPS warps gather sub-chunk s while the last
 * warp adds sub-chunk s - 1, one lane per candidate: the terms point by point in double (the
 * CPU's order), the running sums stored every KPP_SEG points (checkpoints) and at the
 * chunk's end. The chain of additions is the kernel's critical path (4096 dependent
 * additions per chunk): the terms are read KPP_SUM_BATCH at a time ahead of their additions
 * so that no shared-memory latency sits on it.
 *
 * Double buffer: iteration s writes half s & 1 of buf (gathering warps) and reads half
 * (s - 1) & 1 (summing warp); iterations are separated by __syncthreads of the whole block,
 * so a half is read in the iteration after it is written and rewritten only in the one after
 * that. The last block resets the list counter for the next group: kpp_rows, its only
 * reader, has finished. */
#define KPP_SUM_BATCH 16
static_assert(KPP_SEG % KPP_SUM_BATCH == 0, "whole batches per segment");
template <int NC>
__global__ void __launch_bounds__(KPP_CTHREADS + 32, 2) kpp_sums(kpp_args a, int64_t c0)
{
    constexpr int TT = NC - 1;
    extern __shared__ __align__(16) double kpp_smd[];
    double *buf = kpp_smd; /* 2 x KPP_SUB x TT */
    const int64_t ch = c0 + blockIdx.x, base = ch * KPP_CHUNK, lbase = (int64_t)blockIdx.x * KPP_CHUNK;
    const int cnt = (int)min((int64_t)KPP_CHUNK, a.n - base);
    const int nsub = (cnt + KPP_SUB - 1) / KPP_SUB;
    const int tid = threadIdx.x, lane = tid - KPP_CTHREADS;
    if (blockIdx.x == gridDim.x - 1 && tid == 0) *a.nlist = 0;
    double run = 0.0;
    for (int s = 0; s <= nsub; s++) {
        if (lane < 0) {
            if (s < nsub) kpp_gather<NC>(a, base, lbase, cnt, s * KPP_SUB, buf + (s & 1) * KPP_SUB * TT);
        } else if (s > 0 && lane < TT) {
            const int sb = (s - 1) * KPP_SUB, pend = min(KPP_SUB, cnt - sb);
            const double *b = buf + ((s - 1) & 1) * KPP_SUB * TT + lane;
            for (int g0 = 0; g0 < pend; g0 += KPP_SEG) {
                const int g1 = min(g0 + KPP_SEG, pend);
                int p = g0;
                for (; p + KPP_SUM_BATCH <= g1; p += KPP_SUM_BATCH) {
                    double v[KPP_SUM_BATCH];
#pragma unroll
                    for (int j = 0; j < KPP_SUM_BATCH; j++) v[j] = b[(p + j) * TT];
#pragma unroll
                    for (int j = 0; j < KPP_SUM_BATCH; j++) run = __dadd_rn(run, v[j]);
                }
                for (; p < g1; p++) run = __dadd_rn(run, b[p * TT]);
                a.cp[(ch * KPP_SEGS + (sb + g0) / KPP_SEG) * TT + lane] = run;
            }
            if (s == nsub) a.pot[ch * TT + lane] = run;
        }
        __syncthreads();
    }
}

/* The pruning table of the next pass: for the `rows` centres chosen so far, the computed
 * distance to each of the nc rows of cand (slot 0 the newest centre, then the candidates)
 * and its fold (ccmin). One warp per centre: lane l adds the features l, l + 32, ... of every
 * row (u = x - c, fma(u, u, acc), coalesced reads, all rows' loads independent), then a
 * butterfly of shuffles adds the 32 partial sums. A different order of additions than the
 * pass's chain, which the error model of kpp_prune.h covers (any summation order or tree:
 * every term still meets at most d additions); cc only decides which distances are skipped,
 * never a value. */
#define KPP_CC_WARPS 8
__global__ void __launch_bounds__(KPP_CC_WARPS * 32) kpp_cc(kpp_args a, int nc, int64_t rows)
{
    const int lane = threadIdx.x % 32;
    const int64_t c = (int64_t)blockIdx.x * KPP_CC_WARPS + threadIdx.x / 32;
    if (c >= rows) return; /* whole warps */
    float acc[KPP_MAXT + 1];
#pragma unroll
    for (int s = 0; s <= KPP_MAXT; s++) acc[s] = 0.0f;
    const float *x = a.C + c * a.d;
    for (int64_t j = lane; j < a.d; j += 32) {
        const float xv = __ldg(x + j);
#pragma unroll
        for (int s = 0; s <= KPP_MAXT; s++)
            if (s < nc) {
                const float u = __fsub_rn(xv, __ldg(a.cand + s * a.dpad + j));
                acc[s] = __fmaf_rn(u, u, acc[s]);
            }
    }
    float mine = 0.0f, m = INFINITY;
#pragma unroll
    for (int s = 0; s <= KPP_MAXT; s++)
        if (s < nc) {
            float v = acc[s];
#pragma unroll
            for (int o = 16; o > 0; o /= 2) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
            if (lane == s) mine = v;
            m = fkm_kpp_fold(m, v);
        }
    if (lane < nc) a.cc[c * nc + lane] = mine;
    if (lane == 0) a.ccmin[c] = m;
}

/* Before the first centre: D = +inf and the chunk sums (with checkpoints) of the weights,
 * the CPU's prefix sums of w * 1. One block per chunk; one thread adds, in point order. */
__global__ void kpp_first_sums(kpp_args a)
{
    __shared__ float w[KPP_CHUNK];
    const int64_t ch = blockIdx.x, base = ch * KPP_CHUNK;
    const int cnt = (int)min((int64_t)KPP_CHUNK, a.n - base);
    for (int p = threadIdx.x; p < cnt; p += blockDim.x) {
        a.D[base + p] = INFINITY;
        w[p] = a.w ? a.w[base + p] : 1.0f;
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    double run = 0.0;
    for (int p = 0; p < cnt; p++) {
        run = __dadd_rn(run, (double)w[p]);
        if ((p + 1) % KPP_SEG == 0 || p == cnt - 1) a.cp[ch * KPP_SEGS + p / KPP_SEG] = run;
    }
    a.pot[ch] = run;
}

/* ---------------------------------------------------------------- the per-step tail */

/* One block of KPP_TAIL_THREADS. Over the tc columns of pot: each column's potential
 * (chunk sums added in chunk order, as the CPU) and chunk offsets; best = the first lowest.
 * emit >= 0: row best becomes centroid `emit` and the newest centre (slot 0). Then `nsamp`
 * targets u[t] * total are searched in the prefix sums of w * min(D, d(x, slot 0)) (first
 * = the first centre's draw: prefix sums of w, and the row drawn fills every slot and C[0]),
 * and the rows found become the candidates. */
template <typename T>
__global__ void __launch_bounds__(KPP_TAIL_THREADS) kpp_tail(kpp_args a, int tc, const double *u, int64_t emit,
                                                              int nsamp, int first)
{
    __shared__ double tot[KPP_MAXT], tgt[KPP_MAXT];
    __shared__ int best_s, chunk_s[KPP_MAXT], seg_s[KPP_MAXT];
    __shared__ int64_t idx_s[KPP_MAXT];
    __shared__ float mv[KPP_MAXT][KPP_SEG], wv[KPP_MAXT][KPP_SEG];
    __shared__ double tile[KPP_TAIL_TILE * KPP_MAXT];
    const int tid = threadIdx.x;
    const bool cosine = a.inv != nullptr;
    /* the chunk sums, in chunk order, one thread per column: read through shared-memory
     * tiles loaded by the whole block (a chain of dependent global loads would cost one
     * memory latency per chunk), offsets written back the same way */
    double run = 0.0;
    for (int64_t c0 = 0; c0 < a.nchunks; c0 += KPP_TAIL_TILE) {
        const int64_t m = min((int64_t)KPP_TAIL_TILE, a.nchunks - c0) * tc;
        for (int64_t q = tid; q < m; q += blockDim.x) tile[q] = a.pot[c0 * tc + q];
        __syncthreads();
        if (tid < tc)
            for (int64_t q = tid; q < m; q += tc) {
                const double v = tile[q];
                tile[q] = run;
                run = __dadd_rn(run, v);
            }
        __syncthreads();
        for (int64_t q = tid; q < m; q += blockDim.x) a.off[c0 * tc + q] = tile[q];
        __syncthreads();
    }
    if (tid < tc) tot[tid] = run;
    if (tid < KPP_MAXT) chunk_s[tid] = 0, seg_s[tid] = 0;
    __syncthreads();
    if (tid == 0) {
        int b = 0;
        double bp = INFINITY;
        for (int t = 0; t < tc; t++)
            if (tot[t] < bp) bp = tot[t], b = t; /* ties: the first candidate, as the CPU */
        best_s = b;
    }
    __syncthreads();
    const int best = best_s;
    const double total = tot[best];
    if (emit >= 0) {
        const float *row = a.cand + (1 + best) * a.dpad;
        for (int64_t j = tid; j < a.dpad; j += blockDim.x) {
            const float v = row[j];
            a.cand[j] = v;
            if (j < a.d) a.C[emit * a.d + j] = v;
        }
    }
    if (nsamp == 0) return;
    if (tid < nsamp) tgt[tid] = __dmul_rn(u[tid], total);
    __syncthreads();

    /* The prefix sums are non-decreasing, so the first one >= target lies in the chunk after
     * all chunks whose last prefix sum (offset + chunk total) is below it; same inside it. */
    for (int64_t c0 = 0; c0 < a.nchunks; c0 += blockDim.x) {
        const int64_t ch = c0 + tid;
        const bool in = ch < a.nchunks;
        const double e = in ? __dadd_rn(a.pot[ch * tc + best], a.off[ch * tc + best]) : 0.0;
        for (int t = 0; t < nsamp; t++) {
            const int below = __syncthreads_count(in && e < tgt[t]);
            if (tid == 0) chunk_s[t] += below;
        }
    }
    __syncthreads();
    const int t = tid / KPP_SEG, g = tid % KPP_SEG;
    int64_t ch = 0, nseg = 0, cnt = 0;
    double off = 0.0;
    if (t < nsamp && chunk_s[t] < a.nchunks) {
        ch = chunk_s[t];
        cnt = min((int64_t)KPP_CHUNK, a.n - ch * KPP_CHUNK);
        nseg = (cnt + KPP_SEG - 1) / KPP_SEG;
        off = a.off[ch * tc + best];
        if (g < nseg && __dadd_rn(a.cp[(ch * KPP_SEGS + g) * tc + best], off) < tgt[t]) atomicAdd(&seg_s[t], 1);
    }
    __syncthreads();
    int64_t sg = 0, p0 = 0, len = 0;
    if (nseg > 0) {
        sg = min((int64_t)seg_s[t], nseg - 1), p0 = sg * KPP_SEG;
        len = min((int64_t)KPP_SEG, cnt - p0);
        const int64_t i = ch * KPP_CHUNK + p0 + g;
        if (g < len) {
            float m = 1.0f;
            if (!first) {
                const double inv = cosine ? a.inv[i] : 1.0;
                m = fminf(a.D[i], kpp_row_dist((const T *)a.X + i * a.ld, a.nfeat, cosine, inv, a.cand));
            }
            mv[t][g] = m;
            wv[t][g] = a.w ? a.w[i] : 1.0f;
        }
    }
    __syncthreads();
    if (t < nsamp && g == 0) {
        int64_t idx = a.n - 1; /* no prefix sum reaches the target: the CPU's clip */
        if (nseg > 0) {
            double run = sg == 0 ? 0.0 : a.cp[(ch * KPP_SEGS + sg - 1) * tc + best];
            for (int64_t q = 0; q < len; q++) {
                run = __fma_rn((double)wv[t][q], (double)mv[t][q], run);
                if (__dadd_rn(run, off) >= tgt[t]) {
                    idx = ch * KPP_CHUNK + p0 + q;
                    break;
                }
            }
        }
        idx_s[t] = idx;
    }
    __syncthreads();
    if (t < nsamp) {
        const int64_t r = idx_s[t];
        const T *x = (const T *)a.X + r * a.ld;
        const double inv = cosine ? a.inv[r] : 1.0;
        for (int64_t j = g; j < a.dpad; j += KPP_SEG) {
            const float v = j < a.d ? kpp_value(x[j], cosine, inv) : 0.0f;
            if (!first) {
                a.cand[(1 + t) * a.dpad + j] = v;
                continue;
            }
            for (int s = 0; s <= a.T; s++) a.cand[s * a.dpad + j] = v;
            if (j < a.d) a.C[j] = v;
        }
    }
}

/* ---------------------------------------------------------------- host side */

typedef void (*kpp_rows_fn)(kpp_args, int64_t);
typedef void (*kpp_sums_fn)(kpp_args, int64_t);

/* The pass's kernels for T + 1 rows (T = 2..KPP_MAXT): the accumulators are registers, so
 * the count is a template argument. */
#define KPP_PASS_CASE(nc) \
    case nc: *rows = kpp_rows<T, nc>, *sums = kpp_sums<nc>; return;
template <typename T> static void kpp_pass_for(int nc, kpp_rows_fn *rows, kpp_sums_fn *sums)
{
    *rows = nullptr, *sums = nullptr;
    switch (nc) {
        KPP_PASS_CASE(3) KPP_PASS_CASE(4) KPP_PASS_CASE(5) KPP_PASS_CASE(6) KPP_PASS_CASE(7)
        KPP_PASS_CASE(8) KPP_PASS_CASE(9) KPP_PASS_CASE(10) KPP_PASS_CASE(11) KPP_PASS_CASE(12)
        KPP_PASS_CASE(13) KPP_PASS_CASE(14) KPP_PASS_CASE(15) KPP_PASS_CASE(16) KPP_PASS_CASE(17)
    }
}
static_assert(KPP_MAXT + 1 == 17, "kpp_pass_for lists every row count");

/* The kernels of one dtype. */
struct kpp_kernels {
    kpp_rows_fn rows;
    kpp_sums_fn sums;
    void (*tail)(kpp_args, int, const double *, int64_t, int, int);
    void (*inv)(const void *, int64_t, int64_t, int64_t, double *);
};

template <fkm_dtype DT> static kpp_kernels kpp_kernels_of(int nc)
{
    typedef typename fkm_elem<DT>::type T;
    kpp_kernels k;
    kpp_pass_for<T>(nc, &k.rows, &k.sums);
    k.tail = kpp_tail<T>;
    k.inv = kpp_inv_norms<T>;
    return k;
}

/* Launch geometry of the pass. */
struct kpp_grid {
    size_t rows_smem, sums_smem;
    unsigned rows_blocks; /* kpp_rows' grid: enough blocks to fill the GPU, they walk the list */
    int64_t group;        /* points per group */
};

/* Chunks per group: KPP_GROUP_CHUNKS, or fewer with FLASHKM_KPP_GROUP_CHUNKS=G (a test
 * switch: small problems then cross group boundaries too; the result may not change). */
static int64_t kpp_group_chunks(void)
{
    const char *e = getenv("FLASHKM_KPP_GROUP_CHUNKS");
    const long long g = e ? atoll(e) : 0;
    return g > 0 && g < KPP_GROUP_CHUNKS ? (int64_t)g : KPP_GROUP_CHUNKS;
}

/* The pass over every group: mark, rows, sums. With ev (profile, one group), events before,
 * between and after the three kernels. */
static cudaError_t kpp_pass(const kpp_args &a, const kpp_kernels &kk, const kpp_grid &g, cudaStream_t stream,
                            cudaEvent_t *ev = nullptr)
{
    for (int64_t gp0 = 0; gp0 < a.n; gp0 += g.group) {
        const int64_t gn = a.n - gp0 < g.group ? a.n - gp0 : g.group;
        const int64_t pts = (int64_t)KPP_MARK_THREADS * KPP_MARK_PPT;
        if (ev) cudaEventRecord(ev[0], stream);
        kpp_mark<<<(unsigned)fkm_ceil_div(gn, pts), KPP_MARK_THREADS, 0, stream>>>(a, gp0, gn, a.T + 1);
        if (ev) cudaEventRecord(ev[1], stream);
        const int64_t rb = fkm_ceil_div(gn, KPP_ROWS_THREADS);
        kk.rows<<<(unsigned)(rb < g.rows_blocks ? rb : g.rows_blocks), KPP_ROWS_THREADS, g.rows_smem, stream>>>(a, gp0);
        if (ev) cudaEventRecord(ev[2], stream);
        kk.sums<<<(unsigned)fkm_ceil_div(gn, KPP_CHUNK), KPP_CTHREADS + 32, g.sums_smem, stream>>>(a, gp0 / KPP_CHUNK);
        if (ev) cudaEventRecord(ev[3], stream);
    }
    return cudaGetLastError();
}
#define KPP_PROFILE_REPS 16

static size_t kpp_align(size_t b) { return (b + 255) / 256 * 256; }

/* Device time between two events recorded on the stream, in ms (0 on error). */
static double kpp_elapsed(cudaEvent_t a, cudaEvent_t b)
{
    float ms = 0.0f;
    return cudaEventElapsedTime(&ms, a, b) == cudaSuccess ? ms : 0.0;
}

fkm_status fkm_cuda_kmeanspp(fkm_ctx *ctx, const fkm_dev_problem *dp, int64_t problem, uint64_t seed, float *C,
                             cudaStream_t stream, fkm_cuda_kpp_profile *prof)
{
    const int64_t n = dp->n, d = dp->d, k = dp->k;
    const size_t es = fkm_dtype_size(dp->dtype);
    int T = 2 + (int)floor(log((double)k)); /* the CPU's trial count and cap */
    if (T > KPP_MAXT) T = KPP_MAXT;
    const int nc = T + 1;
    const int ncp = (nc + 3) / 4 * 4;
    kpp_args a;
    memset(&a, 0, sizeof a);
    a.X = (const unsigned char *)dp->X + (size_t)(problem * dp->batch_stride) * es;
    a.n = n, a.d = d, a.ld = dp->ld;
    a.dpad = (d + 7) / 8 * 8;
    const int64_t E = 16 / (int64_t)es;
    a.nfeat = (d + E - 1) / E * E;
    a.ctile = a.nfeat < KPP_DTILE ? a.nfeat : KPP_DTILE;
    a.nchunks = (n + KPP_CHUNK - 1) / KPP_CHUNK;
    a.w = dp->weights ? dp->weights + problem * n : NULL;
    a.T = T;
    a.prune = fkm_kpp_prune_make(d, fkm_kpp_prune_wanted());
    const bool prune = a.prune.factor > 0.0;
    const int cosine = dp->metric == FKM_METRIC_COSINE;
    const int64_t nu = 1 + (k - 1) * T;

    kpp_kernels kk = {};
    FKM_DISPATCH_DTYPE(dp->dtype, kk = kpp_kernels_of<DT>(nc));
    if (!kk.rows || !kk.sums) return fkm_fail(ctx, FKM_E_INTERNAL, "k-means++: no pass kernel for %d rows", nc);

    kpp_grid grid;
    grid.group = kpp_group_chunks() * KPP_CHUNK;
    if (grid.group > n) grid.group = n;
    grid.rows_smem = (size_t)(a.ctile * ncp) * sizeof(float); /* <= 20 KB: no opt-in needed */
    grid.sums_smem = (size_t)(2 * KPP_SUB * T) * sizeof(double); /* <= 128 KB */
    {
        int dev = 0, sms = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            sms = 1;
        grid.rows_blocks = (unsigned)(sms * KPP_ROWS_BLOCKS);
    }

    /* one device allocation for everything: D, 1/||x||, candidates, chunk sums and offsets,
     * checkpoints, uniforms, centroids, pruning's nearest centres, table and counters, and
     * one group's list, places and values */
    const size_t sz_D = kpp_align((size_t)n * sizeof(float)), sz_inv = cosine ? kpp_align((size_t)n * sizeof(double)) : 0;
    const size_t sz_cand = kpp_align((size_t)((KPP_MAXT + 1) * a.dpad) * sizeof(float));
    const size_t sz_pot = kpp_align((size_t)(a.nchunks * T) * sizeof(double)); /* T columns (1 for the first) */
    const size_t sz_cp = kpp_align((size_t)(a.nchunks * KPP_SEGS * T) * sizeof(double));
    const size_t sz_u = kpp_align((size_t)nu * sizeof(double)), sz_C = kpp_align((size_t)(k * d) * sizeof(float));
    const size_t sz_near = kpp_align((size_t)n * sizeof(int32_t)), sz_cc = kpp_align((size_t)(k * nc) * sizeof(float));
    const size_t sz_ccmin = kpp_align((size_t)k * sizeof(float)), sz_stats = kpp_align(2 * sizeof(unsigned long long));
    const size_t sz_nlist = kpp_align(sizeof(int)), sz_slot = kpp_align((size_t)grid.group * sizeof(int32_t));
    const size_t sz_vals = kpp_align((size_t)(grid.group * T) * sizeof(float));
    const size_t total = sz_D + sz_inv + sz_cand + 2 * sz_pot + sz_cp + sz_u + sz_C + sz_near + sz_cc + sz_ccmin +
                         sz_stats + sz_nlist + 2 * sz_slot + sz_vals;
    double *u = (double *)malloc((size_t)nu * sizeof(double));
    if (!u) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the k-means++ uniforms");
    /* the CPU's draws, in its order: one for the first centre, then T per step */
    fkm_rng rng = {seed};
    for (int64_t q = 0; q < nu; q++) u[q] = (double)(fkm_rng_next(&rng) >> 11) * 0x1p-53;

    fkm_status s = FKM_OK;
    unsigned char *ws = NULL;
    cudaEvent_t ev[8] = {};
    cudaEvent_t *evs = NULL; /* profile: before the table, before the pass, after the pass, per step */
    const double *u_dev;
    const unsigned nch = (unsigned)a.nchunks;
    unsigned long long stats[2] = {0, 0};
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws, total), s, out);
    {
        unsigned char *p = ws;
        a.D = (float *)p, p += sz_D;
        a.inv = cosine ? (const double *)p : NULL, p += sz_inv;
        a.cand = (float *)p, p += sz_cand;
        a.pot = (double *)p, p += sz_pot;
        a.off = (double *)p, p += sz_pot;
        a.cp = (double *)p, p += sz_cp;
        u_dev = (const double *)p, p += sz_u;
        a.C = (float *)p, p += sz_C;
        a.near = (int32_t *)p, p += sz_near;
        a.cc = (float *)p, p += sz_cc;
        a.ccmin = (float *)p, p += sz_ccmin;
        a.stats = (unsigned long long *)p, p += sz_stats;
        a.nlist = (int *)p, p += sz_nlist;
        a.slot = (int32_t *)p, p += sz_slot;
        a.list = (int32_t *)p, p += sz_slot;
        a.vals = (float *)p;
    }
    FKM_CUDA_TRY_GOTO(ctx, fkm_cuda_allow_smem((const void *)kk.sums, grid.sums_smem), s, out);
    FKM_CUDA_TRY_GOTO(ctx, cudaMemsetAsync(a.nlist, 0, sz_nlist, stream), s, out);
    FKM_CUDA_TRY_GOTO(ctx, cudaMemsetAsync(a.cand, 0, sz_cand, stream), s, out);
    FKM_CUDA_TRY_GOTO(ctx, cudaMemsetAsync(a.stats, 0, sz_stats, stream), s, out);
    /* the classification loads near with D (independent loads) before knowing D is finite */
    FKM_CUDA_TRY_GOTO(ctx, cudaMemsetAsync(a.near, 0, sz_near, stream), s, out);
    FKM_CUDA_TRY_GOTO(ctx, cudaMemcpyAsync((void *)u_dev, u, (size_t)nu * sizeof(double), cudaMemcpyHostToDevice, stream),
                      s, out);
    if (prof) {
        for (int e = 0; e < 8; e++) FKM_CUDA_TRY_GOTO(ctx, cudaEventCreate(&ev[e]), s, out);
        if (k > 1 && !(evs = (cudaEvent_t *)calloc((size_t)(3 * (k - 1)), sizeof *evs))) {
            s = fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the k-means++ profile");
            goto out;
        }
        for (int64_t e = 0; e < 3 * (k - 1); e++) FKM_CUDA_TRY_GOTO(ctx, cudaEventCreate(&evs[e]), s, out);
        FKM_CUDA_TRY_GOTO(ctx, cudaEventRecord(ev[0], stream), s, out);
    }
    if (cosine) {
        kk.inv<<<(unsigned)fkm_ceil_div(n, 256), 256, 0, stream>>>(a.X, n, d, a.ld, (double *)a.inv);
        FKM_CUDA_TRY_GOTO(ctx, cudaGetLastError(), s, out);
    }
    /* the first centre: drawn in the prefix sums of the weights */
    kpp_first_sums<<<nch, 256, 0, stream>>>(a);
    kk.tail<<<1, KPP_TAIL_THREADS, 0, stream>>>(a, 1, u_dev, -1, 1, 1);
    FKM_CUDA_TRY_GOTO(ctx, cudaGetLastError(), s, out);
    if (k > 1) {
        /* D = d(x, first centre) (every candidate slot holds it too; D = +inf: nothing is
         * pruned), then the first draw */
        a.newest = 0;
        FKM_CUDA_TRY_GOTO(ctx, kpp_pass(a, kk, grid, stream), s, out);
        kk.tail<<<1, KPP_TAIL_THREADS, 0, stream>>>(a, T, u_dev + 1, -1, T, 0);
        FKM_CUDA_TRY_GOTO(ctx, cudaGetLastError(), s, out);
    }
    for (int64_t c = 1; c < k; c++) {
        /* the pass of step c takes the newest centre C[c - 1] in slot 0; near is one of C[0..c-1] */
        if (prof) FKM_CUDA_TRY_GOTO(ctx, cudaEventRecord(evs[3 * (c - 1)], stream), s, out);
        if (prune)
            kpp_cc<<<(unsigned)fkm_ceil_div(c, KPP_CC_WARPS), KPP_CC_WARPS * 32, 0, stream>>>(a, nc, c);
        if (prof) FKM_CUDA_TRY_GOTO(ctx, cudaEventRecord(evs[3 * (c - 1) + 1], stream), s, out);
        a.newest = c - 1;
        FKM_CUDA_TRY_GOTO(ctx, kpp_pass(a, kk, grid, stream), s, out);
        if (prof) FKM_CUDA_TRY_GOTO(ctx, cudaEventRecord(evs[3 * (c - 1) + 2], stream), s, out);
        kk.tail<<<1, KPP_TAIL_THREADS, 0, stream>>>(a, T, u_dev + 1 + c * T, c, c + 1 < k ? T : 0, 0);
        FKM_CUDA_TRY_GOTO(ctx, cudaGetLastError(), s, out);
    }
    FKM_CUDA_TRY_GOTO(ctx, cudaMemcpyAsync(C, a.C, (size_t)(k * d) * sizeof(float), cudaMemcpyDeviceToHost, stream), s,
                      out);
    FKM_CUDA_TRY_GOTO(ctx, cudaMemcpyAsync(stats, a.stats, sizeof stats, cudaMemcpyDeviceToHost, stream), s, out);
    if (prof) FKM_CUDA_TRY_GOTO(ctx, cudaEventRecord(ev[1], stream), s, out);
    FKM_CUDA_TRY_GOTO(ctx, cudaStreamSynchronize(stream), s, out);
    if (k > 1) {
        ctx->kpp.points += k * n;
        ctx->kpp.pairs += k * n * nc;
        ctx->kpp.points_read += (int64_t)stats[0];
        ctx->kpp.pairs_needed += (int64_t)stats[1];
    }
    if (prof) {
        /* the tails again, each kind alone (the state they leave is not used) */
        FKM_CUDA_TRY_GOTO(ctx, cudaEventRecord(ev[3], stream), s, out);
        for (int64_t c = 1; c < k; c++) kk.tail<<<1, KPP_TAIL_THREADS, 0, stream>>>(a, T, u_dev, -1, 0, 0);
        FKM_CUDA_TRY_GOTO(ctx, cudaEventRecord(ev[4], stream), s, out);
        for (int64_t c = 1; c < k; c++) kk.tail<<<1, KPP_TAIL_THREADS, 0, stream>>>(a, T, u_dev + 1, -1, T, 0);
        FKM_CUDA_TRY_GOTO(ctx, cudaEventRecord(ev[5], stream), s, out);
        FKM_CUDA_TRY_GOTO(ctx, cudaGetLastError(), s, out);
        FKM_CUDA_TRY_GOTO(ctx, cudaStreamSynchronize(stream), s, out);
        /* the pass's kernels alone: the last step's pass again (it may move D to the last
         * centre; the state is not used any more) */
        prof->mark_ms = prof->rows_ms = prof->sums_ms = 0.0;
        if (grid.group == n) {
            cudaEvent_t pe[4 * KPP_PROFILE_REPS] = {};
            cudaError_t e = cudaSuccess;
            for (int q = 0; q < 4 * KPP_PROFILE_REPS && e == cudaSuccess; q++) e = cudaEventCreate(&pe[q]);
            for (int r = 0; r < KPP_PROFILE_REPS && e == cudaSuccess; r++) e = kpp_pass(a, kk, grid, stream, pe + 4 * r);
            if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
            for (int r = 0; r < KPP_PROFILE_REPS && e == cudaSuccess; r++) {
                prof->mark_ms += kpp_elapsed(pe[4 * r], pe[4 * r + 1]) / KPP_PROFILE_REPS;
                prof->rows_ms += kpp_elapsed(pe[4 * r + 1], pe[4 * r + 2]) / KPP_PROFILE_REPS;
                prof->sums_ms += kpp_elapsed(pe[4 * r + 2], pe[4 * r + 3]) / KPP_PROFILE_REPS;
            }
            for (int q = 0; q < 4 * KPP_PROFILE_REPS; q++)
                if (pe[q]) cudaEventDestroy(pe[q]);
            FKM_CUDA_TRY_GOTO(ctx, e, s, out);
        }
        prof->total_ms = kpp_elapsed(ev[0], ev[1]);
        prof->pass_ms = prof->table_ms = 0.0;
        for (int64_t c = 1; c < k; c++) {
            prof->table_ms += kpp_elapsed(evs[3 * (c - 1)], evs[3 * (c - 1) + 1]);
            prof->pass_ms += kpp_elapsed(evs[3 * (c - 1) + 1], evs[3 * (c - 1) + 2]);
        }
        prof->select_ms = kpp_elapsed(ev[3], ev[4]);
        prof->tail_ms = kpp_elapsed(ev[4], ev[5]);
        prof->steps = k - 1, prof->trials = T, prof->chunks = a.nchunks;
        prof->points = k > 1 ? k * n : 0, prof->pairs = k > 1 ? k * n * nc : 0;
        prof->points_read = (int64_t)stats[0], prof->pairs_needed = (int64_t)stats[1];
        prof->pruning = prune;
    }
out:
    if (s != FKM_OK && stream) cudaStreamSynchronize(stream); /* nothing may still use ws */
    for (int e = 0; e < 8; e++)
        if (ev[e]) cudaEventDestroy(ev[e]);
    if (evs)
        for (int64_t e = 0; e < 3 * (k - 1); e++)
            if (evs[e]) cudaEventDestroy(evs[e]);
    free(evs);
    cudaFree(ws);
    free(u);
    return s;
}
