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
 *    PP_PRODUCER_REGS); warp 8 streams the centroid ring with cp.async, the other three exit
 *    (in the persistent variant they load X).
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
 *  - empty[s] (256 arrivals): every consumer thread, once its warpgroup's MMAs on the
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
 * merge run with the tensor cores idle (the persistent variant below hides them); with rows
 * of 512 bytes the ring (5 stages of 4 chunks per tile) holds less than two tiles, so a
 * warpgroup's next tile waits for the other's MMAs on the previous one.
 *
 * The persistent variant (PERSIST = true, FLASHKM_WGMMA_OVERLAP=3, path
 * wgmma-pingpong-persistent; a default since its H100 run, assign.cu): the same kernel body
 * around a loop over row blocks. Grid: min(row blocks of all problems, SMs) blocks
 * (FLASHKM_PP_MAX_BLOCKS caps it, for tests); block i walks row blocks j = i, i + grid, ...
 * in the single-launch grid's order (j = problem * row blocks per problem + row block). What it hides: the next row
 * block's first ring stages load while the consumers finish the current one (the producer's
 * step sequence simply runs on: row block j's (tile, chunk) steps after j - 1's, the phases
 * counting on), and where two X tiles fit beside a ring of at least two tiles (rows up to 256
 * bytes) the next row block's X tile loads into the other buffer during the current one; a
 * warpgroup's merge and label stores run while the other warpgroup's MMAs (of the next row
 * block's first tile) are on the tensor cores.
 *  - X: warps 9..11 (PP_XLOAD_THREADS) load each row block's X tile into buffer j % nxb (nxb =
 *    2, or 1 where two do not fit: f16 D > 128, f32 D > 64) once x_empty[buf] has completed
 *    the buffer's previous use, then arrive on x_full[buf] with cp.async.mbarrier.arrive.noinc
 *    (96 arrivals). Consumers wait x_full before a row block's first tile and arrive on
 *    x_empty (256 arrivals: every consumer thread) after the wait_group that retires the
 *    row block's last tile, i.e. after their last MMA reading the tile. Phases as in the ring.
 *  - the turns run over the sequence of all tiles of all the block's row blocks: warpgroup 1
 *    gives warpgroup 0 the first turn once, and skips its hand-over only after the block's
 *    very last tile, so each warpgroup's bar.arrive count equals the other's bar.sync count
 *    (T tiles in all: warpgroup 0 syncs T times and arrives T times, warpgroup 1 arrives 1 +
 *    (T - 1) times and syncs T times) and no named barrier is left with arrivals at the end.
 *  - registers: setmaxnreg 72 (producer warpgroup) / 216 (consumers), 128 x 72 + 256 x 216 =
 *    384 x 168: at 56 the producer's row-block walk spilled; the consumers need at most 177.
 *    Each role builds its state after its setmaxnreg (state live across the split was
 *    spilled).
 *  Why it cannot deadlock: the ring argument below holds for the concatenated tile sequence
 *  (the consumers' waits on full stages and turns are the same, just over more tiles). The
 *  new waits: the X loader waits only for x_empty of row block j - nxb, which both warpgroups
 *  arrive on after their own MMAs of that row block, waiting on nothing further; a consumer
 *  waits on x_full of row block j holding no ring stage (all released at the end of j - 1)
 *  and no turn that the other warpgroup needs to finish j - 1 (warpgroup 1's turns for j - 1's
 *  tiles follow warpgroup 0's issues of those tiles, all done), so x_empty of j - nxb <= j - 1
 *  completes and the loader fills the buffer. The producer never waits on X. The launcher
 *  keeps nst >= kchunks as for the ping-pong kernel. scripts/pingpong-model.py (persistent
 *  mode) checks this under random interleavings, with several row blocks and one or two X
 *  buffers.
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

#include <errno.h>
#include <stdlib.h>

#define PP_BM 256                 /* points per block: 128 per consumer warpgroup */
#define PP_THREADS (WG_THREADS + 128) /* two consumer warpgroups + the producer warpgroup */
#define PP_XLOAD_THREADS 96       /* the persistent kernel's X loaders: warps 9..11 */
#define PP_MAX_STAGES 8           /* at D = 128 (f16): four tiles, two in use and two ahead */
/* 128 x 56 + 256 x 224 = 384 x 168: the block's registers at launch (__launch_bounds__(384, 1)
 * gives at most 168 per thread), moved from the producer to the consumers */
#define PP_PRODUCER_REGS 56
#define PP_CONSUMER_REGS 224
/* the persistent kernel: 128 x 72 + 256 x 216 = 384 x 168. Its producer warps walk row blocks
 * (and warps 9..11 load X), which at 56 made ptxas spill the walk's state once per row block;
 * its consumers need at most 180 (top-3) */
#define PP_PERSIST_PRODUCER_REGS 72
#define PP_PERSIST_CONSUMER_REGS 216
#define PP_PRODUCER_REGS_OF(PERSIST) ((PERSIST) ? PP_PERSIST_PRODUCER_REGS : PP_PRODUCER_REGS)
#define PP_CONSUMER_REGS_OF(PERSIST) ((PERSIST) ? PP_PERSIST_CONSUMER_REGS : PP_CONSUMER_REGS)
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
    const T *cqall;     /* all problems' centroids, batch x kpad x dpad */
    const float *cnall; /* all problems' ||c||^2, batch x kpad */
    int64_t kpad, dpad, ntiles;
    int kchunks, nst;
};

/* A consumer's or a producer's position in a ring of n slots (the centroid ring, or the X
 * buffers of the persistent kernel): slot and the parity of its use. */
struct pp_pos {
    int slot, phase;
    __device__ __forceinline__ void next(int n)
    {
        if (++slot == n) slot = 0, phase ^= 1;
    }
};

/* The row blocks (PP_BM rows of one problem) a block works on, in order. The ping-pong kernel
 * (PERSIST false): one, row block blockIdx.x of problem blockIdx.y. The persistent one: the
 * row blocks j = blockIdx.x, blockIdx.x + gridDim.x, ... of all problems' row blocks in
 * problem order (j = problem b * nrb + row block: the single-launch grid's order). Every
 * thread of the block walks the same sequence. 32-bit state, the problem and row block
 * recomputed per row block (the launcher checks that all row blocks number less than 2^31;
 * the producer warps have 56 registers, 72 in the persistent kernel). */
template <bool PERSIST> struct pp_walk {
    int j, total, stride, nrb;
    __device__ __forceinline__ void start(int64_t n, int64_t batch)
    {
        if (PERSIST) {
            nrb = (int)((n + PP_BM - 1) / PP_BM);
            total = nrb * (int)batch;
            j = (int)blockIdx.x;
            stride = (int)gridDim.x;
        } else {
            j = 0, total = 1, stride = 1, nrb = 1;
        }
    }
    __device__ __forceinline__ bool more() const { return j < total; }
    /* no row block after this one (wg 1's last turn has no taker); j + stride < 2^31 */
    __device__ __forceinline__ bool last() const { return !PERSIST || j >= total - stride; }
    __device__ __forceinline__ void next() { j += stride; }
    __device__ __forceinline__ int b() const { return PERSIST ? j / nrb : (int)blockIdx.y; }
    __device__ __forceinline__ int64_t row0() const
    {
        return (int64_t)(PERSIST ? j % nrb : (int)blockIdx.x) * PP_BM;
    }
};

/* The persistent kernel's X tiles: nxb (1 or 2) buffers of [kchunks][PP_BM][BK], each with
 * x_full (PP_XLOAD_THREADS arrivals: each X loader thread's cp.async.mbarrier.arrive.noinc)
 * and x_empty (256 arrivals: every consumer thread once its warpgroup's last MMA reading
 * the tile has retired). Phases as in the ring. */
template <typename T> struct pp_xbufs {
    T *buf;
    uint64_t *full, *empty;
    int64_t elems; /* PP_BM x dpad */
    int n;
};

/* The producer warp: every (tile, chunk) step of every row block in order, each into the next
 * slot once both consumer warpgroups have released that slot's previous use; the ring runs on
 * across row blocks (row block j's steps right after j - 1's, the phases counting on). Waits
 * for its last copies before returning (a lane that exits with copies in flight would leave
 * their arrivals pending); the copies were never committed as groups (the mbarriers track
 * them), hence the commit before wait_group 0, which only waits for committed groups. */
template <typename T, bool PERSIST>
static __device__ void pp_produce(const pp_ring<T> &r, pp_walk<PERSIST> w, int lane)
{
    constexpr int WG_BK = WG_BK_OF(T);
    pp_pos p = {0, 0};
    for (; w.more(); w.next()) {
        const int64_t b = w.b();
        const T *cq = r.cqall + b * r.kpad * r.dpad;
        const float *cn = r.cnall + b * r.kpad;
        for (int tile = 0; tile < (int)r.ntiles; tile++) {
            const T *cq_tile = cq + (int64_t)tile * WG_BN * r.dpad;
            for (int kc = 0; kc < r.kchunks; kc++) {
                pp_mbar_wait(r.empty + p.slot, p.phase ^ 1);
                wg_load_centroid_chunk<T, 32>(r.stages + p.slot * (WG_BN * WG_BK), cq_tile, r.dpad, kc, lane);
                if (kc == r.kchunks - 1) wg_load_cn(r.cns + p.slot * WG_BN, cn + (int64_t)tile * WG_BN, lane);
                pp_cp_async_arrive(r.full + p.slot);
                p.next(r.nst);
            }
        }
        if (!PERSIST) break;
    }
    fkm_cp_async_commit();
    fkm_cp_async_wait<0>();
}

/* The persistent kernel's X loader (warps 9..11, thread tid of PP_XLOAD_THREADS): each row
 * block's X tile into the next buffer once the consumers have released its previous tile;
 * with two buffers, row block j + 1's tile lands while the consumers work on j. Waits for its
 * last copies before returning, like pp_produce. */
template <typename T>
static __device__ void pp_produce_x(const pp_xbufs<T> &x, pp_walk<true> w, const T *Xall, int64_t n, int64_t ld,
                                    int64_t d, int64_t bstride, int kchunks, int tid)
{
    pp_pos p = {0, 0};
    for (; w.more(); w.next()) {
        pp_mbar_wait(x.empty + p.slot, p.phase ^ 1);
        wg_load_x_resident<T, PP_BM, PP_XLOAD_THREADS>(x.buf + p.slot * x.elems, Xall + w.b() * bstride, w.row0(), n, ld,
                                                       d, kchunks, tid);
        pp_cp_async_arrive(x.full + p.slot);
        p.next(x.n);
    }
    fkm_cp_async_commit();
    fkm_cp_async_wait<0>();
}

/* One D chunk of a consumer warpgroup's tile: wait for its stage, then the chunk's wgmma for
 * both 64-row halves (lo: rows 0..63 of the warpgroup's 128 in xw, its part of the X tile,
 * hi: 64..127) in one commit group. Returns with the group in flight (FIRST: chunk 0,
 * accumulate flag 0 on its first k-step). */
template <typename T, bool FIRST>
static __device__ __forceinline__ void pp_chunk(const pp_ring<T> &r, pp_pos &p, const T *xw, float (&lo)[64],
                                                float (&hi)[64], int kc)
{
    constexpr int WG_BK = WG_BK_OF(T);
    pp_mbar_wait(r.full + p.slot, p.phase);
    wg_proxy_fence(); /* the producer's cp.async wrote through the generic proxy */
    const T *cs = r.stages + p.slot * (WG_BN * WG_BK);
    const T *xs = xw + kc * PP_BM * WG_BK;
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

/* `count` barriers from `first` on in a ring of n, each arrived on once by every consumer
 * thread once it is past its reads (the wgmma reads retired by the wait_group before the call;
 * for a tile's last stage, the epilogue's reads of its ||c||^2). One arrival per warp after a
 * __syncwarp orders the lanes' reads as well under the PTX memory model, but compute-sanitizer's
 * racecheck does not follow that (it reported a potential WAR hazard on every ||c||^2 refill);
 * with every thread arriving it follows the mbarrier and reports none, at the same speed
 * (H100, bench/results/gpu_check_h100_session7.txt). */
static __device__ __forceinline__ void pp_release(uint64_t *bars, int n, int first, int count)
{
    for (int i = 0, s = first; i < count; i++) {
        pp_mbar_arrive(bars + s);
        if (++s == n) s = 0;
    }
}

/* A consumer warpgroup's sweep over all centroid tiles for one row block (xres: its X tile),
 * folding each tile's scores into rows (rows[0]: the lo half, rows[1]: hi), in tile order like
 * the other kernels. p: the warpgroup's ring position, carried across row blocks. The turns
 * run on across row blocks too: the warpgroups alternate over the sequence of all tiles of
 * all the block's row blocks, and warpgroup 1 skips its hand-over only after the block's very
 * last tile (last_rb: this is the block's last row block). PERSIST: x_empty, the tile's
 * release, arrived on once the last tile's MMAs (the last reads of xres) have retired. */
template <typename T, bool TOP3, bool PERSIST>
static __device__ void pp_consume(const pp_ring<T> &r, pp_pos &p, const T *xres, uint64_t *x_empty, bool last_rb,
                                  float alpha, wg_rows (&rows)[2])
{
    constexpr int WG_BK = WG_BK_OF(T);
    const int wg = threadIdx.x >> 7, lane = threadIdx.x & 31;
    const T *xw = xres + wg * 128 * WG_BK;
    float lo[64], hi[64];
    for (int64_t tile = 0; tile < r.ntiles; tile++) {
        const int first = p.slot;
        pp_turn_wait(wg);
        pp_chunk<T, true>(r, p, xw, lo, hi, 0);
        for (int kc = 1; kc < r.kchunks; kc++) pp_chunk<T, false>(r, p, xw, lo, hi, kc);
        /* the other warpgroup's turn: its MMAs queue behind these and run under the epilogue
         * below; warpgroup 1 has no one to hand the block's last turn to */
        if (wg == 0 || tile + 1 < r.ntiles || !last_rb) pp_turn_give(wg ^ 1);
        wg_wait<0>();
        wg_fence_acc(lo);
        wg_fence_acc(hi);
        /* the tile's chunks are read: all but the last (which holds the tile's ||c||^2) can be
         * refilled during the epilogue. With a ring shallower than two tiles (rows over 256
         * bytes) the other warpgroup's next tile waits for these, not for this epilogue. */
        const int last = p.slot == 0 ? r.nst - 1 : p.slot - 1;
        pp_release(r.empty, r.nst, first, r.kchunks - 1);
        /* the row block's last MMAs have read the X tile: the loader may refill it */
        if (PERSIST && tile + 1 == r.ntiles) pp_release(x_empty, 1, 0, 1);
        const wg_cn_shared cn{fkm_smem_addr(r.cns + last * WG_BN + (lane & 3) * 2)};
        const int32_t col0 = (int32_t)(tile * WG_BN + (lane & 3) * 2);
        wg_epilogue<TOP3>(lo, cn, col0, alpha, rows[0]);
        wg_epilogue<TOP3>(hi, cn, col0, alpha, rows[1]);
        pp_release(r.empty, r.nst, last, 1);
    }
}

#endif /* PP_DEVICE_CODE */

/* ---------------------------------------------------------------- the kernel */

/* PERSIST false: the ping-pong kernel, one row block per block (grid: row blocks x problems),
 * X loaded by the consumers. PERSIST true: the persistent one (grid: at most one block per
 * SM, each walking row blocks), X loaded by warps 9..11 into nxb buffers. */
template <typename T, bool TOP3, bool PERSIST>
__global__ void __launch_bounds__(PP_THREADS, 1)
assign_wgmma_pingpong(const T *__restrict__ Xall, int64_t n, int64_t d, int64_t ld, int64_t bstride, int64_t dpad,
                      const T *__restrict__ cqall, const float *__restrict__ cnall, int64_t kpad, float alpha,
                      int32_t *__restrict__ labels_all, unsigned long long *changed, float *best_all,
                      fkm_cuda_top3_out top3, int nst, int nxb, int64_t batch)
{
#ifdef PP_DEVICE_CODE
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    __shared__ uint64_t bars[2 * PP_MAX_STAGES + 4]; /* the last 4: the persistent kernel's X buffers' */
    /* 1024-byte alignment of every tile: the swizzle pattern repeats every 8 rows of 128 B */
    T *smem = reinterpret_cast<T *>(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    constexpr int WG_BK = WG_BK_OF(T);
    if (!PERSIST) nxb = 1;
    /* the barriers: full[PP_MAX_STAGES], empty[PP_MAX_STAGES], x_full[2], x_empty[2] */
    if (threadIdx.x == 0) {
        for (int s = 0; s < nst; s++)
            pp_mbar_init(bars + s, 32), pp_mbar_init(bars + PP_MAX_STAGES + s, WG_THREADS);
        if (PERSIST)
            for (int s = 0; s < nxb; s++)
                pp_mbar_init(bars + 2 * PP_MAX_STAGES + s, PP_XLOAD_THREADS),
                    pp_mbar_init(bars + 2 * PP_MAX_STAGES + 2 + s, WG_THREADS);
        pp_mbar_init_fence();
    }
    if (!PERSIST && threadIdx.x < WG_THREADS) { /* the consumers load their X tile (and wait for it below) */
        wg_load_x_resident<T, PP_BM>(smem, Xall + blockIdx.y * bstride, (int64_t)blockIdx.x * PP_BM, n, ld, d,
                                     (int)(dpad / WG_BK));
        fkm_cp_async_commit();
    }
    __syncthreads(); /* the barriers are initialised; from here on no block-wide barrier */

    /* Each role sets up its state after its setmaxnreg: values computed before the split and
     * live across it went to local memory (ptxas spilled them around the split). */
    pp_walk<PERSIST> w;
    pp_ring<T> r;
    pp_xbufs<T> x;
#define PP_SETUP()                                                                                             \
    do {                                                                                                       \
        w.start(n, batch);                                                                                     \
        r.kchunks = (int)(dpad / WG_BK);                                                                       \
        r.nst = nst;                                                                                           \
        r.stages = smem + (int64_t)nxb * PP_BM * dpad; /* after the X tile(s) */                              \
        r.cns = reinterpret_cast<float *>(r.stages + nst * WG_BN * WG_BK);                                     \
        r.full = bars;                                                                                         \
        r.empty = bars + PP_MAX_STAGES;                                                                        \
        r.cqall = cqall;                                                                                       \
        r.cnall = cnall;                                                                                       \
        r.kpad = kpad;                                                                                         \
        r.dpad = dpad;                                                                                         \
        r.ntiles = kpad / WG_BN;                                                                               \
        x.buf = smem;                                                                                          \
        x.full = bars + 2 * PP_MAX_STAGES;                                                                     \
        x.empty = x.full + 2;                                                                                  \
        x.elems = (int64_t)PP_BM * dpad;                                                                       \
        x.n = nxb;                                                                                             \
    } while (0)
    if (threadIdx.x >= WG_THREADS) {
        pp_setmaxnreg_dec<PP_PRODUCER_REGS_OF(PERSIST)>();
        PP_SETUP();
        if (threadIdx.x < WG_THREADS + 32) pp_produce<T, PERSIST>(r, w, threadIdx.x & 31);
        else if constexpr (PERSIST)
            pp_produce_x<T>(x, w, Xall, n, ld, d, bstride, r.kchunks, threadIdx.x - (WG_THREADS + 32));
        return;
    }
    pp_setmaxnreg_inc<PP_CONSUMER_REGS_OF(PERSIST)>();
    PP_SETUP();
#undef PP_SETUP
    if (!PERSIST) {
        fkm_cp_async_wait<0>();
        pp_bar_sync<PP_BAR_X, WG_THREADS>(); /* every consumer's part of the X tile has landed */
    }
    const int wg = threadIdx.x >> 7;
    pp_pos p = {0, 0}, xp = {0, 0};
    if (wg == 1 && w.more()) pp_turn_give(0); /* warpgroup 0 takes the first turn */
    for (; w.more(); w.next()) {
        if (PERSIST) {
            pp_mbar_wait(x.full + xp.slot, xp.phase); /* the row block's X tile has landed */
            wg_proxy_fence();
        }
        wg_rows rows[2];
        wg_rows_init(rows[0]);
        wg_rows_init(rows[1]);
        pp_consume<T, TOP3, PERSIST>(r, p, x.buf + xp.slot * x.elems, x.empty + xp.slot, w.last(), alpha, rows);
        /* warp w of warpgroup g holds rows 16 (w % 4) of each 64-row half of the group's 128 */
        const int64_t wrow0 = w.row0() + wg * 128 + ((threadIdx.x >> 5) & 3) * 16;
        wg_finish<TOP3>(rows[0], w.b(), wrow0, n, labels_all, changed, best_all, top3);
        wg_finish<TOP3>(rows[1], w.b(), wrow0 + 64, n, labels_all, changed, best_all, top3);
        if (!PERSIST) break;
        xp.next(nxb);
    }
#endif
}

/* ---------------------------------------------------------------- host */

/* Shared memory of one block with nxb X tiles and nst stages: the X tile(s) (PP_BM x dpad
 * each), the ring, its ||c||^2 and the 1024-byte alignment slack (the mbarriers are static). */
template <typename T>
static size_t pp_smem_bytes(int64_t dpad, int nst, int nxb)
{
    return (size_t)nxb * PP_BM * dpad * sizeof(T) +
           (size_t)nst * (WG_BN * WG_BK_OF(T) * sizeof(T) + WG_BN * sizeof(float)) + 1024;
}

/* The deepest ring (at most PP_MAX_STAGES) that fits beside nxb X tiles in `limit` bytes. */
template <typename T>
static int pp_fit_stages(int64_t dpad, int nxb, size_t limit)
{
    int nst = PP_MAX_STAGES;
    while (nst > 0 && pp_smem_bytes<T>(dpad, nst, nxb) > limit) nst--;
    return nst;
}

/* The launch plan of an instantiation: the X buffers and the deepest ring that fits beside
 * them in a block's shared memory (the device's opt-in limit less the kernel's static part),
 * or an error: a ring shallower than a tile's chunks (a warpgroup would wait for a slot it
 * holds itself), or fewer registers per thread at launch than the setmaxnreg split hands out
 * (setmaxnreg.inc would wait forever for registers the block does not have). One X tile for
 * the ping-pong kernel; the persistent one takes two (the next row block's loads while the
 * consumers work on the current one) where that leaves a ring of at least two tiles (rows up
 * to 256 bytes: 2 x 64 KB and 5 stages at f16 D = 128, 2 x 32 KB and 8 at D = 64), else one
 * (rows of 384 or 512 bytes: the next row block's X loads once the consumers are done with
 * the current one; the ring still runs on across row blocks). */
template <typename T, bool TOP3, bool PERSIST>
static fkm_status pp_plan(fkm_ctx *ctx, int64_t dpad, int *nst_out, int *nxb_out)
{
    int dev = 0, optin = 0;
    cudaFuncAttributes fa;
    FKM_CUDA_TRY(ctx, cudaGetDevice(&dev));
    FKM_CUDA_TRY(ctx, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    FKM_CUDA_TRY(ctx, cudaFuncGetAttributes(&fa, assign_wgmma_pingpong<T, TOP3, PERSIST>));
    constexpr int split = PP_PRODUCER_REGS_OF(PERSIST) * 128 + PP_CONSUMER_REGS_OF(PERSIST) * WG_THREADS;
    if (fa.numRegs * PP_THREADS < split)
        return fkm_fail(ctx, FKM_E_INTERNAL, "assign_wgmma_pingpong: %d registers per thread at launch, the "
                        "setmaxnreg split needs %d", fa.numRegs, split / PP_THREADS);
    const size_t limit = (size_t)optin > fa.sharedSizeBytes ? (size_t)optin - fa.sharedSizeBytes : 0;
    const int kchunks = (int)(dpad / WG_BK_OF(T));
    int nxb = 1, nst = pp_fit_stages<T>(dpad, 1, limit);
    if (PERSIST) {
        const int nst2 = pp_fit_stages<T>(dpad, 2, limit);
        if (nst2 >= 2 * kchunks) nxb = 2, nst = nst2;
    }
    if (nst < kchunks)
        return fkm_fail(ctx, FKM_E_INTERNAL, "assign_wgmma_pingpong: %d ring stages for %d chunks per tile", nst,
                        kchunks);
    *nst_out = nst;
    *nxb_out = nxb;
    return FKM_OK;
}

/* The persistent kernel's grid: one block per SM, or fewer where there are fewer row blocks;
 * FLASHKM_PP_MAX_BLOCKS (a test knob: test_cuda makes small problems walk several row blocks
 * per block with it) caps it further. */
static fkm_status pp_persistent_blocks(fkm_ctx *ctx, int64_t rowblocks, unsigned *out)
{
    int dev = 0, nsm = 0;
    FKM_CUDA_TRY(ctx, cudaGetDevice(&dev));
    FKM_CUDA_TRY(ctx, cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev));
    int64_t blocks = rowblocks < nsm ? rowblocks : nsm;
    const char *cap = getenv("FLASHKM_PP_MAX_BLOCKS");
    if (cap && *cap) { /* a whole positive number, else the variable is not used */
        char *end = NULL;
        errno = 0;
        const long long v = strtoll(cap, &end, 10);
        if (errno == 0 && *end == '\0' && v > 0 && v < blocks) blocks = v;
    }
    *out = (unsigned)blocks;
    return FKM_OK;
}

/* The launcher wg_dispatch (assign_wgmma.cuh) calls for each dtype and epilogue. */
template <bool PERSIST> struct pp_launcher {
    template <typename T, bool TOP3>
    static fkm_status run(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn, int64_t kpad,
                          int64_t dpad, float alpha, int32_t *labels, unsigned long long *changed, float *best,
                          const fkm_cuda_top3_out *top3, cudaStream_t stream)
    {
        if (dpad * (int64_t)sizeof(T) > FKM_WGMMA_MAX_ROW_BYTES)
            return fkm_fail(ctx, FKM_E_INTERNAL, "assign_wgmma_pingpong: rows of %lld bytes do not stay resident",
                            (long long)(dpad * (int64_t)sizeof(T)));
        int nst = 0, nxb = 1;
        const fkm_status s = pp_plan<T, TOP3, PERSIST>(ctx, dpad, &nst, &nxb);
        if (s != FKM_OK) return s;
        const fkm_cuda_top3_out out3 = top3 ? *top3 : fkm_cuda_top3_out{NULL, NULL, NULL};
        const int64_t nrb = fkm_ceil_div(pb->n, PP_BM);
        dim3 grid((unsigned)nrb, (unsigned)pb->batch);
        if (PERSIST) {
            if (nrb * pb->batch == 0) return FKM_OK;
            if (nrb * pb->batch > INT32_MAX - 65536) /* pp_walk's 32-bit row block numbers */
                return fkm_fail(ctx, FKM_E_INTERNAL, "assign_wgmma_pingpong: %lld row blocks",
                                (long long)(nrb * pb->batch));
            unsigned blocks = 0;
            const fkm_status sb = pp_persistent_blocks(ctx, nrb * pb->batch, &blocks);
            if (sb != FKM_OK) return sb;
            grid = dim3(blocks);
        }
        const size_t smem = pp_smem_bytes<T>(dpad, nst, nxb);
        FKM_CUDA_TRY(ctx, fkm_cuda_allow_smem((const void *)assign_wgmma_pingpong<T, TOP3, PERSIST>, smem));
        assign_wgmma_pingpong<T, TOP3, PERSIST><<<grid, PP_THREADS, smem, stream>>>(
            (const T *)pb->X, pb->n, pb->d, pb->ld, pb->batch_stride, dpad, (const T *)cq, cn, kpad, alpha, labels,
            changed, best, out3, nst, nxb, pb->batch);
        FKM_CUDA_LAUNCHED(ctx, PERSIST ? "assign_wgmma_pingpong (persistent)" : "assign_wgmma_pingpong");
        return FKM_OK;
    }
};

fkm_status fkm_cuda_assign_wgmma_pingpong(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn,
                                          int64_t kpad, int64_t dpad, float alpha, int32_t *labels,
                                          unsigned long long *changed, float *best, const fkm_cuda_top3_out *top3,
                                          cudaStream_t stream)
{
    return wg_dispatch<pp_launcher<false>>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, top3, stream);
}

fkm_status fkm_cuda_assign_wgmma_pingpong_persistent(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq,
                                                     const float *cn, int64_t kpad, int64_t dpad, float alpha,
                                                     int32_t *labels, unsigned long long *changed, float *best,
                                                     const fkm_cuda_top3_out *top3, cudaStream_t stream)
{
    return wg_dispatch<pp_launcher<true>>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, top3, stream);
}
