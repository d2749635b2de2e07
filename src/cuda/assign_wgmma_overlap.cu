/* assign_wgmma_overlap.cu — FlashAssign on Hopper's warpgroup MMA with the argmin epilogue of
 * centroid tile j overlapped with the MMAs of tile j + 1 inside each warpgroup, as
 * FlashAttention-3 overlaps softmax with the next GEMM (docs/GPU_PERF.md, "Assignment", item 1).
 * Same contract and same bits as assign_wgmma.cu's resident-X kernel (the tile geometry, the
 * loaders, the wgmma wrappers and the epilogue are the ones in assign_wgmma.cuh); selected with
 * FLASHKM_WGMMA_OVERLAP=1 (assign.cu) for rows of X up to FKM_WGMMA_MAX_ROW_BYTES.
 *
 * Each warpgroup holds two accumulator sets, A and B (64 f32 each per thread): tiles 0, 2, 4, ...
 * go to A, tiles 1, 3, ... to B. Per tile, one pipeline step per 64-element D chunk: wait for
 * the chunk's stage, block barrier, refill the slot read two steps ago, issue the chunk's 4
 * wgmma, commit, wait_group 1. The first chunk of tile j + 1 is issued before the epilogue of
 * tile j: its wait_group 1 retires tile j's last group while tile j + 1's first chunk stays in
 * flight, and the epilogue of tile j runs under it.
 *
 * Two sets need ~128 + 60 registers: one block of 256 threads per SM (launch bounds 256, 1),
 * which leaves the shared memory for a deeper ring (OV_STAGES) and for each tile's ||c||^2,
 * staged with the tile's last D chunk instead of 32 global loads per thread per tile.
 *
 * What ptxas needs to keep the wgmma asynchronous (no C7514 "serialized", no C7517 "wait
 * injected"; both show up with -Xptxas -v):
 *  - compile-time sets: the tile loop is walked in pairs, each set named in the code, never
 *    selected at run time;
 *  - the same state of every set on every edge into a loop header: at the pair loop's header A
 *    is always in flight (tile 0 is issued before the loop) and B always finished (its
 *    epilogue done); in a tile's D-chunk loop the tile's set is in flight and the other
 *    finished. A set that is "in flight" on one incoming edge and "written by ordinary
 *    instructions" on another is what makes ptxas inject a full wait (the single-set kernel
 *    gets one on every step for that reason, C7517);
 *  - wg_fence_acc on a set around its wgmma issue and after the wait that retires it, so that
 *    NVVM cannot hoist the epilogue's reads above the wait_group asm;
 *  - an odd last tile handled on its own exit path (wait_group 0, then that set's epilogue). */
#include "cuda/assign_wgmma.cuh"

#define OV_STAGES 8                   /* 8 x 16 KB centroid stages + 8 x 512 B of ||c||^2 */
#define OV_AHEAD (OV_STAGES - 2)      /* the slot refilled at step t is the one step t - 2 read */

/* The pipeline's run-time state, the same for both sets. */
template <typename T> struct ov_ring {
    T *stages;          /* OV_STAGES x [128][BK] swizzled centroid chunks */
    float *cns;         /* OV_STAGES x 128 ||c||^2: a tile's copy lives in its last chunk's slot */
    const T *xres;      /* resident X: kchunks x [128][BK] */
    const T *cq;        /* this problem's centroids, kpad x dpad */
    const float *cn;    /* this problem's ||c||^2, kpad */
    int64_t dpad, steps, load_step;
    int kchunks, slot, load_kc;
    int64_t load_tile;  /* tile index of the next load */
};

/* Loads pipeline step s (tile s / kchunks, chunk s % kchunks) into `slot`; the tile's
 * ||c||^2 travels with its last chunk. */
template <typename T>
static __device__ __forceinline__ void ov_load(ov_ring<T> &r, int slot, int64_t tile, int kc)
{
    constexpr int WG_BK = WG_BK_OF(T);
    wg_load_stage<T, true>(r.stages + slot * (WG_BN * WG_BK), r.cq + tile * WG_BN * r.dpad, r.dpad, kc, nullptr, 0,
                           0, 0, 0);
    if (kc == r.kchunks - 1) wg_load_cn(r.cns + slot * WG_BN, r.cn + tile * WG_BN);
}

/* One pipeline step: D chunk kc of the current tile into acc (FIRST: chunk 0, which starts
 * the sum, so the accumulate flag is 0 for its first k-step exactly as in assign_wgmma.cu).
 * Leaves this step's group in flight and every earlier group retired. */
template <typename T, bool FIRST>
static __device__ __forceinline__ void ov_step(ov_ring<T> &r, float (&acc)[64], int kc)
{
    constexpr int WG_BK = WG_BK_OF(T);
    fkm_cp_async_wait<OV_AHEAD - 1>();
    __syncthreads();            /* stage `slot` complete; step - 2's slot free in both warpgroups */
    if (r.load_step < r.steps) ov_load(r, (r.slot + OV_AHEAD) % OV_STAGES, r.load_tile, r.load_kc);
    fkm_cp_async_commit();
    if (++r.load_kc == r.kchunks) r.load_kc = 0, r.load_tile++;
    r.load_step++;
    wg_proxy_fence();
    const int wg = threadIdx.x >> 7;
    const T *cs = r.stages + r.slot * (WG_BN * WG_BK);
    const T *xs = r.xres + kc * WG_BM * WG_BK + wg * 64 * WG_BK;
    wg_fence_acc(acc);
    wg_fence();
    wg_issue_chunk<T, FIRST>(acc, xs, cs); /* 32 bytes per step along the row: k16 (2-byte), k8 (TF32) */
    wg_commit();
    wg_fence_acc(acc);
    wg_wait<1>();               /* the previous step's group is done: its slot can be refilled */
    if (++r.slot == OV_STAGES) r.slot = 0;
}

/* The epilogue of a set whose group is retired. Its tile's ||c||^2 sits in the slot of the
 * tile's last chunk, `back` steps before the next one: 2 after ov_step's wait_group 1 for the
 * other set's first chunk (that slot is refilled only after the next barrier), 1 on the exit
 * paths after the last step's chunk and wait_group 0. */
template <typename T, bool TOP3>
static __device__ __forceinline__ void ov_epilogue(ov_ring<T> &r, float (&acc)[64], int64_t tile, int back,
                                                   float alpha, wg_rows &rows)
{
    wg_fence_acc(acc);
    const int lane = threadIdx.x & 31;
    const int last_slot = (r.slot + OV_STAGES - back) % OV_STAGES;
    const wg_cn_shared cn{fkm_smem_addr(r.cns + last_slot * WG_BN + (lane & 3) * 2)};
    wg_epilogue<TOP3>(acc, cn, (int32_t)(tile * WG_BN + (lane & 3) * 2), alpha, rows);
}

template <typename T, bool TOP3>
__global__ void __launch_bounds__(WG_THREADS, 1)
assign_wgmma_overlap(const T *__restrict__ Xall, int64_t n, int64_t d, int64_t ld, int64_t bstride, int64_t dpad,
                     const T *__restrict__ cqall, const float *__restrict__ cnall, int64_t kpad, float alpha,
                     int32_t *__restrict__ labels_all, unsigned long long *changed, float *best_all,
                     fkm_cuda_top3_out top3)
{
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    /* 1024-byte alignment of every tile: the swizzle pattern repeats every 8 rows of 128 B */
    T *smem = reinterpret_cast<T *>(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    constexpr int WG_BK = WG_BK_OF(T);
    const int64_t b = blockIdx.y;
    const T *X = Xall + b * bstride;
    const int64_t row0 = (int64_t)blockIdx.x * WG_BM;
    ov_ring<T> r;
    r.kchunks = (int)(dpad / WG_BK);
    r.xres = smem;
    r.stages = smem + (int64_t)WG_BM * dpad;
    r.cns = reinterpret_cast<float *>(r.stages + OV_STAGES * WG_BN * WG_BK);
    r.cq = cqall + b * kpad * dpad;
    r.cn = cnall + b * kpad;
    r.dpad = dpad;
    const int64_t ntiles = kpad / WG_BN;
    r.steps = ntiles * r.kchunks;

    wg_load_x_resident<T>(smem, X, row0, n, ld, d, r.kchunks);
    fkm_cp_async_commit();
    for (int s = 0; s < OV_AHEAD; s++) {
        if (s < r.steps) ov_load(r, s, s / r.kchunks, s % r.kchunks);
        fkm_cp_async_commit();
    }
    r.slot = 0;
    r.load_step = OV_AHEAD;
    r.load_kc = OV_AHEAD % r.kchunks;
    r.load_tile = OV_AHEAD / r.kchunks;

    float acc_a[64], acc_b[64];
    wg_rows rows;
    wg_rows_init(rows);
    /* tile 0 into A; from here on A is in flight at the pair loop's header, B finished */
    ov_step<T, true>(r, acc_a, 0);
    for (int kc = 1; kc < r.kchunks; kc++) ov_step<T, false>(r, acc_a, kc);
    for (int64_t t = 1;; t += 2) {
        if (t >= ntiles) { /* odd number of tiles: A's is the last */
            wg_wait<0>();
            ov_epilogue<T, TOP3>(r, acc_a, t - 1, 1, alpha, rows);
            break;
        }
        ov_step<T, true>(r, acc_b, 0);               /* tile t's first chunk in flight ... */
        ov_epilogue<T, TOP3>(r, acc_a, t - 1, 2, alpha, rows); /* ... under tile t - 1's epilogue */
        for (int kc = 1; kc < r.kchunks; kc++) ov_step<T, false>(r, acc_b, kc);
        if (t + 1 >= ntiles) {
            wg_wait<0>();
            ov_epilogue<T, TOP3>(r, acc_b, t, 1, alpha, rows);
            break;
        }
        ov_step<T, true>(r, acc_a, 0);
        ov_epilogue<T, TOP3>(r, acc_b, t, 2, alpha, rows);
        for (int kc = 1; kc < r.kchunks; kc++) ov_step<T, false>(r, acc_a, kc);
    }
    fkm_cp_async_wait<0>();
    wg_finish<TOP3>(rows, b, row0 + (threadIdx.x >> 5) * 16, n, labels_all, changed, best_all, top3);
}

/* The launcher wg_dispatch (assign_wgmma.cuh) calls for each dtype and epilogue. */
struct ov_launcher {
    template <typename T, bool TOP3>
    static fkm_status run(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn, int64_t kpad,
                          int64_t dpad, float alpha, int32_t *labels, unsigned long long *changed, float *best,
                          const fkm_cuda_top3_out *top3, cudaStream_t stream)
    {
        if (dpad * (int64_t)sizeof(T) > FKM_WGMMA_MAX_ROW_BYTES)
            return fkm_fail(ctx, FKM_E_INTERNAL, "assign_wgmma_overlap: rows of %lld bytes do not stay resident",
                            (long long)(dpad * (int64_t)sizeof(T)));
        const fkm_cuda_top3_out out3 = top3 ? *top3 : fkm_cuda_top3_out{NULL, NULL, NULL};
        const dim3 grid((unsigned)fkm_ceil_div(pb->n, WG_BM), (unsigned)pb->batch);
        const size_t smem = ((size_t)WG_BM * dpad + (size_t)OV_STAGES * WG_BN * WG_BK_OF(T)) * sizeof(T) +
                            (size_t)OV_STAGES * WG_BN * sizeof(float) + 1024;
        FKM_CUDA_TRY(ctx, cudaFuncSetAttribute(assign_wgmma_overlap<T, TOP3>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        assign_wgmma_overlap<T, TOP3><<<grid, WG_THREADS, smem, stream>>>(
            (const T *)pb->X, pb->n, pb->d, pb->ld, pb->batch_stride, dpad, (const T *)cq, cn, kpad, alpha, labels,
            changed, best, out3);
        FKM_CUDA_LAUNCHED(ctx, "assign_wgmma_overlap");
        return FKM_OK;
    }
};

fkm_status fkm_cuda_assign_wgmma_overlap(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn,
                                         int64_t kpad, int64_t dpad, float alpha, int32_t *labels,
                                         unsigned long long *changed, float *best, const fkm_cuda_top3_out *top3,
                                         cudaStream_t stream)
{
    return wg_dispatch<ov_launcher>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, top3, stream);
}
