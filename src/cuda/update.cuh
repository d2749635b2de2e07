/* update.cuh — the sort-inverse centroid update on the GPU (paper §"sort-inverse update").
 *
 * Given labels, it produces per-cluster weighted sums and weights and per-point objectives,
 * with no floating-point atomics: point ids are sorted by label (stable counting sort:
 * histogram, exclusive scan, stable scatter), each cluster's contiguous segment is reduced in
 * fixed-size chunks (large clusters are split across blocks) whose partials are combined in
 * chunk order. The result is bitwise identical run to run, whatever the launch shape.
 * The Lloyd loop (src/core/lloyd.c) turns the sums into centroids. */
#ifndef FKM_CUDA_UPDATE_CUH
#define FKM_CUDA_UPDATE_CUH

#include "cuda/common.cuh"

typedef struct fkm_cuda_update_ws fkm_cuda_update_ws;

/* Allocates the device workspace for problems of pb's shape (batch, n, k, d). */
fkm_status fkm_cuda_update_create(fkm_ctx *ctx, const fkm_dev_problem *pb, fkm_cuda_update_ws **out);
/* NULL-safe. */
void fkm_cuda_update_destroy(fkm_cuda_update_ws *ws);

/* Per-stage device times of the last fkm_cuda_update call in milliseconds (CUDA events),
 * filled only when fkm_cuda_update_set_timing(ws, 1) was called (the benchmark does; the
 * library does not, since events cost synchronisation). */
typedef struct fkm_cuda_update_times {
    float histogram, scan, scatter, reduce, combine;
} fkm_cuda_update_times;
void fkm_cuda_update_set_timing(fkm_cuda_update_ws *ws, int on);
fkm_cuda_update_times fkm_cuda_update_last_times(const fkm_cuda_update_ws *ws);

/* For tests and benchmarks: the last update's sort, in device memory (order: point ids within
 * their problem in sorted order; sorted_g: their global clusters b*k + label; the first
 * (number of in-range labels) of batch*n entries are set), and the scatter the counting-sort
 * path uses: points per staged sub-tile, 0 = direct (-1: radix-sort path, k > 4096). */
void fkm_cuda_update_sorted(const fkm_cuda_update_ws *ws, const uint32_t **order, const uint32_t **sorted_g);
int64_t fkm_cuda_update_scatter_stage(const fkm_cuda_update_ws *ws);

/* One update pass over the batch, all in `stream`, all pointers device memory:
 *   labels     batch*n int32 in [0, k) (problem b's at labels + b*n)
 *   centroids  batch*k*d f32: the centroids the labels were assigned against
 * outputs:
 *   sums       batch*k*d double: sum over the cluster's points of w_i * row_i, where row_i is
 *              the point as f32 (for cosine: normalised as the CPU backend does, norm in
 *              double, the normalised row rounded to f32). NULL = not wanted (skip the work).
 *   weight     batch*k double: sum of w_i over the cluster's points (NULL = not wanted).
 *   point_obj  batch*n double: each point's unweighted objective against its centroid,
 *              computed in double from the f32 row and the f32 centroid: ||x - c||^2 for l2
 *              and cosine (x normalised), -x.c for dot. NULL = not wanted.
 *   objective  batch doubles: sum over points of w_i * point_obj_i, in a fixed order.
 * accumulate != 0 adds to sums/weight/objective instead of overwriting them (for data that
 * arrives in chunks: chunks added in a fixed order keep the result deterministic).
 * Weights: pb->weights (batch*n f32, device) or NULL for all ones. */
fkm_status fkm_cuda_update(fkm_ctx *ctx, fkm_cuda_update_ws *ws, const fkm_dev_problem *pb,
                           const int32_t *labels, const float *centroids, double *sums,
                           double *weight, double *point_obj, double *objective, int accumulate,
                           cudaStream_t stream);

/* Each problem's results depend on its own data only: one call over a batch gives bit for bit
 * what one call per problem gives (the reduce's units never cross problems). */

/* The same over problems that are parts of larger ones (resident pieces of X, backend.cu):
 * each source problem of src_n rows is cut into parts = ceil(src_n / n) parts of n = pb->n
 * rows, the last one shorter when n does not divide src_n, and pb->batch (a multiple of
 * parts) counts the parts. Call problem p is part j = p % parts of source problem
 * s = p / parts, i.e. the source's rows j*n .. min((j+1)*n, src_n) - 1: X at
 * pb->X + s*batch_stride + j*n*ld, labels, weights (pb->weights) and point_obj at
 * s*src_n + j*n, centroids at s*k*d (the parts of a problem share its centroids). sums,
 * weight and objective are per call problem: p*k*d, p*k, p. Each part's results are those of
 * an fkm_cuda_update call over its rows alone. fkm_cuda_update is src_n = n. */
fkm_status fkm_cuda_update_parts(fkm_ctx *ctx, fkm_cuda_update_ws *ws, const fkm_dev_problem *pb, int64_t src_n,
                                 const int32_t *labels, const float *centroids, double *sums, double *weight,
                                 double *point_obj, double *objective, int accumulate, cudaStream_t stream);

/* The left fold over the `parts` pieces of each of `batch` problems: piece j of problem s is
 * entry s*parts + j of the p-arrays (k*d sums, k weights, 1 objective each, as
 * fkm_cuda_update_parts writes them). Output = piece 0, then output = output + piece j in
 * order: bit for bit what fkm_cuda_update leaves when called piece by piece with accumulate
 * off for piece 0 and on after it. A NULL output (or input) is skipped. */
fkm_status fkm_cuda_update_fold(fkm_ctx *ctx, int64_t batch, int64_t parts, int64_t k, int64_t d, const double *psums,
                                const double *pweight, const double *pobj, double *sums, double *weight,
                                double *objective, cudaStream_t stream);

#endif
