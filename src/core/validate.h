/* validate.h — argument checks shared by every public operation. Each returns FKM_OK or
 * records a message naming the offending argument and returns its status. */
#ifndef FKM_VALIDATE_H
#define FKM_VALIDATE_H

#include "internal.h"

/* X: non-NULL, known dtype, n >= 1, d >= 1, ld >= d, and (n-1)*ld + d elements addressable. */
fkm_status fkm_check_matrix(fkm_ctx *ctx, const void *X, fkm_dtype dtype, int64_t n, int64_t d,
                            int64_t ld);
fkm_status fkm_check_metric(fkm_ctx *ctx, fkm_metric metric);
/* Centroids: non-NULL, 1 <= k, k*d floats addressable, all finite. C is host memory, or
 * device memory of a backend with first_nonfinite (checked on the device). */
fkm_status fkm_check_centroids(fkm_ctx *ctx, const float *C, int64_t k, int64_t d,
                               const char *what);
/* Weights (NULL allowed): finite, >= 0, positive sum. */
fkm_status fkm_check_weights(fkm_ctx *ctx, const float *w, int64_t n);
/* The threads a call uses: params value if > 0, else OpenMP's default. */
int fkm_resolve_threads(int32_t requested);

#endif
