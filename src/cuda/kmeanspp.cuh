/* kmeanspp.cuh — greedy k-means++ on the GPU, choosing bitwise the centroids of the CPU
 * version (src/cpu/kmeanspp.c) for the same seed; see kmeanspp.cu for how. */
#ifndef FKM_CUDA_KMEANSPP_CUH
#define FKM_CUDA_KMEANSPP_CUH

#include "cuda/common.cuh"

/* Where the time goes (milliseconds of device time, CUDA events), for the benchmark. */
typedef struct fkm_cuda_kpp_profile {
    double total_ms;   /* the whole initialisation, setup to the copy of C included (with the
                          profile's events between the launches) */
    double pass_ms;    /* the k - 1 distance passes over X (mark, rows, sums), in the run (events around each) */
    double table_ms;   /* the k - 1 pruning tables (centre - new row distances), in the run */
    double select_ms;  /* the k - 1 single-block tails doing only the candidate selection, alone */
    double tail_ms;    /* the k - 1 tails doing selection and D^2 sampling of the next candidates, alone */
    /* the pass's kernels, each timed alone (events between them) over KPP_PROFILE_REPS
     * repetitions of the last step's pass after the run, per pass; 0 with several groups */
    double mark_ms, rows_ms, sums_ms;
    int64_t steps, trials, chunks;
    /* pruning over all k passes (the first, D = +inf, prunes nothing): point visits, rows
     * read, (point, row) pairs (T + 1 rows per pass), pairs the test could not rule out */
    int64_t points, points_read, pairs, pairs_needed;
    int pruning;       /* 0 when FLASHKM_KPP_NO_PRUNE=1 turned it off */
} fkm_cuda_kpp_profile;

/* k-means++ for problem `problem` of dp (device X and weights) into C (k x d, host memory),
 * seeded with seed, on `stream`; synchronises the stream once, at the end, and adds its
 * pruning counts to ctx->kpp. X must be all resident with 16-byte aligned rows whose elements
 * past d, up to the next 16-byte boundary, are zero (what backend.cu's place_x gives: rows
 * read in 16-byte pieces). With prof, each pass and pruning table of the run is timed
 * (events between the launches) and the tails are timed again separately afterwards
 * (benchmark only; C unaffected). */
fkm_status fkm_cuda_kmeanspp(fkm_ctx *ctx, const fkm_dev_problem *dp, int64_t problem, uint64_t seed, float *C,
                             cudaStream_t stream, fkm_cuda_kpp_profile *prof);

#endif
