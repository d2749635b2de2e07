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
 * lazy argmin epilogue of assign.cu. */
#include "cuda/assign_common.cuh"
#include "cuda/mma.cuh"

#include <math.h>

#define WG_THREADS (WG_BM * 2)   /* one warpgroup (128 threads) per 64 points */
#define WG_BM 128
#define WG_BN FKM_WGMMA_BN
/* a stage row is 128 bytes: 64 two-byte or 32 four-byte elements, in 16-byte chunks */
#define WG_BK_OF(T) ((int)(128 / sizeof(T)))
#define WG_CW_OF(T) ((int)(16 / sizeof(T)))
#define WG_STAGES 4
#define WG_AHEAD (WG_STAGES - 2)

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

template <typename T> struct wg_mma;
template <> struct wg_mma<__half> {
    static __device__ __forceinline__ void run(float d[64], uint64_t da, uint64_t db, int accumulate)
    {
#ifdef FKM_HAVE_WGMMA
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                     
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, 0;\n}\n" 
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])                                                                            
                 : "l"(da), "l"(db), "r"(accumulate));
#endif
    }
};
template <> struct wg_mma<__nv_bfloat16> {
    static __device__ __forceinline__ void run(float d[64], uint64_t da, uint64_t db, int accumulate)
    {
#ifdef FKM_HAVE_WGMMA
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                     
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, 0;\n}\n" 
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])                                                                            
                 : "l"(da), "l"(db), "r"(accumulate));
#endif
    }
};

template <> struct wg_mma<float> { /* TF32, k8: the tensor cores read the upper 19 bits */
    static __device__ __forceinline__ void run(float d[64], uint64_t da, uint64_t db, int accumulate)
    {
#ifdef FKM_HAVE_WGMMA
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db), "r"(accumulate));
#endif
    }
};

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

/* One pipeline stage: the centroid tile's D chunk kc and, when X is not resident (split-D,
 * for large D), the block's X rows of that chunk after it. Rows and columns past the data
 * are zero. */
template <typename T, bool RESIDENT>
static __device__ __forceinline__ void wg_load_stage(T *stage, const T *cq_tile, int64_t dpad, int kc, const T *X,
                                                     int64_t row0, int64_t n, int64_t ld, int64_t d)
{
#pragma unroll
    for (int e = 0; e < WG_BN * 8 / WG_THREADS; e++) {
        const int idx = threadIdx.x + e * WG_THREADS, r = idx >> 3, c = idx & 7;
        fkm_cp_async16(stage + fkm_swz<T>(r, c), cq_tile + (int64_t)r * dpad + kc * WG_BK_OF(T) + c * WG_CW_OF(T), 16);
    }
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
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    constexpr int WG_BK = WG_BK_OF(T);
    const int kchunks = (int)(dpad / WG_BK);
    const int64_t steps = kpad / WG_BN * kchunks;
    T *xres = smem;                                   /* resident: kchunks x [128][64] */
    T *stages = smem + (RESIDENT ? (int64_t)WG_BM * dpad : 0);  /* WG_STAGES x [128][64] (+ X [128][64]) */
    const int stage_elems = RESIDENT ? WG_BN * WG_BK : (WG_BN + WG_BM) * WG_BK;

    if (RESIDENT) {
        for (int idx = tid; idx < WG_BM * kchunks * 8; idx += WG_THREADS) {
            const int kc = idx / (WG_BM * 8), rem = idx % (WG_BM * 8), r = rem >> 3, c = rem & 7;
            const int64_t col = (int64_t)kc * WG_BK + c * WG_CW_OF(T);
            const bool ok = row0 + r < n && col < d;
            fkm_cp_async16(xres + kc * WG_BM * WG_BK + fkm_swz<T>(r, c), ok ? X + (row0 + r) * ld + col : X,
                           ok ? 16 : 0);
        }
    }
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
    float bs[2] = {INFINITY, INFINITY};
    float b2[2] = {INFINITY, INFINITY}, b3[2] = {INFINITY, INFINITY}; /* TOP3 */
    int32_t bi[2] = {0, 0}, i2[2] = {0, 0};                            /* i2: TOP3 */
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
            /* accumulator j: column block j / 4, rows lane/4 (+8 for j % 4 >= 2), columns
             * (lane % 4) * 2 + (j % 2) — the mma.sync C layout, 16 times along N */
            const int64_t col0 = tile_col0 + (lane & 3) * 2;
#pragma unroll
            for (int ni = 0; ni < 16; ni++) {
                const float c0 = __ldg(cn + col0 + ni * 8), c1 = __ldg(cn + col0 + ni * 8 + 1);
                acc[ni * 4 + 0] = fmaf(-alpha, acc[ni * 4 + 0], c0);
                acc[ni * 4 + 1] = fmaf(-alpha, acc[ni * 4 + 1], c1);
                acc[ni * 4 + 2] = fmaf(-alpha, acc[ni * 4 + 2], c0);
                acc[ni * 4 + 3] = fmaf(-alpha, acc[ni * 4 + 3], c1);
            }
            if (TOP3) {
                /* row h's scores at acc[4 ni + 2h + e], column col0 + 8 ni + e: the layout
                 * of fkm_top3_tile, as in assign.cu */
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    fkm_top3 t = {bs[h], b2[h], b3[h], bi[h], i2[h]};
                    fkm_top3_tile(&t, acc + 2 * h, 16, (int32_t)col0);
                    bs[h] = t.s1, b2[h] = t.s2, b3[h] = t.s3, bi[h] = t.i1, i2[h] = t.i2;
                }
            } else {
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    float m = acc[2 * h];
#pragma unroll
                    for (int ni = 0; ni < 16; ni++) m = fminf(m, fminf(acc[ni * 4 + 2 * h], acc[ni * 4 + 2 * h + 1]));
                    if (m < bs[h]) {
                        int32_t idx = -1;
#pragma unroll
                        for (int ni = 15; ni >= 0; ni--) {
                            if (acc[ni * 4 + 2 * h + 1] == m) idx = (int32_t)(col0 + ni * 8 + 1);
                            if (acc[ni * 4 + 2 * h] == m) idx = (int32_t)(col0 + ni * 8);
                        }
                        bs[h] = m;
                        bi[h] = idx;
                    }
                }
            }
            tile_col0 += WG_BN;
        }
    }
    fkm_cp_async_wait<0>();
#pragma unroll
    for (int h = 0; h < 2; h++) {
#pragma unroll
        for (int o = 1; o <= 2; o <<= 1) {
            if (TOP3) {
                fkm_top3 t = {bs[h], b2[h], b3[h], bi[h], i2[h]};
                t = fkm_top3_merge(t, fkm_top3_shfl_xor(t, o));
                bs[h] = t.s1, b2[h] = t.s2, b3[h] = t.s3, bi[h] = t.i1, i2[h] = t.i2;
            } else {
                const float s2 = __shfl_xor_sync(0xffffffffu, bs[h], o);
                const int32_t j2 = __shfl_xor_sync(0xffffffffu, bi[h], o);
                fkm_merge_best(bs[h], bi[h], s2, j2);
            }
        }
    }
    /* lane 4q holds rows q and q + 8 of its warp's 16: lanes 4q and 4q+1 store one each */
    const int q = lane >> 2, which = lane & 3;
    const int64_t row = row0 + warp * 16 + q + (which == 1 ? 8 : 0);
    const float s = which == 1 ? bs[1] : bs[0];
    const int32_t i = which == 1 ? bi[1] : bi[0];
    if (TOP3 && which < 2 && row < n) {
        const int h = which;
        const fkm_top3 t = {h ? bs[1] : bs[0], h ? b2[1] : b2[0], h ? b3[1] : b3[0], h ? bi[1] : bi[0],
                            h ? i2[1] : i2[0]};
        fkm_top3_store(top3, b * n + row, t);
    }
    fkm_store_label(which < 2 && row < n, b * n + row, i, s, labels_all, best_all, changed + b);
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
