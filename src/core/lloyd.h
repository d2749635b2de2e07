/* lloyd.h — the Lloyd loop's entry for a batch of problems (lloyd.c), shared by fkm_fit and
 * fkm_fit_batch. */
#ifndef FKM_LLOYD_H
#define FKM_LLOYD_H

#include "internal.h"

/* Validates params and weights (host-readable: batch * n values or NULL), opens the backend
 * on all `batch` problems at once (the caller checked that the backend takes that batch) and
 * runs the loop; results has `batch` entries (may be NULL). */
fkm_status fkm_lloyd_run(fkm_ctx *ctx, const fkm_params *params, const void *X, fkm_dtype dtype, int64_t batch,
                         int64_t n, int64_t d, int64_t ld, int64_t batch_stride, const float *weights,
                         float *centroids_out, int32_t *labels_out, fkm_result *results);

/* Whether params' user centroids stay in device memory for the fit (validated there with the
 * backend's first_nonfinite, given to its first assign as they are) instead of being read
 * through a host copy: device memory of a backend that keeps centroids (finalize), and no
 * host-side preparation (cosine normalises them on the host first). */
int fkm_init_on_device(const fkm_ctx *ctx, const fkm_params *p);
/* Whether the loop gives params' user centroids to the backend's first assign as they are,
 * without a host copy: fkm_init_on_device, or host memory under the same conditions (a
 * backend that keeps centroids, not cosine). */
int fkm_init_direct(const fkm_ctx *ctx, const fkm_params *p);

#endif
