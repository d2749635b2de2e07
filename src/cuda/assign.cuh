/* assign.cuh — FlashAssign on the GPU: distances and argmin fused, the N x K distance matrix
 * never stored. Two kernel families generated from one source each:
 *   - tensor cores (f16/bf16 inputs, FKM_PRECISION_FAST): centroid tiles streamed through
 *     shared memory with cp.async (3 stages), x.c on mma.sync m16n8k16 with f32 accumulation,
 *     a running (best score, best index) per point in registers, merged across threads and
 *     warps with ties to the lowest index. X tiles stay resident in shared memory when D is
 *     small enough (D <= 256), else they are streamed with the centroids (split-D).
 *   - f32 FFMA (f32/f64 inputs, or FKM_PRECISION_F32): the same structure on CUDA cores.
 * The score minimised is ||c||^2 - 2 x.c (l2) or -x.c (cosine: centroids are unit vectors so
 * the point's norm does not change the argmin; dot). */
#ifndef FKM_CUDA_ASSIGN_CUH
#define FKM_CUDA_ASSIGN_CUH

#include "cuda/common.cuh"

typedef struct fkm_cuda_assign_ws fkm_cuda_assign_ws;

/* Which kernel a problem gets. */
typedef enum fkm_assign_path {
    FKM_ASSIGN_MMA = 0,       /* tensor cores, X tile resident in shared memory */
    FKM_ASSIGN_MMA_SPLITD,    /* tensor cores, X and centroid tiles streamed along D */
    FKM_ASSIGN_FFMA,          /* f32 on CUDA cores */
    FKM_ASSIGN_WGMMA,         /* tensor cores through warpgroup MMA (sm_90a, K > 64); X tile
                                 resident for D <= 256, streamed along D above */
    FKM_ASSIGN_WGMMA_PINGPONG, /* two consumer warpgroups taking turns (one's epilogue under the
                                 other's MMAs) fed by a producer warp through mbarriers
                                 (resident X only; the default where it measured faster, assign.cu) */
    FKM_ASSIGN_WGMMA_PINGPONG_PERSISTENT /* the same on a persistent grid: one block per SM
                                 walks row blocks, the ring runs on across them, the next X tile
                                 loads ahead (the default for MMA widths 128..191 with k < 4096, assign.cu) */
} fkm_assign_path;

/* The path a problem would take on the current device (the tensor-core paths need 16-byte
 * aligned rows: the backend makes a padded copy otherwise). FLASHKM_ASSIGN=mma in the
 * environment keeps the mma.sync kernel where wgmma would be chosen (for comparisons);
 * FLASHKM_WGMMA_OVERLAP=0 / 2 / 3 force the single-set, ping-pong or persistent ping-pong wgmma
 * kernel where X stays resident (A/B timing; same results, bit for bit). */
fkm_assign_path fkm_cuda_assign_path(const fkm_dev_problem *pb, fkm_precision precision);
const char *fkm_cuda_assign_path_name(fkm_assign_path path);

fkm_status fkm_cuda_assign_create(fkm_ctx *ctx, const fkm_dev_problem *pb, fkm_precision precision,
                                  fkm_cuda_assign_ws **out);
void fkm_cuda_assign_destroy(fkm_cuda_assign_ws *ws);

/* One assignment of the whole batch in `stream`. centroids: batch*k*d f32 (device). labels:
 * batch*n int32 (device), read as the previous labels and overwritten; changed: batch
 * counters (device), set to the number of labels that differ from the previous ones.
 * best: optional batch*n f32 (device): each point's best score. */
fkm_status fkm_cuda_assign(fkm_ctx *ctx, fkm_cuda_assign_ws *ws, const fkm_dev_problem *pb,
                           const float *centroids, int32_t *labels, unsigned long long *changed,
                           float *best, cudaStream_t stream);

/* Exact mode's extra outputs (docs/EXACTNESS.md 3.6, src/core/top3.h), batch*n each
 * (device): each point's second-smallest score over every centroid but its label, that
 * centroid's index, and the smallest score over every centroid but those two. */
typedef struct fkm_cuda_top3_out {
    float *second, *third;
    int32_t *second_idx;
} fkm_cuda_top3_out;

/* fkm_cuda_assign's top-3 variant for exact mode: also writes top3's arrays, and each point's
 * best score to best (required). Needs a tensor-core path (mma or wgmma: a workspace created
 * with FKM_PRECISION_EXACT on f32/f16/bf16 input). */
fkm_status fkm_cuda_assign_top3(fkm_ctx *ctx, fkm_cuda_assign_ws *ws, const fkm_dev_problem *pb,
                                const float *centroids, int32_t *labels, unsigned long long *changed,
                                float *best, const fkm_cuda_top3_out *top3, cudaStream_t stream);

/* Exact mode's candidate pass (exact.cu, docs/EXACTNESS.md 5.4): m gathered rows of problem b
 * (Xg: m rows of the input type, leading dimension ldg, 16-byte aligned and zero beyond d)
 * scored against problem b's centroids as prepared by the fkm_cuda_assign_top3 call of the
 * same assignment (its operand copy and norm term: the same scores' bound); every centroid
 * whose computed score is <= thr[row] is appended to row's slots: cnt[row] is set to their
 * number (it may exceed cap, then only cap were stored), in no particular order. thr = -inf
 * asks for none. The single-set wgmma kernel runs it where the assignment runs on wgmma, else
 * (and with force_mma: FLASHKM_CAND_KERNEL=mma, for A/B runs and tests; the same guarantee,
 * though a score near a threshold may fall on the other side of it, so the sets, and the
 * host's share, may differ) the mma.sync kernel. */
typedef struct fkm_cuda_cand_out {
    const float *thr;
    int32_t *idx; /* m x cap */
    unsigned *cnt;
    int cap;
} fkm_cuda_cand_out;

fkm_status fkm_cuda_assign_candidates(fkm_ctx *ctx, fkm_cuda_assign_ws *ws, const fkm_dev_problem *pb, int64_t b,
                                      const void *Xg, int64_t m, int64_t ldg, const fkm_cuda_cand_out *cand,
                                      int force_mma, cudaStream_t stream);

#endif
