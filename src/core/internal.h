/* internal.h — what the library's parts share and users never see: the context, error
 * reporting, overflow-checked arithmetic and the backend interface. */
#ifndef FKM_INTERNAL_H
#define FKM_INTERNAL_H

#include "flashkm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FKM_ERRMSG_CAP 512

/* ---------------------------------------------------------------- errors */

struct fkm_backend_vtbl;

struct fkm_ctx {
    fkm_backend backend;
    const struct fkm_backend_vtbl *ops;
    char errmsg[FKM_ERRMSG_CAP];
    double *inertia_history;   /* result.inertia_per_iter points here */
    int32_t inertia_history_cap;
    int32_t n_threads;         /* fkm_set_threads; 0 = OpenMP's default */
};

/* Records a formatted message on ctx (ctx may be NULL) and returns status, so that error
 * paths read `return fkm_fail(ctx, FKM_E_INVALID, "k = %lld > n", ...)`. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
fkm_status fkm_fail(fkm_ctx *ctx, fkm_status status, const char *fmt, ...);

/* Clears the message at the start of a public call. */
void fkm_clear_error(fkm_ctx *ctx);

/* ---------------------------------------------------------------- arithmetic */

/* a * b into *out; false on overflow of int64 or on a negative operand. */
bool fkm_mul_i64(int64_t a, int64_t b, int64_t *out);
/* a * b * c bytes as size_t; false on overflow. */
bool fkm_bytes(int64_t a, int64_t b, size_t elem, size_t *out);

/* Element j of row i of X converted to float. */
float fkm_load_f32(const void *X, fkm_dtype dtype, int64_t index);
/* Row i of X (d elements) converted to f32 into out; for cosine the row is normalised
 * (computed in double, rounded once). */
void fkm_load_row(const void *X, fkm_dtype dtype, int64_t ld, int64_t i, int64_t d,
                  bool normalise, float *out);
float fkm_half_to_float(uint16_t h);
float fkm_bf16_to_float(uint16_t h);
uint16_t fkm_float_to_half(float f);
uint16_t fkm_float_to_bf16(float f);

/* ---------------------------------------------------------------- backends */

/* One problem as the backend sees it: immutable for the duration of a call. */
typedef struct fkm_problem {
    const void *X;
    fkm_dtype dtype;
    int64_t n, d, ld;
    const float *weights;   /* NULL = all ones */
    int64_t k;
    fkm_metric metric;
    int n_threads;          /* resolved, >= 1 */
} fkm_problem;

/* Output of one reduction pass over X with fixed labels. */
typedef struct fkm_partials {
    double *sums;       /* k x d weighted sums of (normalised for cosine) rows, or NULL */
    double *weight;     /* k total weights, or NULL */
    double objective;   /* weighted sum of per-point objectives (see flashkm.h "inertia") */
} fkm_partials;

/* The table every backend fills. The Lloyd loop (src/core/lloyd.c) only talks to this.
 * Labels and per-point distances live in the backend's state (host or device). */
typedef struct fkm_backend_vtbl {
    const char *name;
    /* Validates nothing (core did), allocates per-call state. */
    fkm_status (*open)(fkm_ctx *ctx, const fkm_problem *pb, void **state);
    void (*close)(void *state);
    /* Passes over X: the first row holding a NaN or Inf (-1 if none), and the mean over columns of
     * the per-column variance (of normalised rows for cosine). */
    fkm_status (*scan)(fkm_ctx *ctx, void *state, int64_t *first_nonfinite, double *mean_var);
    /* Row i of X as f32 (normalised for cosine). */
    fkm_status (*fetch_row)(fkm_ctx *ctx, void *state, int64_t i, float *row);
    /* Assignment against k x d centroids: labels kept in state. n_changed counts labels that
     * differ from the previous call's (all n on the first call). */
    fkm_status (*assign)(fkm_ctx *ctx, void *state, const float *centroids, int64_t *n_changed);
    /* With the current labels and the centroids they were assigned against: exact per-point
     * objective (kept for farthest()) and optional per-cluster sums. Deterministic. */
    fkm_status (*reduce)(fkm_ctx *ctx, void *state, const float *centroids, fkm_partials *out);
    /* The `count` points with the largest objective from the last reduce, largest first,
     * ties to the lowest index. */
    fkm_status (*farthest)(fkm_ctx *ctx, void *state, int64_t count, int64_t *idx);
    /* Label of point i (after assign). */
    fkm_status (*get_label)(fkm_ctx *ctx, void *state, int64_t i, int32_t *label);
    /* Copies all labels out. */
    fkm_status (*get_labels)(fkm_ctx *ctx, void *state, int32_t *labels);
    /* Distances of all points to all centroids (see fkm_transform). */
    fkm_status (*transform)(fkm_ctx *ctx, void *state, const float *centroids, float *dist);
} fkm_backend_vtbl;

const fkm_backend_vtbl *fkm_cpu_backend(void);

#endif
