/* update.cu — the sort-inverse centroid update on the GPU (see update.cuh for the contract).
 *
 * Pipeline, all in the caller's stream (five stages, timed separately on request):
 *
 *  1. histogram  counts of each label per tile of consecutive points, tile-major per problem:
 *                cnt[(b*tiles + t)*k + c] (uint32), a tile's k counts one contiguous run
 *  2. scan       two integer passes: per column (problem b, cluster c) the exclusive prefix
 *                over the tiles in place (cnt becomes tile t's offset within cluster c) and the
 *                column's total; then the exclusive sum of the batch*k totals (CUB) into mat, each
 *                cluster's first sorted slot. The first sorted slot of cluster c's points of
 *                tile t is mat[b*k + c] + cnt[(b*tiles + t)*k + c]: the very numbers one
 *                cluster-major scan of a (cluster, tile) matrix gives (until 2026-11 the layout
 *                here, written and read with a stride of `tiles` entries: uncoalesced), read
 *                with consecutive threads on consecutive entries. Then the list of clusters
 *                the combine must visit
 *  3. scatter    stable counting-sort scatter of point ids (and their clusters) into label order
 *                (a tile sorted in shared memory first, then written out in runs, where it fits)
 *  4. reduce     one warp per work unit = `unit` consecutive sorted points of one problem
 *                (whatever clusters they belong to; each problem's sorted range starts a new
 *                unit): per run of equal clusters (a "segment") the weighted column sums,
 *                weight and objective, in double. A cluster that lies inside one unit is
 *                written to the outputs directly; one that spans several units leaves one
 *                partial per unit
 *  5. combine    per cluster spanning several units (and per empty cluster), its partials in
 *                unit order; per problem, the objective of its units in unit order
 *
 * Determinism. Every floating-point sum has an order fixed by compile-time constants
 * (COMB_WARPS, COMB_BATCH, OBJ_THREADS), by the shape of the data (d and the dtype fix the
 * reduce's unit, unit_rows, and how a row is spread over lanes, see below) and by the
 * labels, never by the grid size, the pointer alignment or the GPU: the kernels loop over
 * virtual work items (grid-stride), and an item's work and order do not depend on which
 * physical warp or block runs it. There are no
 * floating-point atomics; integer atomics are used only for counts (exact whatever their
 * order) and to build the combine's list of clusters (the list's order only says which block
 * visits which cluster, not how anything is summed). The sort is stable, and a stable sort has
 * exactly one result, so its internal tiling cannot change anything either. (Bitwise equality
 * holds for one binary on one architecture: nvcc may fuse multiply-adds differently in the
 * sm_80 and sm_90a code.) A workspace serves one stream at a time.
 *
 * Problems are independent. Units are aligned per problem (problem p owns units
 * p*ceil(n/unit) .., counted from its first sorted point), and every order above counts units
 * from the problem's first, so a problem's sums, weights, objective and point objectives are
 * the same bits whatever other problems share the call: one call over B problems equals B
 * single-problem calls. fkm_cuda_update_parts takes the problems as parts (row ranges, the
 * last one possibly shorter) of larger ones; a part shorter than n just has fewer sorted
 * points (its unused units do nothing). backend.cu relies on this to run all resident pieces
 * of X in one call and fold them with fkm_cuda_update_fold, bit for bit what the
 * piece-by-piece accumulate path (streamed X) gives.
 *
 * Two sort paths, same result (the unique stable order):
 *  - k <= SORT_MAX_K: a counting sort with per-tile counts (one block per tile of `tile`
 *    consecutive points, the tile split into one contiguous range per warp); the block places
 *    its points in shared memory in their sorted order within the tile and then copies each
 *    label's run to its global slots (coalesced), where the tile fits (scatter_stage).
 *  - larger k: per-tile count matrices would be too big (k x tiles) or tiles too long, so the
 *    ids are sorted with cub::DeviceRadixSort::SortPairs on the global cluster b*k + label
 *    (stable LSD radix sort restricted to ceil(log2(batch*k + 1)) bits), the whole batch in
 *    one sort (stable, so each problem's points keep their order; rows past a short part sort
 *    last); the histogram is then a plain per-cluster count straight into mat (no tiles, no
 *    column pass) that only gives the offsets.
 *  After the scan both paths hold the same mat: batch*k + 1 entries (64-bit: a batch may hold
 *  more than 2^32 points), cluster g's first sorted slot at g, the total last; the list, the
 *  reduce and the combine read only that.
 *  Both write the point ids in sorted order (`order`) and, next to them, each sorted point's
 *  global cluster (`sorted_g`, 4 bytes): the reduce finds its segments from the latter.
 *
 * The reduce's row layout. A row is cut into vectors of VEC = 16 / sizeof(element) columns;
 * LPR = the smallest power of two >= ceil(d / VEC), at most 32, lanes share a row (lane l owns
 * the VEC consecutive columns (ct*LPR + l%LPR)*VEC .. of column tile ct), and the warp's
 * R = 32 / LPR lane groups take R rows at a time: group h takes rows h, h + R, h + 2R, ... of a
 * segment. Rows are read with one 16-byte load per lane when X, ld and batch_stride allow it,
 * element by element otherwise (the same columns in the same lanes: the same sums). For f16
 * and bf16 the element is widened to double with integer operations and one multiply by a
 * power of two (exact, including subnormals; infinities and NaNs take the ordinary
 * conversion), which keeps the 64-bit conversion unit (a quarter of the FP64 rate) out of the
 * inner loop. The fit's case (L2 or DOT, no per-point objectives, no cosine, aligned rows of
 * whole vectors) runs a lean instantiation of the same source (RED_L2 / RED_DOT, see
 * reduce_variant): flags fixed, a main loop of steps whose every group has a row (no
 * predicates), then the checked loop; the same operations in the same order, the same bits.
 *
 * Sums, per segment and column: each lane group adds w * x of its rows in row order (FMA:
 * w * x is rounded once together with the addition), then the R group sums are added by a
 * butterfly over the groups (xor LPR, 2 LPR, ..., 16). Per point and lane: the lane's VEC
 * terms in column order (its share s). Objective of a segment: each lane adds w * s over its
 * rows in order, column tiles in order, then all 32 lanes by a butterfly (xor 1, 2, ..., 16):
 * no shuffle per row (the per-row butterfly was a third of the reduce's issue slots and the
 * longest dependency chain). Per point, only when point_obj is wanted: the lanes of the row by
 * a butterfly (xor 1, 2, ..., LPR/2), column tiles in order. Weight of a segment: per group in
 * row order, then the group butterfly. Per unit (one problem's points): segments in order;
 * per problem: units in order (OBJ_THREADS-strided, then a fixed tree). Across pieces of X
 * (backend.cu): a left fold in plan order, o = piece 0, then o = o + piece j.
 *
 * Memory: X is read once (rows in sorted order, each row or row tile one coalesced run of
 * 16-byte loads), except for cosine with more than one column tile, where a first pass over
 * each row computes its norm. Everything else is a few 4-byte words per point (labels, ids,
 * clusters) plus partials of d doubles for clusters that straddle a unit boundary: two slots
 * per unit (only a unit's first and last segments can extend past it), 2 n/unit rows of d
 * doubles, whatever k. */
#include "cuda/update.cuh"

#include <cub/cub.cuh>
#include <limits.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- fixed constants */

/* Sorted points per reduce work unit: unit_rows(d, element size), a power of two in
 * [UNIT_MIN, UNIT_MAX] covering about UNIT_BYTES of X. Part of the summation order, so a
 * function of the data's shape only, never of the device. Wide rows take short units, so that
 * a piece of X (at most 2^28 bytes, plan.c) still has enough units to fill the GPU: at
 * d = 1024 f16 a piece is 131072 rows, 512 units of 256 rows (four warps per SM on an H100),
 * 2048 of 64. */
#define UNIT_MAX 256
#define UNIT_MIN 32
#define UNIT_BYTES (128 * 1024)
/* Warps of a reduce block (launch shape only: each warp handles whole units). */
#define RED_WARPS 4
/* Steps (R rows each) whose loads a warp issues before it uses them. */
#define RED_UNROLL 4
/* reduce_kernel variants (reduce_variant picks one per call; same sums, same bits, see there):
 * RED_GEN takes every flag at run time; RED_L2 and RED_DOT are the fit's case compiled lean:
 * no cosine, no per-point objectives, 16-byte aligned rows of whole vectors (d % VEC == 0)
 * whose byte stride fits 32 bits, metric L2 or DOT fixed. */
enum { RED_GEN = 0, RED_L2 = 1, RED_DOT = 2 };
/* Combine: warps per cluster block (unit i of a cluster goes to warp i % COMB_WARPS; the warps
 * are then added in order), columns per pass (4 per lane), and threads of an objective block
 * (fixed-shape tree). */
#define COMB_WARPS 8
#define COMB_COLS 128
#define OBJ_THREADS 256
/* Combine: partials loaded ahead per warp before they are added (in order). */
#define COMB_BATCH 4
/* Counting-sort path limits (see sort_shape). */
#define SORT_MAX_K 4096
#define SORT_MAX_TILE 32768
#define SORT_SMEM_WORDS 8192
/* The scatter stages a whole tile in shared memory (scatter_stage) when the cursors, the global
 * cursors, the scan's totals and the tile fit in SORT_STAGE_WORDS words (96 KB: k up to about
 * 1636 at the default tile; two blocks per SM on sm_90 (228 KB), one on sm_80 (164 KB) near the
 * top of that range; measured on the H100 only up to k = 1024), and scatters directly
 * otherwise. */
#define SORT_STAGE_WORDS 24576
#define SORT_SCAN_WORDS 8
/* The scan's column pass (colscan_kernel): a block takes 32 consecutive clusters of one problem
 * (one per lane) and its COL_WARPS warps split the problem's tiles into COL_WARPS contiguous
 * chunks; each thread loads COL_BATCH counts ahead. Launch shape only: integer sums are exact
 * in any order. */
#define COL_WARPS 16
#define COL_BATCH 8
/* Threads of a histogram block (launch shape only: the counts are exact whatever the block;
 * independent of the scatter's warps, which shared memory caps at 2 for k > 2048). */
#define HIST_THREADS 256

static_assert(SORT_MAX_TILE <= 65536 && SORT_MAX_K <= 65536, "staged words pack (label << 16) | index in the sub-tile");
static_assert(SORT_SCAN_WORDS >= 8, "one scan total per warp of a sort block (sort_shape: at most 8 warps)");

static_assert(COMB_WARPS * 32 == OBJ_THREADS, "combine block shape");
static_assert(COMB_COLS == 4 * 32, "combine: 4 columns per lane");
static_assert((OBJ_THREADS & (OBJ_THREADS - 1)) == 0, "tree reduction needs a power of two");

/* ---------------------------------------------------------------- workspace */

struct fkm_cuda_update_ws {
    int64_t batch, n, k, d;   /* shape at create: batch and n are maxima, k and d exact */
    int counting;             /* 1 = counting-sort path, 0 = radix-sort path */
    int64_t tile;             /* counting path: points per tile (1 tile = whole problem otherwise) */
    int warps;                /* counting path: warps per sort block */
    int64_t stage;            /* counting path: points per staged sub-tile of the scatter, 0 = direct */
    size_t scatter_smem;      /* counting path: the scatter's dynamic shared memory (bytes) */
    int sort_bits;            /* radix path: key bits */
    int unit;                 /* reduce work unit (sorted points), unit_rows */

    unsigned long long *mat;  /* per cluster b*k + c: its first sorted slot (after the scan); batch*k + 1 entries,
                               * the last one the total; mat_cap entries */
    int64_t mat_cap;
    uint32_t *cnt;            /* counting path: tile-major counts cnt[(b*tiles + t)*k + c], then (column pass)
                               * the offset of tile t within cluster c of problem b; cnt_cap entries */
    int64_t cnt_cap;
    uint32_t *order;          /* batch*n point ids (within their problem) in sorted order */
    uint32_t *sorted_g;       /* batch*n global clusters of the sorted points */
    uint32_t *keys;           /* radix path: batch*n keys (global clusters) */
    uint32_t *iota;           /* radix path: batch*n, each point's id within its problem */
    uint32_t *list;           /* clusters the combine visits (spanning 0 or >= 2 units) */
    int *nlist;               /* their number */
    double *part_sum;         /* part_cap x d: unit u's partials, slot 2u (first segment), 2u + 1 (last) */
    double *part_w;           /* part_cap */
    double *part_obj;         /* units_cap: objective of unit u (one problem's points) at u */
    int64_t part_cap, units_cap;
    void *cub_tmp;
    size_t cub_bytes;
    int64_t q_mat_n, q_n;     /* the shape of the last CUB size query (q_n: points sorted), its answer */
    size_t q_bytes;

    int timing;
    int events_ok;
    cudaEvent_t ev[6];
    fkm_cuda_update_times times;
};

/* The scatter (defined with the other kernels below; create sets its shared-memory limit). */
typedef void scatter_fn(const int32_t *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                        const unsigned long long *, const uint32_t *, uint32_t *, uint32_t *);
template <bool STAGED>
__global__ void scatter_kernel(const int32_t *__restrict__ labels, int64_t n, int64_t k, int64_t batch,
                               int64_t parts, int64_t src_n, int64_t tiles, int64_t tile, int64_t sub,
                               const unsigned long long *__restrict__ mat, const uint32_t *__restrict__ cnt,
                               uint32_t *__restrict__ order, uint32_t *__restrict__ sorted_g);

static int unit_rows(int64_t d, size_t es)
{
    const int64_t row = d * (int64_t)es;
    int u = UNIT_MAX;
    while (u > UNIT_MIN && (int64_t)u * row > UNIT_BYTES) u /= 2;
    return u;
}

/* Counting path: tile = a power of two in [2048, 32768], at least 8 points per label so the
 * count matrix (k x tiles) stays around n/8 entries; warps per block chosen so that the
 * per-warp cursors (warps x k words) fit in SORT_SMEM_WORDS words of shared memory. */
static void sort_shape(int64_t k, int64_t *tile, int *warps)
{
    int64_t t = 2048;
    while (t < 8 * k && t < SORT_MAX_TILE) t *= 2;
    int w = 8;
    while (w > 1 && (int64_t)w * k > SORT_SMEM_WORDS) w /= 2;
    *tile = t;
    *warps = w;
}

/* Shared memory of the scatter (see scatter_kernel): cursors and scan totals; staged, also the
 * global cursors and the sub-tile (stage points). */
static size_t scatter_smem(int64_t k, int warps, int64_t stage)
{
    return (size_t)((int64_t)warps * k + SORT_SCAN_WORDS + (stage ? k + stage : 0)) * sizeof(uint32_t);
}

/* Points per staged sub-tile of the scatter, 0 for the direct scatter. By default the whole tile
 * when it fits SORT_STAGE_WORDS (from the shape only), direct otherwise. FLASHKM_SCATTER_STAGE
 * overrides it for experiments: 0 = direct, P > 0 = sub-tiles of the largest power of two <= P
 * points (at least 256, at most the tile). Either way it is halved while it exceeds the
 * device's per-block shared memory (smem_max), and direct if it still does. The sorted order
 * does not depend on it (a stable sort has one result). */
static int64_t scatter_stage(int64_t k, int64_t tile, int warps, size_t smem_max)
{
    int64_t s = scatter_smem(k, warps, tile) <= SORT_STAGE_WORDS * sizeof(uint32_t) ? tile : 0;
    const char *env = getenv("FLASHKM_SCATTER_STAGE");
    if (env && *env) {
        char *end = NULL;
        const long long p = strtoll(env, &end, 10);
        if (end && *end == '\0' && p >= 0) {
            s = 0;
            if (p > 0) {
                s = 256;
                while (s < tile && 2 * s <= p) s *= 2;
            }
        }
    }
    while (s > 256 && scatter_smem(k, warps, s) > smem_max) s /= 2;
    return s > 0 && scatter_smem(k, warps, s) <= smem_max ? s : 0;
}

static int key_bits(int64_t k)
{
    int b = 0;
    while (b < 62 && (((int64_t)1) << b) < k) b++;
    return b;
}

static unsigned grid_for(int64_t vblocks)
{
    if (vblocks < 1) return 1;
    return (unsigned)(vblocks < (1 << 30) ? vblocks : (1 << 30));
}

void fkm_cuda_update_destroy(fkm_cuda_update_ws *ws)
{
    if (!ws) return;
    cudaFree(ws->mat);
    cudaFree(ws->cnt);
    cudaFree(ws->order);
    cudaFree(ws->sorted_g);
    cudaFree(ws->keys);
    cudaFree(ws->iota);
    cudaFree(ws->list);
    cudaFree(ws->nlist);
    cudaFree(ws->part_sum);
    cudaFree(ws->part_w);
    cudaFree(ws->part_obj);
    cudaFree(ws->cub_tmp);
    if (ws->events_ok)
        for (int i = 0; i < 6; i++) cudaEventDestroy(ws->ev[i]);
    (void)cudaGetLastError();
    free(ws);
}

/* CUB temporary storage for the scan (in place over mat_n entries) and, on the radix path,
 * for sorting n pairs (the whole batch). Host-only queries. */
static cudaError_t cub_bytes_needed(const fkm_cuda_update_ws *ws, int64_t mat_n, int64_t n, size_t *bytes)
{
    size_t scan = 0, sort = 0;
    cudaError_t e = cub::DeviceScan::ExclusiveSum(nullptr, scan, ws->mat, ws->mat, mat_n);
    if (e != cudaSuccess) return e;
    if (!ws->counting) {
        e = cub::DeviceRadixSort::SortPairs(nullptr, sort, (const uint32_t *)nullptr, (uint32_t *)nullptr,
                                            (const uint32_t *)nullptr, (uint32_t *)nullptr, n, 0,
                                            ws->sort_bits);
        if (e != cudaSuccess) return e;
    }
    *bytes = scan > sort ? scan : sort;
    return cudaSuccess;
}

/* Both paths: one 64-bit entry per cluster and the total. */
static int64_t mat_entries(const fkm_cuda_update_ws *ws, int64_t batch)
{
    return batch * ws->k + 1;
}

fkm_status fkm_cuda_update_create(fkm_ctx *ctx, const fkm_dev_problem *pb, fkm_cuda_update_ws **out)
{
    if (!out) return fkm_fail(ctx, FKM_E_NULL, "fkm_cuda_update_create: out is NULL");
    *out = NULL;
    if (!pb) return fkm_fail(ctx, FKM_E_NULL, "fkm_cuda_update_create: problem is NULL");
    if (pb->batch < 1 || pb->n < 1 || pb->k < 1 || pb->d < 1)
        return fkm_fail(ctx, FKM_E_INVALID, "fkm_cuda_update_create: batch, n, k, d must be >= 1");
    if (pb->n > (int64_t)UINT32_MAX)
        return fkm_fail(ctx, FKM_E_UNSUPPORTED, "CUDA update: n = %lld points per problem exceeds 2^32 - 1",
                        (long long)pb->n);
    if (pb->k > (int64_t)INT32_MAX)
        return fkm_fail(ctx, FKM_E_INVALID, "CUDA update: k = %lld does not fit int32 labels", (long long)pb->k);
    if ((int64_t)pb->batch * pb->k > (int64_t)UINT32_MAX)
        return fkm_fail(ctx, FKM_E_UNSUPPORTED, "CUDA update: batch * k = %lld clusters exceeds 2^32 - 1",
                        (long long)((int64_t)pb->batch * pb->k));

    fkm_cuda_update_ws *ws = (fkm_cuda_update_ws *)calloc(1, sizeof *ws);
    if (!ws) return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for the CUDA update workspace");
    ws->batch = pb->batch;
    ws->n = pb->n;
    ws->k = pb->k;
    ws->d = pb->d;
    ws->counting = pb->k <= SORT_MAX_K;
    ws->unit = unit_rows(pb->d, fkm_dtype_size(pb->dtype));
    if (ws->counting) sort_shape(pb->k, &ws->tile, &ws->warps);
    else ws->sort_bits = key_bits((int64_t)pb->batch * pb->k + 1); /* + 1: the key of "no point" */

    fkm_status st = FKM_OK;
    int64_t bn, bk, tmp, units = 0, parts = 0;
    size_t b_order, b_mat, b_cnt, b_part, b_list;
    const int64_t tiles = ws->counting ? fkm_ceil_div(pb->n, ws->tile) : 1;
    /* units: ceil(n / unit) per problem (aligned units); partial slots: two per unit */
    if (!fkm_mul_i64(pb->batch, pb->n, &bn) || !fkm_mul_i64(pb->batch, pb->k, &bk) ||
        !fkm_mul_i64(bk, tiles, &tmp) || tmp == INT64_MAX ||
        !fkm_mul_i64(pb->batch, fkm_ceil_div(pb->n, ws->unit), &units) || !fkm_mul_i64(units, 2, &parts) ||
        !fkm_bytes(bn, 1, sizeof(uint32_t), &b_order) || !fkm_bytes(bk + 1, 1, sizeof(unsigned long long), &b_mat) ||
        !fkm_bytes(tmp, 1, sizeof(uint32_t), &b_cnt) ||
        !fkm_bytes(parts, pb->d, sizeof(double), &b_part) ||
        !fkm_bytes(bk, 1, sizeof(uint32_t), &b_list)) {
        free(ws);
        return fkm_fail(ctx, FKM_E_OVERFLOW, "CUDA update: workspace size of batch = %lld, n = %lld, k = %lld, d = %lld overflows",
                        (long long)pb->batch, (long long)pb->n, (long long)pb->k, (long long)pb->d);
    }
    ws->mat_cap = bk + 1;
    ws->cnt_cap = ws->counting ? tmp : 0;
    ws->part_cap = parts;
    ws->units_cap = units;

    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->mat, b_mat), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->order, b_order), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->sorted_g, b_order), st, fail);
    if (!ws->counting) {
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->keys, b_order), st, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->iota, b_order), st, fail);
    }
    if (ws->counting) {
        int dev = 0, smem_max = 0;
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->cnt, b_cnt), st, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaGetDevice(&dev), st, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), st, fail);
        ws->stage = scatter_stage(ws->k, ws->tile, ws->warps, (size_t)smem_max);
        ws->scatter_smem = scatter_smem(ws->k, ws->warps, ws->stage);
        /* the staged scatter may pass the default 48 KB (k = 1024: 68 KB) */
        FKM_CUDA_TRY_GOTO(ctx,
                          fkm_cuda_allow_smem((const void *)(ws->stage ? scatter_kernel<true> : scatter_kernel<false>),
                                              ws->scatter_smem),
                          st, fail);
    }
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->list, b_list), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->nlist, sizeof(int)), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->part_sum, b_part), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->part_w, (size_t)parts * sizeof(double)), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->part_obj, (size_t)units * sizeof(double)), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cub_bytes_needed(ws, ws->mat_cap, bn, &ws->cub_bytes), st, fail);
    ws->q_mat_n = ws->mat_cap;
    ws->q_n = bn;
    ws->q_bytes = ws->cub_bytes;
    if (ws->cub_bytes == 0) ws->cub_bytes = 1;
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc(&ws->cub_tmp, ws->cub_bytes), st, fail);
    for (int i = 0; i < 6; i++) {
        cudaError_t e = cudaEventCreate(&ws->ev[i]);
        if (e != cudaSuccess) {
            for (int j = 0; j < i; j++) cudaEventDestroy(ws->ev[j]);
            st = fkm_cuda_fail(ctx, e, __FILE__, __LINE__, "cudaEventCreate(&ws->ev[i])");
            goto fail;
        }
    }
    ws->events_ok = 1;
    *out = ws;
    return FKM_OK;
fail:
    fkm_cuda_update_destroy(ws);
    return st;
}

void fkm_cuda_update_set_timing(fkm_cuda_update_ws *ws, int on)
{
    if (ws) ws->timing = on != 0;
}

fkm_cuda_update_times fkm_cuda_update_last_times(const fkm_cuda_update_ws *ws)
{
    fkm_cuda_update_times t;
    memset(&t, 0, sizeof t);
    return ws ? ws->times : t;
}

void fkm_cuda_update_sorted(const fkm_cuda_update_ws *ws, const uint32_t **order, const uint32_t **sorted_g)
{
    if (order) *order = ws ? ws->order : NULL;
    if (sorted_g) *sorted_g = ws ? ws->sorted_g : NULL;
}

int64_t fkm_cuda_update_scatter_stage(const fkm_cuda_update_ws *ws)
{
    return ws && ws->counting ? ws->stage : -1;
}

/* ---------------------------------------------------------------- device helpers */

/* A label as the sort sees it: -1 for "no point" (past the end) and for an out-of-range
 * label, which is then ignored by the histogram and the scatter alike (never written out of
 * bounds; the results are then unspecified, as the contract requires labels in [0, k)). */
__device__ __forceinline__ int32_t sort_label(const int32_t *lab, int64_t i, int64_t end, int64_t k)
{
    if (i >= end) return -1;
    const int32_t L = lab[i];
    return (L >= 0 && L < k) ? L : -1;
}

/* Call problem p = part j of source problem s (fkm_cuda_update_parts; parts = 1, src_n = n
 * is the plain batch): its first row in labels, weights and point_obj, and its rows (n, or
 * fewer for the last part of a source problem). */
__device__ __forceinline__ int64_t row_base(int64_t p, int64_t n, int64_t parts, int64_t src_n)
{
    const int64_t s = p / parts;
    return s * src_n + (p - s * parts) * n;
}

__device__ __forceinline__ int64_t part_rows(int64_t p, int64_t n, int64_t parts, int64_t src_n)
{
    const int64_t r = src_n - (p % parts) * n;
    return r < n ? r : n;
}

/* ---------------------------------------------------------------- 1. histogram */

/* Counting path. Virtual block = (problem b, tile t): counts of each label among the tile's
 * points into shared memory, then written to cnt[(b*tiles + t)*k + c] for every c (zeros
 * included, so cnt needs no clearing): tile-major, the tile's k counts one contiguous run
 * (coalesced 4-byte stores; a count is at most the tile, 32768). Within a warp, lanes with
 * equal labels are merged with __match_any_sync so one shared atomic per distinct label is
 * issued (fewer conflicts when k is small). */
__global__ void hist_tiles_kernel(const int32_t *__restrict__ labels, int64_t n, int64_t k, int64_t batch,
                                  int64_t parts, int64_t src_n, int64_t tiles, int64_t tile,
                                  uint32_t *__restrict__ cnt)
{
    extern __shared__ uint32_t sh_count[]; /* k */
    const int lane = threadIdx.x & 31;
    const int64_t nvb = batch * tiles;
    for (int64_t vb = blockIdx.x; vb < nvb; vb += gridDim.x) {
        const int64_t b = vb / tiles, t = vb % tiles;
        for (int64_t c = threadIdx.x; c < k; c += blockDim.x) sh_count[c] = 0;
        __syncthreads();
        const int64_t rows = part_rows(b, n, parts, src_n); /* tiles past them count nothing */
        const int64_t lo = t * tile, hi = lo + tile < rows ? lo + tile : rows;
        const int32_t *lab = labels + row_base(b, n, parts, src_n);
        /* rounds are block-uniform, so every lane of every warp reaches __match_any_sync */
        for (int64_t i0 = lo; i0 < hi; i0 += blockDim.x) {
            const int32_t L = sort_label(lab, i0 + threadIdx.x, hi, k);
            const unsigned peers = __match_any_sync(0xffffffffu, L);
            if (L >= 0 && lane == __ffs(peers) - 1) atomicAdd(&sh_count[L], (uint32_t)__popc(peers));
        }
        __syncthreads();
        uint32_t *row = cnt + vb * k; /* vb = b*tiles + t */
        for (int64_t c = threadIdx.x; c < k; c += blockDim.x) row[c] = sh_count[c];
        __syncthreads();
    }
}

/* ---------------------------------------------------------------- 2. scan */

/* Counting path, the scan's first pass, per column (problem b, cluster c) of the tile-major
 * counts: cnt[(b*tiles + t)*k + c] becomes the exclusive prefix over the tiles, sum of
 * cnt[(b*tiles + t')*k + c] for t' < t (the offset of tile t's points of label c within the
 * cluster's sorted run), and mat[b*k + c] the column's total (the cluster's size); the
 * second pass (an exclusive scan of mat, CUB) turns the totals into each cluster's first
 * sorted slot, so that the scatter's cursor of (b, t, c) is mat[b*k + c] + cnt[(b*tiles + t)*k + c],
 * the same number the cluster-major scan of one matrix gave.
 *
 * Virtual block = (problem b, 32 clusters c0 .. c0 + 31), lane = cluster: for each tile, the
 * 32 lanes read 32 consecutive counts (one 128-byte line). Warp w takes the contiguous tiles
 * [w*per, (w+1)*per), per = ceil(tiles / COL_WARPS): its sum of them, then the exclusive sum
 * of the earlier warps' sums (shared memory) is its starting prefix, and it walks its tiles
 * again writing the running prefix. Integer sums, exact in any grouping: the result is the
 * plain prefix whatever the launch shape. uint32 is exact: a column's total is the points of
 * one problem with one label, at most n < 2^32 (create checks n). Block 0 also sets the entry
 * after the last cluster to 0, so the scan's exclusive sum there is the total (list, reduce
 * and combine read it). */
/* colscan_kernel's loads: COL_BATCH counts of a column from tile t (col[t*k]), 0 past t1,
 * all issued before any is used. */
static __device__ __forceinline__ void colscan_load(const uint32_t *col, int64_t t, int64_t t1, int64_t k,
                                                    uint32_t (&v)[COL_BATCH])
{
#pragma unroll
    for (int q = 0; q < COL_BATCH; q++) v[q] = t + q < t1 ? col[(t + q) * k] : 0u;
}

__global__ void __launch_bounds__(COL_WARPS * 32) colscan_kernel(uint32_t *__restrict__ cnt, int64_t k, int64_t batch,
                                                                int64_t tiles, unsigned long long *__restrict__ mat)
{
    __shared__ uint32_t s_sum[COL_WARPS][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t groups = (k + 31) / 32, nvb = batch * groups;
    const int64_t per = (tiles + COL_WARPS - 1) / COL_WARPS;
    const int64_t t0 = warp * per < tiles ? warp * per : tiles, t1 = t0 + per < tiles ? t0 + per : tiles;
    if (blockIdx.x == 0 && threadIdx.x == 0) mat[batch * k] = 0;
    for (int64_t vb = blockIdx.x; vb < nvb; vb += gridDim.x) {
        const int64_t b = vb / groups, c = (vb - b * groups) * 32 + lane;
        const bool ok = c < k;
        uint32_t *col = cnt + b * tiles * k + c; /* entry t at col[t*k] */
        uint32_t sum = 0;
        if (ok)
            for (int64_t t = t0; t < t1; t += COL_BATCH) {
                uint32_t v[COL_BATCH];
                colscan_load(col, t, t1, k, v);
#pragma unroll
                for (int q = 0; q < COL_BATCH; q++) sum += v[q];
            }
        s_sum[warp][lane] = sum;
        __syncthreads();
        uint32_t run = 0;
        for (int w = 0; w < warp; w++) run += s_sum[w][lane];
        if (ok && warp == COL_WARPS - 1) mat[b * k + c] = run + sum;
        if (ok)
            for (int64_t t = t0; t < t1; t += COL_BATCH) {
                uint32_t v[COL_BATCH];
                colscan_load(col, t, t1, k, v);
#pragma unroll
                for (int q = 0; q < COL_BATCH; q++)
                    if (t + q < t1) {
                        col[(t + q) * k] = run;
                        run += v[q];
                    }
            }
        __syncthreads(); /* s_sum is reused by the next virtual block */
    }
}

/* Radix path: plain per-cluster counts (mat cleared before), cluster g = b*k + label; an
 * out-of-range label counts as label 0, as keys_kernel sorts it (so that the sorted positions
 * are the scanned counts). */
__global__ void hist_global_kernel(const int32_t *__restrict__ labels, int64_t n, int64_t k, int64_t batch,
                                   int64_t parts, int64_t src_n, unsigned long long *__restrict__ mat)
{
    const int lane = threadIdx.x & 31;
    const int64_t total = batch * n;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    /* warp-uniform loop bound: i0 is the warp's first point */
    for (int64_t i0 = (int64_t)blockIdx.x * blockDim.x + (threadIdx.x & ~31); i0 < total; i0 += stride) {
        const int64_t i = i0 + lane;
        unsigned long long g = ~0ull;
        const int64_t b = i / n, j = i - b * n;
        if (i < total && j < part_rows(b, n, parts, src_n)) {
            const int32_t L = labels[row_base(b, n, parts, src_n) + j];
            g = (unsigned long long)(b * k + ((L >= 0 && L < k) ? L : 0));
        }
        const unsigned peers = __match_any_sync(0xffffffffu, g);
        if (g != ~0ull && lane == __ffs(peers) - 1) atomicAdd(&mat[g], (unsigned long long)__popc(peers));
    }
}

/* ---------------------------------------------------------------- 2b. combine list */

/* Cluster g's sorted points are [start_g, start_{g+1}), start_g = mat[g] after the scan
 * (mat[clusters] = total); its problem p = g / k starts at P0 = mat[p * k] and its units are
 * counted from there (see the reduce). A cluster inside one unit is finished by the reduce;
 * the others (several units, or none: empty) are listed for the combine. The list's order
 * (integer atomics) only assigns clusters to blocks. */
__global__ void list_kernel(const unsigned long long *__restrict__ mat, int64_t clusters, int64_t k, int unit,
                            uint32_t *__restrict__ list, int *__restrict__ nlist)
{
    for (int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; g < clusters;
         g += (int64_t)gridDim.x * blockDim.x) {
        const unsigned long long P0 = mat[g / k * k], start = mat[g], stop = mat[g + 1];
        const bool one = stop > start && (start - P0) / unit == (stop - 1 - P0) / unit;
        if (!one) list[atomicAdd(nlist, 1)] = (uint32_t)g;
    }
}

/* ---------------------------------------------------------------- 3. scatter */

/* Counting path, stable. Virtual block = (problem b, tile t), processed in sub-tiles of `sub`
 * consecutive points (sub = tile unless the staging below is split, never when direct); warp w owns the
 * contiguous range [lo + w*R, lo + (w+1)*R) of a sub-tile, R = sub / warps. Pass 1 counts each
 * warp's labels into its own row cur[w][.]. The cursors: per label c, cur[w][c] becomes the
 * position, relative to the sub-tile's sorted run, of the first point of label c in warp w's
 * range: off[c] (exclusive scan over the labels of the sub-tile's counts) plus the counts of
 * the earlier warps. Pass 2 walks each range again in the same order, 32 points per round: a
 * point's rank among the equal labels of its round is the number of lower lanes with that
 * label (points are in index order across lanes), and the round's leader of each label then
 * advances the cursor. So within a label, points land in increasing index order: the stable
 * order.
 *
 * Problem b's tile t holds its rows [t*tile, min((t+1)*tile, part_rows(b))) of the labels at
 * row_base(b) (fkm_cuda_update_parts: a short last part leaves its later tiles, or the end of
 * one, without points); the ids written are rows within the part, like every cursor below
 * relative to the problem's own first sorted slot pbase = mat[b*k].
 *
 * Label c's global cursor (relative to the problem's first slot) starts at
 * (mat[b*k + c] - pbase) + cnt[(b*tiles + t)*k + c] (the cluster's first slot plus
 * the tile's offset within the cluster, see colscan_kernel): consecutive threads c read
 * consecutive entries of both arrays (coalesced). Direct: it is added to the cursors, and pass 2 stores
 * straight to the global slot, as the kernel did before staging; used where the staged tile
 * would not fit the shared-memory budget (scatter_stage).
 *
 * STAGED: pass 2 writes each point into shared memory at its sub-tile position, packed as
 * (label << 16) | (index - sub-tile start), and the block then writes the sub-tile's sorted run
 * out with consecutive threads on consecutive slots: each label's run lands in one stretch of
 * global memory, so the stores are coalesced instead of one 32-byte sector per 4-byte store
 * (about 8 points per label and tile at the default shape). gd[c] carries label c's global
 * cursor across the sub-tiles, kept as cursor - off[c] while a sub-tile is placed, so that
 * sorted slot j of the sub-tile goes to gd[L] + j (uint32 arithmetic: exact modulo 2^32, and
 * the true value is < n). Both give the one stable order.
 *
 * Shared memory (words): cur warps*k, wtot SORT_SCAN_WORDS (per-warp label-segment totals of
 * the scan); STAGED also gd k and stage sub (see scatter_smem). */
template <bool STAGED>
__global__ void scatter_kernel(const int32_t *__restrict__ labels, int64_t n, int64_t k, int64_t batch,
                               int64_t parts, int64_t src_n, int64_t tiles, int64_t tile, int64_t sub,
                               const unsigned long long *__restrict__ mat, const uint32_t *__restrict__ cnt,
                               uint32_t *__restrict__ order, uint32_t *__restrict__ sorted_g)
{
    extern __shared__ uint32_t cur[];
    const int K = (int)k; /* <= SORT_MAX_K */
    uint32_t *wtot = cur + (blockDim.x >> 5) * K;
    uint32_t *gd = wtot + SORT_SCAN_WORDS; /* STAGED only */
    uint32_t *stage = gd + K;             /* STAGED only */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const unsigned lt_mask = (1u << lane) - 1u;
    const int64_t R = sub / warps;
    uint32_t *my = cur + (int64_t)warp * K;
    /* the scan's label segments: warp w scans labels [w*S, (w+1)*S), whole rounds of 32 */
    const int S = ((K + warps - 1) / warps + 31) & ~31;
    const int s0 = warp * S < K ? warp * S : K, s1 = s0 + S < K ? s0 + S : K;
    const int64_t nvb = batch * tiles;
    /* the rows start at zero and every sub-tile leaves them at zero */
    for (int e = threadIdx.x; e < warps * K; e += blockDim.x) cur[e] = 0;
    __syncthreads();
    for (int64_t vb = blockIdx.x; vb < nvb; vb += gridDim.x) {
        const int64_t b = vb / tiles, t = vb % tiles;
        const int64_t rows = part_rows(b, n, parts, src_n); /* tiles past them scatter nothing */
        const int64_t tlo = t * tile, thi = tlo + tile < rows ? tlo + tile : rows;
        const int32_t *lab = labels + row_base(b, n, parts, src_n);
        const unsigned long long pbase = mat[b * k];
        const unsigned long long *cbase = mat + b * k; /* the problem's clusters' first slots */
        const uint32_t *toff = cnt + vb * k;            /* tile t's offsets within them (vb = b*tiles + t) */
        /* relative to the problem's first sorted slot: fits 32 bits (< n) */
        if (STAGED)
            for (int c = threadIdx.x; c < K; c += blockDim.x) gd[c] = (uint32_t)(cbase[c] - pbase) + toff[c];
        uint32_t *dst = order + pbase;
        uint32_t *dst_g = sorted_g + pbase;
        const uint32_t gbase = (uint32_t)(b * k); /* fits: create checks batch * k < 2^32 */
        for (int64_t slo = tlo; slo < thi; slo += sub) {
            const int64_t shi = slo + sub < thi ? slo + sub : thi;
            const int64_t lo = slo + warp * R < shi ? slo + warp * R : shi;
            const int64_t hi = lo + R < shi ? lo + R : shi;
            /* pass 1: per-warp counts (a warp-private row: one leader per distinct label, no atomics) */
            for (int64_t i0 = lo; i0 < hi; i0 += 32) {
                const int32_t L = sort_label(lab, i0 + lane, hi, k);
                const unsigned peers = __match_any_sync(0xffffffffu, L);
                if (L >= 0 && lane == __ffs(peers) - 1) my[L] += (uint32_t)__popc(peers);
                __syncwarp();
            }
            __syncthreads();
            /* counts -> cursors relative to the warp's label segment (a warp scan per round of
             * 32 labels, the rows of a label in warp order), then the segment totals */
            uint32_t carry = 0;
            for (int c0 = s0; c0 < s1; c0 += 32) {
                const int c = c0 + lane;
                uint32_t cnt = 0;
                if (c < s1)
                    for (int w = 0; w < warps; w++) cnt += cur[w * K + c];
                uint32_t x = cnt;
                for (int o = 1; o < 32; o <<= 1) {
                    const uint32_t y = __shfl_up_sync(0xffffffffu, x, o);
                    if (lane >= o) x += y;
                }
                if (c < s1) {
                    uint32_t run = carry + x - cnt;
                    for (int w = 0; w < warps; w++) {
                        const uint32_t v = cur[w * K + c];
                        cur[w * K + c] = run;
                        run += v;
                    }
                }
                carry += __shfl_sync(0xffffffffu, x, 31);
            }
            if (lane == 0) wtot[warp] = carry;
            __syncthreads();
            /* add the earlier segments: cur[0][c] becomes off[c]; gd[c] becomes the global
             * cursor - off[c] (direct: the cursors themselves become global) */
            for (int c = threadIdx.x; c < K; c += blockDim.x) {
                uint32_t add = 0;
                for (int w = 0; w < c / S; w++) add += wtot[w];
                const uint32_t gcur = STAGED ? gd[c] : (uint32_t)(cbase[c] - pbase) + toff[c];
                const uint32_t g = gcur - (cur[c] + add);
                const uint32_t shift = STAGED ? add : add + g;
                for (int w = 0; w < warps; w++) cur[w * K + c] += shift;
                if (STAGED) gd[c] = g;
            }
            __syncthreads();
            /* pass 2: stable placement */
            for (int64_t i0 = lo; i0 < hi; i0 += 32) {
                const int64_t i = i0 + lane;
                const int32_t L = sort_label(lab, i, hi, k);
                const unsigned peers = __match_any_sync(0xffffffffu, L);
                uint32_t pos = 0;
                if (L >= 0) {
                    pos = my[L] + (uint32_t)__popc(peers & lt_mask);
                    if (STAGED) {
                        stage[pos] = ((uint32_t)L << 16) | (uint32_t)(i - slo);
                    } else {
                        dst[pos] = (uint32_t)i;
                        dst_g[pos] = gbase + (uint32_t)L;
                    }
                }
                __syncwarp(); /* every lane has read my[L] before the leader moves it */
                /* the leader is the lowest lane of its label: its pos is the cursor itself */
                if (L >= 0 && lane == __ffs(peers) - 1) my[L] = pos + (uint32_t)__popc(peers);
                __syncwarp();
            }
            __syncthreads();
            if (STAGED) {
                /* the sub-tile's sorted run out: slot j of label L goes to gd[L] + j */
                uint32_t m = 0;
                for (int w = 0; w < warps; w++) m += wtot[w];
                const uint32_t ilo = (uint32_t)slo;
                for (uint32_t j = threadIdx.x; j < m; j += blockDim.x) {
                    const uint32_t v = stage[j], L = v >> 16;
                    const uint32_t p = gd[L] + j;
                    dst[p] = ilo + (v & 0xffffu);
                    dst_g[p] = gbase + L;
                }
                __syncthreads();
            }
            /* the last warp's cursor ended at off[c] + count: gd[c] becomes label c's global
             * cursor for the next sub-tile; the rows back to zero */
            for (int c = threadIdx.x; c < K; c += blockDim.x) {
                if (STAGED) gd[c] += cur[(warps - 1) * K + c];
                for (int w = 0; w < warps; w++) cur[w * K + c] = 0;
            }
            __syncthreads();
        }
    }
}

/* Radix path helper: iota[b*n + i] = i (the values sorted along with the keys: the point's id
 * within its problem) and keys[b*n + i] = b*k + label (the global cluster, sorted as the key
 * so that the sorted keys are the sorted clusters the reduce reads). One stable sort of the
 * whole batch then gives each problem's stable order, at the scanned counts' positions. Rows
 * past a problem's own (the short last part of fkm_cuda_update_parts) get the key batch*k and
 * land after every point. An out-of-range label gets the key b*k: it is sorted (and counted)
 * into cluster 0 of its problem, which keeps every index in bounds (results are then
 * unspecified, as the contract requires labels in [0, k)). */
__global__ void keys_kernel(const int32_t *__restrict__ labels, int64_t n, int64_t k, int64_t batch,
                            int64_t parts, int64_t src_n, uint32_t *__restrict__ keys, uint32_t *__restrict__ iota)
{
    const int64_t total = batch * n;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = i / n, j = i - b * n;
        if (j < part_rows(b, n, parts, src_n)) {
            const int32_t L = labels[row_base(b, n, parts, src_n) + j];
            keys[i] = (uint32_t)(b * k + ((L >= 0 && L < k) ? L : 0));
        } else {
            keys[i] = (uint32_t)(batch * k);
        }
        iota[i] = (uint32_t)j;
    }
}

/* ---------------------------------------------------------------- 4. reduce */

/* Raw storage of an element (its bits) and the row-vector loads. */
template <fkm_dtype DT> struct raw_of;
template <> struct raw_of<FKM_F32> { typedef uint32_t type; };
template <> struct raw_of<FKM_F16> { typedef uint16_t type; };
template <> struct raw_of<FKM_BF16> { typedef uint16_t type; };
template <> struct raw_of<FKM_F64> { typedef unsigned long long type; };

/* Columns col .. col + VEC - 1 of a row as 16 bytes (zero bits = +0.0 past d). One streaming
 * 16-byte load when vec_ok (row and col 16-byte aligned) and the vector is inside the row. */
template <fkm_dtype DT>
__device__ __forceinline__ uint4 load_vec(const typename fkm_elem<DT>::type *row, int64_t col, int64_t d, int vec_ok)
{
    typedef typename raw_of<DT>::type RT;
    constexpr int VEC = 16 / (int)sizeof(RT);
    if (vec_ok && col + VEC <= d) return __ldcs((const uint4 *)(row + col));
    const RT *p = (const RT *)row;
    RT tmp[VEC];
#pragma unroll
    for (int v = 0; v < VEC; v++) tmp[v] = col + v < d ? p[col + v] : (RT)0;
    uint4 r;
    memcpy(&r, tmp, 16);
    return r;
}

/* Two 16-bit floats (f16: SH = 10, bf16: SH = 13) packed in w to doubles, exactly: the
 * exponent and mantissa bits are placed at the top of a double's (sign kept), which reads as
 * the value times 2^-(1023 - bias); one multiply by that power of two (exact) fixes it, and
 * subnormals come out right because the double is then subnormal too. Not for infinities and
 * NaNs (their exponent field is all ones): widen_t routes those to the ordinary conversion. */
template <int SH>
__device__ __forceinline__ void widen_pair(uint32_t w, double scale, double &x0, double &x1)
{
    const uint32_t h0 = ((w & 0x7fffu) << SH) | ((w & 0x8000u) << 16);
    const uint32_t h1 = ((w >> (16 - SH)) & (0x7fffu << SH)) | (w & 0x80000000u);
    x0 = __hiloint2double((int)h0, 0) * scale;
    x1 = __hiloint2double((int)h1, 0) * scale;
}

/* A lane's share of a point's objective, its VEC columns in order: sum of x.c (dot; the
 * caller negates) or of (x - c)^2, fused multiply-adds from 0. */
template <int VEC>
__device__ __forceinline__ double lane_objective(const double (&x)[VEC], const double (&c)[VEC], bool dot)
{
    double o = 0.0;
#pragma unroll
    for (int v = 0; v < VEC; v++) {
        if (dot) {
            o = fma(x[v], c[v], o);
        } else {
            const double t = x[v] - c[v];
            o = fma(t, t, o);
        }
    }
    return o;
}

/* The VEC elements of a 16-byte load as doubles, exactly (f64 stays f64: cosine normalises the
 * double); the 16-bit types' general case is defined below. */
template <fkm_dtype DT> struct widen_t;
template <> struct widen_t<FKM_F32> {
    static __device__ __forceinline__ void run(uint4 r, double (&x)[4])
    {
        x[0] = (double)__uint_as_float(r.x);
        x[1] = (double)__uint_as_float(r.y);
        x[2] = (double)__uint_as_float(r.z);
        x[3] = (double)__uint_as_float(r.w);
    }
};
template <> struct widen_t<FKM_F64> {
    static __device__ __forceinline__ void run(uint4 r, double (&x)[2])
    {
        x[0] = __hiloint2double((int)r.y, (int)r.x);
        x[1] = __hiloint2double((int)r.w, (int)r.z);
    }
};
/* The 16-bit floats' parameters: a word's two exponent fields and the lowest bit of each,
 * the mantissa width and the power of two widen_pair needs, and the ordinary conversion of
 * one half h (the low 16 bits) for infinities and NaNs. */
template <fkm_dtype DT> struct half_traits;
template <> struct half_traits<FKM_F16> {
    static constexpr uint32_t EXP = 0x7c007c00u, EXP_LSB = 0x04000400u;
    static constexpr int SH = 10;
    static __device__ __forceinline__ double scale() { return 0x1p1008; }
    static __device__ __forceinline__ double slow(uint32_t h)
    {
        return (double)__half2float(__ushort_as_half((unsigned short)h));
    }
};
template <> struct half_traits<FKM_BF16> {
    static constexpr uint32_t EXP = 0x7f807f80u, EXP_LSB = 0x00800080u;
    static constexpr int SH = 13;
    static __device__ __forceinline__ double scale() { return 0x1p896; }
    static __device__ __forceinline__ double slow(uint32_t h) { return (double)__uint_as_float(h << 16); }
};
/* f16 and bf16: the four words' eight halves, by widen_pair unless one is an infinity or a
 * NaN (exponent all ones: adding the exponent's lowest bit carries into the half's sign
 * position), then all by the ordinary conversion. */
template <fkm_dtype DT> struct widen_t {
    static __device__ __forceinline__ void run(uint4 r, double (&x)[8])
    {
        typedef half_traits<DT> H;
        const uint32_t w[4] = {r.x, r.y, r.z, r.w};
        uint32_t chk = 0;
#pragma unroll
        for (int i = 0; i < 4; i++) chk |= (w[i] & H::EXP) + H::EXP_LSB;
        if (chk & 0x80008000u) {
#pragma unroll
            for (int i = 0; i < 4; i++) {
                x[2 * i] = H::slow(w[i] & 0xffffu);
                x[2 * i + 1] = H::slow(w[i] >> 16);
            }
        } else {
#pragma unroll
            for (int i = 0; i < 4; i++) widen_pair<H::SH>(w[i], H::scale(), x[2 * i], x[2 * i + 1]);
        }
    }
};

/* 16 zero bytes: what a lean reduce lane whose columns lie past d loads (see reduce_kernel). */
static __device__ uint4 g_red_zero;

struct reduce_args {
    const void *X;
    int64_t n, d, ld, batch_stride, k, batch;
    int64_t parts, src_n; /* fkm_cuda_update_parts */
    int64_t upp;            /* units per problem: ceil(n / unit) */
    const float *weights;
    const float *centroids;
    const uint32_t *order, *sorted_g;
    const unsigned long long *mat;
    double *sums, *weight;       /* final outputs (NULL: not wanted) */
    double *part_sum, *part_w;   /* partials of clusters spanning several units */
    double *part_obj;            /* per unit */
    double *point_obj;           /* NULL: not wanted */
    int want_obj, accumulate, cosine, dot, vec_ok;
    int lpr_log2, col_tiles;
    int unit; /* sorted points per work unit (unit_rows) */
};

/* One warp per unit u = (problem p = u / upp, i = u % upp): the sorted points
 * [P0 + i*unit, min(P0 + (i+1)*unit, P1)) of the problem's range [P0, P1) (none past P1: only
 * with out-of-range labels). Units never cross problems, so a problem's results do not depend
 * on the other problems of the call. The unit's ids, clusters and weights are staged in the
 * warp's shared memory, then its segments (runs of one cluster) are reduced one after the
 * other (see the file comment for the layout and orders). A segment that is its whole cluster
 * (its neighbours in the problem's sorted order, inside or outside the unit, belong to other
 * clusters) is written to sums/weight directly; otherwise to the partial slot 2u (the unit's
 * first segment) or 2u + 1 (its last one, which then starts after the unit's start): only
 * these two can extend past the unit. The weighted objective of the unit's segments goes to
 * part_obj[u]. */
template <fkm_dtype DT, int V>
__global__ void __launch_bounds__(RED_WARPS * 32, 4) reduce_kernel(reduce_args a)
{
    typedef typename fkm_elem<DT>::type E;
    constexpr int VEC = 16 / (int)sizeof(E);
    /* The variant's flags: RED_GEN reads them from a; the lean variants fix them (reduce_variant
     * picks one only where a's flags are these), so the same source expressions fold to
     * constants there. */
    constexpr bool GEN = V == RED_GEN;
    const bool cosine = GEN && a.cosine;
    const bool dot = GEN ? a.dot != 0 : V == RED_DOT;
    double *const point_obj = GEN ? a.point_obj : nullptr;
    __shared__ uint32_t s_id[RED_WARPS][UNIT_MAX];
    __shared__ uint32_t s_g[RED_WARPS][UNIT_MAX];
    __shared__ float s_w[RED_WARPS][UNIT_MAX];
    __shared__ double s_aux[RED_WARPS][UNIT_MAX]; /* several column tiles: a point's objective so far */
    __shared__ double s_inv[RED_WARPS][UNIT_MAX]; /* cosine with several column tiles: 1 / norm */
    /* the unit's row_base(p) and (p - s)*k (see below), read back where needed rather than
     * held in registers across the segment loop (the f16 kernel is at its limit of 128) */
    __shared__ long long s_base[RED_WARPS][2];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int lg = a.lpr_log2, LPR = 1 << lg, R = 32 >> lg;
    const int lir = lane & (LPR - 1), grp = lane >> lg;
    const int64_t d = a.d;
    const int CT = a.col_tiles;
    const bool want_sum = a.sums != NULL, want_w = a.weight != NULL;
    uint32_t *sid = s_id[warp], *sg = s_g[warp];
    float *sw = s_w[warp];
    double *saux = s_aux[warp], *sinv = s_inv[warp];
    const int unit = a.unit;
    const int64_t units = a.batch * a.upp, kt = a.k;
    for (int64_t u = (int64_t)blockIdx.x * RED_WARPS + warp; u < units; u += (int64_t)gridDim.x * RED_WARPS) {
        const int64_t p = u / a.upp, s = p / a.parts, j = p - s * a.parts;
        const int64_t P0 = (int64_t)a.mat[p * kt], P1 = (int64_t)a.mat[(p + 1) * kt];
        const int64_t p0 = P0 + (u - p * a.upp) * unit;
        if (p0 >= P1) continue; /* warp-uniform */
        const int np = (int)(P1 - p0 < unit ? P1 - p0 : unit);
        const int64_t rb = s * a.src_n + j * a.n; /* row_base(p): labels, weights, point_obj */
        const E *Xb = (const E *)a.X + s * a.batch_stride + j * a.n * a.ld;
        if (lane == 0) {
            s_base[warp][0] = rb;
            s_base[warp][1] = (p - s) * a.k; /* cluster g = p*k + L takes centroid s*k + L */
        }
        for (int t = lane; t < np; t += 32) {
            sid[t] = a.order[p0 + t];
            sg[t] = a.sorted_g[p0 + t];
        }
        const uint32_t prev_g = p0 > P0 ? a.sorted_g[p0 - 1] : 0xffffffffu;
        const uint32_t next_g = p0 + np < P1 ? a.sorted_g[p0 + np] : 0xffffffffu;
        __syncwarp();
        for (int t = lane; t < np; t += 32) {
            const float wt = a.weights ? a.weights[rb + sid[t]] : 1.0f;
            if (GEN) sw[t] = wt;
            else saux[t] = (double)wt; /* lean: saux is free (no point_obj), the weight read as a double */
        }
        /* cosine with several column tiles: the norms first (per lane over tiles and columns,
         * then the row's lanes by butterfly) */
        if (cosine && CT > 1) {
            for (int r0 = 0; r0 < np; r0 += R) {
                const int r = r0 + grp;
                const bool valid = r < np;
                const E *row = valid ? Xb + (int64_t)sid[r] * a.ld : Xb;
                double ss = 0.0;
                for (int ct = 0; ct < CT; ct++) {
                    const int64_t cb = ((int64_t)ct * LPR + lir) * VEC;
                    const uint4 raw = valid ? load_vec<DT>(row, cb, d, a.vec_ok) : make_uint4(0, 0, 0, 0);
                    double x[VEC];
                    widen_t<DT>::run(raw, x);
#pragma unroll
                    for (int v = 0; v < VEC; v++) ss = fma(x[v], x[v], ss);
                }
                for (int off = 1; off < LPR; off <<= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
                if (valid && lir == 0) sinv[r] = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
            }
        }
        __syncwarp();

        double wo = 0.0;  /* weighted objective of the unit's points */
        int q = 0;
        while (q < np) { /* segments; everything here is warp-uniform */
            const uint32_t g = sg[q];
            int e = q + 1;
            while (e < np) {
                const int idx = e + lane;
                const unsigned diff = __ballot_sync(0xffffffffu, idx < np && sg[idx] != g);
                if (diff) {
                    e += __ffs(diff) - 1;
                    break;
                }
                e += 32;
            }
            if (e > np) e = np;
            const float *cen = a.centroids + ((int64_t)g - s_base[warp][1]) * d;
            const bool whole = (q > 0 || prev_g != g) && (e < np || next_g != g);
            const int steps = (e - q + R - 1) / R;
            double seg_o = 0.0; /* per lane: its columns' share of the segment's objective */
            double seg_w = 0.0; /* per group, lanes lir == 0 */
            for (int ct = 0; ct < CT; ct++) {
                const int64_t cb = ((int64_t)ct * LPR + lir) * VEC;
                const bool last = ct == CT - 1;
                double c[VEC], acc[VEC];
#pragma unroll
                for (int v = 0; v < VEC; v++) {
                    c[v] = (a.want_obj && cb + v < d) ? (double)cen[cb + v] : 0.0;
                    acc[v] = 0.0;
                }
                /* lean: the lane's vector is whole or past d (d % VEC == 0, vec_ok), and a row's
                 * byte offset is sid * ldb with ldb < 2^32: one 32x32->64 multiply-add per row */
                const char *Xc = (const char *)(Xb + cb);
                const uint32_t ldb = (uint32_t)(a.ld * (int64_t)sizeof(E));
                const bool lane_in = cb < d;
                int i0 = 0;
                if (!GEN) {
                    /* lean, steps whose every group has a row (r < e for all, so valid is true):
                     * the checked loop below with valid = true, ids and weights read through
                     * pointers advanced per step, and a lane past d reading a zero vector
                     * (g_red_zero, stride 0), which is what load_vec gives it (+0.0 bits) */
                    const int full = (e - q) / R;
                    const uint32_t *sp = sid + q + grp;
                    const double *wp = saux + q + grp;
                    const char *Xl = lane_in ? Xc : (const char *)&g_red_zero;
                    const uint32_t ldl = lane_in ? ldb : 0u;
                    for (; i0 + RED_UNROLL <= full; i0 += RED_UNROLL, sp += R * RED_UNROLL, wp += R * RED_UNROLL) {
                        uint4 raw[RED_UNROLL];
#pragma unroll
                        for (int uu = 0; uu < RED_UNROLL; uu++)
                            raw[uu] = __ldcs((const uint4 *)(Xl + (uint64_t)sp[R * uu] * ldl));
#pragma unroll
                        for (int uu = 0; uu < RED_UNROLL; uu++) {
                            double x[VEC];
                            widen_t<DT>::run(raw[uu], x);
                            if (DT == FKM_F64) {
#pragma unroll
                                for (int v = 0; v < VEC; v++) x[v] = (double)(float)x[v];
                            }
                            const double w = wp[R * uu];
                            if (a.want_obj) {
                                const double o = lane_objective(x, c, dot);
                                seg_o = fma(w, dot ? -o : o, seg_o);
                            }
                            if (last && lir == 0) seg_w += w;
                            if (want_sum) {
#pragma unroll
                                for (int v = 0; v < VEC; v++) acc[v] = fma(w, x[v], acc[v]);
                            }
                        }
                    }
                }
                /* the checked loop: all of RED_GEN's steps, the lean variants' last ones */
                for (; i0 < steps; i0 += RED_UNROLL) {
                    uint4 raw[RED_UNROLL];
#pragma unroll
                    for (int uu = 0; uu < RED_UNROLL; uu++) {
                        const int r = q + grp + R * (i0 + uu);
                        if (GEN)
                            raw[uu] = r < e ? load_vec<DT>(Xb + (int64_t)sid[r] * a.ld, cb, d, a.vec_ok)
                                            : make_uint4(0, 0, 0, 0);
                        else
                            raw[uu] = (lane_in && r < e) ? __ldcs((const uint4 *)(Xc + (uint64_t)sid[r] * ldb))
                                                         : make_uint4(0, 0, 0, 0);
                    }
#pragma unroll
                    for (int uu = 0; uu < RED_UNROLL; uu++) {
                        if (i0 + uu >= steps) break; /* warp-uniform */
                        const int r = q + grp + R * (i0 + uu);
                        const bool valid = r < e;
                        double x[VEC];
                        widen_t<DT>::run(raw[uu], x);
                        if (cosine) {
                            double inv;
                            if (CT == 1) {
                                double ss = 0.0;
#pragma unroll
                                for (int v = 0; v < VEC; v++) ss = fma(x[v], x[v], ss);
                                for (int off = 1; off < LPR; off <<= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
                                inv = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
                            } else {
                                inv = valid ? sinv[r] : 0.0;
                            }
                            /* the point as f32, normalised like fkm_load_row (norm in double, rounded once) */
#pragma unroll
                            for (int v = 0; v < VEC; v++) x[v] = (double)(inv != 0.0 ? (float)(x[v] * inv) : (float)x[v]);
                        } else if (DT == FKM_F64) {
#pragma unroll
                            for (int v = 0; v < VEC; v++) x[v] = (double)(float)x[v];
                        }
                        const double w = valid ? (GEN ? (double)sw[r] : saux[r]) : 0.0;
                        if (a.want_obj) {
                            double o = lane_objective(x, c, dot); /* this lane's columns of the point's objective */
                            /* the segment's objective: each lane adds w times its own share,
                             * rows in order, tiles in order; the lanes are added at the end of
                             * the segment (no butterfly per row) */
                            if (valid) seg_o = fma(w, dot ? -o : o, seg_o);
                            if (point_obj) { /* each point's objective: the row's lanes by butterfly */
                                for (int off = 1; off < LPR; off <<= 1) o += __shfl_xor_sync(0xffffffffu, o, off);
                                /* only the group's lane lir == 0 uses o below, so only it reads and
                                 * writes saux[r]: no lane reads what another writes (racecheck) */
                                if (CT > 1 && valid && lir == 0) {
                                    if (ct > 0) o = saux[r] + o;
                                    if (!last) saux[r] = o;
                                }
                                if (last && valid && lir == 0) point_obj[s_base[warp][0] + sid[r]] = dot ? -o : o;
                            }
                        }
                        if (last && valid && lir == 0) seg_w += w;
                        if (want_sum) {
#pragma unroll
                            for (int v = 0; v < VEC; v++) acc[v] = fma(w, x[v], acc[v]); /* w = 0: +0, no change */
                        }
                    }
                }
                if (want_sum) {
                    for (int off = LPR; off < 32; off <<= 1) {
#pragma unroll
                        for (int v = 0; v < VEC; v++) acc[v] += __shfl_xor_sync(0xffffffffu, acc[v], off);
                    }
                    if (grp == 0) {
                        if (whole) {
                            double *o = a.sums + (int64_t)g * d;
#pragma unroll
                            for (int v = 0; v < VEC; v++)
                                if (cb + v < d) o[cb + v] = a.accumulate ? o[cb + v] + acc[v] : acc[v];
                        } else {
                            double *o = a.part_sum + (2 * u + (q > 0)) * d;
#pragma unroll
                            for (int v = 0; v < VEC; v++)
                                if (cb + v < d) o[cb + v] = acc[v];
                        }
                    }
                }
                __syncwarp(); /* saux written by lane lir == 0 is read by its group in the next tile */
            }
            for (int off = 1; off < 32; off <<= 1) seg_o += __shfl_xor_sync(0xffffffffu, seg_o, off);
            for (int off = LPR; off < 32; off <<= 1) seg_w += __shfl_xor_sync(0xffffffffu, seg_w, off);
            if (want_w && lane == 0) {
                if (whole) a.weight[g] = a.accumulate ? a.weight[g] + seg_w : seg_w;
                else a.part_w[2 * u + (q > 0)] = seg_w;
            }
            wo += seg_o;
            q = e;
        }
        if (lane == 0) a.part_obj[u] = wo;
        __syncwarp(); /* the shared arrays are reused by the next unit */
    }
}

/* ---------------------------------------------------------------- 5. combine */

struct combine_args {
    const unsigned long long *mat; /* first sorted slot per cluster, then the total */
    int64_t d, k, batch, upp;
    const uint32_t *list;
    const int *nlist;
    const double *part_sum, *part_w, *part_obj;
    double *sums, *weight, *objective;
    int accumulate;
    int unit; /* sorted points per reduce work unit */
};

/* Virtual blocks [0, nlist): listed cluster g (several units, or empty), COMB_COLS columns per
 * pass: warp w adds the cluster's units w, w + COMB_WARPS, ... in order (4 columns per lane,
 * COMB_BATCH units loaded ahead), then the warps are added in warp order. Virtual blocks after
 * that: problem b's objective: thread t adds the problem's units t, t + OBJ_THREADS, ... in
 * order, then a fixed tree. Units are counted from the problem's first (the reduce's aligned
 * units), so every order here is the same whatever else the call holds. */
__global__ void __launch_bounds__(OBJ_THREADS) combine_kernel(combine_args a)
{
    __shared__ double s_red[COMB_WARPS][COMB_COLS];
    __shared__ double s_wred[COMB_WARPS];
    __shared__ double s_tree[OBJ_THREADS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t nl = (a.sums || a.weight) ? (int64_t)*a.nlist : 0;
    const int64_t nvb = nl + (a.objective ? a.batch : 0);
    const int64_t d = a.d;
    for (int64_t vb = blockIdx.x; vb < nvb; vb += gridDim.x) {
        if (vb < nl) {
            const int64_t g = a.list[vb], p = g / a.k;
            const int64_t P0 = (int64_t)a.mat[p * a.k];
            const int64_t start = (int64_t)a.mat[g] - P0, stop = (int64_t)a.mat[g + 1] - P0;
            const int64_t nu = stop > start ? (stop - 1) / a.unit - start / a.unit + 1 : 0;
            /* the cluster's i-th unit u0 + i holds its partial at slot 2 (u0 + i), except the
             * first when the cluster starts inside it (that unit's last segment: 2 u0 + 1) */
            const int64_t u0 = p * a.upp + start / a.unit, first = start % a.unit != 0;
            const int64_t cols = a.sums ? d : 1;
            for (int64_t c0 = 0; c0 < cols; c0 += COMB_COLS) {
                const bool do_w = a.weight && c0 == 0;
                double acc[4] = {0.0, 0.0, 0.0, 0.0}, wacc = 0.0;
                for (int64_t i0 = warp; i0 < nu; i0 += (int64_t)COMB_WARPS * COMB_BATCH) {
                    double vs[COMB_BATCH][4], vw[COMB_BATCH];
#pragma unroll
                    for (int q = 0; q < COMB_BATCH; q++) {
                        const int64_t i = i0 + (int64_t)q * COMB_WARPS;
                        const bool ok = i < nu;
                        const int64_t slot = 2 * (u0 + i) + (i == 0 && first);
#pragma unroll
                        for (int v = 0; v < 4; v++) {
                            const int64_t j = c0 + lane + 32 * v;
                            vs[q][v] = ok && a.sums && j < d ? a.part_sum[slot * d + j] : 0.0;
                        }
                        vw[q] = ok && do_w ? a.part_w[slot] : 0.0;
                    }
#pragma unroll
                    for (int q = 0; q < COMB_BATCH; q++) {
                        if (i0 + (int64_t)q * COMB_WARPS >= nu) break;
#pragma unroll
                        for (int v = 0; v < 4; v++) acc[v] += vs[q][v];
                        wacc += vw[q];
                    }
                }
#pragma unroll
                for (int v = 0; v < 4; v++) s_red[warp][lane + 32 * v] = acc[v];
                if (lane == 0) s_wred[warp] = wacc;
                __syncthreads();
                if (threadIdx.x < COMB_COLS) {
                    const int64_t j = c0 + threadIdx.x;
                    if (a.sums && j < d) {
                        double tot = s_red[0][threadIdx.x];
                        for (int w = 1; w < COMB_WARPS; w++) tot += s_red[w][threadIdx.x];
                        double *o = a.sums + g * d + j;
                        *o = a.accumulate ? *o + tot : tot;
                    }
                }
                if (do_w && threadIdx.x == 0) {
                    double tot = s_wred[0];
                    for (int w = 1; w < COMB_WARPS; w++) tot += s_wred[w];
                    double *o = a.weight + g;
                    *o = a.accumulate ? *o + tot : tot;
                }
                __syncthreads();
            }
        } else {
            const int64_t b = vb - nl;
            const int64_t P0 = (int64_t)a.mat[b * a.k], P1 = (int64_t)a.mat[(b + 1) * a.k];
            double acc = 0.0;
            if (P1 > P0) {
                const int64_t ua = b * a.upp, ub = ua + (P1 - P0 - 1) / a.unit; /* the problem's units */
                for (int64_t u0 = ua + threadIdx.x; u0 <= ub; u0 += (int64_t)OBJ_THREADS * COMB_BATCH) {
                    double v[COMB_BATCH];
#pragma unroll
                    for (int q = 0; q < COMB_BATCH; q++) {
                        const int64_t u = u0 + (int64_t)q * OBJ_THREADS;
                        v[q] = u <= ub ? a.part_obj[u] : 0.0;
                    }
                    /* in unit order; a unit past the end adds +0.0 (x + 0.0 == x for every x
                     * but -0.0, and the pattern is fixed, so it stays deterministic) */
#pragma unroll
                    for (int q = 0; q < COMB_BATCH; q++) acc += v[q];
                }
            }
            s_tree[threadIdx.x] = acc;
            __syncthreads();
            for (int h = OBJ_THREADS / 2; h > 0; h >>= 1) {
                if ((int)threadIdx.x < h) s_tree[threadIdx.x] += s_tree[threadIdx.x + h];
                __syncthreads();
            }
            if (threadIdx.x == 0) a.objective[b] = a.accumulate ? a.objective[b] + s_tree[0] : s_tree[0];
            __syncthreads();
        }
    }
}

/* ---------------------------------------------------------------- driver */

/* The variant for a call. The lean ones are the general kernel's source with flags fixed to the
 * values they have in a (cosine 0, point_obj NULL, dot 0 or 1), a row's loads issued directly
 * (vec_ok and d % VEC == 0: load_vec would take its 16-byte path for a vector inside the row
 * and give zeros for one past d, which is what they do) and the weights read from shared memory
 * as doubles (the same (double)w): every floating-point operation and its operands are those of
 * RED_GEN, in the same order, so the outputs are the same bits. */
static int reduce_variant(const reduce_args &a, size_t es)
{
    const int64_t vec = 16 / (int64_t)es;
    if (a.cosine || a.point_obj || !a.vec_ok || a.d % vec != 0) return RED_GEN;
    if (a.ld <= 0 || a.ld > (int64_t)(UINT32_MAX / es)) return RED_GEN;
    return a.dot ? RED_DOT : RED_L2;
}

template <fkm_dtype DT>
static void launch_reduce(const reduce_args &a, int64_t units, cudaStream_t stream)
{
    const unsigned grid = grid_for(fkm_ceil_div(units, RED_WARPS));
    switch (reduce_variant(a, sizeof(typename fkm_elem<DT>::type))) {
    case RED_L2: reduce_kernel<DT, RED_L2><<<grid, RED_WARPS * 32, 0, stream>>>(a); break;
    case RED_DOT: reduce_kernel<DT, RED_DOT><<<grid, RED_WARPS * 32, 0, stream>>>(a); break;
    default: reduce_kernel<DT, RED_GEN><<<grid, RED_WARPS * 32, 0, stream>>>(a); break;
    }
}

fkm_status fkm_cuda_update(fkm_ctx *ctx, fkm_cuda_update_ws *ws, const fkm_dev_problem *pb,
                           const int32_t *labels, const float *centroids, double *sums,
                           double *weight, double *point_obj, double *objective, int accumulate,
                           cudaStream_t stream)
{
    return fkm_cuda_update_parts(ctx, ws, pb, pb ? pb->n : 0, labels, centroids, sums, weight, point_obj, objective,
                                 accumulate, stream);
}

fkm_status fkm_cuda_update_parts(fkm_ctx *ctx, fkm_cuda_update_ws *ws, const fkm_dev_problem *pb, int64_t src_n,
                                 const int32_t *labels, const float *centroids, double *sums, double *weight,
                                 double *point_obj, double *objective, int accumulate, cudaStream_t stream)
{
    if (!ws || !pb || !labels)
        return fkm_fail(ctx, FKM_E_NULL, "fkm_cuda_update: %s is NULL", !ws ? "workspace" : !pb ? "problem" : "labels");
    if (!pb->X || !centroids)
        return fkm_fail(ctx, FKM_E_NULL, "fkm_cuda_update: %s is NULL", !pb->X ? "X" : "centroids");
    if (pb->k != ws->k || pb->d != ws->d || pb->n < 1 || pb->n > ws->n || pb->batch < 1 || pb->batch > ws->batch)
        return fkm_fail(ctx, FKM_E_INVALID,
                        "fkm_cuda_update: problem (batch %lld, n %lld, k %lld, d %lld) does not fit the workspace "
                        "(batch <= %lld, n <= %lld, k = %lld, d = %lld)",
                        (long long)pb->batch, (long long)pb->n, (long long)pb->k, (long long)pb->d,
                        (long long)ws->batch, (long long)ws->n, (long long)ws->k, (long long)ws->d);
    if (pb->ld < pb->d)
        return fkm_fail(ctx, FKM_E_INVALID, "fkm_cuda_update: ld = %lld < d = %lld", (long long)pb->ld, (long long)pb->d);
    if (pb->dtype != FKM_F32 && pb->dtype != FKM_F16 && pb->dtype != FKM_BF16 && pb->dtype != FKM_F64)
        return fkm_fail(ctx, FKM_E_DTYPE, "fkm_cuda_update: unknown dtype %d", (int)pb->dtype);
    if (pb->metric != FKM_METRIC_L2 && pb->metric != FKM_METRIC_COSINE && pb->metric != FKM_METRIC_DOT)
        return fkm_fail(ctx, FKM_E_INVALID, "fkm_cuda_update: unknown metric %d", (int)pb->metric);
    const int64_t parts = src_n >= 1 ? fkm_ceil_div(src_n, pb->n) : 0; /* call problems per source problem */
    if (parts < 1 || pb->batch % parts != 0)
        return fkm_fail(ctx, FKM_E_INVALID, "fkm_cuda_update: problems of %lld rows in parts of %lld: a batch of %lld "
                        "is not a multiple of %lld parts", (long long)src_n, (long long)pb->n, (long long)pb->batch,
                        (long long)parts);
    if (!sums && !weight && !point_obj && !objective) return FKM_OK;

    const int64_t n = pb->n, k = pb->k, d = pb->d, batch = pb->batch;
    const int64_t clusters = batch * k;
    const int64_t tiles = ws->counting ? fkm_ceil_div(n, ws->tile) : 1;
    const int64_t mat_n = mat_entries(ws, batch);
    const int64_t upp = fkm_ceil_div(n, ws->unit), units = batch * upp; /* aligned units (the reduce) */
    if (mat_n != ws->q_mat_n || batch * n != ws->q_n) { /* CUB's size query costs runtime calls: once per shape */
        FKM_CUDA_TRY(ctx, cub_bytes_needed(ws, mat_n, batch * n, &ws->q_bytes));
        ws->q_mat_n = mat_n;
        ws->q_n = batch * n;
    }
    if (mat_n > ws->mat_cap || (ws->counting && batch * tiles * k > ws->cnt_cap) || units > ws->units_cap ||
        2 * units > ws->part_cap || ws->q_bytes > ws->cub_bytes)
        return fkm_fail(ctx, FKM_E_INTERNAL, "fkm_cuda_update: workspace too small (a bug)");
    const int timing = ws->timing && ws->events_ok;
    const int want_clusters = sums != NULL || weight != NULL;

    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[0], stream));
    /* 1. histogram */
    if (ws->counting) {
        hist_tiles_kernel<<<grid_for(batch * tiles), HIST_THREADS, (size_t)k * sizeof(uint32_t), stream>>>(
            labels, n, k, batch, parts, src_n, tiles, ws->tile, ws->cnt);
        FKM_CUDA_LAUNCHED(ctx, "hist_tiles_kernel");
    } else {
        FKM_CUDA_TRY(ctx, cudaMemsetAsync(ws->mat, 0, (size_t)(clusters + 1) * sizeof(unsigned long long), stream));
        hist_global_kernel<<<grid_for(fkm_ceil_div(batch * n, 256)), 256, 0, stream>>>(labels, n, k, batch, parts,
                                                                                     src_n, ws->mat);
        FKM_CUDA_LAUNCHED(ctx, "hist_global_kernel");
    }
    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[1], stream));
    /* 2. scan: counting path, the column pass (tile offsets within each cluster, the cluster
     * totals into mat); both paths, the exclusive scan of the batch*k + 1 cluster totals in
     * place (the last entry's exclusive sum is the total); then the combine's list */
    {
        if (ws->counting) {
            const int64_t vblocks = batch * fkm_ceil_div(k, 32);
            colscan_kernel<<<grid_for(vblocks < 65536 ? vblocks : 65536), COL_WARPS * 32, 0, stream>>>(ws->cnt, k, batch,
                                                                                                  tiles, ws->mat);
            FKM_CUDA_LAUNCHED(ctx, "colscan_kernel");
        }
        size_t bytes = ws->cub_bytes;
        FKM_CUDA_TRY(ctx, cub::DeviceScan::ExclusiveSum(ws->cub_tmp, bytes, ws->mat, ws->mat, mat_n, stream));
        if (want_clusters) {
            FKM_CUDA_TRY(ctx, cudaMemsetAsync(ws->nlist, 0, sizeof(int), stream));
            const int64_t blocks = fkm_ceil_div(clusters, 256);
            list_kernel<<<grid_for(blocks < 4096 ? blocks : 4096), 256, 0, stream>>>(ws->mat, clusters, k, ws->unit,
                                                                                   ws->list, ws->nlist);
            FKM_CUDA_LAUNCHED(ctx, "list_kernel");
        }
    }
    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[2], stream));
    /* 3. scatter */
    if (ws->counting) {
        const int threads = 32 * ws->warps;
        scatter_fn *const scatter = ws->stage ? scatter_kernel<true> : scatter_kernel<false>;
        scatter<<<grid_for(batch * tiles), threads, ws->scatter_smem, stream>>>(
            labels, n, k, batch, parts, src_n, tiles, ws->tile, ws->stage ? ws->stage : ws->tile, ws->mat, ws->cnt,
            ws->order, ws->sorted_g);
        FKM_CUDA_LAUNCHED(ctx, "scatter_kernel");
    } else {
        const int64_t blocks = fkm_ceil_div(batch * n, 256);
        keys_kernel<<<grid_for(blocks < 65536 ? blocks : 65536), 256, 0, stream>>>(labels, n, k, batch, parts, src_n,
                                                                                     ws->keys, ws->iota);
        FKM_CUDA_LAUNCHED(ctx, "keys_kernel");
        size_t bytes = ws->cub_bytes;
        FKM_CUDA_TRY(ctx, cub::DeviceRadixSort::SortPairs(ws->cub_tmp, bytes, (const uint32_t *)ws->keys, ws->sorted_g,
                                                          (const uint32_t *)ws->iota, ws->order, batch * n, 0,
                                                          ws->sort_bits, stream));
    }
    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[3], stream));
    /* 4. reduce */
    {
        const int es = (int)fkm_dtype_size(pb->dtype);
        const int vec = 16 / es;
        const int64_t nv = fkm_ceil_div(d, vec);
        int lg = 0;
        while (lg < 5 && ((int64_t)1 << lg) < nv) lg++;
        reduce_args a;
        a.X = pb->X;
        a.n = n;
        a.d = d;
        a.ld = pb->ld;
        a.batch_stride = pb->batch_stride;
        a.k = k;
        a.batch = batch;
        a.parts = parts;
        a.src_n = src_n;
        a.upp = upp;
        a.weights = pb->weights;
        a.centroids = centroids;
        a.order = ws->order;
        a.sorted_g = ws->sorted_g;
        a.mat = ws->mat;
        a.sums = sums;
        a.weight = weight;
        a.part_sum = ws->part_sum;
        a.part_w = ws->part_w;
        a.part_obj = ws->part_obj;
        a.point_obj = point_obj;
        a.want_obj = point_obj != NULL || objective != NULL;
        a.accumulate = accumulate != 0;
        a.cosine = pb->metric == FKM_METRIC_COSINE;
        a.dot = pb->metric == FKM_METRIC_DOT;
        a.vec_ok = ((uintptr_t)pb->X % 16 == 0) && ((pb->ld * es) % 16 == 0) &&
                   (batch == parts || (pb->batch_stride * es) % 16 == 0);
        a.lpr_log2 = lg;
        a.col_tiles = (int)fkm_ceil_div(d, ((int64_t)vec) << lg);
        a.unit = ws->unit;
        FKM_DISPATCH_DTYPE(pb->dtype, launch_reduce<DT>(a, units, stream));
        FKM_CUDA_LAUNCHED(ctx, "reduce_kernel");
    }
    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[4], stream));
    /* 5. combine */
    if (want_clusters || objective) {
        combine_args a;
        a.mat = ws->mat;
        a.d = d;
        a.k = k;
        a.batch = batch;
        a.upp = upp;
        a.list = ws->list;
        a.nlist = ws->nlist;
        a.part_sum = ws->part_sum;
        a.part_w = ws->part_w;
        a.part_obj = ws->part_obj;
        a.sums = sums;
        a.weight = weight;
        a.objective = objective;
        a.accumulate = accumulate != 0;
        a.unit = ws->unit;
        const int64_t nvb = (want_clusters ? (clusters < 2048 ? clusters : 2048) : 0) + (objective ? batch : 0);
        combine_kernel<<<grid_for(nvb), OBJ_THREADS, 0, stream>>>(a);
        FKM_CUDA_LAUNCHED(ctx, "combine_kernel");
    }
    if (timing) {
        FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[5], stream));
        FKM_CUDA_TRY(ctx, cudaEventSynchronize(ws->ev[5]));
        float *t[5] = {&ws->times.histogram, &ws->times.scan, &ws->times.scatter, &ws->times.reduce,
                       &ws->times.combine};
        for (int i = 0; i < 5; i++) FKM_CUDA_TRY(ctx, cudaEventElapsedTime(t[i], ws->ev[i], ws->ev[i + 1]));
    }
    return FKM_OK;
}

/* ---------------------------------------------------------------- fold over pieces */

struct fold_args {
    const double *in[3]; /* sums, weights, objectives of the pieces (NULL: skipped) */
    double *out[3];
    int64_t m[3];        /* values per problem: k*d, k, 1 */
    int64_t batch, parts;
};

/* One thread per output value (the three arrays one after the other, one launch): the
 * problem's pieces in order, the first copied, then o = o + piece, a plain double add: what
 * the reduce and the combine do with accumulate = 1. */
__global__ void fold_kernel(fold_args a)
{
    const int64_t n0 = a.in[0] ? a.batch * a.m[0] : 0, n1 = a.in[1] ? a.batch * a.m[1] : 0;
    const int64_t total = n0 + n1 + (a.in[2] ? a.batch * a.m[2] : 0);
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
        /* which array (selected, not indexed: a runtime index puts the arrays on the stack) */
        const int w = t < n0 ? 0 : t < n0 + n1 ? 1 : 2;
        const int64_t e = t - (w == 0 ? 0 : w == 1 ? n0 : n0 + n1), m = w == 0 ? a.m[0] : w == 1 ? a.m[1] : a.m[2];
        const double *in = (w == 0 ? a.in[0] : w == 1 ? a.in[1] : a.in[2]) + (e / m) * a.parts * m + e % m;
        double *out = w == 0 ? a.out[0] : w == 1 ? a.out[1] : a.out[2];
        double o = in[0];
        for (int64_t j = 1; j < a.parts; j++) o = o + in[j * m];
        out[e] = o;
    }
}

fkm_status fkm_cuda_update_fold(fkm_ctx *ctx, int64_t batch, int64_t parts, int64_t k, int64_t d, const double *psums,
                                const double *pweight, const double *pobj, double *sums, double *weight,
                                double *objective, cudaStream_t stream)
{
    if (batch < 1 || parts < 1)
        return fkm_fail(ctx, FKM_E_INTERNAL, "fkm_cuda_update_fold: batch %lld, %lld parts", (long long)batch,
                        (long long)parts);
    fold_args a = {{sums ? psums : NULL, weight ? pweight : NULL, objective ? pobj : NULL},
                   {sums, weight, objective}, {k * d, k, 1}, batch, parts};
    int64_t total = 0;
    for (int i = 0; i < 3; i++) total += a.in[i] ? batch * a.m[i] : 0;
    if (total == 0) return FKM_OK;
    const int64_t blocks = fkm_ceil_div(total, 256);
    fold_kernel<<<grid_for(blocks < 8192 ? blocks : 8192), 256, 0, stream>>>(a);
    FKM_CUDA_LAUNCHED(ctx, "fold_kernel");
    return FKM_OK;
}
