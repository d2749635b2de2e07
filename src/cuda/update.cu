/* update.cu — the sort-inverse centroid update on the GPU (see update.cuh for the contract).
 *
 * Pipeline, all in the caller's stream (five stages, timed separately on request):
 *
 *  1. histogram  counts of each label per tile of consecutive points
 *  2. scan       exclusive sum of the counts (CUB), laid out label-major then tile-major, so
 *                that entry (cluster, tile) is the first sorted slot of that cluster's points
 *                of that tile; then the work-item map (slot -> cluster) is built from it
 *  3. scatter    stable counting-sort scatter of point ids into label order
 *  4. reduce     one block per work item = (cluster, chunk of <= CHUNK consecutive sorted
 *                points): weighted column sums, weight and objective of the item, in double
 *  5. combine    per cluster, its items in a fixed order; per problem, the objective of all
 *                its items in a fixed order
 *
 * Determinism. Every floating-point sum has an order fixed by compile-time constants (CHUNK,
 * RED_WARPS, warp size, COMB_WARPS, OBJ_THREADS), never by the grid size or the GPU: the
 * kernels loop over "virtual blocks" (grid-stride), and a virtual block's work and order do
 * not depend on which physical block runs it. There are no floating-point atomics; integer
 * atomics are used only for counts (exact whatever their order). The sort is stable, and a
 * stable sort has exactly one result, so its internal tiling cannot change anything either.
 * (Bitwise equality holds for one binary on one architecture: nvcc may fuse multiply-adds
 * differently in the sm_80 and sm_90a code.) A workspace serves one stream at a time.
 *
 * Two sort paths, same result (the unique stable order):
 *  - k <= SORT_MAX_K: a counting sort with per-tile counts (one block per tile of `tile`
 *    consecutive points, the tile split into one contiguous range per warp). Reads the labels
 *    three times (histogram, then the scatter's count and write passes over the same tile,
 *    the second mostly from L1/L2) and writes the ids once: a few bytes per point next to the
 *    row itself.
 *  - larger k: per-tile count matrices would be too big (k x tiles) or tiles too long, so the
 *    ids are sorted with cub::DeviceRadixSort::SortPairs on the label (stable LSD radix sort
 *    restricted to ceil(log2 k) bits), one problem at a time; the histogram is then a plain
 *    per-cluster count (tiles = 1) that only gives the cluster offsets.
 *
 * Memory: X is read once in the reduce (rows in sorted order, lanes over columns so that each
 * row read is coalesced), except for cosine with d > DCOL, where a first pass over each row
 * computes its norm (usually from L1/L2). Everything else is O(n) 4-byte words plus
 * O(items x d) doubles of partials, with items <= n / CHUNK + k. */
#include "cuda/update.cuh"

#include <cub/cub.cuh>
#include <limits.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- fixed constants */

/* Points per work item. Part of the summation order: never derive it from the device. */
#define CHUNK 512
/* Warps of a reduce block. Point p of an item is handled by warp p % RED_WARPS, and the warps'
 * column sums are added in warp order: also part of the summation order. */
#define RED_WARPS 8
#define RED_THREADS (RED_WARPS * 32)
/* Columns per column tile of the reduce: VPL values per lane, column j of a tile at lane
 * j % 32, slot j / 32, so that one warp load reads 32 consecutive elements of a row. */
#define VPL 4
#define DCOL (32 * VPL)
/* Rows loaded together by a warp before they are used (memory-level parallelism). */
#define UNROLL 4
/* Combine: warps per cluster block (item i of a cluster goes to warp i % COMB_WARPS; the warps
 * are then added in order) and threads of an objective block (fixed-shape tree). */
#define COMB_WARPS 8
#define OBJ_THREADS 256
/* Combine: partials loaded ahead per thread before they are added (in order). */
#define COMB_BATCH 8
/* Counting-sort path limits (see sort_shape). */
#define SORT_MAX_K 4096
#define SORT_SMEM_WORDS 8192

static_assert(RED_THREADS >= DCOL, "one thread per column of a tile combines the warps");
static_assert((OBJ_THREADS & (OBJ_THREADS - 1)) == 0, "tree reduction needs a power of two");

/* ---------------------------------------------------------------- workspace */

struct fkm_cuda_update_ws {
    int64_t batch, n, k, d;   /* shape at create: batch and n are maxima, k and d exact */
    int counting;             /* 1 = counting-sort path, 0 = radix-sort path */
    int64_t tile;             /* counting path: points per tile (1 tile = whole problem otherwise) */
    int warps;                /* counting path: warps per sort block */
    int sort_bits;            /* radix path: key bits */

    unsigned long long *mat;  /* counts, then (scan) first sorted slot; mat_cap entries */
    int64_t mat_cap;
    uint32_t *order;          /* batch*n point ids (within their problem) in label order */
    uint32_t *keys_tmp;       /* radix path: sorted keys (unused output), n */
    uint32_t *iota;           /* radix path: 0..n-1, n */
    int64_t *slot;            /* work-item map: cluster of each slot, -1 for a gap */
    double *part_sum;         /* slot_cap x d */
    double *part_w, *part_obj;/* slot_cap */
    int64_t slot_cap;
    void *cub_tmp;
    size_t cub_bytes;
    int64_t q_mat_n, q_n;     /* the shape of the last CUB size query, and its answer */
    size_t q_bytes;

    int timing;
    int events_ok;
    cudaEvent_t ev[6];
    fkm_cuda_update_times times;
};

/* Counting path: tile = a power of two in [2048, 32768], at least 8 points per label so the
 * count matrix (k x tiles) stays around n/8 entries; warps per block chosen so that the
 * per-warp cursors (warps x k words) fit in SORT_SMEM_WORDS words of shared memory. */
static void sort_shape(int64_t k, int64_t *tile, int *warps)
{
    int64_t t = 2048;
    while (t < 8 * k && t < 32768) t *= 2;
    int w = 8;
    while (w > 1 && (int64_t)w * k > SORT_SMEM_WORDS) w /= 2;
    *tile = t;
    *warps = w;
}

static int key_bits(int64_t k)
{
    int b = 0;
    while (b < 62 && (((int64_t)1) << b) < k) b++;
    return b;
}

/* Upper bound of work-item slots: slot(g, j) = floor(start_g / CHUNK) + g + j, which never
 * collides (see map_kernel) and stays below floor(total / CHUNK) + clusters. */
static int64_t slot_bound(int64_t total, int64_t clusters) { return total / CHUNK + clusters; }

static unsigned grid_for(int64_t vblocks)
{
    if (vblocks < 1) return 1;
    return (unsigned)(vblocks < (1 << 30) ? vblocks : (1 << 30));
}

void fkm_cuda_update_destroy(fkm_cuda_update_ws *ws)
{
    if (!ws) return;
    cudaFree(ws->mat);
    cudaFree(ws->order);
    cudaFree(ws->keys_tmp);
    cudaFree(ws->iota);
    cudaFree(ws->slot);
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
 * for sorting n pairs. Host-only queries. */
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

static int64_t mat_entries(const fkm_cuda_update_ws *ws, int64_t batch, int64_t n)
{
    const int64_t tiles = ws->counting ? fkm_ceil_div(n, ws->tile) : 1;
    return batch * ws->k * tiles + 1;
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

    fkm_cuda_update_ws *ws = (fkm_cuda_update_ws *)calloc(1, sizeof *ws);
    if (!ws) return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for the CUDA update workspace");
    ws->batch = pb->batch;
    ws->n = pb->n;
    ws->k = pb->k;
    ws->d = pb->d;
    ws->counting = pb->k <= SORT_MAX_K;
    if (ws->counting) sort_shape(pb->k, &ws->tile, &ws->warps);
    else ws->sort_bits = key_bits(pb->k);

    fkm_status st = FKM_OK;
    int64_t bn, bk, tmp, slots;
    size_t b_order, b_mat, b_slot, b_part, b_n4;
    const int64_t tiles = ws->counting ? fkm_ceil_div(pb->n, ws->tile) : 1;
    if (!fkm_mul_i64(pb->batch, pb->n, &bn) || !fkm_mul_i64(pb->batch, pb->k, &bk) ||
        !fkm_mul_i64(bk, tiles, &tmp) || tmp == INT64_MAX || bk > INT64_MAX - bn / CHUNK ||
        (slots = slot_bound(bn, bk)) < 1 ||
        !fkm_bytes(bn, 1, sizeof(uint32_t), &b_order) || !fkm_bytes(tmp + 1, 1, sizeof(unsigned long long), &b_mat) ||
        !fkm_bytes(slots, 1, sizeof(int64_t), &b_slot) || !fkm_bytes(slots, pb->d, sizeof(double), &b_part) ||
        !fkm_bytes(pb->n, 1, sizeof(uint32_t), &b_n4)) {
        free(ws);
        return fkm_fail(ctx, FKM_E_OVERFLOW, "CUDA update: workspace size of batch = %lld, n = %lld, k = %lld, d = %lld overflows",
                        (long long)pb->batch, (long long)pb->n, (long long)pb->k, (long long)pb->d);
    }
    ws->mat_cap = tmp + 1;
    ws->slot_cap = slots;

    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->mat, b_mat), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->order, b_order), st, fail);
    if (!ws->counting) {
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->keys_tmp, b_n4), st, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->iota, b_n4), st, fail);
    }
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->slot, b_slot), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->part_sum, b_part), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->part_w, (size_t)slots * sizeof(double)), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&ws->part_obj, (size_t)slots * sizeof(double)), st, fail);
    FKM_CUDA_TRY_GOTO(ctx, cub_bytes_needed(ws, ws->mat_cap, pb->n, &ws->cub_bytes), st, fail);
    ws->q_mat_n = ws->mat_cap;
    ws->q_n = pb->n;
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

/* ---------------------------------------------------------------- device helpers */

/* Butterfly sum over the 32 lanes of a warp (all lanes must be active). Lane l adds lane
 * l ^ off's value: both lanes of a pair add the same two numbers, so every lane ends with the
 * bitwise same total, and the order is fixed. */
__device__ __forceinline__ double warp_sum(double v)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/* A label as the sort sees it: -1 for "no point" (past the end) and for an out-of-range
 * label, which is then ignored by the histogram and the scatter alike (never written out of
 * bounds; the results are then unspecified, as the contract requires labels in [0, k)). */
__device__ __forceinline__ int32_t sort_label(const int32_t *lab, int64_t i, int64_t end, int64_t k)
{
    if (i >= end) return -1;
    const int32_t L = lab[i];
    return (L >= 0 && L < k) ? L : -1;
}

/* Value of an element as the reduce keeps it in registers: f32 for f32/f16/bf16 (exact), the
 * double itself for f64 (cosine normalises the f64 row before rounding, like the CPU). */
template <fkm_dtype DT> struct fkm_val { typedef float type; };
template <> struct fkm_val<FKM_F64> { typedef double type; };
__device__ __forceinline__ float val_of(float v) { return v; }
__device__ __forceinline__ float val_of(__half v) { return __half2float(v); }
__device__ __forceinline__ float val_of(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ double val_of(double v) { return v; }

/* ---------------------------------------------------------------- 1. histogram */

/* Counting path. Virtual block = (problem b, tile t): counts of each label among the tile's
 * points into shared memory, then written to mat[(b*k + c) * tiles + t] for every c (zeros
 * included, so mat needs no clearing). Within a warp, lanes with equal labels are merged
 * with __match_any_sync so one shared atomic per distinct label is issued (fewer conflicts
 * when k is small). */
__global__ void hist_tiles_kernel(const int32_t *__restrict__ labels, int64_t n, int64_t k, int64_t batch,
                                  int64_t tiles, int64_t tile, unsigned long long *__restrict__ mat)
{
    extern __shared__ uint32_t sh_count[]; /* k */
    const int lane = threadIdx.x & 31;
    const int64_t nvb = batch * tiles;
    /* the entry after the last count: its exclusive sum becomes the total (its own value is
     * not used, but the scan reads it: keep it initialised) */
    if (blockIdx.x == 0 && threadIdx.x == 0) mat[nvb * k] = 0;
    for (int64_t vb = blockIdx.x; vb < nvb; vb += gridDim.x) {
        const int64_t b = vb / tiles, t = vb % tiles;
        for (int64_t c = threadIdx.x; c < k; c += blockDim.x) sh_count[c] = 0;
        __syncthreads();
        const int64_t lo = t * tile, hi = lo + tile < n ? lo + tile : n;
        const int32_t *lab = labels + b * n;
        /* rounds are block-uniform, so every lane of every warp reaches __match_any_sync */
        for (int64_t i0 = lo; i0 < hi; i0 += blockDim.x) {
            const int32_t L = sort_label(lab, i0 + threadIdx.x, hi, k);
            const unsigned peers = __match_any_sync(0xffffffffu, L);
            if (L >= 0 && lane == __ffs(peers) - 1) atomicAdd(&sh_count[L], (uint32_t)__popc(peers));
        }
        __syncthreads();
        for (int64_t c = threadIdx.x; c < k; c += blockDim.x) mat[(b * k + c) * tiles + t] = sh_count[c];
        __syncthreads();
    }
}

/* Radix path: plain per-cluster counts (mat cleared before), cluster g = b*k + label. */
__global__ void hist_global_kernel(const int32_t *__restrict__ labels, int64_t n, int64_t k, int64_t batch,
                                   unsigned long long *__restrict__ mat)
{
    const int lane = threadIdx.x & 31;
    const int64_t total = batch * n;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    /* warp-uniform loop bound: i0 is the warp's first point */
    for (int64_t i0 = (int64_t)blockIdx.x * blockDim.x + (threadIdx.x & ~31); i0 < total; i0 += stride) {
        const int64_t i = i0 + lane;
        unsigned long long g = ~0ull;
        if (i < total) {
            const int32_t L = labels[i];
            if (L >= 0 && L < k) g = (unsigned long long)((i / n) * k + L);
        }
        const unsigned peers = __match_any_sync(0xffffffffu, g);
        if (g != ~0ull && lane == __ffs(peers) - 1) atomicAdd(&mat[g], (unsigned long long)__popc(peers));
    }
}

/* ---------------------------------------------------------------- 2b. work-item map */

/* Cluster g's sorted points are [start_g, start_{g+1}), start_g = mat[g * tiles] after the
 * scan (mat[clusters * tiles] = total). Its items j = 0 .. ceil(cnt/CHUNK)-1 get slots
 * fs(g) + j with fs(g) = floor(start_g / CHUNK) + g. With start_g = a*CHUNK + r and
 * cnt = q*CHUNK + s: last slot + 1 = a + g + q + [s > 0] <= a + q + floor((r+s)/CHUNK) + g + 1
 * = fs(g+1), so clusters never collide and slots between them (at most two per cluster) are
 * gaps, marked -1. One warp per cluster writes [fs(g), fs(g+1)). */
__device__ __forceinline__ int64_t first_slot(const unsigned long long *mat, int64_t tiles, int64_t g)
{
    return (int64_t)(mat[g * tiles] / CHUNK) + g;
}

__global__ void map_kernel(const unsigned long long *__restrict__ mat, int64_t tiles, int64_t clusters,
                           int64_t *__restrict__ slot)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps_per_block = blockDim.x / 32;
    for (int64_t g = (int64_t)blockIdx.x * warps_per_block + threadIdx.x / 32; g < clusters;
         g += (int64_t)gridDim.x * warps_per_block) {
        const int64_t cnt = (int64_t)(mat[(g + 1) * tiles] - mat[g * tiles]);
        const int64_t items = (cnt + CHUNK - 1) / CHUNK;
        const int64_t fs = first_slot(mat, tiles, g), fe = first_slot(mat, tiles, g + 1);
        for (int64_t s = fs + lane; s < fe; s += 32) slot[s] = s - fs < items ? g : -1;
    }
}

/* ---------------------------------------------------------------- 3. scatter */

/* Counting path, stable. Virtual block = (problem b, tile t); warp w owns the contiguous
 * range [lo + w*R, lo + (w+1)*R) of the tile, R = tile / warps. Pass 1 counts each warp's
 * labels into its own row cur[w][.]; then, per label c, cur[w][c] becomes the sorted position
 * (relative to the problem's first slot) of the first point of label c in warp w's range:
 * the scanned matrix entry (c, t) plus the counts of the earlier warps. Pass 2 walks each
 * range again in the same order, 32 points per round: a point's rank among the equal labels
 * of its round is the number of lower lanes with that label (points are in index order across
 * lanes), and the round's leader of each label then advances the cursor. So within a label,
 * points land in increasing index order: the stable order. */
__global__ void scatter_kernel(const int32_t *__restrict__ labels, int64_t n, int64_t k, int64_t batch,
                               int64_t tiles, int64_t tile, const unsigned long long *__restrict__ mat,
                               uint32_t *__restrict__ order)
{
    extern __shared__ uint32_t cur[]; /* warps x k */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const unsigned lt_mask = (1u << lane) - 1u;
    const int64_t R = tile / warps;
    uint32_t *my = cur + (int64_t)warp * k;
    const int64_t nvb = batch * tiles;
    for (int64_t vb = blockIdx.x; vb < nvb; vb += gridDim.x) {
        const int64_t b = vb / tiles, t = vb % tiles;
        const int64_t tlo = t * tile, thi = tlo + tile < n ? tlo + tile : n;
        const int64_t lo = tlo + warp * R < thi ? tlo + warp * R : thi;
        const int64_t hi = lo + R < thi ? lo + R : thi;
        const int32_t *lab = labels + b * n;
        for (int64_t e = threadIdx.x; e < (int64_t)warps * k; e += blockDim.x) cur[e] = 0;
        __syncthreads();
        /* pass 1: per-warp counts (a warp-private row: one leader per distinct label, no atomics) */
        for (int64_t i0 = lo; i0 < hi; i0 += 32) {
            const int32_t L = sort_label(lab, i0 + lane, hi, k);
            const unsigned peers = __match_any_sync(0xffffffffu, L);
            if (L >= 0 && lane == __ffs(peers) - 1) my[L] += (uint32_t)__popc(peers);
            __syncwarp();
        }
        __syncthreads();
        /* counts -> cursors, relative to the problem's first sorted slot (fits 32 bits: < n) */
        const unsigned long long pbase = mat[b * k * tiles];
        for (int64_t c = threadIdx.x; c < k; c += blockDim.x) {
            uint32_t running = (uint32_t)(mat[(b * k + c) * tiles + t] - pbase);
            for (int w = 0; w < warps; w++) {
                const uint32_t cnt = cur[(int64_t)w * k + c];
                cur[(int64_t)w * k + c] = running;
                running += cnt;
            }
        }
        __syncthreads();
        /* pass 2: stable scatter */
        uint32_t *dst = order + pbase;
        for (int64_t i0 = lo; i0 < hi; i0 += 32) {
            const int64_t i = i0 + lane;
            const int32_t L = sort_label(lab, i, hi, k);
            const unsigned peers = __match_any_sync(0xffffffffu, L);
            uint32_t pos = 0;
            if (L >= 0) {
                pos = my[L] + (uint32_t)__popc(peers & lt_mask);
                dst[pos] = (uint32_t)i;
            }
            __syncwarp(); /* every lane has read my[L] before the leader moves it */
            /* the leader is the lowest lane of its label: its pos is the cursor itself */
            if (L >= 0 && lane == __ffs(peers) - 1) my[L] = pos + (uint32_t)__popc(peers);
            __syncwarp();
        }
        __syncthreads();
    }
}

/* Radix path helper: 0, 1, ..., n-1 (the values sorted along with the labels). */
__global__ void iota_kernel(uint32_t *__restrict__ v, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        v[i] = (uint32_t)i;
}

/* ---------------------------------------------------------------- 4. reduce */

struct reduce_args {
    const void *X;
    int64_t n, d, ld, batch_stride, k, tiles, clusters;
    const float *weights;
    const float *centroids;
    const uint32_t *order;
    const unsigned long long *mat;
    const int64_t *slot;
    double *part_sum; /* NULL: sums not wanted */
    double *part_w, *part_obj;
    double *point_obj; /* NULL: not wanted */
    int cosine, dot;
};

/* Virtual block = work-item slot s of cluster g = b*k + c: points [begin, begin + np) of the
 * sorted order. For each column tile (DCOL columns) the warps go through their points
 * (p = warp, warp + RED_WARPS, ...), UNROLL rows loaded at a time; lane l handles columns
 * l, l+32, ... of the tile. Per point, the objective over the tile's columns is a per-lane
 * double sum then a butterfly, added to the point's running objective in shared memory in
 * tile order; the weighted column sums stay in per-lane double registers and are added over
 * the warps in warp order at the end of the tile. Item weight and objective are then summed
 * by warp 0 (lane p % 32, then the butterfly). Every order is fixed by the constants above. */
template <fkm_dtype DT>
__global__ void __launch_bounds__(RED_THREADS) reduce_kernel(reduce_args a)
{
    typedef typename fkm_elem<DT>::type E;
    typedef typename fkm_val<DT>::type V;
    __shared__ uint32_t s_id[CHUNK];
    __shared__ float s_w[CHUNK];
    __shared__ double s_obj[CHUNK];
    __shared__ double s_inv[CHUNK];
    __shared__ double s_red[RED_WARPS][DCOL];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t d = a.d;
    const int64_t nslots = (int64_t)(a.mat[a.clusters * a.tiles] / CHUNK) + a.clusters;
    for (int64_t s = blockIdx.x; s < nslots; s += gridDim.x) {
        const int64_t g = a.slot[s];
        if (g < 0) continue; /* a gap: block-uniform */
        const int64_t b = g / a.k;
        const int64_t start = (int64_t)a.mat[g * a.tiles], stop = (int64_t)a.mat[(g + 1) * a.tiles];
        const int64_t begin = start + (s - first_slot(a.mat, a.tiles, g)) * CHUNK;
        const int np = (int)(stop - begin < CHUNK ? stop - begin : CHUNK);
        const E *Xb = (const E *)a.X + b * a.batch_stride;
        const float *cen = a.centroids + g * d;
        for (int t = threadIdx.x; t < np; t += RED_THREADS) {
            const uint32_t id = a.order[begin + t];
            s_id[t] = id;
            s_w[t] = a.weights ? a.weights[b * a.n + id] : 1.0f;
        }
        __syncthreads();
        /* cosine with several column tiles: the norm first (same per-lane column order and
         * butterfly as the one-tile case below, so both give the same bits) */
        if (a.cosine && d > DCOL) {
            for (int p = warp; p < np; p += RED_WARPS) {
                const E *row = Xb + (int64_t)s_id[p] * a.ld;
                double ss = 0.0;
                for (int64_t j = lane; j < d; j += 32) {
                    const double v = (double)val_of(row[j]);
                    ss += v * v;
                }
                ss = warp_sum(ss);
                if (lane == 0) s_inv[p] = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
            }
            __syncthreads();
        }
        for (int64_t c0 = 0; c0 < d; c0 += DCOL) {
            float cv[VPL];
            double acc[VPL];
#pragma unroll
            for (int v = 0; v < VPL; v++) {
                const int64_t j = c0 + lane + 32 * v;
                cv[v] = j < d ? cen[j] : 0.0f;
                acc[v] = 0.0;
            }
            for (int p0 = warp; p0 < np; p0 += RED_WARPS * UNROLL) {
                V x[UNROLL][VPL];
#pragma unroll
                for (int u = 0; u < UNROLL; u++) {
                    const int p = p0 + u * RED_WARPS;
                    const E *row = Xb + (int64_t)s_id[p < np ? p : p0] * a.ld;
#pragma unroll
                    for (int v = 0; v < VPL; v++) {
                        const int64_t j = c0 + lane + 32 * v;
                        x[u][v] = (p < np && j < d) ? val_of(row[j]) : (V)0;
                    }
                }
#pragma unroll
                for (int u = 0; u < UNROLL; u++) {
                    const int p = p0 + u * RED_WARPS;
                    if (p >= np) break; /* warp-uniform */
                    double inv = 0.0;   /* 0: the row is used as is (not cosine, or a zero row) */
                    if (a.cosine) {
                        if (d <= DCOL) {
                            double ss = 0.0;
#pragma unroll
                            for (int v = 0; v < VPL; v++) ss += (double)x[u][v] * (double)x[u][v];
                            ss = warp_sum(ss);
                            inv = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
                        } else {
                            inv = s_inv[p];
                        }
                    }
                    const double w = (double)s_w[p];
                    double o = 0.0;
#pragma unroll
                    for (int v = 0; v < VPL; v++) {
                        /* the point as f32, normalised like fkm_load_row (norm in double, rounded once) */
                        const float xf = inv != 0.0 ? (float)((double)x[u][v] * inv) : (float)x[u][v];
                        if (a.dot) {
                            o += (double)xf * (double)cv[v];
                        } else {
                            const double t = (double)xf - (double)cv[v];
                            o += t * t;
                        }
                        acc[v] += w * (double)xf;
                    }
                    o = warp_sum(o);
                    if (lane == 0) s_obj[p] = c0 == 0 ? o : s_obj[p] + o;
                }
            }
            if (a.part_sum) {
#pragma unroll
                for (int v = 0; v < VPL; v++) s_red[warp][lane + 32 * v] = acc[v];
                __syncthreads();
                if (threadIdx.x < DCOL && c0 + threadIdx.x < d) {
                    double sum = s_red[0][threadIdx.x];
#pragma unroll
                    for (int w = 1; w < RED_WARPS; w++) sum += s_red[w][threadIdx.x];
                    a.part_sum[s * d + c0 + threadIdx.x] = sum;
                }
                __syncthreads();
            }
        }
        __syncthreads(); /* s_obj complete */
        if (a.point_obj)
            for (int t = threadIdx.x; t < np; t += RED_THREADS)
                a.point_obj[b * a.n + s_id[t]] = a.dot ? -s_obj[t] : s_obj[t];
        if (warp == 0) {
            double wo = 0.0, ws = 0.0;
            for (int p = lane; p < np; p += 32) {
                const double o = a.dot ? -s_obj[p] : s_obj[p];
                wo += (double)s_w[p] * o;
                ws += (double)s_w[p];
            }
            wo = warp_sum(wo);
            ws = warp_sum(ws);
            if (lane == 0) {
                a.part_obj[s] = wo;
                a.part_w[s] = ws;
            }
        }
        __syncthreads(); /* shared arrays are reused by the next slot */
    }
}

/* ---------------------------------------------------------------- 5. combine */

struct combine_args {
    const unsigned long long *mat;
    const int64_t *slot;
    const double *part_sum, *part_w, *part_obj;
    int64_t d, k, tiles, clusters, batch;
    int64_t col_tiles;     /* per cluster: ceil(d/32) with sums, 1 for weight only, 0 for neither */
    double *sums, *weight, *objective;
    int accumulate;
};

/* Virtual blocks [0, clusters*col_tiles): cluster g, columns [32*ct, 32*ct + 32): warp w adds
 * items w, w + COMB_WARPS, ... in order (lane = column), then warp 0 adds the warps in order.
 * Virtual blocks after that: problem b's objective: thread t adds the problem's slots t,
 * t + OBJ_THREADS, ... (gaps skipped), then a fixed tree. */
__global__ void __launch_bounds__(OBJ_THREADS) combine_kernel(combine_args a)
{
    static_assert(COMB_WARPS * 32 <= OBJ_THREADS, "block shape");
    __shared__ double s_red[COMB_WARPS][32];
    __shared__ double s_wred[COMB_WARPS];
    __shared__ double s_tree[OBJ_THREADS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t ncb = a.clusters * a.col_tiles;
    const int64_t nvb = ncb + (a.objective ? a.batch : 0);
    for (int64_t vb = blockIdx.x; vb < nvb; vb += gridDim.x) {
        if (vb < ncb) {
            const int64_t g = vb / a.col_tiles, ct = vb % a.col_tiles;
            const int64_t cnt = (int64_t)(a.mat[(g + 1) * a.tiles] - a.mat[g * a.tiles]);
            const int64_t items = (cnt + CHUNK - 1) / CHUNK;
            const int64_t fs = first_slot(a.mat, a.tiles, g);
            const int64_t j = ct * 32 + lane;
            const bool do_w = a.weight && ct == 0;
            if (warp < COMB_WARPS) {
                /* loads COMB_BATCH items ahead, then adds them in item order: a cluster of
                 * many items (small k, huge n) is not one long chain of load latencies */
                const bool do_s = a.sums && j < a.d;
                double acc = 0.0, wacc = 0.0;
                for (int64_t i0 = warp; i0 < items; i0 += (int64_t)COMB_WARPS * COMB_BATCH) {
                    double vs[COMB_BATCH], vw[COMB_BATCH];
#pragma unroll
                    for (int q = 0; q < COMB_BATCH; q++) {
                        const int64_t i = i0 + (int64_t)q * COMB_WARPS;
                        vs[q] = do_s && i < items ? a.part_sum[(fs + i) * a.d + j] : 0.0;
                        vw[q] = do_w && i < items ? a.part_w[fs + i] : 0.0;
                    }
#pragma unroll
                    for (int q = 0; q < COMB_BATCH; q++) {
                        if (i0 + (int64_t)q * COMB_WARPS >= items) break;
                        acc += vs[q];
                        wacc += vw[q];
                    }
                }
                s_red[warp][lane] = acc;
                if (lane == 0) s_wred[warp] = wacc;
            }
            __syncthreads();
            if (warp == 0) {
                if (a.sums && j < a.d) {
                    double tot = s_red[0][lane];
                    for (int w = 1; w < COMB_WARPS; w++) tot += s_red[w][lane];
                    double *o = a.sums + g * a.d + j;
                    *o = a.accumulate ? *o + tot : tot;
                }
                if (do_w && lane == 0) {
                    double tot = s_wred[0];
                    for (int w = 1; w < COMB_WARPS; w++) tot += s_wred[w];
                    double *o = a.weight + g;
                    *o = a.accumulate ? *o + tot : tot;
                }
            }
            __syncthreads();
        } else {
            const int64_t b = vb - ncb;
            const int64_t s0 = first_slot(a.mat, a.tiles, b * a.k), s1 = first_slot(a.mat, a.tiles, (b + 1) * a.k);
            double acc = 0.0;
            for (int64_t q0 = s0 + threadIdx.x; q0 < s1; q0 += (int64_t)OBJ_THREADS * COMB_BATCH) {
                double v[COMB_BATCH];
#pragma unroll
                for (int q = 0; q < COMB_BATCH; q++) {
                    const int64_t s = q0 + (int64_t)q * OBJ_THREADS;
                    v[q] = s < s1 && a.slot[s] >= 0 ? a.part_obj[s] : 0.0;
                }
                /* in slot order; a gap or a slot past the end adds +0.0 (x + 0.0 == x for
                 * every x but -0.0, and the pattern is fixed, so it stays deterministic) */
#pragma unroll
                for (int q = 0; q < COMB_BATCH; q++) acc += v[q];
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

template <fkm_dtype DT>
static void launch_reduce(const reduce_args &a, int64_t slots, cudaStream_t stream)
{
    reduce_kernel<DT><<<grid_for(slots), RED_THREADS, 0, stream>>>(a);
}

fkm_status fkm_cuda_update(fkm_ctx *ctx, fkm_cuda_update_ws *ws, const fkm_dev_problem *pb,
                           const int32_t *labels, const float *centroids, double *sums,
                           double *weight, double *point_obj, double *objective, int accumulate,
                           cudaStream_t stream)
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
    if (!sums && !weight && !point_obj && !objective) return FKM_OK;

    const int64_t n = pb->n, k = pb->k, d = pb->d, batch = pb->batch;
    const int64_t clusters = batch * k;
    const int64_t tiles = ws->counting ? fkm_ceil_div(n, ws->tile) : 1;
    const int64_t mat_n = mat_entries(ws, batch, n);
    const int64_t slots = slot_bound(batch * n, clusters);
    if (mat_n != ws->q_mat_n || n != ws->q_n) { /* CUB's size query costs runtime calls: once per shape */
        FKM_CUDA_TRY(ctx, cub_bytes_needed(ws, mat_n, n, &ws->q_bytes));
        ws->q_mat_n = mat_n;
        ws->q_n = n;
    }
    if (mat_n > ws->mat_cap || slots > ws->slot_cap || ws->q_bytes > ws->cub_bytes)
        return fkm_fail(ctx, FKM_E_INTERNAL, "fkm_cuda_update: workspace too small (a bug)");
    const int timing = ws->timing && ws->events_ok;

    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[0], stream));
    /* 1. histogram */
    if (ws->counting) {
        const int threads = 32 * ws->warps;
        hist_tiles_kernel<<<grid_for(batch * tiles), threads, (size_t)k * sizeof(uint32_t), stream>>>(
            labels, n, k, batch, tiles, ws->tile, ws->mat);
        FKM_CUDA_LAUNCHED(ctx, "hist_tiles_kernel");
    } else {
        FKM_CUDA_TRY(ctx, cudaMemsetAsync(ws->mat, 0, (size_t)(clusters + 1) * sizeof(unsigned long long), stream));
        hist_global_kernel<<<grid_for(fkm_ceil_div(batch * n, 256)), 256, 0, stream>>>(labels, n, k, batch, ws->mat);
        FKM_CUDA_LAUNCHED(ctx, "hist_global_kernel");
    }
    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[1], stream));
    /* 2. scan (in place; the last entry's exclusive sum is the total) and the item map */
    {
        size_t bytes = ws->cub_bytes;
        FKM_CUDA_TRY(ctx, cub::DeviceScan::ExclusiveSum(ws->cub_tmp, bytes, ws->mat, ws->mat, mat_n, stream));
        map_kernel<<<grid_for(fkm_ceil_div(clusters, 8)), 256, 0, stream>>>(ws->mat, tiles, clusters, ws->slot);
        FKM_CUDA_LAUNCHED(ctx, "map_kernel");
    }
    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[2], stream));
    /* 3. scatter */
    if (ws->counting) {
        const int threads = 32 * ws->warps;
        scatter_kernel<<<grid_for(batch * tiles), threads, (size_t)ws->warps * (size_t)k * sizeof(uint32_t), stream>>>(
            labels, n, k, batch, tiles, ws->tile, ws->mat, ws->order);
        FKM_CUDA_LAUNCHED(ctx, "scatter_kernel");
    } else {
        iota_kernel<<<grid_for(fkm_ceil_div(n, 256) < 65536 ? fkm_ceil_div(n, 256) : 65536), 256, 0, stream>>>(ws->iota, n);
        FKM_CUDA_LAUNCHED(ctx, "iota_kernel");
        for (int64_t b = 0; b < batch; b++) {
            size_t bytes = ws->cub_bytes;
            /* labels are in [0, k): their low sort_bits bits as unsigned keys sort like the labels */
            FKM_CUDA_TRY(ctx, cub::DeviceRadixSort::SortPairs(ws->cub_tmp, bytes, (const uint32_t *)labels + b * n,
                                                              ws->keys_tmp, (const uint32_t *)ws->iota,
                                                              ws->order + b * n, n, 0, ws->sort_bits, stream));
        }
    }
    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[3], stream));
    /* 4. reduce */
    {
        reduce_args a;
        a.X = pb->X;
        a.n = n;
        a.d = d;
        a.ld = pb->ld;
        a.batch_stride = pb->batch_stride;
        a.k = k;
        a.tiles = tiles;
        a.clusters = clusters;
        a.weights = pb->weights;
        a.centroids = centroids;
        a.order = ws->order;
        a.mat = ws->mat;
        a.slot = ws->slot;
        a.part_sum = sums ? ws->part_sum : NULL;
        a.part_w = ws->part_w;
        a.part_obj = ws->part_obj;
        a.point_obj = point_obj;
        a.cosine = pb->metric == FKM_METRIC_COSINE;
        a.dot = pb->metric == FKM_METRIC_DOT;
        FKM_DISPATCH_DTYPE(pb->dtype, launch_reduce<DT>(a, slots, stream));
        FKM_CUDA_LAUNCHED(ctx, "reduce_kernel");
    }
    if (timing) FKM_CUDA_TRY(ctx, cudaEventRecord(ws->ev[4], stream));
    /* 5. combine */
    {
        combine_args a;
        a.mat = ws->mat;
        a.slot = ws->slot;
        a.part_sum = ws->part_sum;
        a.part_w = ws->part_w;
        a.part_obj = ws->part_obj;
        a.d = d;
        a.k = k;
        a.tiles = tiles;
        a.clusters = clusters;
        a.batch = batch;
        a.col_tiles = sums ? fkm_ceil_div(d, 32) : weight ? 1 : 0;
        a.sums = sums;
        a.weight = weight;
        a.objective = objective;
        a.accumulate = accumulate != 0;
        const int64_t nvb = clusters * a.col_tiles + (objective ? batch : 0);
        if (nvb > 0) {
            combine_kernel<<<grid_for(nvb), OBJ_THREADS, 0, stream>>>(a);
            FKM_CUDA_LAUNCHED(ctx, "combine_kernel");
        }
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
