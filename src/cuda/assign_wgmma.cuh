/* assign_wgmma.cuh — the pieces the Hopper FlashAssign kernels share (assign_wgmma.cu:
 * one accumulator set per warpgroup, two blocks per SM; assign_wgmma_pingpong.cu: two consumer
 * warpgroups taking turns, one's epilogue under the other's MMAs, fed by a producer warp
 * through mbarriers, and its persistent variant): tile geometry, the wgmma
 * descriptors and instruction wrappers, the cp.async stage loaders and the per-tile argmin
 * epilogue with the final merge and store. One copy of each, so that all the kernels give
 * the same bits by construction: same MMA order along D, same fmaf(-alpha, x.c, ||c||^2), same tie
 * rules. */
#ifndef FKM_CUDA_ASSIGN_WGMMA_CUH
#define FKM_CUDA_ASSIGN_WGMMA_CUH

#include "cuda/assign_common.cuh"
#include "cuda/mma.cuh"

#include <math.h>

#define WG_THREADS (WG_BM * 2)   /* one warpgroup (128 threads) per 64 points */
#define WG_BM 128
#define WG_BN FKM_WGMMA_BN
/* a stage row is 128 bytes: 64 two-byte or 32 four-byte elements, in 16-byte chunks */
#define WG_BK_OF(T) ((int)(128 / sizeof(T)))
#define WG_CW_OF(T) ((int)(16 / sizeof(T)))

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FKM_HAVE_WGMMA 1
#endif

/* Shared-memory matrix descriptor for a K-major operand in 128-byte-swizzled rows: start
 * address, leading offset (unused for this layout: 1), stride between 8-row groups 1024 B,
 * layout type 1 = 128B swizzle. */
static __device__ __forceinline__ uint64_t wg_desc(const void *smem)
{
    const uint64_t addr = fkm_smem_addr(smem);
    return ((addr & 0x3FFFF) >> 4) | (1ull << 16) | ((uint64_t)(1024 >> 4) << 32) | (1ull << 62);
}

/* wg_mma<T>::run: one wgmma of a warpgroup's m64n128 tile, the 64 f32 accumulators d
 * (operands %0..%63), A and B from shared-memory descriptors da, db (%64, %65), accumulate
 * or overwrite (%66). The types differ only in the instruction's shape and types (SHAPE) and
 * its trailing immediates (IMM: the scales, and for 16-bit types the transposes); without
 * wgmma (other architectures' passes) the body is empty. */
#define WG_ACC_OPERANDS(d) \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#ifdef FKM_HAVE_WGMMA
#define WG_MMA_ASM(SHAPE, IMM)                                                                                 \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                  \
                 "wgmma.mma_async.sync.aligned." SHAPE " {"                                                    \
                 "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"                                      \
                 "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"                            \
                 "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"                            \
                 "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"                             \
                 "}, %64, %65, p, " IMM ";\n}\n"                                                               \
                 : WG_ACC_OPERANDS(d)                                                                          \
                 : "l"(da), "l"(db), "r"(accumulate))
#else
#define WG_MMA_ASM(SHAPE, IMM)
#endif
#define WG_MMA_TYPE(T, SHAPE, IMM)                                                                             \
    template <> struct wg_mma<T> {                                                                             \
        static __device__ __forceinline__ void run(float d[64], uint64_t da, uint64_t db, int accumulate)      \
        {                                                                                                      \
            WG_MMA_ASM(SHAPE, IMM);                                                                            \
        }                                                                                                      \
    };

template <typename T> struct wg_mma;
WG_MMA_TYPE(__half, "m64n128k16.f32.f16.f16", "1, 1, 0, 0")
WG_MMA_TYPE(__nv_bfloat16, "m64n128k16.f32.bf16.bf16", "1, 1, 0, 0")
WG_MMA_TYPE(float, "m64n128k8.f32.tf32.tf32", "1, 1") /* TF32: the tensor cores read the upper 19 bits */

static __device__ __forceinline__ void wg_fence()
{
#ifdef FKM_HAVE_WGMMA
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
static __device__ __forceinline__ void wg_commit()
{
#ifdef FKM_HAVE_WGMMA
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N> static __device__ __forceinline__ void wg_wait()
{
#ifdef FKM_HAVE_WGMMA
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
/* cp.async writes through the generic proxy; wgmma reads through the async proxy */
static __device__ __forceinline__ void wg_proxy_fence()
{
#ifdef FKM_HAVE_WGMMA
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

/* D chunk kc of a centroid tile (WG_BN rows of 128 bytes, swizzled) into dst, by NT threads
 * of which the caller is number tid (the block's WG_THREADS in the stage loader below, the
 * producer warp's 32 lanes in assign_wgmma_pingpong.cu). At most 4 copies per thread are
 * unrolled: the producer warp's 32 would need more registers than it keeps. */
template <typename T, int NT>
static __device__ __forceinline__ void wg_load_centroid_chunk(T *dst, const T *cq_tile, int64_t dpad, int kc, int tid)
{
    constexpr int PER_THREAD = WG_BN * 8 / NT;
#pragma unroll(PER_THREAD < 4 ? PER_THREAD : 4)
    for (int e = 0; e < PER_THREAD; e++) {
        const int idx = tid + e * NT, r = idx >> 3, c = idx & 7;
        fkm_cp_async16(dst + fkm_swz<T>(r, c), cq_tile + (int64_t)r * dpad + kc * WG_BK_OF(T) + c * WG_CW_OF(T), 16);
    }
}

/* One pipeline stage: the centroid tile's D chunk kc and, when X is not resident (split-D,
 * for large D), the block's X rows of that chunk after it. Rows and columns past the data
 * are zero. */
template <typename T, bool RESIDENT>
static __device__ __forceinline__ void wg_load_stage(T *stage, const T *cq_tile, int64_t dpad, int kc, const T *X,
                                                     int64_t row0, int64_t n, int64_t ld, int64_t d)
{
    wg_load_centroid_chunk<T, WG_THREADS>(stage, cq_tile, dpad, kc, threadIdx.x);
    if (!RESIDENT) {
        T *xs = stage + WG_BN * WG_BK_OF(T);
#pragma unroll
        for (int e = 0; e < WG_BM * 8 / WG_THREADS; e++) {
            const int idx = threadIdx.x + e * WG_THREADS, r = idx >> 3, c = idx & 7;
            const int64_t col = (int64_t)kc * WG_BK_OF(T) + c * WG_CW_OF(T);
            const bool ok = row0 + r < n && col < d;
            fkm_cp_async16(xs + fkm_swz<T>(r, c), ok ? X + (row0 + r) * ld + col : X, ok ? 16 : 0);
        }
    }
}

/* An empty asm that "redefines" every accumulator register of a set: the compiler may not
 * move arithmetic on them across it. Placed around each wgmma issue and after the wait that
 * retires a set, it keeps the epilogue's reads of a set below the wait_group that retired it
 * (without it, NVVM is free to hoist them above the asm volatile wait, and ptxas then sees
 * non-wgmma reads of in-flight accumulators). It emits no instruction. */
static __device__ __forceinline__ void wg_fence_acc(float (&d)[64])
{
#pragma unroll
    for (int i = 0; i < 64; i++) asm volatile("" : "+f"(d[i])::"memory");
}

/* The 4 wgmma of one 64-wide D chunk into acc, nothing around them (no fence, no commit):
 * the k-steps in increasing order along D, accumulate flag 0 on the first k-step of the
 * FIRST chunk. Every kernel's accumulators go through this one sequence, which is what makes
 * their scores the same bits. */
template <typename T, bool FIRST>
static __device__ __forceinline__ void wg_issue_chunk(float (&acc)[64], const T *xs, const T *cs)
{
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
        wg_mma<T>::run(acc, wg_desc(xs + kk * (32 / sizeof(T))), wg_desc(cs + kk * (32 / sizeof(T))),
                       FIRST ? kk > 0 : 1);
}

/* One 64-wide D chunk of a warpgroup's 64 x 128 tile: 4 wgmma (k16 for 2-byte types, k8 for
 * TF32: 32 bytes of the row each) from xs (its 64 X rows) and cs (the 128 centroid rows) into
 * acc, committed as one group; FIRST: the chunk that starts the sum (accumulate flag 0 on its
 * first k-step). Returns with this group in flight and every earlier one retired. The
 * wg_fence_acc pair is what keeps ptxas from seeing ordinary reads of in-flight accumulators
 * (see wg_fence_acc). */
template <typename T, bool FIRST>
static __device__ __forceinline__ void wg_chunk_mma(float (&acc)[64], const T *xs, const T *cs)
{
    wg_fence_acc(acc);
    wg_fence();
    wg_issue_chunk<T, FIRST>(acc, xs, cs);
    wg_commit();
    wg_fence_acc(acc);
    wg_wait<1>();
}

/* The block's ROWS X rows, all D chunks, into the resident tile (kchunks x [ROWS][BK],
 * swizzled), by NT threads of which the caller is number tid (the block's first WG_THREADS
 * threads in the overload below; the X loader warps of assign_wgmma_pingpong.cu's persistent
 * kernel); rows past n and columns past d are zero. */
template <typename T, int ROWS, int NT>
static __device__ __forceinline__ void wg_load_x_resident(T *xres, const T *X, int64_t row0, int64_t n, int64_t ld,
                                                          int64_t d, int kchunks, int tid)
{
    constexpr int WG_BK = WG_BK_OF(T);
    for (int idx = tid; idx < ROWS * kchunks * 8; idx += NT) {
        const int kc = idx / (ROWS * 8), rem = idx % (ROWS * 8), r = rem >> 3, c = rem & 7;
        const int64_t col = (int64_t)kc * WG_BK + c * WG_CW_OF(T);
        const bool ok = row0 + r < n && col < d;
        fkm_cp_async16(xres + kc * ROWS * WG_BK + fkm_swz<T>(r, c), ok ? X + (row0 + r) * ld + col : X, ok ? 16 : 0);
    }
}
template <typename T, int ROWS = WG_BM>
static __device__ __forceinline__ void wg_load_x_resident(T *xres, const T *X, int64_t row0, int64_t n, int64_t ld,
                                                          int64_t d, int kchunks)
{
    wg_load_x_resident<T, ROWS, WG_THREADS>(xres, X, row0, n, ld, d, kchunks, threadIdx.x);
}

/* A tile's 128 ||c||^2 (512 bytes) into shared memory: threads tid < 32, one 16-byte cp.async
 * each (cn rows are 512-byte aligned: kpad is a multiple of 128). */
static __device__ __forceinline__ void wg_load_cn(float *cn_smem, const float *cn_tile, int tid)
{
    if (tid < WG_BN / 4) fkm_cp_async16(cn_smem + tid * 4, cn_tile + tid * 4, 16);
}
static __device__ __forceinline__ void wg_load_cn(float *cn_smem, const float *cn_tile)
{
    wg_load_cn(cn_smem, cn_tile, threadIdx.x);
}

/* Per thread: the running best of its two rows (lane/4 and lane/4 + 8 of its warp's 16), and
 * for TOP3 (exact mode, docs/EXACTNESS.md 3.6) the second and third scores and the second's
 * index. */
struct wg_rows {
    float bs[2], b2[2], b3[2];
    int32_t bi[2], i2[2];
};
static __device__ __forceinline__ void wg_rows_init(wg_rows &r)
{
#pragma unroll
    for (int h = 0; h < 2; h++) r.bs[h] = r.b2[h] = r.b3[h] = INFINITY, r.bi[h] = r.i2[h] = 0;
}

/* Where the epilogue reads ||c||^2 of columns 8 ni and 8 ni + 1 of its lane's pairs: global
 * memory through the read-only cache (p = cn + the lane's first column), or the tile's copy in
 * shared memory (addr = that copy + the lane's first column offset; one 8-byte load per pair). */
struct wg_cn_global {
    const float *p;
    __device__ __forceinline__ float2 pair(int ni) const { return make_float2(__ldg(p + ni * 8), __ldg(p + ni * 8 + 1)); }
};
struct wg_cn_shared {
    uint32_t addr; /* shared-space address: the generic pointer (through the tile alignment's
                      integer arithmetic) would compile to generic loads */
    __device__ __forceinline__ float2 pair(int ni) const
    {
        float2 c;
        asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n" : "=f"(c.x), "=f"(c.y) : "r"(addr + ni * 32));
        return c;
    }
};

/* The argmin epilogue of one 64 x 128 tile of a warpgroup: the 64 accumulators become scores
 * ||c||^2 - alpha x.c (in place), folded into the rows' running best with ties to the lowest
 * column. col0: the global column of this lane's accumulator 0 (tile column + (lane % 4) * 2).
 * Accumulator j: column block j / 4, rows lane/4 (+8 for j % 4 >= 2), columns
 * (lane % 4) * 2 + (j % 2) — the mma.sync C layout, 16 times along N. */
template <typename CN>
static __device__ __forceinline__ void wg_scores(float (&acc)[64], const CN &cn, float alpha)
{
#pragma unroll
    for (int ni = 0; ni < 16; ni++) {
        const float2 c = cn.pair(ni);
        acc[ni * 4 + 0] = fmaf(-alpha, acc[ni * 4 + 0], c.x);
        acc[ni * 4 + 1] = fmaf(-alpha, acc[ni * 4 + 1], c.y);
        acc[ni * 4 + 2] = fmaf(-alpha, acc[ni * 4 + 2], c.x);
        acc[ni * 4 + 3] = fmaf(-alpha, acc[ni * 4 + 3], c.y);
    }
}

/* Exact mode's candidate pass (assign.cuh, fkm_cuda_assign_candidates): the same scores, and
 * every one at or below its row's threshold appended to the row's slots (rare: a few per row;
 * padding columns score +inf). row[h]: the global row of the lane's row h, lrow[h] its row in
 * the block (the shared counters scnt); thr[h] = -inf past n. */
template <typename CN>
static __device__ __forceinline__ void wg_cand_epilogue(float (&acc)[64], const CN &cn, int32_t col0, float alpha,
                                                        const float (&thr)[2], const int64_t (&row)[2],
                                                        const int (&lrow)[2], unsigned *scnt,
                                                        const fkm_cuda_cand_out &cand)
{
    wg_scores(acc, cn, alpha);
    uint32_t mask[2] = {0u, 0u};
#pragma unroll
    for (int ni = 0; ni < 16; ni++)
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int e = 0; e < 2; e++) mask[h] |= (uint32_t)(acc[ni * 4 + 2 * h + e] <= thr[h]) << (2 * ni + e);
    if (__any_sync(0xffffffffu, (mask[0] | mask[1]) != 0u)) {
#pragma unroll
        for (int h = 0; h < 2; h++)
            fkm_cand_emit(mask[h], scnt + lrow[h], cand.idx + row[h] * cand.cap, cand.cap, col0);
    }
}

template <bool TOP3, typename CN>
static __device__ __forceinline__ void wg_epilogue(float (&acc)[64], const CN &cn, int32_t col0, float alpha,
                                                   wg_rows &r)
{
    wg_scores(acc, cn, alpha);
    if (TOP3) {
        /* row h's scores at acc[4 ni + 2h + e], column col0 + 8 ni + e: the layout of
         * fkm_top3_tile, as in assign.cu. Per row and tile: the tile's own three smallest by a
         * knockout network, merged into the running three (106 min/max for the 32 scores,
         * was 160 inserting each), then, only where the tile brings a new best or second, one
         * compare and select per score for each index wanted (the lowest column holding the
         * value: ties to the lowest index). Bit for bit the old sequential insertion: the
         * argument is at fkm_top3_tile (src/core/top3.h), tests/test_top3_sim.c and
         * tests/cuda/test_top3_device.cu check it. The state lives per lane (a quarter of the
         * row's columns) until wg_finish merges the quad once. */
#pragma unroll
        for (int h = 0; h < 2; h++) {
            fkm_top3 t = {r.bs[h], r.b2[h], r.b3[h], r.bi[h], r.i2[h]};
            fkm_top3_tile(&t, acc + 2 * h, 16, col0);
            r.bs[h] = t.s1, r.b2[h] = t.s2, r.b3[h] = t.s3, r.bi[h] = t.i1, r.i2[h] = t.i2;
        }
    } else {
        /* one fmin per element; the index is looked for only when the row improves */
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float m = acc[2 * h];
#pragma unroll
            for (int ni = 0; ni < 16; ni++) m = fminf(m, fminf(acc[ni * 4 + 2 * h], acc[ni * 4 + 2 * h + 1]));
            if (m < r.bs[h]) {
                int32_t idx = -1;
#pragma unroll
                for (int ni = 15; ni >= 0; ni--) {
                    if (acc[ni * 4 + 2 * h + 1] == m) idx = col0 + ni * 8 + 1;
                    if (acc[ni * 4 + 2 * h] == m) idx = col0 + ni * 8;
                }
                r.bs[h] = m;
                r.bi[h] = idx;
            }
        }
    }
}

/* The end of a block: merges the four lanes of each quad (disjoint columns of the same rows,
 * ties to the lowest index) and stores each point's label, best score and TOP3 outputs.
 * wrow0: the first of the calling warp's 16 rows (its m64 tile's row 16 * (warp % 4)). */
template <bool TOP3>
static __device__ __forceinline__ void wg_finish(wg_rows &r, int64_t b, int64_t wrow0, int64_t n,
                                                 int32_t *labels_all, unsigned long long *changed, float *best_all,
                                                 const fkm_cuda_top3_out &top3)
{
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int h = 0; h < 2; h++) {
#pragma unroll
        for (int o = 1; o <= 2; o <<= 1) {
            if (TOP3) {
                fkm_top3 t = {r.bs[h], r.b2[h], r.b3[h], r.bi[h], r.i2[h]};
                t = fkm_top3_merge(t, fkm_top3_shfl_xor(t, o));
                r.bs[h] = t.s1, r.b2[h] = t.s2, r.b3[h] = t.s3, r.bi[h] = t.i1, r.i2[h] = t.i2;
            } else {
                const float s2 = __shfl_xor_sync(0xffffffffu, r.bs[h], o);
                const int32_t j2 = __shfl_xor_sync(0xffffffffu, r.bi[h], o);
                fkm_merge_best(r.bs[h], r.bi[h], s2, j2);
            }
        }
    }
    /* lane 4q holds rows q and q + 8 of its warp's 16: lanes 4q and 4q+1 store one each */
    const int q = lane >> 2, which = lane & 3;
    const int64_t row = wrow0 + q + (which == 1 ? 8 : 0);
    const float s = which == 1 ? r.bs[1] : r.bs[0];
    const int32_t i = which == 1 ? r.bi[1] : r.bi[0];
    if (TOP3 && which < 2 && row < n) {
        const int h = which;
        const fkm_top3 t = {h ? r.bs[1] : r.bs[0], h ? r.b2[1] : r.b2[0], h ? r.b3[1] : r.b3[0],
                            h ? r.bi[1] : r.bi[0], h ? r.i2[1] : r.i2[0]};
        fkm_top3_store(top3, b * n + row, t);
    }
    fkm_store_label(which < 2 && row < n, b * n + row, i, s, labels_all, best_all, changed + b);
}

/* ---------------------------------------------------------------- host: one dispatch */

/* The entry points of the wgmma kernels (assign_wgmma.cu, assign_wgmma_pingpong.cu) pick the instantiation the same way: the problem's dtype (f16,
 * f32 as TF32, else bf16) and the fast or top-3 epilogue (top3 != NULL). L::run<T, TOP3> is
 * the file's launcher. */
template <class L>
static fkm_status wg_dispatch(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn, int64_t kpad,
                              int64_t dpad, float alpha, int32_t *labels, unsigned long long *changed, float *best,
                              const fkm_cuda_top3_out *top3, cudaStream_t stream)
{
#define WG_DISPATCH_TOP3(T)                                                                                    \
    return top3 ? L::template run<T, true>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, top3, stream) \
                : L::template run<T, false>(ctx, pb, cq, cn, kpad, dpad, alpha, labels, changed, best, NULL, stream)
    if (pb->dtype == FKM_F16) WG_DISPATCH_TOP3(__half);
    if (pb->dtype == FKM_F32) WG_DISPATCH_TOP3(float);
    WG_DISPATCH_TOP3(__nv_bfloat16);
#undef WG_DISPATCH_TOP3
}

#endif
