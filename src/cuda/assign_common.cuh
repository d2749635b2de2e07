/* assign_common.cuh — what the assignment kernels share: merging (score, index) candidates
 * with ties to the lowest index, storing labels with a count of changes, and the launchers
 * of the kernels that live in their own files. */
#ifndef FKM_CUDA_ASSIGN_COMMON_CUH
#define FKM_CUDA_ASSIGN_COMMON_CUH

#include "cuda/assign.cuh"

/* The better of two (score, index) candidates: lower score, ties to the lower index. */
static __device__ __forceinline__ void fkm_merge_best(float &s, int32_t &i, float s2, int32_t i2)
{
    if (s2 < s || (s2 == s && i2 < i)) {
        s = s2;
        i = i2;
    }
}

/* The second-smallest of two candidates' (best, second) pairs, each best <= second: the
 * second of their union, min(max(s, t), min(s2, t2)). Equal bests give a zero gap. */
static __device__ __forceinline__ float fkm_merge_second(float s, float s2, float t, float t2)
{
    return fminf(fmaxf(s, t), fminf(s2, t2));
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
 * FKM_WGMMA_MAX_ROW_BYTES, else it streams with the centroids. second != NULL: the top-2
 * instantiation (exact mode), which also writes each point's second-best score there. */
#define FKM_WGMMA_BN 128
#define FKM_WGMMA_MAX_ROW_BYTES 512   /* X rows up to 512 bytes stay in shared memory */
fkm_status fkm_cuda_assign_wgmma(fkm_ctx *ctx, const fkm_dev_problem *pb, const void *cq, const float *cn,
                                 int64_t kpad, int64_t dpad, float alpha, int32_t *labels,
                                 unsigned long long *changed, float *best, float *second, cudaStream_t stream);

#endif
