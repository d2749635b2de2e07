/* assign_common.cuh — what the assignment kernels share: merging (score, index) candidates
 * with ties to the lowest index, storing labels with a count of changes, and the launchers
 * of the kernels that live in their own files. */
#ifndef FKM_CUDA_ASSIGN_COMMON_CUH
#define FKM_CUDA_ASSIGN_COMMON_CUH

#include "cuda/assign.cuh"
#include "core/top3.h"

/* The better of two (score, index) candidates: lower score, ties to the lower index. */
static __device__ __forceinline__ void fkm_merge_best(float &s, int32_t &i, float s2, int32_t i2)
{
    if (s2 < s || (s2 == s && i2 < i)) {
        s = s2;
        i = i2;
    }
}

/* Exact mode's top-3 state (src/core/top3.h) of the lane o away in the butterfly, for
 * fkm_top3_merge: the lanes of a quad hold disjoint columns of the same rows. */
static __device__ __forceinline__ fkm_top3 fkm_top3_shfl_xor(const fkm_top3 &t, int o)
{
    fkm_top3 u;
    u.s1 = __shfl_xor_sync(0xffffffffu, t.s1, o);
    u.s2 = __shfl_xor_sync(0xffffffffu, t.s2, o);
    u.s3 = __shfl_xor_sync(0xffffffffu, t.s3, o);
    u.i1 = __shfl_xor_sync(0xffffffffu, t.i1, o);
    u.i2 = __shfl_xor_sync(0xffffffffu, t.i2, o);
    return u;
}

/* The top-3 outputs of one point (its best score and label go through fkm_store_label). */
static __device__ __forceinline__ void fkm_top3_store(const fkm_cuda_top3_out &out, int64_t row, const fkm_top3 &t)
{
    out.second[row] = t.s2;
    out.third[row] = t.s3;
    out.second_idx[row] = t.i2;
}

/* Writes the label of one point and counts it when it changed (one atomic per warp: integer
 * counts are exact whatever the order). */
static __device__ __forceinline__ void fkm_store_label(int valid, int64_t row, int32_t idx, float score, int32_t *labels,
                                                float *best, unsigned long long *changed)
{
    int differs = 0;
    if (valid) {
        differs = labels[row] != idx;
        labels[row] = idx;
        if (best) best[row] = score;
    }
    const unsigned mask = __ballot_sync(0xffffffffu, differs);
    if ((threadIdx.x & 31) == 0 && mask) atomicAdd(changed, (unsigned long long)__popc(mask));
}


/* assign_wgmma.cu (sm_90a): tensor-core assignment on warpgroup MMA for f16/bf16 and f32
 * (TF32). cq holds the centroids rounded to the operand type in kpad x dpad (kpad a multiple
 * of FKM_WGMMA_BN, dpad of 128 bytes). X stays in shared memory for rows of at most
 * FKM_WGMMA_MAX_ROW_BYTES, else it streams with the centroids. top3 != NULL: the top-3
 * instantiation (exact mode), which also writes each point's second and third scores and
 * second index there. */
#define FKM_WGMMA_BN 128
#define FKM_WGMMA_MAX_ROW_BYTES 512   /* X rows up to 512 bytes stay in shared memory */
#define FKM_PINGPONG_MIN_K 4096       /* MMA width 128..191: from here on ping-pong is the default */
fkm_status fkm_cuda_assign_wgmma(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn,
                                 int64_t kpad, int64_t dpad, float alpha, int32_t *labels,
                                 unsigned long long *changed, float *best, const fkm_cuda_top3_out *top3,
                                 cudaStream_t stream);
/* The candidate pass's epilogue step for one row of a lane: the columns of `mask` (bit 2 ni + e:
 * column col0 + 8 ni + e, the mma C layout) appended to the row's slots (cap of them at
 * `slots`), counted by *count, the row's counter in shared memory (the block writes the counts
 * out at its end). The four lanes of a quad hold the same rows: one atomic per quad and row
 * reserves their slots. (A global atomic with its return is a round trip the warp waits for:
 * one per candidate, then one per quad and tile, kept the pass at about half the fast kernel's
 * speed; the slots are plain stores.) All 32 lanes call it, with the same h. */
static __device__ __forceinline__ void fkm_cand_emit(uint32_t mask, unsigned *count, int32_t *slots, int cap,
                                                     int32_t col0)
{
    const int q = threadIdx.x & 3;
    const unsigned c = (unsigned)__popc(mask);
    unsigned incl = c, t = __shfl_up_sync(0xffffffffu, incl, 1, 4);
    if (q >= 1) incl += t;
    t = __shfl_up_sync(0xffffffffu, incl, 2, 4);
    if (q >= 2) incl += t;
    const unsigned total = __shfl_sync(0xffffffffu, incl, 3, 4);
    unsigned base = 0;
    if (q == 0 && total) base = atomicAdd(count, total);
    unsigned slot = __shfl_sync(0xffffffffu, base, 0, 4) + incl - c;
    for (; mask; mask &= mask - 1, slot++) {
        const int bit = __ffs(mask) - 1;
        if (slot < (unsigned)cap) slots[slot] = col0 + (bit >> 1) * 8 + (bit & 1);
    }
}

/* The candidate pass (assign.cuh, fkm_cuda_assign_candidates) on the single-set kernel: m rows
 * Xg (leading dimension ldg) against one problem's prepared centroids cq (kpad x dpad), cn. */
fkm_status fkm_cuda_assign_wgmma_candidates(fkm_ctx *ctx, fkm_dtype dtype, int64_t d, const void *cq,
                                            const float *cn, int64_t kpad, int64_t dpad, float alpha, const void *Xg,
                                            int64_t m, int64_t ldg, const fkm_cuda_cand_out *cand, cudaStream_t stream);
/* assign_wgmma_pingpong.cu (sm_90a): the same contract for X rows of at most
 * FKM_WGMMA_MAX_ROW_BYTES, on the FlashAttention-3 ping-pong schedule: two consumer warpgroups
 * of 128 points each take turns issuing their wgmma, one's argmin epilogue under the other's
 * MMAs, a producer warp feeding the centroid ring through mbarriers (one block of 384 threads
 * per SM). The default for wide MMAs or many clusters (fkm_cuda_assign_path), FLASHKM_WGMMA_OVERLAP=2
 * forces it (FKM_ASSIGN_WGMMA_PINGPONG); same results, bit for bit. */
fkm_status fkm_cuda_assign_wgmma_pingpong(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn,
                                          int64_t kpad, int64_t dpad, float alpha, int32_t *labels,
                                          unsigned long long *changed, float *best, const fkm_cuda_top3_out *top3,
                                          cudaStream_t stream);
/* The same kernel on a persistent grid (assign_wgmma_pingpong.cu): at most one block per SM,
 * each walking row blocks, the centroid ring running on across them and the next row block's
 * X tile loaded ahead where shared memory holds two. The default for MMA widths 128..191 with
 * fewer than FKM_PINGPONG_MIN_K clusters, FLASHKM_WGMMA_OVERLAP=3 forces it
 * (FKM_ASSIGN_WGMMA_PINGPONG_PERSISTENT); same results, bit for bit. */
fkm_status fkm_cuda_assign_wgmma_pingpong_persistent(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq,
                                                     const float *cn, int64_t kpad, int64_t dpad, float alpha,
                                                     int32_t *labels, unsigned long long *changed, float *best,
                                                     const fkm_cuda_top3_out *top3, cudaStream_t stream);

#endif
