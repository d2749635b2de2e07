/* assign_wgmma_pingpong.cu — FlashAssign on Hopper's warpgroup MMA with the FlashAttention-3
 * "ping-pong" schedule: two consumer warpgroups take turns issuing their wgmma for a centroid
 * tile, so that one runs its argmin epilogue while the tensor cores work on the other's MMAs.
 * Same contract and same bits as assign_wgmma.cu's resident-X kernel (the loaders, the wgmma
 * sequence, the epilogue and the final merge are the ones in assign_wgmma.cuh). Selected by
 * default where assign.cu's rule finds it faster (wide MMAs or many clusters) and by
 * FLASHKM_WGMMA_OVERLAP=2, for rows of X up to FKM_WGMMA_MAX_ROW_BYTES. First run on an H100
 * on 2026-11-27: bitwise equal to the single-set kernel (test_cuda), synccheck clean.
 *
 * Block: 384 threads, one block per SM.
 *  - warpgroups 0 and 1 (threads 0..255, so the block-level helpers of assign_wgmma.cuh that
 *    index by threadIdx.x apply unchanged): consumers, 128 points each (two m64 halves, 2 x 64
 *    f32 accumulators per thread), registers raised to PP_CONSUMER_REGS with setmaxnreg;
 *  - warpgroup 2: the producer. Its warps give registers back (setmaxnreg.dec to
 *    PP_PRODUCER_REGS); warp 8 streams the centroid ring with cp.async, the other three exit.
 * 256 points per block rather than 128: with one block per SM (the consumers' 2 x 64
 * accumulators and the 384 threads leave no room for a second), the block's prologue (its X
 * tile) is paid once per 256 points instead of once per 128, and every block streams all K x D
 * centroids from L2, so 256-point blocks halve that traffic (at 70% of the fp16 GEMM rate,
 * N=1M K=1024 D=128, 128-point blocks would need ~4.5 TB/s of L2 bandwidth, 256-point ones
 * about half). The registers allow it: ptxas keeps the consumers' code within 162 registers
 * (fast) and 180 (top-3) of their 224, the producer's within 54 of its 56, no spills (SASS
 * register high-water marks, CUDA 13.0).
 *
 * The ring: nst stages (run time, at most PP_MAX_STAGES; the shared memory left by the X tile
 * decides), each one 64-element D chunk of a centroid tile (16 KB, 128-byte swizzle) and, for a
 * tile's last chunk, its 128 ||c||^2. Per stage two mbarriers:
 *  - full[s] (32 arrivals): each producer lane's cp.async.mbarrier.arrive.noinc, which fires
 *    when that lane's copies into the stage have landed;
 *  - empty[s] (8 arrivals): lane 0 of each consumer warp, once its warpgroup's MMAs on the
 *    stage have retired (wait_group 0 after the tile's last chunk); a tile's last stage, which
 *    holds its ||c||^2, only after the epilogue has read them.
 * Phases: use u = step / nst of a slot waits full with parity u & 1 (consumers) and empty with
 * parity (u & 1) ^ 1 (producer: on a fresh barrier the "preceding" phase counts as complete,
 * so the first use does not wait).
 *
 * The turns: named barriers PP_BAR_TURN + w (256 threads: warpgroup w's 128 bar.sync, the
 * other's 128 bar.arrive). Warpgroup w, per tile: bar.sync its turn; issue the tile's chunks
 * (each after waiting for its stage); bar.arrive the other's turn; wait_group 0; epilogue;
 * release the tile's stages (all but the last before the epilogue). Warpgroup 1 opens with a
 * bar.arrive on warpgroup 0's turn (0 goes first) and skips its arrive after its last tile, so
 * that every arrive meets a sync.
 *
 * Not hidden: with one block per SM, a block's prologue (X tile, first stages) and its final
 * merge run with the tensor cores idle (a persistent grid prefetching the next row block's X
 * would hide them); with rows over 256 bytes the ring (5 stages) holds less than two tiles, so
 * a warpgroup's next tile waits for the other's MMAs on the previous one.
 *
 * Why it cannot deadlock (nst >= kchunks, checked by the launcher): a consumer waits only on
 * full stages and on its turn. Warpgroup 1's turn for tile t comes once warpgroup 0 has issued
 * (not finished) tile t, warpgroup 0's once warpgroup 1 has issued tile t - 1: issues that need
 * only stages of tiles <= t, all loaded before warpgroup 0 got them. The stage of step s reuses
 * the slot of step s - nst, which for nst >= kchunks belongs to a tile before the one being
 * issued, whose stages each warpgroup releases after its MMAs on them and its epilogue, which
 * wait on nothing. The producer walks the steps in order and waits only for those releases.
 * scripts/pingpong-model.py checks this protocol (and the phases) under random interleavings.
 *
 * Loop shape (the rules of assign_wgmma.cu, C7517): a tile loop around a D-chunk loop, the
 * tile's first chunk issued before the chunk loop; both accumulator halves travel in one
 * commit group, so at the chunk loop's header (and in the mbarrier spin loops inside it) both
 * are in flight on every incoming edge, at the tile loop's header both are retired. */
#include "cuda/assign_wgmma.cuh"

#define PP_BM 256                 /* points per block: 128 per consumer warpgroup */
#define PP_THREADS (WG_THREADS + 128) /* two consumer warpgroups + the producer warpgroup */
#define PP_CONSUMER_WARPS (WG_THREADS / 32)
#define PP_MAX_STAGES 8           /* at D = 128 (f16): four tiles, two in use and two ahead */
/* 128 x 56 + 256 x 224 = 384 x 168: the block's registers at launch (__launch_bounds__(384, 1)
 * gives at most 168 per thread), moved from the producer to the consumers */
#define PP_PRODUCER_REGS 56
#define PP_CONSUMER_REGS 224
/* named barrier ids (0 is __syncthreads): the turns of warpgroups 0 and 1, the consumers' X */
#define PP_BAR_TURN 1
#define PP_BAR_X 3

/* The device code below exists in the sm_90a pass only (and is parsed by the host pass): the
 * kernel is launched on compute capability 9.0 alone, and on other architectures its body is
 * empty rather than a dead copy with the wgmma and mbarrier instructions left out. */
#if !defined(__CUDA_ARCH__) || defined(FKM_HAVE_WGMMA)
#define PP_DEVICE_CODE 1
#endif

#ifdef PP_DEVICE_CODE
/* ---------------------------------------------------------------- sm_90 primitives */

static __device__ __forceinline__ void pp_mbar_init(uint64_t *bar, int count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(fkm_smem_addr(bar)), "r"(count) : "memory");
}

/* Makes the initialised barriers visible to the asynchronous arrivals (cp.async's) as well as
 * to the other threads (the __syncthreads after it). */
static __device__ __forceinline__ void pp_mbar_init_fence()
{
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

/* Spins until the phase of `bar` with this parity has completed. */
static __device__ __forceinline__ void pp_mbar_wait(uint64_t *bar, int parity)
{
    asm volatile("{\n.reg .pred p;\nPP_WAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
                 "@!p bra PP_WAIT;\n}\n" ::"r"(fkm_smem_addr(bar)),
                 "r"(parity)
                 : "memory");
}

static __device__ __forceinline__ void pp_mbar_arrive(uint64_t *bar)
{
    asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(fkm_smem_addr(bar))
                 : "memory");
}

/* An arrival on `bar` once every cp.async this thread has issued so far has landed (not
 * counted in advance: the barrier's count includes it). */
static __device__ __forceinline__ void pp_cp_async_arrive(uint64_t *bar)
{
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(fkm_smem_addr(bar)) : "memory");
}

/* Named barrier ID of COUNT threads (a multiple of 32); compile-time ids, so that ptxas
 * counts only the barriers used. */
template <int ID, int COUNT> static __device__ __forceinline__ void pp_bar_sync()
{
    asm volatile("bar.sync %0, %1;\n" ::"n"(ID), "n"(COUNT) : "memory");
}
template <int ID, int COUNT> static __device__ __forceinline__ void pp_bar_arrive()
{
    asm volatile("bar.arrive %0, %1;\n" ::"n"(ID), "n"(COUNT) : "memory");
}

/* The turns: warpgroup wg waits for its own, or hands the next one to warpgroup wg (both
 * consumer warpgroups take part in each: 128 threads sync, 128 arrive). */
static __device__ __forceinline__ void pp_turn_wait(int wg)
{
    if (wg == 0) pp_bar_sync<PP_BAR_TURN, 2 * 128>();
    else pp_bar_sync<PP_BAR_TURN + 1, 2 * 128>();
}
static __device__ __forceinline__ void pp_turn_give(int wg)
{
    if (wg == 0) pp_bar_arrive<PP_BAR_TURN, 2 * 128>();
    else pp_bar_arrive<PP_BAR_TURN + 1, 2 * 128>();
}

template <int N> static __device__ __forceinline__ void pp_setmaxnreg_dec()
{
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N> static __device__ __forceinline__ void pp_setmaxnreg_inc()
{
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}

/* ---------------------------------------------------------------- the ring */

template <typename T> struct pp_ring {
    T *stages;          /* nst x [128][BK] swizzled centroid chunks */
    float *cns;         /* nst x 128 ||c||^2: a tile's copy lives in its last chunk's slot */
    uint64_t *full, *empty;
    const T *xres;      /* resident X: kchunks x [PP_BM][BK] */
    const T *cq;        /* this problem's centroids, kpad x dpad */
    const float *cn;    /* this problem's ||c||^2, kpad */
    int64_t dpad, ntiles;
    int kchunks, nst;
};

/* A consumer's or the producer's position in the ring: slot and the parity of its use. */
struct pp_pos {
    int slot, phase;
    __device__ __forceinline__ void next(int nst)
    {
        if (++slot == nst) slot = 0, phase ^= 1;
    }
};

/* The producer warp: every (tile, chunk) step in order, each into the next slot once both
 * consumer warpgroups have released that slot's previous use. Waits for its last copies before
 * returning (a lane that exits with copies in flight would leave their arrivals pending); the
 * copies were never committed as groups (the mbarriers track them), hence the commit before
 * wait_group 0, which only waits for committed groups. */
template <typename T>
static __device__ void pp_produce(const pp_ring<T> &r, int lane)
{
    constexpr int WG_BK = WG_BK_OF(T);
    pp_pos p = {0, 0};
    for (int64_t tile = 0; tile < r.ntiles; tile++) {
        const T *cq_tile = r.cq + tile * WG_BN * r.dpad;
        for (int kc = 0; kc < r.kchunks; kc++) {
            pp_mbar_wait(r.empty + p.slot, p.phase ^ 1);
            wg_load_centroid_chunk<T, 32>(r.stages + p.slot * (WG_BN * WG_BK), cq_tile, r.dpad, kc, lane);
            if (kc == r.kchunks - 1) wg_load_cn(r.cns + p.slot * WG_BN, r.cn + tile * WG_BN, lane);
            pp_cp_async_arrive(r.full + p.slot);
            p.next(r.nst);
        }
    }
    fkm_cp_async_commit();
    fkm_cp_async_wait<0>();
}

/* One D chunk of a consumer warpgroup's tile: wait for its stage, then the chunk's wgmma for
 * both 64-row halves (lo: rows 0..63 of the warpgroup's 128, hi: 64..127) in one commit group.
 * Returns with the group in flight (FIRST: chunk 0, accumulate flag 0 on its first k-step). */
template <typename T, bool FIRST>
static __device__ __forceinline__ void pp_chunk(const pp_ring<T> &r, pp_pos &p, float (&lo)[64], float (&hi)[64],
                                                int kc)
{
    constexpr int WG_BK = WG_BK_OF(T);
    pp_mbar_wait(r.full + p.slot, p.phase);
    wg_proxy_fence(); /* the producer's cp.async wrote through the generic proxy */
    const T *cs = r.stages + p.slot * (WG_BN * WG_BK);
    const T *xs = r.xres + kc * PP_BM * WG_BK + (threadIdx.x >> 7) * 128 * WG_BK;
    wg_fence_acc(lo);
    wg_fence_acc(hi);
    wg_fence();
    wg_issue_chunk<T, FIRST>(lo, xs, cs);
    wg_issue_chunk<T, FIRST>(hi, xs + 64 * WG_BK, cs);
    wg_commit();
    wg_fence_acc(lo);
    wg_fence_acc(hi);
    p.next(r.nst);
}

/* `count` stages from `first` on, released by this warp: lane 0 arrives once the warp's lanes
 * are past their reads (the wgmma reads retired by the wait_group before the call; for a
 * tile's last stage, the epilogue's reads of its ||c||^2). */
template <typename T>
static __device__ __forceinline__ void pp_release(const pp_ring<T> &r, int first, int count)
{
    __syncwarp();
    if ((threadIdx.x & 31) != 0) return;
    for (int i = 0, s = first; i < count; i++) {
        pp_mbar_arrive(r.empty + s);
        if (++s == r.nst) s = 0;
    }
}

/* A consumer warpgroup's sweep over all centroid tiles, folding each tile's scores into rows
 * (rows[0]: the lo half, rows[1]: hi), in tile order like the other kernels. */
template <typename T, bool TOP3>
static __device__ void pp_consume(const pp_ring<T> &r, float alpha, wg_rows (&rows)[2])
{
    const int wg = threadIdx.x >> 7, lane = threadIdx.x & 31;
    float lo[64], hi[64];
    pp_pos p = {0, 0};
    if (wg == 1) pp_turn_give(0); /* warpgroup 0 takes the first turn */
    for (int64_t tile = 0; tile < r.ntiles; tile++) {
        const int first = p.slot;
        pp_turn_wait(wg);
        pp_chunk<T, true>(r, p, lo, hi, 0);
        for (int kc = 1; kc < r.kchunks; kc++) pp_chunk<T, false>(r, p, lo, hi, kc);
        /* the other warpgroup's turn: its MMAs queue behind these and run under the epilogue
         * below; warpgroup 1 has no one to hand its last turn to */
        if (wg == 0 || tile + 1 < r.ntiles) pp_turn_give(wg ^ 1);
        wg_wait<0>();
        wg_fence_acc(lo);
        wg_fence_acc(hi);
        /* the tile's chunks are read: all but the last (which holds the tile's ||c||^2) can be
         * refilled during the epilogue. With a ring shallower than two tiles (rows over 256
         * bytes) the other warpgroup's next tile waits for these, not for this epilogue. */
        const int last = p.slot == 0 ? r.nst - 1 : p.slot - 1;
        pp_release(r, first, r.kchunks - 1);
        const wg_cn_shared cn{fkm_smem_addr(r.cns + last * WG_BN + (lane & 3) * 2)};
        const int32_t col0 = (int32_t)(tile * WG_BN + (lane & 3) * 2);
        wg_epilogue<TOP3>(lo, cn, col0, alpha, rows[0]);
        wg_epilogue<TOP3>(hi, cn, col0, alpha, rows[1]);
        pp_release(r, last, 1);
    }
}

#endif /* PP_DEVICE_CODE */

/* ---------------------------------------------------------------- the kernel */

template <typename T, bool TOP3>
__global__ void __launch_bounds__(PP_THREADS, 1)
assign_wgmma_pingpong(const T *__restrict__ Xall, int64_t n, int64_t d, int64_t ld, int64_t bstride, int64_t dpad,
                      const T *__restrict__ cqall, const float *__restrict__ cnall, int64_t kpad, float alpha,
                      int32_t *__restrict__ labels_all, unsigned long long *changed, float *best_all,
                      fkm_cuda_top3_out top3, int nst)
{
#ifdef PP_DEVICE_CODE
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    __shared__ uint64_t bars[2 * PP_MAX_STAGES];
    /* 1024-byte alignment of every tile: the swizzle pattern repeats every 8 rows of 128 B */
    T *smem = reinterpret_cast<T *>(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    constexpr int WG_BK = WG_BK_OF(T);
    const int64_t b = blockIdx.y;
    const int64_t row0 = (int64_t)blockIdx.x * PP_BM;
    pp_ring<T> r;
    r.kchunks = (int)(dpad / WG_BK);
    r.nst = nst;
    r.xres = smem;
    r.stages = smem + (int64_t)PP_BM * dpad;
    r.cns = reinterpret_cast<float *>(r.stages + nst * WG_BN * WG_BK);
    r.full = bars;
    r.empty = bars + PP_MAX_STAGES;
    r.cq = cqall + b * kpad * dpad;
    r.cn = cnall + b * kpad;
    r.dpad = dpad;
    r.ntiles = kpad / WG_BN;

    if (threadIdx.x == 0) {
        for (int s = 0; s < nst; s++) pp_mbar_init(r.full + s, 32), pp_mbar_init(r.empty + s, PP_CONSUMER_WARPS);
        pp_mbar_init_fence();
    }
    if (threadIdx.x < WG_THREADS) { /* the consumers load their X tile (and wait for it below) */
        wg_load_x_resident<T, PP_BM>(smem, Xall + b * bstride, row0, n, ld, d, r.kchunks);
        fkm_cp_async_commit();
    }
    __syncthreads(); /* the barriers are initialised; from here on no block-wide barrier */

    if (threadIdx.x >= WG_THREADS) {
        pp_setmaxnreg_dec<PP_PRODUCER_REGS>();
        if (threadIdx.x < WG_THREADS + 32) pp_produce(r, threadIdx.x & 31);
        return;
    }
    pp_setmaxnreg_inc<PP_CONSUMER_REGS>();
    fkm_cp_async_wait<0>();
    pp_bar_sync<PP_BAR_X, WG_THREADS>(); /* every consumer's part of the X tile has landed */
    wg_rows rows[2];
    wg_rows_init(rows[0]);
    wg_rows_init(rows[1]);
    pp_consume<T, TOP3>(r, alpha, rows);
    /* warp w of warpgroup g holds rows 16 (w % 4) of each 64-row half of the group's 128 */
    const int64_t wrow0 = row0 + (threadIdx.x >> 7) * 128 + ((threadIdx.x >> 5) & 3) * 16;
    wg_finish<TOP3>(rows[0], b, wrow0, n, labels_all, changed, best_all, top3);
    wg_finish<TOP3>(rows[1], b, wrow0 + 64, n, labels_all, changed, best_all, top3);
#endif
}

/* ---------------------------------------------------------------- host */

/* Shared memory of one block with nst stages: X (PP_BM x dpad), the ring, its ||c||^2 and the
 * 1024-byte alignment slack (the mbarriers are static). */
template <typename T>
static size_t pp_smem_bytes(int64_t dpad, int nst)
{
    return (size_t)PP_BM * dpad * sizeof(T) + (size_t)nst * (WG_BN * WG_BK_OF(T) * sizeof(T) + WG_BN * sizeof(float)) +
           1024;
}

/* The launch plan of an instantiation: the deepest ring (at most PP_MAX_STAGES) that fits
 * beside the X tile in a block's shared memory (the device's opt-in limit less the kernel's
 * static part), or an error: a ring shallower than a tile's chunks (a warpgroup would wait for
 * a slot it holds itself), or fewer registers per thread at launch than the setmaxnreg split
 * hands out (setmaxnreg.inc would wait forever for registers the block does not have). */
template <typename T, bool TOP3>
static fkm_status pp_plan(fkm_ctx *ctx, int64_t dpad, int *nst_out)
{
    int dev = 0, optin = 0;
    cudaFuncAttributes fa;
    FKM_CUDA_TRY(ctx, cudaGetDevice(&dev));
    FKM_CUDA_TRY(ctx, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    FKM_CUDA_TRY(ctx, cudaFuncGetAttributes(&fa, assign_wgmma_pingpong<T, TOP3>));
    if (fa.numRegs * PP_THREADS < PP_PRODUCER_REGS * 128 + PP_CONSUMER_REGS * WG_THREADS)
        return fkm_fail(ctx, FKM_E_INTERNAL, "assign_wgmma_pingpong: %d registers per thread at launch, the "
                        "setmaxnreg split needs %d", fa.numRegs,
                        (PP_PRODUCER_REGS * 128 + PP_CONSUMER_REGS * WG_THREADS) / PP_THREADS);
    const size_t limit = (size_t)optin > fa.sharedSizeBytes ? (size_t)optin - fa.sharedSizeBytes : 0;
    int nst = PP_MAX_STAGES;
    while (nst > 0 && pp_smem_bytes<T>(dpad, nst) > limit) nst--;
    const int kchunks = (int)(dpad / WG_BK_OF(T));
    if (nst < kchunks)
        return fkm_fail(ctx, FKM_E_INTERNAL, "assign_wgmma_pingpong: %d ring stages for %d chunks per tile", nst,
                        kchunks);
    *nst_out = nst;
    return FKM_OK;
}

/* The launcher wg_dispatch (assign_wgmma.cuh) calls for each dtype and epilogue. */
struct pp_launcher {
    template <typename T, bool TOP3>
    static fkm_status run(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn, int64_t kpad,
                          int64_t dpad, float alpha, int32_t *labels, unsigned long long *changed, float *best,
                          const fkm_cuda_top3_out *top3, cudaStream_t stream)
    {
        if (dpad * (int64_t)sizeof(T) > FKM_WGMMA_MAX_ROW_BYTES)
            return fkm_fail(ctx, FKM_E_INTERNAL, "assign_wgmma_pingpong: rows of %lld bytes do not stay resident",
                            (long long)(dpad * (int64_t)sizeof(T)));
        int nst = 0;
        const fkm_status s = pp_plan<T, TOP3>(ctx, dpad, &nst);
        if (s != FKM_OK) return s;
        const fkm_cuda_top3_out out3 = top3 ? *top3 : fkm_cuda_top3_out{NULL, NULL, NULL};
        const dim3 grid((unsigned)fkm_ceil_div(pb->n, PP_BM), (unsigned)pb->batch);
        const size_t smem = pp_smem_bytes<T>(dpad, nst);
        FKM_CUDA_TRY(ctx, cudaFuncSetAttribute(assign_wgmma_pingpong<T, TOP3>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        assign_wgmma_pingpong<T, TOP3><<<grid, PP_THREADS, smem, stream>>>(
            (const T *)pb->X, pb->n, pb->d, pb->ld, pb->batch_stride, dpad, (const T *)cq, cn, kpad, alpha, labels,
            changed, best, out3, nst);
        FKM_CUDA_LAUNCHED(ctx, "assign_wgmma_pingpong");
        return FKM_OK;
    }
};

fkm_status fkm_cuda_assign_wgmma_pingpong(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn,
                                          int64_t kpad, int64_t dpad, float alpha, int32_t *labels,
                                          unsigned long long *changed, float *best, const fkm_cuda_top3_out *top3,
                                          cudaStream_t stream)
{
    return wg_dispatch<pp_launcher>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, top3, stream);
}
