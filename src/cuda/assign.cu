/* assign.cu — FlashAssign kernels (see assign.cuh) and their launcher. */
#include "cuda/assign.cuh"
#include "cuda/assign_common.cuh"
#include "cuda/mma.cuh"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- configuration */

/* Tensor-core tiles: 8 warps stacked along the points, each warp 32 points x 64 centroids
 * (2 x 8 mma tiles); a block owns 256 points and sweeps all centroids in tiles of 64, D in
 * chunks of 64 elements. 256 points per block halve the centroid traffic from L2 compared
 * with 128 (every block streams all centroids). */
#define MMA_WARPS_M 8
#define MMA_WARPS_N 1
#define MMA_WM 2                      /* m16 tiles per warp */
#define MMA_WN 8                      /* n8 tiles per warp */
#define MMA_BM (MMA_WARPS_M * 16 * MMA_WM)   /* 128 points */
#define MMA_BN (MMA_WARPS_N * 8 * MMA_WN)    /* 128 centroids */
#define MMA_ROW_BYTES 128             /* D chunk of a pipeline stage: one 128-byte row */
#define MMA_BK_OF(es) (MMA_ROW_BYTES / (es))   /* ... in elements: 64 (f16/bf16), 32 (f32) */
#define MMA_THREADS (MMA_WARPS_M * MMA_WARPS_N * 32)
#define MMA_STAGES 4
#define MMA_RESIDENT_MAX_BYTES_PER_ROW 384   /* X tile of 256 rows x 384 bytes = 96 KB stays in shared memory */

/* FFMA tiles: 256 threads, 128 points x 64 centroids per tile, 8 x 4 per thread. */
#define FF_BM 128
#define FF_BN 64
#define FF_BK 16
#define FF_THREADS 256

struct fkm_cuda_assign_ws {
    fkm_assign_path path;
    int64_t kpad, dpad;
    void *cq;       /* batch x kpad x dpad centroids in the kernel's operand type, zero padded */
    float *cn;      /* batch x kpad: ||c||^2 (l2) or 0; +inf for padding rows */
};

static int64_t round_up(int64_t a, int64_t m) { return (a + m - 1) / m * m; }

/* The paths on warpgroup MMA: 128-centroid tiles (kpad), one operand copy of the centroids. */
static int path_is_wgmma(fkm_assign_path p)
{
    return p == FKM_ASSIGN_WGMMA || p == FKM_ASSIGN_WGMMA_PINGPONG ||
           p == FKM_ASSIGN_WGMMA_PINGPONG_PERSISTENT;
}

/* Warpgroup MMA exists on compute capability 9.0 (the sm_90a code of this build). */
static int device_has_wgmma(void)
{
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return major == 9 && minor == 0;
}

fkm_assign_path fkm_cuda_assign_path(const fkm_dev_problem *pb, fkm_precision precision)
{
    const int tensor_input = pb->dtype == FKM_F16 || pb->dtype == FKM_BF16 || pb->dtype == FKM_F32;
    if (!tensor_input || precision == FKM_PRECISION_F32) return FKM_ASSIGN_FFMA;
    const int64_t es = (int64_t)fkm_dtype_size(pb->dtype);
    /* below 128 clusters the 128-wide wgmma tiles would mostly compute padding (exact mode
     * uses the same kernels, in their top-3 instantiation) */
    if (pb->k > 64 && device_has_wgmma()) {
        const char *force = getenv("FLASHKM_ASSIGN");
        if (!force || strcmp(force, "mma") != 0) {
            /* the ping-pong kernels keep X resident: rows up to
             * FKM_WGMMA_MAX_ROW_BYTES. Which kernel by default follows the MMA width w = d (2d for
             * TF32, whose rate is half f16's): the ping-pong kernel where a centroid tile's MMAs
             * hide the other warpgroup's argmin epilogue and a block has enough tiles to pay for
             * its prologue (w >= 192, or w >= 128 with k >= FKM_PINGPONG_MIN_K); its persistent
             * variant, which loads the next row block's X under the current one's MMAs but keeps
             * a shorter ring, for w >= 128 with fewer clusters; the single-set kernel (two blocks
             * per SM) for w < 128, where the three are even or it wins. H100, assign ms
             * single-set / ping-pong / persistent, N=1M unless B=32 (N=75600, K=1000)
             * (bench/results/pingpong_sweep_h100.txt, experiments_session7_h100.txt):
             * f16 D=128 K=256 0.373 / 0.429 / 0.315; K=1024 0.734 / 0.755 / 0.706; K=2048
             * 1.269 / 1.299 / 1.256; K=4096 2.316 / 2.299 / 2.350; K=16384 8.799 / 8.055 / -;
             * B=32 1.787 / 1.809 / 1.596; f16 D=192 K=1024 0.935 / 0.858 / 0.982; D=256 1.426 /
             * 1.162 / 1.362; f16 D=64 B=32 1.126 / 1.368 / 1.121; TF32 D=64 K=1024 0.721 / 0.753
             * / 0.715; K=4096 2.329 / 2.304 / 2.334; TF32 D=128 K=1024 1.459 / 1.166 / 1.326.
             * FLASHKM_WGMMA_OVERLAP=0 / 2 / 3 force the single-set / ping-pong / persistent
             * ping-pong kernel, for A/B runs (same labels, bit for bit); any other value leaves the
             * choice to the rule below (=1 was a kernel with two accumulator sets per warpgroup,
             * removed once the ping-pong ones measured faster wherever it had been the default). */
            const char *overlap = getenv("FLASHKM_WGMMA_OVERLAP");
            const int resident = round_up(pb->d, MMA_BK_OF(es)) * es <= FKM_WGMMA_MAX_ROW_BYTES;
            if (!resident) return FKM_ASSIGN_WGMMA;
            if (overlap && strcmp(overlap, "0") == 0) return FKM_ASSIGN_WGMMA;
            if (overlap && strcmp(overlap, "2") == 0) return FKM_ASSIGN_WGMMA_PINGPONG;
            if (overlap && strcmp(overlap, "3") == 0) return FKM_ASSIGN_WGMMA_PINGPONG_PERSISTENT;
            const int64_t mma_width = pb->dtype == FKM_F32 ? 2 * pb->d : pb->d;
            if (mma_width >= 192 || (mma_width >= 128 && pb->k >= FKM_PINGPONG_MIN_K)) return FKM_ASSIGN_WGMMA_PINGPONG;
            return mma_width >= 128 ? FKM_ASSIGN_WGMMA_PINGPONG_PERSISTENT : FKM_ASSIGN_WGMMA;
        }
    }
    return round_up(pb->d, MMA_BK_OF(es)) * es <= MMA_RESIDENT_MAX_BYTES_PER_ROW ? FKM_ASSIGN_MMA
                                                                                  : FKM_ASSIGN_MMA_SPLITD;
}

const char *fkm_cuda_assign_path_name(fkm_assign_path path)
{
    switch (path) {
    case FKM_ASSIGN_MMA: return "mma";
    case FKM_ASSIGN_MMA_SPLITD: return "mma-split-d";
    case FKM_ASSIGN_FFMA: return "ffma";
    case FKM_ASSIGN_WGMMA: return "wgmma";
    case FKM_ASSIGN_WGMMA_PINGPONG: return "wgmma-pingpong";
    case FKM_ASSIGN_WGMMA_PINGPONG_PERSISTENT: return "wgmma-pingpong-persistent";
    }
    return "?";
}

/* ---------------------------------------------------------------- shared pieces */

/* One warp per centroid row: the operand copy (rounded to T, zero padded to dpad) and the
 * score offset: ||c||^2 of the rounded centroid for l2 (so that the score is the exact
 * distance to the centroid the tensor cores see, up to f32 accumulation), 0 otherwise;
 * +inf for padding rows, which therefore never win. Deterministic (fixed lane order). */
template <typename T>
__global__ void prepare_centroids(const float *C, int64_t k, int64_t d, int64_t kpad, int64_t dpad, int l2, int tf32,
                                  T *cq, float *cn)
{
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int64_t b = blockIdx.y;
    if (row >= kpad) return;
    T *dst = cq + (b * kpad + row) * dpad;
    float ss = 0.f;
    for (int64_t j = lane; j < dpad; j += 32) {
        const float v = row < k && j < d ? C[(b * k + row) * d + j] : 0.f;
        const T q = fkm_operand<T>(v, tf32); /* exact.cu measures ||c - q|| with the same function */
        dst[j] = q;
        const float r = fkm_to_float(q);
        ss = fmaf(r, r, ss);
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (lane == 0) cn[b * kpad + row] = row >= k ? INFINITY : (l2 ? ss : 0.f);
}

/* ---------------------------------------------------------------- tensor-core kernel */

/* Loads one pipeline stage: the centroid tile (MMA_BN rows x 64 elements of D chunk kc) and,
 * when X is not resident, the matching X tile. Rows and chunks past the data are zero. */
template <typename T, bool RESIDENT>
__device__ __forceinline__ void mma_load_stage(T *stage, const T *cq_tile, int64_t dpad, int kc, const T *X,
                                               int64_t row0, int64_t n, int64_t ld, int64_t d)
{
    const int tid = threadIdx.x;
    constexpr int BK = MMA_BK_OF(sizeof(T)), CW = 16 / sizeof(T);
#pragma unroll
    for (int e = 0; e < MMA_BN * 8 / MMA_THREADS; e++) {
        const int idx = tid + e * MMA_THREADS, r = idx >> 3, c = idx & 7;
        fkm_cp_async16(stage + fkm_swz<T>(r, c), cq_tile + (int64_t)r * dpad + kc * BK + c * CW, 16);
    }
    if (!RESIDENT) {
        T *xs = stage + MMA_BN * BK;
#pragma unroll
        for (int e = 0; e < MMA_BM * 8 / MMA_THREADS; e++) {
            const int idx = tid + e * MMA_THREADS, r = idx >> 3, c = idx & 7;
            const int64_t col = (int64_t)kc * BK + c * CW;
            const bool ok = row0 + r < n && col < d;
            fkm_cp_async16(xs + fkm_swz<T>(r, c), ok ? X + (row0 + r) * ld + col : X, ok ? 16 : 0);
        }
    }
}

/* TOP3 (exact mode, docs/EXACTNESS.md 3.6) also keeps each point's second and third smallest
 * scores and the second's index (src/core/top3.h), written to top3; the fast instantiation
 * compiles to the same code as without the flag. CAND (exact mode's candidate pass, 5.4)
 * keeps no minimum: every score <= its row's threshold is appended to cand (labels, best and
 * changed are not touched). */
template <typename T, bool RESIDENT, bool TOP3, bool CAND = false>
__global__ void __launch_bounds__(MMA_THREADS, 2)
assign_mma(const T *__restrict__ Xall, int64_t n, int64_t d, int64_t ld, int64_t bstride, int64_t dpad,
           const T *__restrict__ cqall, const float *__restrict__ cnall, int64_t kpad, float alpha,
           int32_t *__restrict__ labels_all, unsigned long long *changed, float *best_all, fkm_cuda_top3_out top3,
           fkm_cuda_cand_out cand)
{
    extern __shared__ __align__(128) unsigned char smem_raw[];
    T *smem = reinterpret_cast<T *>(smem_raw);
    /* [0]: best scores and indices; [1], [2] (TOP3 only, so the fast kernel's shared memory is
     * unchanged): second and third scores, second indices */
    __shared__ float red_sv[TOP3 ? 3 : 1][MMA_WARPS_N][MMA_BM];
    __shared__ int32_t red_iv[TOP3 ? 2 : 1][MMA_WARPS_N][MMA_BM];
    float (*red_s)[MMA_BM] = red_sv[0];
    int32_t (*red_i)[MMA_BM] = red_iv[0];
    /* CAND: the block's row counters, in red_iv's place (the other instantiations keep their
     * shared memory unchanged) */
    unsigned *scnt = reinterpret_cast<unsigned *>(&red_iv[0][0][0]);

    const int64_t b = blockIdx.y;
    const T *X = Xall + b * bstride;
    const T *cq = cqall + b * kpad * dpad;
    const float *cn = cnall + b * kpad;
    const int64_t row0 = (int64_t)blockIdx.x * MMA_BM;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp / MMA_WARPS_N, wn = warp % MMA_WARPS_N;
    constexpr int BK = MMA_BK_OF(sizeof(T)), CW = 16 / sizeof(T);
    const int kchunks = (int)(dpad / BK);
    const int64_t steps = kpad / MMA_BN * kchunks;
    const int stage_elems = RESIDENT ? MMA_BN * BK : (MMA_BN + MMA_BM) * BK;
    T *xres = smem;                                          /* resident: kchunks x [BM][64] */
    T *stages = smem + (RESIDENT ? (int64_t)MMA_BM * dpad : 0);

    if (RESIDENT) {
        for (int idx = tid; idx < MMA_BM * kchunks * 8; idx += MMA_THREADS) {
            const int kc = idx / (MMA_BM * 8), rem = idx % (MMA_BM * 8), r = rem >> 3, c = rem & 7;
            const int64_t col = (int64_t)kc * BK + c * CW;
            const bool ok = row0 + r < n && col < d;
            fkm_cp_async16(xres + kc * MMA_BM * BK + fkm_swz<T>(r, c), ok ? X + (row0 + r) * ld + col : X,
                           ok ? 16 : 0);
        }
        fkm_cp_async_commit();
    }
    for (int s = 0; s < MMA_STAGES - 1; s++) {
        if (s < steps)
            mma_load_stage<T, RESIDENT>(stages + s * stage_elems, cq + (int64_t)(s / kchunks) * MMA_BN * dpad, dpad,
                                        s % kchunks, X, row0, n, ld, d);
        fkm_cp_async_commit();
    }

    /* CAND: this thread's rows' thresholds (rows past n want nothing) */
    float thr[MMA_WM][2];
    if (CAND) {
#pragma unroll
        for (int mi = 0; mi < MMA_WM; mi++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int64_t row = row0 + wm * 16 * MMA_WM + mi * 16 + h * 8 + (lane >> 2);
                thr[mi][h] = row < n ? cand.thr[row] : -INFINITY;
            }
        if (tid < MMA_BM) scnt[tid] = 0u; /* before the first step's barrier */
    }

    float acc[MMA_WM][MMA_WN][4];
    float bs[MMA_WM][2];
    float b2[MMA_WM][2], b3[MMA_WM][2]; /* TOP3: this thread's second and third smallest scores */
    int32_t bi[MMA_WM][2], i2[MMA_WM][2]; /* TOP3: ... and the second's index */
#pragma unroll
    for (int mi = 0; mi < MMA_WM; mi++) {
        bs[mi][0] = bs[mi][1] = INFINITY;
        b2[mi][0] = b2[mi][1] = b3[mi][0] = b3[mi][1] = INFINITY;
        bi[mi][0] = bi[mi][1] = i2[mi][0] = i2[mi][1] = 0;
#pragma unroll
        for (int ni = 0; ni < MMA_WN; ni++) acc[mi][ni][0] = acc[mi][ni][1] = acc[mi][ni][2] = acc[mi][ni][3] = 0.f;
    }

    /* step = (centroid tile, D chunk), walked with counters: no 64-bit division in the loop */
    int kc = 0, load_kc = (MMA_STAGES - 1) % kchunks;
    int64_t tile_col0 = 0, load_step = MMA_STAGES - 1;
    const T *load_tile = cq + (int64_t)((MMA_STAGES - 1) / kchunks) * MMA_BN * dpad;
    int slot = 0;
    for (int64_t step = 0; step < steps; step++) {
        fkm_cp_async_wait<MMA_STAGES - 2>();
        __syncthreads();
        /* refill the slot consumed in the previous step (every thread is past it) */
        if (load_step < steps)
            mma_load_stage<T, RESIDENT>(stages + ((slot + MMA_STAGES - 1) % MMA_STAGES) * stage_elems, load_tile, dpad,
                                        load_kc, X, row0, n, ld, d);
        fkm_cp_async_commit();
        if (++load_kc == kchunks) load_kc = 0, load_tile += (int64_t)MMA_BN * dpad;
        load_step++;

        const T *cs = stages + slot * stage_elems;
        const T *xs = RESIDENT ? xres + kc * MMA_BM * BK : cs + MMA_BN * BK;
        /* four steps of 32 bytes of each row: k16 for 2-byte types, k8 for TF32 */
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint32_t a[MMA_WM][4], bfr[MMA_WN][2];
#pragma unroll
            for (int mi = 0; mi < MMA_WM; mi++)
                fkm_ldmatrix_x4(a[mi], xs + fkm_swz<T>(wm * 16 * MMA_WM + mi * 16 + (lane & 15), kk * 2 + (lane >> 4)));
#pragma unroll
            for (int ni = 0; ni < MMA_WN; ni += 2) {
                uint32_t r4[4];
                fkm_ldmatrix_x4(r4, cs + fkm_swz<T>(wn * 8 * MMA_WN + ni * 8 + (lane & 7) + ((lane >> 4) << 3),
                                                  kk * 2 + ((lane >> 3) & 1)));
                bfr[ni][0] = r4[0], bfr[ni][1] = r4[1], bfr[ni + 1][0] = r4[2], bfr[ni + 1][1] = r4[3];
            }
#pragma unroll
            for (int mi = 0; mi < MMA_WM; mi++)
#pragma unroll
                for (int ni = 0; ni < MMA_WN; ni++) fkm_mma<T>::run(acc[mi][ni], a[mi], bfr[ni]);
        }
        if (++slot == MMA_STAGES) slot = 0;
        if (++kc == kchunks) {
            kc = 0;
            /* epilogue of a centroid tile. Scores first, then the tile's minimum per row with
             * one min per element; only a row whose tile minimum beats its best so far (rare
             * after the first tiles) looks for the index: the first column, in increasing
             * order, holding that minimum - so ties keep the lowest index. */
            const int64_t col0 = tile_col0 + wn * 8 * MMA_WN + (lane & 3) * 2;
#pragma unroll
            for (int ni = 0; ni < MMA_WN; ni++) {
                const float c0 = __ldg(cn + col0 + ni * 8), c1 = __ldg(cn + col0 + ni * 8 + 1);
#pragma unroll
                for (int mi = 0; mi < MMA_WM; mi++) {
                    acc[mi][ni][0] = fmaf(-alpha, acc[mi][ni][0], c0);
                    acc[mi][ni][1] = fmaf(-alpha, acc[mi][ni][1], c1);
                    acc[mi][ni][2] = fmaf(-alpha, acc[mi][ni][2], c0);
                    acc[mi][ni][3] = fmaf(-alpha, acc[mi][ni][3], c1);
                }
            }
            if (CAND) {
                /* rare: a few centroids per row pass (padding columns score +inf) */
                uint32_t mask[MMA_WM][2] = {};
                uint32_t any = 0u;
#pragma unroll
                for (int mi = 0; mi < MMA_WM; mi++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
#pragma unroll
                        for (int ni = 0; ni < MMA_WN; ni++)
#pragma unroll
                            for (int e = 0; e < 2; e++)
                                mask[mi][h] |= (uint32_t)(acc[mi][ni][2 * h + e] <= thr[mi][h]) << (2 * ni + e);
                        any |= mask[mi][h];
                    }
                if (__any_sync(0xffffffffu, any != 0u)) {
#pragma unroll
                    for (int mi = 0; mi < MMA_WM; mi++)
#pragma unroll
                        for (int h = 0; h < 2; h++)
                        {
                            const int lr = wm * 16 * MMA_WM + mi * 16 + h * 8 + (lane >> 2);
                            fkm_cand_emit(mask[mi][h], scnt + lr, cand.idx + (row0 + lr) * cand.cap, cand.cap,
                                          (int32_t)col0);
                        }
                }
            } else if (TOP3) {
                /* the tile's scores of row (mi, h) sit at acc[mi][ni][2h + e], column
                 * col0 + 8 ni + e: fkm_top3_tile's layout (its knockout network: 56 min/max
                 * per row of 16 scores, was 80) */
#pragma unroll
                for (int mi = 0; mi < MMA_WM; mi++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        fkm_top3 t = {bs[mi][h], b2[mi][h], b3[mi][h], bi[mi][h], i2[mi][h]};
                        fkm_top3_tile(&t, &acc[mi][0][2 * h], MMA_WN, (int32_t)col0);
                        bs[mi][h] = t.s1, b2[mi][h] = t.s2, b3[mi][h] = t.s3, bi[mi][h] = t.i1, i2[mi][h] = t.i2;
                    }
            } else {
#pragma unroll
                for (int mi = 0; mi < MMA_WM; mi++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        float m = acc[mi][0][2 * h];
#pragma unroll
                        for (int ni = 0; ni < MMA_WN; ni++)
                            m = fminf(m, fminf(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]));
                        if (m < bs[mi][h]) {
                            int32_t idx = -1;
#pragma unroll
                            for (int ni = MMA_WN - 1; ni >= 0; ni--) {
                                if (acc[mi][ni][2 * h + 1] == m) idx = (int32_t)(col0 + ni * 8 + 1);
                                if (acc[mi][ni][2 * h] == m) idx = (int32_t)(col0 + ni * 8);
                            }
                            bs[mi][h] = m;
                            bi[mi][h] = idx;
                        }
                    }
            }
#pragma unroll
            for (int mi = 0; mi < MMA_WM; mi++)
#pragma unroll
                for (int ni = 0; ni < MMA_WN; ni++)
                    acc[mi][ni][0] = acc[mi][ni][1] = acc[mi][ni][2] = acc[mi][ni][3] = 0.f;
            tile_col0 += MMA_BN;
        }
    }
    fkm_cp_async_wait<0>();
    if constexpr (CAND) {
        __syncthreads(); /* every epilogue's counts are in */
        if (tid < MMA_BM && row0 + tid < n) cand.cnt[row0 + tid] = scnt[tid];
    } else {
        /* the four threads of a quad hold the same rows: merge them, then the warps along N */
#pragma unroll
        for (int mi = 0; mi < MMA_WM; mi++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
#pragma unroll
                for (int o = 1; o <= 2; o <<= 1) {
                    if (TOP3) {
                        fkm_top3 t = {bs[mi][h], b2[mi][h], b3[mi][h], bi[mi][h], i2[mi][h]};
                        t = fkm_top3_merge(t, fkm_top3_shfl_xor(t, o));
                        bs[mi][h] = t.s1, b2[mi][h] = t.s2, b3[mi][h] = t.s3, bi[mi][h] = t.i1, i2[mi][h] = t.i2;
                    } else {
                        const float s2 = __shfl_xor_sync(0xffffffffu, bs[mi][h], o);
                        const int32_t j2 = __shfl_xor_sync(0xffffffffu, bi[mi][h], o);
                        fkm_merge_best(bs[mi][h], bi[mi][h], s2, j2);
                    }
                }
                if ((lane & 3) == 0) {
                    const int r = wm * 16 * MMA_WM + mi * 16 + h * 8 + (lane >> 2);
                    red_s[wn][r] = bs[mi][h];
                    red_i[wn][r] = bi[mi][h];
                    if (TOP3) red_sv[1][wn][r] = b2[mi][h], red_sv[2][wn][r] = b3[mi][h], red_iv[1][wn][r] = i2[mi][h];
                }
            }
        __syncthreads();
        if (tid < MMA_BM) {
            float s = red_s[0][tid];
            int32_t i = red_i[0][tid];
            const int64_t row = row0 + tid;
            if (TOP3) {
                fkm_top3 t = {s, red_sv[1][0][tid], red_sv[2][0][tid], i, red_iv[1][0][tid]};
                for (int w = 1; w < MMA_WARPS_N; w++) {
                    const fkm_top3 u = {red_sv[0][w][tid], red_sv[1][w][tid], red_sv[2][w][tid], red_iv[0][w][tid],
                                        red_iv[1][w][tid]};
                    t = fkm_top3_merge(t, u);
                }
                s = t.s1, i = t.i1;
                if (row < n) fkm_top3_store(top3, b * n + row, t);
            } else {
                for (int w = 1; w < MMA_WARPS_N; w++) fkm_merge_best(s, i, red_s[w][tid], red_i[w][tid]);
            }
            fkm_store_label(row < n, b * n + row, i, s, labels_all, best_all, changed + b);
        }
    }
}

/* ---------------------------------------------------------------- f32 FFMA kernel */

template <typename TX>
__global__ void __launch_bounds__(FF_THREADS)
assign_ffma(const TX *__restrict__ Xall, int64_t n, int64_t d, int64_t ld, int64_t bstride, int64_t dpad,
            const float *__restrict__ cqall, const float *__restrict__ cnall, int64_t kpad, float alpha,
            int32_t *__restrict__ labels_all, unsigned long long *changed, float *best_all)
{
    __shared__ float xs[FF_BK][FF_BM + 4];
    __shared__ float cs[FF_BK][FF_BN + 4];
    const int64_t b = blockIdx.y;
    const TX *X = Xall + b * bstride;
    const float *cq = cqall + b * kpad * dpad;
    const float *cn = cnall + b * kpad;
    const int64_t row0 = (int64_t)blockIdx.x * FF_BM;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;

    float bs[8];
    int32_t bi[8];
#pragma unroll
    for (int i = 0; i < 8; i++) bs[i] = INFINITY, bi[i] = 0;

    for (int64_t j0 = 0; j0 < kpad; j0 += FF_BN) {
        float acc[8][4] = {};
        for (int64_t k0 = 0; k0 < dpad; k0 += FF_BK) {
#pragma unroll
            for (int e = 0; e < FF_BM * FF_BK / FF_THREADS; e++) {
                const int idx = tid + e * FF_THREADS, r = idx / FF_BK, c = idx % FF_BK;
                const int64_t row = row0 + r, col = k0 + c;
                xs[c][r] = row < n && col < d ? fkm_to_float(X[row * ld + col]) : 0.f;
            }
#pragma unroll
            for (int e = 0; e < FF_BN * FF_BK / FF_THREADS; e++) {
                const int idx = tid + e * FF_THREADS, r = idx / FF_BK, c = idx % FF_BK;
                cs[c][r] = cq[(j0 + r) * dpad + k0 + c];
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < FF_BK; kk++) {
                float xv[8], cv[4];
#pragma unroll
                for (int i = 0; i < 8; i++) xv[i] = xs[kk][ty + 16 * i];
#pragma unroll
                for (int jj = 0; jj < 4; jj++) cv[jj] = cs[kk][tx + 16 * jj];
#pragma unroll
                for (int i = 0; i < 8; i++)
#pragma unroll
                    for (int jj = 0; jj < 4; jj++) acc[i][jj] = fmaf(xv[i], cv[jj], acc[i][jj]);
            }
            __syncthreads();
        }
#pragma unroll
        for (int jj = 0; jj < 4; jj++) {
            const int64_t col = j0 + tx + 16 * jj;
            const float c = __ldg(cn + col);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const float s = fmaf(-alpha, acc[i][jj], c);
                if (s < bs[i]) bs[i] = s, bi[i] = (int32_t)col;
            }
        }
    }
    /* the 16 threads with the same ty (lanes differing in the low 4 bits) share points */
#pragma unroll
    for (int i = 0; i < 8; i++) {
#pragma unroll
        for (int o = 1; o <= 8; o <<= 1) {
            const float s2 = __shfl_xor_sync(0xffffffffu, bs[i], o);
            const int32_t i2 = __shfl_xor_sync(0xffffffffu, bi[i], o);
            fkm_merge_best(bs[i], bi[i], s2, i2);
        }
    }
    /* lane tx == i writes point ty + 16 i: every lane writes one point */
    float s = bs[0];
    int32_t idx = bi[0];
#pragma unroll
    for (int i = 1; i < 8; i++)
        if (tx == i) s = bs[i], idx = bi[i];
    const int64_t row = row0 + ty + 16 * (tx & 7);
    fkm_store_label(tx < 8 && row < n, b * n + row, idx, s, labels_all, best_all, changed + b);
}

/* ---------------------------------------------------------------- host side */

fkm_status fkm_cuda_assign_create(fkm_ctx *ctx, const fkm_dev_problem *pb, fkm_precision precision,
                                  fkm_cuda_assign_ws **out)
{
    *out = NULL;
    fkm_cuda_assign_ws *ws = (fkm_cuda_assign_ws *)calloc(1, sizeof *ws);
    if (!ws) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the assignment workspace");
    ws->path = fkm_cuda_assign_path(pb, precision);
    const int mma = ws->path != FKM_ASSIGN_FFMA;
    const size_t elem = mma ? fkm_dtype_size(pb->dtype) : sizeof(float);
    const int wgmma = path_is_wgmma(ws->path);
    ws->kpad = round_up(pb->k, wgmma ? FKM_WGMMA_BN : mma ? MMA_BN : FF_BN);
    ws->dpad = round_up(pb->d, mma ? MMA_BK_OF((int64_t)elem) : FF_BK);
    const size_t rows = (size_t)pb->batch * (size_t)ws->kpad;
    cudaError_t e = cudaMalloc(&ws->cq, rows * (size_t)ws->dpad * elem);
    if (e == cudaSuccess) e = cudaMalloc((void **)&ws->cn, rows * sizeof(float));
    if (e != cudaSuccess) {
        fkm_cuda_assign_destroy(ws);
        return fkm_cuda_fail(ctx, e, __FILE__, __LINE__, "cudaMalloc(assignment workspace)");
    }
    *out = ws;
    return FKM_OK;
}

void fkm_cuda_assign_destroy(fkm_cuda_assign_ws *ws)
{
    if (!ws) return;
    cudaFree(ws->cq);
    cudaFree(ws->cn);
    free(ws);
}

/* One launch of the mma.sync kernel: X tiles resident in shared memory or streamed with the
 * centroids along D (split-D), for the fast, top-3 or candidate epilogue. */
template <typename T, bool TOP3, bool CAND>
static fkm_status run_mma(fkm_ctx *ctx, const fkm_cuda_assign_ws *ws, bool resident, dim3 grid, const T *X, int64_t n,
                          int64_t d, int64_t ld, int64_t bstride, const T *cq, const float *cn, float alpha,
                          int32_t *labels, unsigned long long *changed, float *best, const fkm_cuda_top3_out &out3,
                          const fkm_cuda_cand_out &cand, cudaStream_t stream)
{
    constexpr int64_t BK = MMA_BK_OF(sizeof(T));
    if (resident) {
        const size_t smem = ((size_t)MMA_BM * ws->dpad + (size_t)MMA_STAGES * MMA_BN * BK) * sizeof(T);
        FKM_CUDA_TRY(ctx, fkm_cuda_allow_smem((const void *)assign_mma<T, true, TOP3, CAND>, smem));
        assign_mma<T, true, TOP3, CAND><<<grid, MMA_THREADS, smem, stream>>>(
            X, n, d, ld, bstride, ws->dpad, cq, cn, ws->kpad, alpha, labels, changed, best, out3, cand);
    } else {
        const size_t smem = (size_t)MMA_STAGES * (MMA_BN + MMA_BM) * BK * sizeof(T);
        FKM_CUDA_TRY(ctx, fkm_cuda_allow_smem((const void *)assign_mma<T, false, TOP3, CAND>, smem));
        assign_mma<T, false, TOP3, CAND><<<grid, MMA_THREADS, smem, stream>>>(
            X, n, d, ld, bstride, ws->dpad, cq, cn, ws->kpad, alpha, labels, changed, best, out3, cand);
    }
    FKM_CUDA_LAUNCHED(ctx, CAND ? "assign_mma(candidates)" : "assign_mma");
    return FKM_OK;
}

template <typename T, bool TOP3>
static fkm_status launch_mma(fkm_ctx *ctx, fkm_cuda_assign_ws *ws, const fkm_dev_problem *pb, float alpha,
                             int32_t *labels, unsigned long long *changed, float *best, const fkm_cuda_top3_out *top3,
                             cudaStream_t stream)
{
    const fkm_cuda_top3_out out3 = top3 ? *top3 : fkm_cuda_top3_out{NULL, NULL, NULL};
    const dim3 grid((unsigned)fkm_ceil_div(pb->n, MMA_BM), (unsigned)pb->batch);
    return run_mma<T, TOP3, false>(ctx, ws, ws->path == FKM_ASSIGN_MMA, grid, (const T *)pb->X, pb->n, pb->d, pb->ld,
                                   pb->batch_stride, (const T *)ws->cq, ws->cn, alpha, labels, changed, best, out3,
                                   fkm_cuda_cand_out{}, stream);
}

/* The fast or the top-3 instantiation (top3 != NULL). */
template <typename T>
static fkm_status launch_mma_any(fkm_ctx *ctx, fkm_cuda_assign_ws *ws, const fkm_dev_problem *pb, float alpha,
                                 int32_t *labels, unsigned long long *changed, float *best,
                                 const fkm_cuda_top3_out *top3, cudaStream_t stream)
{
    return top3 ? launch_mma<T, true>(ctx, ws, pb, alpha, labels, changed, best, top3, stream)
                : launch_mma<T, false>(ctx, ws, pb, alpha, labels, changed, best, NULL, stream);
}

template <fkm_dtype DT>
static fkm_status launch_ffma(fkm_ctx *ctx, fkm_cuda_assign_ws *ws, const fkm_dev_problem *pb, float alpha,
                              int32_t *labels, unsigned long long *changed, float *best, cudaStream_t stream)
{
    typedef typename fkm_elem<DT>::type TX;
    const dim3 grid((unsigned)fkm_ceil_div(pb->n, FF_BM), (unsigned)pb->batch);
    assign_ffma<TX><<<grid, FF_THREADS, 0, stream>>>((const TX *)pb->X, pb->n, pb->d, pb->ld, pb->batch_stride,
                                                     ws->dpad, (const float *)ws->cq, ws->cn, ws->kpad, alpha,
                                                     labels, changed, best);
    FKM_CUDA_LAUNCHED(ctx, "assign_ffma");
    return FKM_OK;
}

template <typename T>
static fkm_status prepare(fkm_ctx *ctx, fkm_cuda_assign_ws *ws, const fkm_dev_problem *pb, const float *centroids,
                          int tf32, cudaStream_t stream)
{
    const int rows_per_block = 8;
    const dim3 grid((unsigned)fkm_ceil_div(ws->kpad, rows_per_block), (unsigned)pb->batch);
    prepare_centroids<T><<<grid, rows_per_block * 32, 0, stream>>>(centroids, pb->k, pb->d, ws->kpad, ws->dpad,
                                                                   pb->metric == FKM_METRIC_L2, tf32, (T *)ws->cq,
                                                                   ws->cn);
    FKM_CUDA_LAUNCHED(ctx, "prepare_centroids");
    return FKM_OK;
}

static fkm_status assign_any(fkm_ctx *ctx, fkm_cuda_assign_ws *ws, const fkm_dev_problem *pb,
                             const float *centroids, int32_t *labels, unsigned long long *changed,
                             float *best, const fkm_cuda_top3_out *top3, cudaStream_t stream)
{
    if (pb->batch > 65535)
        return fkm_fail(ctx, FKM_E_INVALID, "batch = %d: at most 65535 problems per launch", (int)pb->batch);
    const float alpha = pb->metric == FKM_METRIC_L2 ? 2.f : 1.f;
    if (ctx) ctx->gpu_assign_path = fkm_cuda_assign_path_name(ws->path);
    FKM_CUDA_TRY(ctx, cudaMemsetAsync(changed, 0, (size_t)pb->batch * sizeof *changed, stream));
    fkm_status s = FKM_OK;
    if (ws->path == FKM_ASSIGN_FFMA) {
        if ((s = prepare<float>(ctx, ws, pb, centroids, 0, stream)) != FKM_OK) return s;
        FKM_DISPATCH_DTYPE(pb->dtype, s = launch_ffma<DT>(ctx, ws, pb, alpha, labels, changed, best, stream));
        return s;
    }
    if (path_is_wgmma(ws->path)) {
        if (pb->dtype == FKM_F16) s = prepare<__half>(ctx, ws, pb, centroids, 0, stream);
        else if (pb->dtype == FKM_F32) s = prepare<float>(ctx, ws, pb, centroids, 1, stream);
        else s = prepare<__nv_bfloat16>(ctx, ws, pb, centroids, 0, stream);
        if (s != FKM_OK) return s;
        if (ws->path == FKM_ASSIGN_WGMMA_PINGPONG)
            return fkm_cuda_assign_wgmma_pingpong(ctx, pb, ws->cq, ws->cn, ws->kpad, ws->dpad, alpha, labels, changed,
                                                  best, top3, stream);
        if (ws->path == FKM_ASSIGN_WGMMA_PINGPONG_PERSISTENT)
            return fkm_cuda_assign_wgmma_pingpong_persistent(ctx, pb, ws->cq, ws->cn, ws->kpad, ws->dpad, alpha,
                                                             labels, changed, best, top3, stream);
        return fkm_cuda_assign_wgmma(ctx, pb, ws->cq, ws->cn, ws->kpad, ws->dpad, alpha, labels, changed, best, top3,
                                     stream);
    }
    if (pb->dtype == FKM_F16) {
        if ((s = prepare<__half>(ctx, ws, pb, centroids, 0, stream)) != FKM_OK) return s;
        return launch_mma_any<__half>(ctx, ws, pb, alpha, labels, changed, best, top3, stream);
    }
    if (pb->dtype == FKM_F32) {
        if ((s = prepare<float>(ctx, ws, pb, centroids, 1, stream)) != FKM_OK) return s;
        return launch_mma_any<float>(ctx, ws, pb, alpha, labels, changed, best, top3, stream);
    }
    if ((s = prepare<__nv_bfloat16>(ctx, ws, pb, centroids, 0, stream)) != FKM_OK) return s;
    return launch_mma_any<__nv_bfloat16>(ctx, ws, pb, alpha, labels, changed, best, top3, stream);
}

fkm_status fkm_cuda_assign(fkm_ctx *ctx, fkm_cuda_assign_ws *ws, const fkm_dev_problem *pb,
                           const float *centroids, int32_t *labels, unsigned long long *changed,
                           float *best, cudaStream_t stream)
{
    return assign_any(ctx, ws, pb, centroids, labels, changed, best, NULL, stream);
}

fkm_status fkm_cuda_assign_top3(fkm_ctx *ctx, fkm_cuda_assign_ws *ws, const fkm_dev_problem *pb,
                                const float *centroids, int32_t *labels, unsigned long long *changed,
                                float *best, const fkm_cuda_top3_out *top3, cudaStream_t stream)
{
    if (ws->path == FKM_ASSIGN_FFMA)
        return fkm_fail(ctx, FKM_E_INTERNAL, "the top-3 assignment needs a tensor-core path, not %s",
                        fkm_cuda_assign_path_name(ws->path));
    return assign_any(ctx, ws, pb, centroids, labels, changed, best, top3, stream);
}

template <typename T>
static fkm_status launch_candidates(fkm_ctx *ctx, fkm_cuda_assign_ws *ws, const fkm_dev_problem *pb, int64_t b,
                                    const void *Xg, int64_t m, int64_t ldg, const fkm_cuda_cand_out *cand,
                                    cudaStream_t stream)
{
    const float alpha = pb->metric == FKM_METRIC_L2 ? 2.f : 1.f;
    /* resident X as the mma paths choose it (fkm_cuda_assign_path), whatever path ws is for */
    const bool resident = ws->dpad * (int64_t)sizeof(T) <= MMA_RESIDENT_MAX_BYTES_PER_ROW;
    return run_mma<T, false, true>(ctx, ws, resident, dim3((unsigned)fkm_ceil_div(m, MMA_BM), 1), (const T *)Xg, m,
                                   pb->d, ldg, 0, (const T *)ws->cq + b * ws->kpad * ws->dpad, ws->cn + b * ws->kpad,
                                   alpha, NULL, NULL, NULL, fkm_cuda_top3_out{NULL, NULL, NULL}, *cand, stream);
}

fkm_status fkm_cuda_assign_candidates(fkm_ctx *ctx, fkm_cuda_assign_ws *ws, const fkm_dev_problem *pb, int64_t b,
                                      const void *Xg, int64_t m, int64_t ldg, const fkm_cuda_cand_out *cand,
                                      int force_mma, cudaStream_t stream)
{
    if (ws->path == FKM_ASSIGN_FFMA)
        return fkm_fail(ctx, FKM_E_INTERNAL, "the candidate pass needs a tensor-core path, not %s",
                        fkm_cuda_assign_path_name(ws->path));
    if (m <= 0) return FKM_OK;
    if (path_is_wgmma(ws->path) && !force_mma) {
        const float alpha = pb->metric == FKM_METRIC_L2 ? 2.f : 1.f;
        const size_t es = fkm_dtype_size(pb->dtype);
        const char *cq = (const char *)ws->cq + (size_t)(b * ws->kpad * ws->dpad) * es;
        return fkm_cuda_assign_wgmma_candidates(ctx, pb->dtype, pb->d, cq, ws->cn + b * ws->kpad, ws->kpad, ws->dpad,
                                                alpha, Xg, m, ldg, cand, stream);
    }
    if (pb->dtype == FKM_F16) return launch_candidates<__half>(ctx, ws, pb, b, Xg, m, ldg, cand, stream);
    if (pb->dtype == FKM_F32) return launch_candidates<float>(ctx, ws, pb, b, Xg, m, ldg, cand, stream);
    return launch_candidates<__nv_bfloat16>(ctx, ws, pb, b, Xg, m, ldg, cand, stream);
}
