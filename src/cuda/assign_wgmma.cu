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
 * lazy argmin epilogue of assign.cu (assign_wgmma.cuh, shared with assign_wgmma_overlap.cu).
 *
 * ptxas (CUDA 13) reports C7517 for this loop and waits for all of a step's MMAs at its back
 * edge: the loop header merges accumulators still in flight (a step inside a tile) with ones
 * the epilogue wrote. assign_wgmma_overlap.cu is shaped to avoid that (see its comment). */
#include "cuda/assign_wgmma.cuh"

#define WG_STAGES 4
#define WG_AHEAD (WG_STAGES - 2)

/* TOP3 (exact mode, docs/EXACTNESS.md 3.6): also each point's second and third smallest
 * scores and the second's index (src/core/top3.h), to top3; the fast instantiation is
 * unchanged. */
template <typename T, bool RESIDENT, bool TOP3>
__global__ void __launch_bounds__(WG_THREADS, 2)
assign_wgmma(const T *__restrict__ Xall, int64_t n, int64_t d, int64_t ld, int64_t bstride, int64_t dpad,
             const T *__restrict__ cqall, const float *__restrict__ cnall, int64_t kpad, float alpha,
             int32_t *__restrict__ labels_all, unsigned long long *changed, float *best_all, fkm_cuda_top3_out top3)
{
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    /* 1024-byte alignment of every tile: the swizzle pattern repeats every 8 rows of 128 B */
    T *smem = reinterpret_cast<T *>(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    const int64_t b = blockIdx.y;
    const T *X = Xall + b * bstride;
    const T *cq = cqall + b * kpad * dpad;
    const float *cn = cnall + b * kpad;
    const int64_t row0 = (int64_t)blockIdx.x * WG_BM;
    const int lane = threadIdx.x & 31, wg = threadIdx.x >> 7;
    constexpr int WG_BK = WG_BK_OF(T);
    const int kchunks = (int)(dpad / WG_BK);
    const int64_t steps = kpad / WG_BN * kchunks;
    T *xres = smem;                                   /* resident: kchunks x [128][64] */
    T *stages = smem + (RESIDENT ? (int64_t)WG_BM * dpad : 0);  /* WG_STAGES x [128][64] (+ X [128][64]) */
    const int stage_elems = RESIDENT ? WG_BN * WG_BK : (WG_BN + WG_BM) * WG_BK;

    if (RESIDENT) wg_load_x_resident<T>(xres, X, row0, n, ld, d, kchunks);
    fkm_cp_async_commit();
    /* prefetch distance WG_STAGES - 2: the slot refilled at step t is the one step t - 2 read,
     * whose MMAs every warpgroup has waited for before the barrier of step t */
    for (int s = 0; s < WG_AHEAD; s++) {
        if (s < steps)
            wg_load_stage<T, RESIDENT>(stages + s * stage_elems, cq + (int64_t)(s / kchunks) * WG_BN * dpad, dpad,
                                       s % kchunks, X, row0, n, ld, d);
        fkm_cp_async_commit();
    }

    float acc[64];
    wg_rows rows;
    wg_rows_init(rows);
    int kc = 0, load_kc = WG_AHEAD % kchunks, slot = 0;
    int64_t tile_col0 = 0, load_step = WG_AHEAD;
    const T *load_tile = cq + (int64_t)(WG_AHEAD / kchunks) * WG_BN * dpad;
    for (int64_t step = 0; step < steps; step++) {
        fkm_cp_async_wait<WG_AHEAD - 1>();
        __syncthreads();            /* stage `slot` complete; step - 2's slot free everywhere */
        if (load_step < steps)
            wg_load_stage<T, RESIDENT>(stages + ((slot + WG_AHEAD) % WG_STAGES) * stage_elems, load_tile, dpad,
                                       load_kc, X, row0, n, ld, d);
        fkm_cp_async_commit();
        if (++load_kc == kchunks) load_kc = 0, load_tile += (int64_t)WG_BN * dpad;
        load_step++;
        wg_proxy_fence();
        wg_fence();
        const T *cs = stages + slot * stage_elems;
        const T *xs = (RESIDENT ? xres + kc * WG_BM * WG_BK : cs + WG_BN * WG_BK) + wg * 64 * WG_BK;
#pragma unroll
        for (int kk = 0; kk < 4; kk++)   /* 32 bytes per step along the row: k16 (2-byte), k8 (TF32) */
            wg_mma<T>::run(acc, wg_desc(xs + kk * (32 / sizeof(T))), wg_desc(cs + kk * (32 / sizeof(T))),
                           kc > 0 || kk > 0);
        wg_commit();
        wg_wait<1>();                /* the previous step's MMAs are done: its slot can be reused */
        if (++slot == WG_STAGES) slot = 0;
        if (++kc == kchunks) {
            kc = 0;
            wg_wait<0>();
            const int64_t col0 = tile_col0 + (lane & 3) * 2;
            wg_epilogue<TOP3>(acc, wg_cn_global{cn + col0}, (int32_t)col0, alpha, rows);
            tile_col0 += WG_BN;
        }
    }
    fkm_cp_async_wait<0>();
    wg_finish<TOP3>(rows, b, row0, n, labels_all, changed, best_all, top3);
}

template <typename T, bool TOP3>
static fkm_status launch(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn, int64_t kpad,
                         int64_t dpad, float alpha, int32_t *labels, unsigned long long *changed, float *best,
                         const fkm_cuda_top3_out *top3, cudaStream_t stream)
{
    const fkm_cuda_top3_out out3 = top3 ? *top3 : fkm_cuda_top3_out{NULL, NULL, NULL};
    const dim3 grid((unsigned)fkm_ceil_div(pb->n, WG_BM), (unsigned)pb->batch);
    if (dpad * (int64_t)sizeof(T) <= FKM_WGMMA_MAX_ROW_BYTES) {
        const size_t smem = ((size_t)WG_BM * dpad + (size_t)WG_STAGES * WG_BN * WG_BK_OF(T)) * sizeof(T) + 1024;
        FKM_CUDA_TRY(ctx, cudaFuncSetAttribute(assign_wgmma<T, true, TOP3>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)smem));
        assign_wgmma<T, true, TOP3><<<grid, WG_THREADS, smem, stream>>>((const T *)pb->X, pb->n, pb->d, pb->ld,
                                                                        pb->batch_stride, dpad, (const T *)cq, cn,
                                                                        kpad, alpha, labels, changed, best, out3);
    } else { /* split-D: X chunks stream with the centroid chunks */
        const size_t smem = (size_t)WG_STAGES * (WG_BN + WG_BM) * WG_BK_OF(T) * sizeof(T) + 1024;
        FKM_CUDA_TRY(ctx, cudaFuncSetAttribute(assign_wgmma<T, false, TOP3>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)smem));
        assign_wgmma<T, false, TOP3><<<grid, WG_THREADS, smem, stream>>>((const T *)pb->X, pb->n, pb->d, pb->ld,
                                                                         pb->batch_stride, dpad, (const T *)cq, cn,
                                                                         kpad, alpha, labels, changed, best, out3);
    }
    FKM_CUDA_LAUNCHED(ctx, "assign_wgmma");
    return FKM_OK;
}

/* The fast or the top-3 instantiation (top3 != NULL). */
template <typename T>
static fkm_status launch_any(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn, int64_t kpad,
                             int64_t dpad, float alpha, int32_t *labels, unsigned long long *changed, float *best,
                             const fkm_cuda_top3_out *top3, cudaStream_t stream)
{
    return top3 ? launch<T, true>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, top3, stream)
                : launch<T, false>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, NULL, stream);
}

fkm_status fkm_cuda_assign_wgmma(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn,
                                 int64_t kpad, int64_t dpad, float alpha, int32_t *labels,
                                 unsigned long long *changed, float *best, const fkm_cuda_top3_out *top3,
                                 cudaStream_t stream)
{
    if (pb->dtype == FKM_F16)
        return launch_any<__half>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, top3, stream);
    if (pb->dtype == FKM_F32)
        return launch_any<float>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, top3, stream);
    return launch_any<__nv_bfloat16>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, top3, stream);
}
