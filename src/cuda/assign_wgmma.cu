/* assign_wgmma.cu — FlashAssign on Hopper's warpgroup MMA (sm_90a), for f16/bf16 inputs:
 * the same contract and epilogue as the mma.sync kernel in assign.cu, with the x.c tiles
 * computed by wgmma.mma_async m64n128k16 reading both operands from shared memory.
 *
 * A block is two warpgroups (256 threads) owning 128 points, two blocks per SM (256 points
 * and one block per SM measured slower for K = 1024 on an H100: 0.94 vs 0.75 ms). Its X tile
 * stays in shared memory, centroid tiles of 128 x 64 elements stream through a 4-stage cp.async ring. Both
 * tiles use the 128-byte swizzle the wgmma descriptors describe (16-byte chunk c of row r at
 * c ^ (r & 7)), which is also the layout assign.cu's ldmatrix path reads. Each warpgroup
 * computes 64 points x 128 centroids per tile (64 f32 accumulators per thread), then the
 * lazy argmin epilogue of assign.cu (assign_wgmma.cuh, shared with assign_wgmma_pingpong.cu).
 *
 * Loop shape (what keeps ptxas from injecting a wait, C7517; the same rules as
 * assign_wgmma_pingpong.cu): a tile loop around a D-chunk loop, the tile's first chunk (the one
 * that starts the sum, accumulate flag 0 on its first k-step) issued before the chunk loop.
 * At the chunk loop's header the accumulators are in flight on both incoming edges; at the
 * tile loop's header they are retired on both (undefined on entry, the epilogue's scores on
 * the back edge). The earlier single loop over all (tile, chunk) steps merged "in flight"
 * with "written by the epilogue" at its one header, and ptxas drained every step's MMAs at the
 * back edge (WARPGROUP.DEPBAR.LE gsb0, 0x0). wg_fence_acc around the issue and after the
 * wait that retires the set keeps NVVM from moving the epilogue's reads across the wait_group.
 * Each tile's ||c||^2 is staged in shared memory with its last D chunk (CNS) where that costs
 * no occupancy (cns_keeps_blocks). */
#include "cuda/assign_wgmma.cuh"

#include <algorithm>

#define WG_STAGES 4
#define WG_AHEAD (WG_STAGES - 2)

/* The pipeline's run-time state. */
template <typename T> struct wg1_ring {
    T *stages;            /* WG_STAGES x ([128][BK] centroids (+ [128][BK] X when not resident)) */
    float *cns;           /* WG_STAGES x 128 ||c||^2 (CNS): a tile's copy in its last chunk's slot */
    const T *xres;        /* resident X: kchunks x [128][BK] */
    const T *cq, *X;
    const float *cn;
    int64_t dpad, steps, load_step, row0, n, ld, d;
    int kchunks, slot, load_kc, stage_elems;
    int64_t load_tile;    /* tile index of the next load */
};

/* Loads pipeline step (tile, kc) into `slot`; with CNS the tile's ||c||^2 travels with its
 * last chunk (same cp.async group, so the step's wait + barrier covers it). */
template <typename T, bool RESIDENT, bool CNS>
static __device__ __forceinline__ void wg1_load(const wg1_ring<T> &r, int slot, int64_t tile, int kc)
{
    wg_load_stage<T, RESIDENT>(r.stages + slot * r.stage_elems, r.cq + tile * WG_BN * r.dpad, r.dpad, kc, r.X, r.row0,
                               r.n, r.ld, r.d);
    if (CNS && kc == r.kchunks - 1) wg_load_cn(r.cns + slot * WG_BN, r.cn + tile * WG_BN);
}

/* One pipeline step: D chunk kc of the current tile into acc (FIRST: chunk 0, accumulate flag
 * 0 on its first k-step, as the single loop had with kc > 0 || kk > 0). Leaves this step's
 * group in flight and every earlier one retired (its slot is refilled two steps later). */
template <typename T, bool RESIDENT, bool CNS, bool FIRST>
static __device__ __forceinline__ void wg1_step(wg1_ring<T> &r, float (&acc)[64], int kc)
{
    constexpr int WG_BK = WG_BK_OF(T);
    fkm_cp_async_wait<WG_AHEAD - 1>();
    __syncthreads();            /* stage `slot` complete; step - 2's slot free everywhere */
    if (r.load_step < r.steps) wg1_load<T, RESIDENT, CNS>(r, (r.slot + WG_AHEAD) % WG_STAGES, r.load_tile, r.load_kc);
    fkm_cp_async_commit();
    if (++r.load_kc == r.kchunks) r.load_kc = 0, r.load_tile++;
    r.load_step++;
    wg_proxy_fence();
    const int wg = threadIdx.x >> 7;
    const T *cs = r.stages + r.slot * r.stage_elems;
    const T *xs = (RESIDENT ? r.xres + kc * WG_BM * WG_BK : cs + WG_BN * WG_BK) + wg * 64 * WG_BK;
    wg_chunk_mma<T, FIRST>(acc, xs, cs); /* and the previous step's group retired: its slot can be reused */
    if (++r.slot == WG_STAGES) r.slot = 0;
}

/* TOP3 (exact mode, docs/EXACTNESS.md 3.6): also each point's second and third smallest
 * scores and the second's index (src/core/top3.h), to top3; the fast instantiation is
 * unchanged. CAND (exact mode's candidate pass, 5.4): no minimum, every score at or below its
 * row's threshold appended to cand; labels, best and changed untouched. */
template <typename T, bool RESIDENT, bool TOP3, bool CNS, bool CAND = false>
__global__ void __launch_bounds__(WG_THREADS, 2)
assign_wgmma(const T *__restrict__ Xall, int64_t n, int64_t d, int64_t ld, int64_t bstride, int64_t dpad,
             const T *__restrict__ cqall, const float *__restrict__ cnall, int64_t kpad, float alpha,
             int32_t *__restrict__ labels_all, unsigned long long *changed, float *best_all, fkm_cuda_top3_out top3,
             fkm_cuda_cand_out cand)
{
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    /* 1024-byte alignment of every tile: the swizzle pattern repeats every 8 rows of 128 B */
    T *smem = reinterpret_cast<T *>(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    constexpr int WG_BK = WG_BK_OF(T);
    const int64_t b = blockIdx.y;
    wg1_ring<T> r;
    r.X = Xall + b * bstride;
    r.cq = cqall + b * kpad * dpad;
    r.cn = cnall + b * kpad;
    r.row0 = (int64_t)blockIdx.x * WG_BM;
    r.n = n, r.ld = ld, r.d = d, r.dpad = dpad;
    r.kchunks = (int)(dpad / WG_BK);
    const int64_t ntiles = kpad / WG_BN;
    r.steps = ntiles * r.kchunks;
    r.xres = smem;
    r.stages = smem + (RESIDENT ? (int64_t)WG_BM * dpad : 0);
    r.stage_elems = RESIDENT ? WG_BN * WG_BK : (WG_BN + WG_BM) * WG_BK;
    r.cns = reinterpret_cast<float *>(r.stages + WG_STAGES * r.stage_elems);

    if (RESIDENT) wg_load_x_resident<T>(smem, r.X, r.row0, n, ld, d, r.kchunks);
    fkm_cp_async_commit();
    /* prefetch distance WG_STAGES - 2: the slot refilled at step t is the one step t - 2 read,
     * whose MMAs every warpgroup has waited for before the barrier of step t */
    for (int s = 0; s < WG_AHEAD; s++) {
        if (s < r.steps) wg1_load<T, RESIDENT, CNS>(r, s, s / r.kchunks, s % r.kchunks);
        fkm_cp_async_commit();
    }
    r.slot = 0;
    r.load_step = WG_AHEAD;
    r.load_kc = WG_AHEAD % r.kchunks;
    r.load_tile = WG_AHEAD / r.kchunks;

    const int lane = threadIdx.x & 31;
    float acc[64];
    wg_rows rows;
    wg_rows_init(rows);
    /* CAND: the lane's two rows (its warp's 16, lane / 4 and + 8), their thresholds, and the
     * block's 128 row counters after the ring (and its ||c||^2), zeroed before the first
     * step's barrier */
    float thr[2] = {-INFINITY, -INFINITY};
    int64_t crow[2] = {0, 0};
    int lrow[2] = {0, 0};
    unsigned *scnt = reinterpret_cast<unsigned *>(r.cns + (CNS ? WG_STAGES * WG_BN : 0));
    if constexpr (CAND) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            lrow[h] = (threadIdx.x >> 5) * 16 + (lane >> 2) + 8 * h;
            crow[h] = r.row0 + lrow[h];
            if (crow[h] < n) thr[h] = cand.thr[crow[h]];
        }
        if (threadIdx.x < WG_BM) scnt[threadIdx.x] = 0u;
    }
    for (int64_t tile = 0; tile < ntiles; tile++) {
        wg1_step<T, RESIDENT, CNS, true>(r, acc, 0);
        for (int kc = 1; kc < r.kchunks; kc++) wg1_step<T, RESIDENT, CNS, false>(r, acc, kc);
        wg_wait<0>();
        wg_fence_acc(acc);
        const int64_t col0 = tile * WG_BN + (lane & 3) * 2;
        if constexpr (CAND) {
            if (CNS)
                wg_cand_epilogue(acc, wg_cn_shared{fkm_smem_addr(r.cns + ((r.slot + WG_STAGES - 1) % WG_STAGES) * WG_BN +
                                                                 (lane & 3) * 2)},
                                 (int32_t)col0, alpha, thr, crow, lrow, scnt, cand);
            else
                wg_cand_epilogue(acc, wg_cn_global{r.cn + col0}, (int32_t)col0, alpha, thr, crow, lrow, scnt, cand);
        } else if (CNS) {
            /* the tile's last chunk was read one step ago: its slot is refilled only after the
             * next step's barrier */
            const int last_slot = (r.slot + WG_STAGES - 1) % WG_STAGES;
            wg_epilogue<TOP3>(acc, wg_cn_shared{fkm_smem_addr(r.cns + last_slot * WG_BN + (lane & 3) * 2)},
                              (int32_t)col0, alpha, rows);
        } else {
            wg_epilogue<TOP3>(acc, wg_cn_global{r.cn + col0}, (int32_t)col0, alpha, rows);
        }
    }
    fkm_cp_async_wait<0>();
    if constexpr (CAND) {
        __syncthreads(); /* every epilogue's counts are in */
        if (threadIdx.x < WG_BM && r.row0 + threadIdx.x < n) cand.cnt[r.row0 + threadIdx.x] = scnt[threadIdx.x];
    } else {
        wg_finish<TOP3>(rows, b, r.row0 + (threadIdx.x >> 5) * 16, n, labels_all, changed, best_all, top3);
    }
}

/* Shared memory of one block: X (resident) or nothing, the ring, with CNS the ring's ||c||^2,
 * and the 1024-byte alignment slack. */
template <typename T>
static size_t smem_bytes(bool resident, bool cns, int64_t dpad)
{
    const size_t stage = (size_t)(WG_BN + (resident ? 0 : WG_BM)) * WG_BK_OF(T) * sizeof(T);
    return (resident ? (size_t)WG_BM * dpad * sizeof(T) : 0) + WG_STAGES * stage +
           (cns ? (size_t)WG_STAGES * WG_BN * sizeof(float) : 0) + 1024;
}

/* Stage ||c||^2 in shared memory unless its 2 KB would cost the SM its second block (resident
 * X rows of 384 bytes: 2 x (48 + 64 + 1 KB + 1 KB reserved) is exactly the H100's 228 KB). */
static bool cns_keeps_blocks(size_t without, size_t with)
{
    int dev = 0, per_sm = 0, reserved = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    const auto blocks = [&](size_t s) { return std::min<size_t>(2, (size_t)per_sm / (s + (size_t)reserved)); };
    return blocks(with) == blocks(without);
}

template <typename T, bool RESIDENT, bool TOP3, bool CNS>
static fkm_status launch_one(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn, int64_t kpad,
                             int64_t dpad, float alpha, int32_t *labels, unsigned long long *changed, float *best,
                             const fkm_cuda_top3_out &out3, cudaStream_t stream)
{
    const dim3 grid((unsigned)fkm_ceil_div(pb->n, WG_BM), (unsigned)pb->batch);
    const size_t smem = smem_bytes<T>(RESIDENT, CNS, dpad);
    FKM_CUDA_TRY(ctx, fkm_cuda_allow_smem((const void *)assign_wgmma<T, RESIDENT, TOP3, CNS>, smem));
    assign_wgmma<T, RESIDENT, TOP3, CNS><<<grid, WG_THREADS, smem, stream>>>(
        (const T *)pb->X, pb->n, pb->d, pb->ld, pb->batch_stride, dpad, (const T *)cq, cn, kpad, alpha, labels,
        changed, best, out3, fkm_cuda_cand_out{});
    FKM_CUDA_LAUNCHED(ctx, "assign_wgmma");
    return FKM_OK;
}

/* The launcher wg_dispatch (assign_wgmma.cuh) calls for each dtype and epilogue. */
struct wg1_launcher {
    template <typename T, bool TOP3>
    static fkm_status run(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn, int64_t kpad,
                          int64_t dpad, float alpha, int32_t *labels, unsigned long long *changed, float *best,
                          const fkm_cuda_top3_out *top3, cudaStream_t stream)
    {
        const fkm_cuda_top3_out out3 = top3 ? *top3 : fkm_cuda_top3_out{NULL, NULL, NULL};
        if (dpad * (int64_t)sizeof(T) > FKM_WGMMA_MAX_ROW_BYTES) /* split-D: X chunks stream with the centroid chunks */
            return launch_one<T, false, TOP3, true>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, out3,
                                                    stream);
        if (cns_keeps_blocks(smem_bytes<T>(true, false, dpad), smem_bytes<T>(true, true, dpad)))
            return launch_one<T, true, TOP3, true>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, out3,
                                                   stream);
        return launch_one<T, true, TOP3, false>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, out3,
                                                stream);
    }
};

fkm_status fkm_cuda_assign_wgmma(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn,
                                 int64_t kpad, int64_t dpad, float alpha, int32_t *labels,
                                 unsigned long long *changed, float *best, const fkm_cuda_top3_out *top3,
                                 cudaStream_t stream)
{
    return wg_dispatch<wg1_launcher>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, top3, stream);
}

/* The candidate pass's kernel (assign.cuh): m rows Xg (leading dimension ldg) against one
 * problem's prepared centroids cq, cn; the same shared-memory choices as the fast kernel. */
template <typename T, bool RESIDENT, bool CNS>
static fkm_status launch_cand(fkm_ctx *ctx, int64_t d, const void *cq, const float *cn, int64_t kpad, int64_t dpad,
                              float alpha, const void *Xg, int64_t m, int64_t ldg, const fkm_cuda_cand_out &cand,
                              cudaStream_t stream)
{
    const dim3 grid((unsigned)fkm_ceil_div(m, WG_BM), 1);
    const size_t smem = smem_bytes<T>(RESIDENT, CNS, dpad) + WG_BM * sizeof(unsigned); /* the row counters */
    FKM_CUDA_TRY(ctx, fkm_cuda_allow_smem((const void *)assign_wgmma<T, RESIDENT, false, CNS, true>, smem));
    assign_wgmma<T, RESIDENT, false, CNS, true><<<grid, WG_THREADS, smem, stream>>>(
        (const T *)Xg, m, d, ldg, 0, dpad, (const T *)cq, cn, kpad, alpha, NULL, NULL, NULL,
        fkm_cuda_top3_out{NULL, NULL, NULL}, cand);
    FKM_CUDA_LAUNCHED(ctx, "assign_wgmma(candidates)");
    return FKM_OK;
}

template <typename T>
static fkm_status launch_cand_any(fkm_ctx *ctx, int64_t d, const void *cq, const float *cn, int64_t kpad,
                                  int64_t dpad, float alpha, const void *Xg, int64_t m, int64_t ldg,
                                  const fkm_cuda_cand_out &cand, cudaStream_t stream)
{
    if (dpad * (int64_t)sizeof(T) > FKM_WGMMA_MAX_ROW_BYTES)
        return launch_cand<T, false, true>(ctx, d, cq, cn, kpad, dpad, alpha, Xg, m, ldg, cand, stream);
    if (cns_keeps_blocks(smem_bytes<T>(true, false, dpad), smem_bytes<T>(true, true, dpad)))
        return launch_cand<T, true, true>(ctx, d, cq, cn, kpad, dpad, alpha, Xg, m, ldg, cand, stream);
    return launch_cand<T, true, false>(ctx, d, cq, cn, kpad, dpad, alpha, Xg, m, ldg, cand, stream);
}

fkm_status fkm_cuda_assign_wgmma_candidates(fkm_ctx *ctx, fkm_dtype dtype, int64_t d, const void *cq,
                                            const float *cn, int64_t kpad, int64_t dpad, float alpha, const void *Xg,
                                            int64_t m, int64_t ldg, const fkm_cuda_cand_out *cand, cudaStream_t stream)
{
    if (dtype == FKM_F16) return launch_cand_any<__half>(ctx, d, cq, cn, kpad, dpad, alpha, Xg, m, ldg, *cand, stream);
    if (dtype == FKM_F32) return launch_cand_any<float>(ctx, d, cq, cn, kpad, dpad, alpha, Xg, m, ldg, *cand, stream);
    return launch_cand_any<__nv_bfloat16>(ctx, d, cq, cn, kpad, dpad, alpha, Xg, m, ldg, *cand, stream);
}
