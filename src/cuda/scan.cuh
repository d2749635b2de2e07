/* scan.cuh — the data scan a fit starts with, on the GPU: the first row holding NaN or Inf and
 * the mean over columns of the per-column variance (two passes, as on the CPU, so that a large
 * common offset does not cancel), in fixed-size row chunks combined in a fixed order.
 *
 * X arrives in pieces (stream.cuh): each pass calls fkm_cuda_scan_piece for every piece, then
 * fkm_cuda_scan_combine. The chunk partials a piece writes depend only on its rows (pieces
 * start on chunk boundaries), so the result is the same bits however X is cut or placed. */
#ifndef FKM_CUDA_SCAN_CUH
#define FKM_CUDA_SCAN_CUH

#include "cuda/common.cuh"

/* Rows per chunk: fixed, so the result never depends on the GPU; pieces (stream.cuh) are a
 * multiple of it. */
#define FKM_SCAN_ROWS 1024

typedef struct fkm_cuda_scan_ws fkm_cuda_scan_ws;

/* Device workspace for `batch` problems of n rows and d columns, read in pieces of at most
 * max_piece_rows rows in all (problems x rows). */
fkm_status fkm_cuda_scan_create(fkm_ctx *ctx, int64_t batch, int64_t n, int64_t d, int64_t max_piece_rows,
                                fkm_cuda_scan_ws **out);
void fkm_cuda_scan_destroy(fkm_cuda_scan_ws *ws);  /* NULL-safe */

/* Clears the non-finite markers (call once before pass 0). */
fkm_status fkm_cuda_scan_begin(fkm_ctx *ctx, fkm_cuda_scan_ws *ws, cudaStream_t stream);
/* Pass 0 (column sums, first non-finite row) or pass 1 (squared deviations from the means of
 * pass 0) over one piece: `view` holds rows r0 .. r0 + view->n - 1 of problems b0 ..
 * b0 + view->batch - 1 (r0 a multiple of FKM_SCAN_ROWS). */
fkm_status fkm_cuda_scan_piece(fkm_ctx *ctx, fkm_cuda_scan_ws *ws, const fkm_dev_problem *view, int64_t b0,
                               int64_t r0, int pass, cudaStream_t stream);
/* After every piece of a pass: the column means (pass 0) or variances (pass 1). */
fkm_status fkm_cuda_scan_combine(fkm_ctx *ctx, fkm_cuda_scan_ws *ws, int pass, cudaStream_t stream);
/* After pass 1: for each problem b, first_bad[b] = first row with a non-finite value (-1 if
 * none) and mean_var[b] (host outputs). Rows are normalised first for cosine. Synchronises
 * `stream`. */
fkm_status fkm_cuda_scan_finish(fkm_ctx *ctx, fkm_cuda_scan_ws *ws, int64_t *first_bad, double *mean_var,
                                cudaStream_t stream);

#endif
