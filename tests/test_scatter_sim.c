/* test_scatter_sim.c — a host emulation of the counting-sort scatter of src/cuda/update.cu:
 * the direct kernel as it was before staging ("old", reading the cluster-major scanned count
 * matrix of that time) and the current kernel (direct and staged, whole tiles and sub-tiles),
 * warp by warp and lane by lane (__match_any_sync, the warp scan, the packed shared-memory
 * words, uint32 cursor arithmetic), against a plain stable counting sort. The current kernel
 * reads its cursors from the tile-major counts as update.cu builds them: hist_tiles_kernel's
 * cnt[(b*tiles + t)*k + c], colscan_kernel's per-column prefix over the tiles (split into
 * COL_WARPS chunks, the earlier chunks' sums added) and cluster totals, the exclusive scan of
 * the totals (mat); each cursor mat[b*k + c] + cnt[(b*tiles + t)*k + c] must equal the old
 * cluster-major scan's entry, for the kernel's COL_WARPS and other chunkings. A stable sort has one result, so all must agree bit for bit, including the points with
 * out-of-range labels (dropped) and the untouched tail; also in the layout of
 * fkm_cuda_update_parts (problems that are row parts of larger ones, the last part shorter:
 * part_rows and row_base of update.cu). This checks the placement algorithm;
 * tests/cuda/test_update.cu checks the kernel itself on a GPU.
 *
 * Warps run one after the other here: within a phase they touch disjoint shared rows and
 * disjoint output slots, so their interleaving on a GPU cannot change the result (that the
 * kernel's barriers make it so is what compute-sanitizer racecheck checks). */
#include "splitmix.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SORT_MAX_TILE 32768
#define SORT_SMEM_WORDS 8192
#define COL_WARPS 16 /* colscan_kernel of update.cu */
#define SENTINEL 0xdeadbeefu

static int failures = 0;

/* sort_shape of update.cu */
static void sort_shape(int64_t k, int64_t *tile, int *warps)
{
    int64_t t = 2048;
    while (t < 8 * k && t < SORT_MAX_TILE) t *= 2;
    int w = 8;
    while (w > 1 && (int64_t)w * k > SORT_SMEM_WORDS) w /= 2;
    *tile = t;
    *warps = w;
}

static int32_t sort_label(const int32_t *lab, int64_t i, int64_t end, int64_t k)
{
    if (i >= end) return -1;
    const int32_t L = lab[i];
    return (L >= 0 && L < k) ? L : -1;
}

static int popc(uint32_t x) { return __builtin_popcount(x); }
static int ffs1(uint32_t x) { return __builtin_ffs((int)x); }

/* the 32 lanes' labels of one round -> each lane's __match_any_sync mask */
static void match_any(const int32_t L[32], uint32_t peers[32])
{
    uint32_t done = 0;
    for (int l = 0; l < 32; l++) {
        if (done >> l & 1u) continue;
        uint32_t m = 1u << l;
        for (int j = l + 1; j < 32; j++)
            if (L[j] == L[l]) m |= 1u << j;
        for (int j = l; j < 32; j++)
            if (m >> j & 1u) peers[j] = m;
        done |= m;
    }
}

typedef struct problem {
    int64_t batch, n, k, tile, tiles;
    const int32_t *labels;
    unsigned long long *mat; /* the old layout after the scan: cluster-major, batch*k*tiles + 1 entries */
    int64_t parts, src_n;    /* fkm_cuda_update_parts: parts = 1, src_n = n is the plain batch */
    uint32_t *cnt;           /* the new layout: tile-major, batch*tiles*k (after the column pass) */
    unsigned long long *base; /* per cluster its first sorted slot, then the total: batch*k + 1 */
} problem;

/* row_base and part_rows of update.cu: problem b = part j of source problem s has its labels
 * at s*src_n + j*n and n rows, fewer for the last part */
static const int32_t *lab_of(const problem *p, int64_t b)
{
    const int64_t s = b / p->parts;
    return p->labels + s * p->src_n + (b - s * p->parts) * p->n;
}

static int64_t rows_of(const problem *p, int64_t b)
{
    const int64_t r = p->src_n - (b % p->parts) * p->n;
    return r < p->n ? r : p->n;
}

/* histogram per (problem, tile) and the exclusive scan, cluster-major then tile-major */
static void build_mat(problem *p)
{
    const int64_t nvb = p->batch * p->tiles, mat_n = nvb * p->k + 1;
    p->mat = (unsigned long long *)calloc((size_t)mat_n, sizeof *p->mat);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0; i < rows_of(p, b); i++) {
            const int32_t L = sort_label(lab_of(p, b), i, rows_of(p, b), p->k);
            if (L >= 0) p->mat[(b * p->k + L) * p->tiles + i / p->tile]++;
        }
    unsigned long long run = 0;
    for (int64_t e = 0; e < mat_n; e++) {
        const unsigned long long c = p->mat[e];
        p->mat[e] = run;
        run += c;
    }
}

/* update.cu's counting path: hist_tiles_kernel (per virtual block (b, t), the tile's counts
 * written as one contiguous row), colscan_kernel with `cw` warps per block (warp w walks the
 * tiles [w*per, (w+1)*per), per = ceil(tiles/cw); a lane is a cluster), then the exclusive scan
 * of the batch*k + 1 totals (the last entry set to 0 by block 0: the total). uint32 as on the
 * GPU. */
static void build_tile_major(problem *p, int cw)
{
    const int64_t k = p->k, tiles = p->tiles, nvb = p->batch * tiles;
    free(p->cnt);
    free(p->base);
    p->cnt = (uint32_t *)malloc((size_t)(nvb * k) * sizeof *p->cnt);
    p->base = (unsigned long long *)malloc((size_t)(p->batch * k + 1) * sizeof *p->base);
    for (int64_t e = 0; e < nvb * k; e++) p->cnt[e] = SENTINEL; /* every entry must be written */
    for (int64_t e = 0; e <= p->batch * k; e++) p->base[e] = 0xfeedfacecafef00dull;
    uint32_t *sh = (uint32_t *)malloc((size_t)k * sizeof *sh);
    for (int64_t vb = 0; vb < nvb; vb++) {
        const int64_t b = vb / tiles, t = vb % tiles;
        memset(sh, 0, (size_t)k * sizeof *sh);
        const int64_t rows = rows_of(p, b), lo = t * p->tile, hi = lo + p->tile < rows ? lo + p->tile : rows;
        for (int64_t i = lo; i < hi; i++) {
            const int32_t L = sort_label(lab_of(p, b), i, hi, k);
            if (L >= 0) sh[L]++;
        }
        for (int64_t c = 0; c < k; c++) p->cnt[vb * k + c] = sh[c];
    }
    free(sh);
    /* colscan_kernel */
    p->base[p->batch * k] = 0;
    const int64_t groups = (k + 31) / 32, per = (tiles + cw - 1) / cw;
    uint32_t *s_sum = (uint32_t *)malloc((size_t)cw * 32 * sizeof *s_sum);
    for (int64_t vb = 0; vb < p->batch * groups; vb++) {
        const int64_t b = vb / groups;
        for (int warp = 0; warp < cw; warp++) {
            const int64_t t0 = warp * per < tiles ? warp * per : tiles, t1 = t0 + per < tiles ? t0 + per : tiles;
            for (int lane = 0; lane < 32; lane++) {
                const int64_t c = (vb - b * groups) * 32 + lane;
                uint32_t sum = 0;
                if (c < k)
                    for (int64_t t = t0; t < t1; t++) sum += p->cnt[(b * tiles + t) * k + c];
                s_sum[warp * 32 + lane] = sum;
            }
        }
        for (int warp = 0; warp < cw; warp++) {
            const int64_t t0 = warp * per < tiles ? warp * per : tiles, t1 = t0 + per < tiles ? t0 + per : tiles;
            for (int lane = 0; lane < 32; lane++) {
                const int64_t c = (vb - b * groups) * 32 + lane;
                if (c >= k) continue;
                uint32_t run = 0;
                for (int w = 0; w < warp; w++) run += s_sum[w * 32 + lane];
                if (warp == cw - 1) p->base[b * k + c] = run + s_sum[warp * 32 + lane];
                for (int64_t t = t0; t < t1; t++) {
                    uint32_t *e = &p->cnt[(b * tiles + t) * k + c];
                    const uint32_t v = *e;
                    *e = run;
                    run += v;
                }
            }
        }
    }
    free(s_sum);
    /* the exclusive scan of the totals (CUB on the GPU) */
    unsigned long long run = 0;
    for (int64_t g = 0; g <= p->batch * k; g++) {
        const unsigned long long v = p->base[g];
        p->base[g] = run;
        run += v;
    }
}

/* every cursor of the new layout against the old scan's entry */
static void check_cursors(const problem *p, int cw)
{
    const int64_t k = p->k, tiles = p->tiles, clusters = p->batch * k;
    int64_t bad = 0;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t t = 0; t < tiles; t++)
            for (int64_t c = 0; c < k; c++)
                if (p->base[b * k + c] + p->cnt[(b * tiles + t) * k + c] != p->mat[(b * k + c) * tiles + t]) bad++;
    for (int64_t g = 0; g <= clusters; g++)
        if (p->base[g] != p->mat[g * tiles]) bad++; /* g = clusters: the total */
    if (bad) {
        if (failures < 20)
            fprintf(stderr, "tile-major cursors: %lld differ from the cluster-major scan (batch %lld n %lld k %lld "
                    "tiles %lld, %d column warps)\n", (long long)bad, (long long)p->batch, (long long)p->n,
                    (long long)k, (long long)tiles, cw);
        failures++;
    }
}

static void put(const problem *p, uint32_t *order, uint32_t *sorted_g, unsigned long long slot, uint32_t id,
                uint32_t g)
{
    if (slot >= p->base[p->batch * p->k]) {
        if (failures++ < 20) fprintf(stderr, "slot %llu out of range\n", slot);
        return;
    }
    order[slot] = id;
    sorted_g[slot] = g;
}

/* the reference: per problem, per label, the points in index order (a plain counting sort:
 * slot of point i = points of smaller clusters + earlier points of its cluster) */
static void reference_sort(const problem *p, uint32_t *order, uint32_t *sorted_g)
{
    const int64_t clusters = p->batch * p->k;
    unsigned long long *next = (unsigned long long *)calloc((size_t)clusters + 1, sizeof *next);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0; i < rows_of(p, b); i++) {
            const int32_t L = sort_label(lab_of(p, b), i, rows_of(p, b), p->k);
            if (L >= 0) next[b * p->k + L + 1]++;
        }
    for (int64_t g = 0; g < clusters; g++) next[g + 1] += next[g];
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t i = 0; i < rows_of(p, b); i++) {
            const int32_t L = sort_label(lab_of(p, b), i, rows_of(p, b), p->k);
            if (L >= 0) put(p, order, sorted_g, next[b * p->k + L]++, (uint32_t)i, (uint32_t)(b * p->k + L));
        }
    free(next);
}

/* One counting round of a warp over rows i0 .. i0 + 31 (none at or past hi): each label's lanes
 * counted once, by its lowest lane, into cnt[label], as the kernels' histogram and pass 1 do. */
static void warp_count(const int32_t *lab, int64_t i0, int64_t hi, int64_t k, uint32_t *cnt)
{
    int32_t L[32];
    uint32_t peers[32];
    for (int l = 0; l < 32; l++) L[l] = sort_label(lab, i0 + l, hi, k);
    match_any(L, peers);
    for (int l = 0; l < 32; l++)
        if (L[l] >= 0 && l == ffs1(peers[l]) - 1) cnt[L[l]] += (uint32_t)popc(peers[l]);
}

/* One placing round of a warp over rows i0 .. i0 + 31 (none at or past hi): each lane's label
 * L (-1 where it places nothing), its slot pos = the label's cursor my[L] plus its rank among
 * the lanes holding that label (match_any, popc below it), then the cursors moved past the
 * round by each label's lowest lane, as the kernels do. */
static void warp_round(const int32_t *lab, int64_t i0, int64_t hi, int64_t k, uint32_t *my, int32_t L[32],
                       uint32_t pos[32])
{
    uint32_t peers[32];
    for (int l = 0; l < 32; l++) L[l] = sort_label(lab, i0 + l, hi, k);
    match_any(L, peers);
    for (int l = 0; l < 32; l++) pos[l] = L[l] >= 0 ? my[L[l]] + (uint32_t)popc(peers[l] & ((1u << l) - 1u)) : 0;
    for (int l = 0; l < 32; l++)
        if (L[l] >= 0 && l == ffs1(peers[l]) - 1) my[L[l]] = pos[l] + (uint32_t)popc(peers[l]);
}

/* the kernel before staging (main at 40ceac0, with the parts rows of update-batched-pieces) */
static void old_scatter(const problem *p, int warps, uint32_t *order, uint32_t *sorted_g)
{
    const int64_t k = p->k, R = p->tile / warps;
    uint32_t *cur = (uint32_t *)calloc((size_t)(warps * k), sizeof *cur);
    for (int64_t vb = 0; vb < p->batch * p->tiles; vb++) {
        const int64_t b = vb / p->tiles, t = vb % p->tiles;
        const int64_t rows = rows_of(p, b); /* tiles past them place nothing */
        const int64_t tlo = t * p->tile, thi = tlo + p->tile < rows ? tlo + p->tile : rows;
        const int32_t *lab = lab_of(p, b);
        memset(cur, 0, (size_t)(warps * k) * sizeof *cur);
        for (int warp = 0; warp < warps; warp++) {
            const int64_t lo = tlo + warp * R < thi ? tlo + warp * R : thi, hi = lo + R < thi ? lo + R : thi;
            for (int64_t i0 = lo; i0 < hi; i0 += 32) warp_count(lab, i0, hi, k, cur + warp * k);
        }
        const unsigned long long pbase = p->mat[b * k * p->tiles];
        for (int64_t c = 0; c < k; c++) {
            uint32_t running = (uint32_t)(p->mat[(b * k + c) * p->tiles + t] - pbase);
            for (int w = 0; w < warps; w++) {
                const uint32_t cnt = cur[w * k + c];
                cur[w * k + c] = running;
                running += cnt;
            }
        }
        const uint32_t gbase = (uint32_t)(b * k);
        for (int warp = 0; warp < warps; warp++) {
            uint32_t *my = cur + warp * k;
            const int64_t lo = tlo + warp * R < thi ? tlo + warp * R : thi, hi = lo + R < thi ? lo + R : thi;
            for (int64_t i0 = lo; i0 < hi; i0 += 32) {
                int32_t L[32];
                uint32_t pos[32];
                warp_round(lab, i0, hi, k, my, L, pos);
                for (int l = 0; l < 32; l++)
                    if (L[l] >= 0) put(p, order, sorted_g, pbase + pos[l], (uint32_t)(i0 + l), gbase + (uint32_t)L[l]);
            }
        }
    }
    free(cur);
}

/* the current kernel: staged in sub-tiles of `sub` points, or direct (sub = tile) */
static void new_scatter(const problem *p, int warps, int64_t sub, int staged, uint32_t *order, uint32_t *sorted_g)
{
    const int K = (int)p->k;
    const int64_t k = p->k, R = sub / warps;
    uint32_t *cur = (uint32_t *)calloc((size_t)(warps * K), sizeof *cur);
    uint32_t *gd = (uint32_t *)calloc((size_t)K, sizeof *gd);
    uint32_t *stage = (uint32_t *)malloc((size_t)sub * sizeof *stage);
    uint32_t wtot[8];
    const int S = ((K + warps - 1) / warps + 31) & ~31;
    for (int64_t vb = 0; vb < p->batch * p->tiles; vb++) {
        const int64_t b = vb / p->tiles, t = vb % p->tiles;
        const int64_t rows = rows_of(p, b); /* tiles past them place nothing */
        const int64_t tlo = t * p->tile, thi = tlo + p->tile < rows ? tlo + p->tile : rows;
        const int32_t *lab = lab_of(p, b);
        const unsigned long long pbase = p->base[b * k];
        const unsigned long long *cbase = p->base + b * k;
        const uint32_t *toff = p->cnt + vb * k;
        for (int c = 0; c < K; c++) gd[c] = staged ? (uint32_t)(cbase[c] - pbase) + toff[c] : SENTINEL;
        const uint32_t gbase = (uint32_t)(b * k);
        for (int64_t slo = tlo; slo < thi; slo += sub) {
            const int64_t shi = slo + sub < thi ? slo + sub : thi;
            for (int e = 0; e < warps * K; e++)
                if (cur[e] != 0) {
                    if (failures++ < 20) fprintf(stderr, "rows not zero at a sub-tile's start\n");
                    break;
                }
            /* pass 1 */
            for (int warp = 0; warp < warps; warp++) {
                const int64_t lo = slo + warp * R < shi ? slo + warp * R : shi, hi = lo + R < shi ? lo + R : shi;
                for (int64_t i0 = lo; i0 < hi; i0 += 32) warp_count(lab, i0, hi, k, cur + warp * K);
            }
            /* the per-warp segment scans, lane by lane */
            for (int warp = 0; warp < warps; warp++) {
                const int s0 = warp * S < K ? warp * S : K, s1 = s0 + S < K ? s0 + S : K;
                uint32_t carry = 0;
                for (int c0 = s0; c0 < s1; c0 += 32) {
                    uint32_t cnt[32], x[32], y[32];
                    for (int l = 0; l < 32; l++) {
                        const int c = c0 + l;
                        cnt[l] = 0;
                        if (c < s1)
                            for (int w = 0; w < warps; w++) cnt[l] += cur[w * K + c];
                        x[l] = cnt[l];
                    }
                    for (int o = 1; o < 32; o <<= 1) { /* __shfl_up_sync: all lanes read, then add */
                        for (int l = 0; l < 32; l++) y[l] = l >= o ? x[l - o] : x[l];
                        for (int l = 0; l < 32; l++)
                            if (l >= o) x[l] += y[l];
                    }
                    for (int l = 0; l < 32; l++) {
                        const int c = c0 + l;
                        if (c < s1) {
                            uint32_t run = carry + x[l] - cnt[l];
                            for (int w = 0; w < warps; w++) {
                                const uint32_t v = cur[w * K + c];
                                cur[w * K + c] = run;
                                run += v;
                            }
                        }
                    }
                    carry += x[31];
                }
                wtot[warp] = carry;
            }
            for (int c = 0; c < K; c++) {
                uint32_t add = 0;
                for (int w = 0; w < c / S; w++) add += wtot[w];
                const uint32_t gcur = staged ? gd[c] : (uint32_t)(cbase[c] - pbase) + toff[c];
                const uint32_t g = gcur - (cur[c] + add);
                const uint32_t shift = staged ? add : add + g;
                for (int w = 0; w < warps; w++) cur[w * K + c] += shift;
                if (staged) gd[c] = g;
            }
            /* pass 2 */
            uint32_t m = 0;
            for (int w = 0; w < warps; w++) m += wtot[w];
            for (int64_t e = 0; e < sub; e++) stage[e] = SENTINEL;
            for (int warp = 0; warp < warps; warp++) {
                uint32_t *my = cur + warp * K;
                const int64_t lo = slo + warp * R < shi ? slo + warp * R : shi, hi = lo + R < shi ? lo + R : shi;
                for (int64_t i0 = lo; i0 < hi; i0 += 32) {
                    int32_t L[32];
                    uint32_t pos[32];
                    warp_round(lab, i0, hi, k, my, L, pos);
                    for (int l = 0; l < 32; l++) {
                        if (L[l] < 0) continue;
                        if (staged) {
                            if (pos[l] >= m || stage[pos[l]] != SENTINEL) {
                                if (failures++ < 20) fprintf(stderr, "staged slot %u bad (m %u)\n", pos[l], m);
                                continue;
                            }
                            stage[pos[l]] = ((uint32_t)L[l] << 16) | (uint32_t)(i0 + l - slo);
                        } else {
                            put(p, order, sorted_g, pbase + pos[l], (uint32_t)(i0 + l), gbase + (uint32_t)L[l]);
                        }
                    }
                }
            }
            if (staged)
                for (uint32_t j = 0; j < m; j++) {
                    const uint32_t v = stage[j], L = v >> 16;
                    if (v == SENTINEL || L >= (uint32_t)K) {
                        if (failures++ < 20) fprintf(stderr, "staged slot %u unset\n", j);
                        continue;
                    }
                    put(p, order, sorted_g, pbase + (uint32_t)(gd[L] + j), (uint32_t)slo + (v & 0xffffu), gbase + L);
                }
            for (int c = 0; c < K; c++) {
                if (staged) gd[c] += cur[(warps - 1) * K + c];
                for (int w = 0; w < warps; w++) cur[w * K + c] = 0;
            }
        }
    }
    free(cur);
    free(gd);
    free(stage);
}

static void check_same(const char *what, const problem *p, int warps, int64_t sub, const uint32_t *o, const uint32_t *g,
                       const uint32_t *ro, const uint32_t *rg)
{
    const size_t N = (size_t)(p->batch * p->n);
    if (memcmp(o, ro, N * 4) != 0 || memcmp(g, rg, N * 4) != 0) {
        if (failures < 20)
            fprintf(stderr, "%s differs from the reference: batch %lld n %lld (parts %lld of %lld) k %lld tile %lld "
                    "warps %d sub %lld\n", what, (long long)p->batch, (long long)p->n, (long long)p->parts,
                    (long long)p->src_n, (long long)p->k, (long long)p->tile, warps, (long long)sub);
        failures++;
    }
}

/* mode 0: uniform labels; 1: 70% label 0; 2: uniform with ~6% out of range (both sides).
 * m > 0: the batch's problems of n rows cut into parts of m rows (fkm_cuda_update_parts: the
 * sort then runs over batch * ceil(n/m) problems of m rows, the last part of each shorter
 * unless m divides n). */
static void run(int64_t batch, int64_t n, int64_t k, int mode, uint64_t seed, int *runs, int64_t m)
{
    int64_t tile;
    int warps;
    sort_shape(k, &tile, &warps);
    int32_t *labels = (int32_t *)malloc((size_t)(batch * n) * sizeof *labels);
    for (int64_t i = 0; i < batch * n; i++) {
        const uint64_t r = rng_next(&seed);
        int32_t L = (int32_t)(r % (uint64_t)k);
        if (mode == 1 && (r >> 40) % 10 < 7) L = 0;
        if (mode == 2 && (r >> 40) % 100 < 6) {
            const int32_t bad[5] = {-1, (int32_t)k, (int32_t)k + 7, INT32_MIN, INT32_MAX};
            L = bad[(r >> 20) % 5];
        }
        labels[i] = L;
    }
    const int64_t parts = m > 0 ? (n + m - 1) / m : 1, cn = m > 0 ? m : n; /* call problems' rows */
    problem p = {batch * parts, cn, k, tile, (cn + tile - 1) / tile, labels, NULL, parts, n, NULL, NULL};
    build_mat(&p);
    /* the tile-major layout under other chunkings of the tiles (any must give the same
     * cursors), the kernel's COL_WARPS last: the scatters below read that one */
    const int cws[3] = {1, 3, COL_WARPS};
    for (int ci = 0; ci < 3; ci++) {
        build_tile_major(&p, cws[ci]);
        check_cursors(&p, cws[ci]);
    }
    const size_t N = (size_t)(p.batch * p.n); /* the sort's output arrays (unused tail: SENTINEL) */
    uint32_t *ro = (uint32_t *)malloc(N * 4), *rg = (uint32_t *)malloc(N * 4);
    uint32_t *o = (uint32_t *)malloc(N * 4), *g = (uint32_t *)malloc(N * 4);
    for (size_t e = 0; e < N; e++) ro[e] = rg[e] = SENTINEL;
    reference_sort(&p, ro, rg);

    for (size_t e = 0; e < N; e++) o[e] = g[e] = SENTINEL;
    old_scatter(&p, warps, o, g);
    check_same("old kernel", &p, warps, tile, o, g, ro, rg);
    (*runs)++;
    /* the kernel's own shape, then other warp counts (any shape must give the same order) */
    const int wlist[3] = {warps, warps > 1 ? warps / 2 : 2, 8};
    for (int wi = 0; wi < 3; wi++) {
        const int w = wlist[wi];
        const int64_t subs[3] = {tile, tile / 4, tile / 16 >= 256 ? tile / 16 : 256};
        for (int si = 0; si < 3; si++)
            for (int staged = 0; staged < 2; staged++) {
                if ((wi > 0 && si == 1) || (!staged && si > 0)) continue; /* direct: whole tiles */
                for (size_t e = 0; e < N; e++) o[e] = g[e] = SENTINEL;
                new_scatter(&p, w, subs[si], staged, o, g);
                check_same(staged ? "staged kernel" : "direct kernel", &p, w, subs[si], o, g, ro, rg);
                (*runs)++;
            }
    }
    free(labels);
    free(p.mat);
    free(p.cnt);
    free(p.base);
    free(ro);
    free(rg);
    free(o);
    free(g);
}

int main(void)
{
    const int64_t ks[] = {1, 2, 5, 31, 32, 33, 100, 256, 257, 700, 1000, 1024, 1500, 2048, 3000, 4096};
    uint64_t seed = 12345;
    int runs = 0;
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        const int64_t k = ks[ki];
        int64_t tile;
        int warps;
        sort_shape(k, &tile, &warps);
        const int64_t ns[5] = {1, 37, tile - 1, tile + 333, 2 * tile + 4097};
        for (int ni = 0; ni < 5; ni++)
            for (int mode = 0; mode < 3; mode++)
                run(1 + (ni + mode) % 3, ns[ni], k, mode, rng_next(&seed), &runs, 0);
        /* parts: a third of n (longer than a tile, the last one shorter), tiny ones (37 rows,
         * the last 5), and longer than two tiles with a last part of 50 rows that leaves the
         * later tiles of its problem empty */
        const int64_t big = 2 * tile + 100;
        const int64_t pn[3] = {2 * tile + 4097, 116, 2 * big + 50}, pm[3] = {(pn[0] + 2) / 3, 37, big};
        for (int mi = 0; mi < 3; mi++)
            run(1 + mi % 2, pn[mi], k, mi == 1 ? 2 : (int)(ki % 3), rng_next(&seed), &runs, pm[mi]);
    }
    if (failures) {
        printf("test_scatter_sim: %d failure(s) in %d runs\n", failures, runs);
        return 1;
    }
    printf("test_scatter_sim: %d runs, old, direct and staged placements all equal the stable sort (plain and parts); "
           "tile-major cursors equal the cluster-major scan\n", runs);
    return 0;
}
