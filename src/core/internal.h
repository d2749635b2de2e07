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

/* k-means++'s pruning (src/core/kpp_prune.h) over the distance passes of the last public call
 * on a context, for tests and benchmarks: point visits, of those the points whose row was read
 * (some distance computed), (point, row) pairs an unpruned pass computes (T candidates per
 * point on the CPU; T + 1 rows on the GPU, whose pass also takes the newest centre), and of
 * those the pairs the test could not prove unneeded. */
typedef struct fkm_kpp_counts {
    int64_t points, points_read, pairs, pairs_needed;
} fkm_kpp_counts;

struct fkm_ctx {
    fkm_backend backend;
    const struct fkm_backend_vtbl *ops;
    char errmsg[FKM_ERRMSG_CAP];
    double *inertia_history;   /* result.inertia_per_iter points here */
    int32_t inertia_history_cap;
    int32_t n_threads;         /* fkm_set_threads; 0 = OpenMP's default */
    uint64_t gpu_mem_bytes;    /* fkm_set_gpu_mem; 0 = the device's free memory */
    fkm_placement placement;   /* written by a GPU backend's open (fkm_last_placement) */
    /* certified mode's counters for fkm_exact_stats: point assignments made and how many of
     * them the fast pass could not certify (re-decided exactly); reset by each public call.
     * For fkm_exact_stats_stages, where the re-checked ones were decided: the GPU's pair test
     * and double filter, or the host's exact argmin (every one on the CPU backend) */
    int64_t exact_points, exact_rechecked;
    int64_t exact_pair, exact_filter, exact_host;
    fkm_kpp_counts kpp;        /* reset by each public call too */
    /* the GPU assignment kernel of the last assignment (fkm_cuda_assign_path_name: "wgmma",
     * "wgmma-pingpong", ...; NULL before any): lets tests see which kernel a shape or an
     * environment override really ran */
    const char *gpu_assign_path;
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

/* One problem, or a batch of equal-shaped independent problems, as the backend sees it:
 * immutable for the duration of a call. Problem b's rows start at X + b * batch_stride
 * elements, its weights at weights + b * n. Row indices given to fetch_row and get_label are
 * global: b * n + i. Backends without batch support (max_batch == 1) only see batch == 1. */
typedef struct fkm_problem {
    const void *X;
    fkm_dtype dtype;
    int64_t n, d, ld;
    const float *weights;   /* NULL = all ones */
    int64_t k;
    fkm_metric metric;
    int n_threads;          /* resolved, >= 1 */
    fkm_precision precision;
    int64_t batch;          /* >= 1 */
    int64_t batch_stride;   /* elements between problems */
    uint64_t gpu_mem_bytes; /* GPU budget of the call (0 = free device memory); GPU backends */
} fkm_problem;

/* The budget of a call: the params' when set, else the context's. */
static inline uint64_t fkm_gpu_budget(const fkm_ctx *ctx, const fkm_params *p)
{
    return p && p->gpu_mem_bytes ? p->gpu_mem_bytes : ctx->gpu_mem_bytes;
}

/* Whether the last backend open left part of X outside the backend's memory (streamed):
 * backend passes that need X resident (a GPU k-means++) are then replaced by host code. */
static inline int fkm_x_streamed(const fkm_ctx *ctx)
{
    return ctx->placement.resident_rows < ctx->placement.rows;
}

/* Output of one reduction pass over X with fixed labels (arrays over the batch). */
typedef struct fkm_partials {
    double *sums;       /* batch x k x d weighted sums of (normalised for cosine) rows, or NULL */
    double *weight;     /* batch x k total weights, or NULL */
    double *objective;  /* batch: weighted sum of per-point objectives (flashkm.h "inertia") */
    int keep_sums;      /* sums == NULL but the backend computes them and keeps them for
                           finalize / get_sums (backends with a finalize op only) */
} fkm_partials;

/* The table every backend fills. The Lloyd loop (src/core/lloyd.c) only talks to this.
 * Labels and per-point distances live in the backend's state (host or device). */
typedef struct fkm_backend_vtbl {
    const char *name;
    /* Validates nothing (core did), allocates per-call state. */
    fkm_status (*open)(fkm_ctx *ctx, const fkm_problem *pb, void **state);
    void (*close)(void *state);
    /* Passes over X, per problem of the batch (arrays): the first row holding a NaN or Inf (-1
     * if none), and the mean over columns of the per-column variance (of normalised rows for
     * cosine). */
    fkm_status (*scan)(fkm_ctx *ctx, void *state, int64_t *first_nonfinite, double *mean_var);
    /* Row i of X as f32 (normalised for cosine). */
    fkm_status (*fetch_row)(fkm_ctx *ctx, void *state, int64_t i, float *row);
    /* Assignment against batch x k x d centroids: labels kept in state. n_changed (batch
     * values) counts labels that differ from the previous call's (all n on the first call).
     * centroids == NULL (backends with a finalize op only): the centroids the backend's last
     * finalize produced. Backends with a finalize op also take device memory here (user
     * centroids kept on the device, fkm_init_on_device). */
    fkm_status (*assign)(fkm_ctx *ctx, void *state, const float *centroids, int64_t *n_changed);
    /* With the current labels and the centroids they were assigned against: exact per-point
     * objective (kept for farthest()) and optional per-cluster sums. Deterministic. */
    fkm_status (*reduce)(fkm_ctx *ctx, void *state, const float *centroids, fkm_partials *out);
    /* The `count` points of problem `problem` with the largest objective from the last
     * reduce, largest first, ties to the lowest index; indices within the problem. */
    fkm_status (*farthest)(fkm_ctx *ctx, void *state, int64_t problem, int64_t count, int64_t *idx);
    /* Label of point i (after assign). */
    fkm_status (*get_label)(fkm_ctx *ctx, void *state, int64_t i, int32_t *label);
    /* Copies all labels out. */
    fkm_status (*get_labels)(fkm_ctx *ctx, void *state, int32_t *labels);
    /* Distances of all points to all centroids (see fkm_transform). */
    fkm_status (*transform)(fkm_ctx *ctx, void *state, const float *centroids, float *dist);
    /* Optional (NULL on host-only backends): whether p is device memory, and a copy between
     * any two pointers (host or device). Core uses them to read small inputs given in device
     * memory (weights, centroids) and to write outputs that live there. */
    int (*is_device)(const void *p);
    fkm_status (*copy)(fkm_ctx *ctx, void *dst, const void *src, size_t bytes);
    /* Optional (GPU backends): the update's last step where the sums live, so that nothing
     * of size k x d crosses to the host per iteration. finalize: from the kept sums and
     * weights of the last reduce (keep_sums) and the centroids of the last assign, the next
     * centroids exactly as core's host code computes them (C = sums / weight in double,
     * rounded to f32, normalised for cosine, unchanged for weight 0), kept on the backend,
     * for the problems whose active[b] is non-zero (the others keep their centroids);
     * max_shift[b] receives the largest squared shift. get_sums: the kept sums (batch x k x
     * d) to the host; get_centroids: the backend's current centroids (batch x k x d) to
     * `centroids`, host or device memory (the end of a fit writes them straight into the
     * caller's output, device to device when that is device memory). */
    fkm_status (*finalize)(fkm_ctx *ctx, void *state, const unsigned char *active, double *max_shift);
    fkm_status (*get_sums)(fkm_ctx *ctx, void *state, double *sums);
    fkm_status (*get_centroids)(fkm_ctx *ctx, void *state, float *centroids);
    /* Largest batch the backend runs in one set of launches (1: fkm_fit_batch loops). */
    int64_t max_batch;
    /* Optional: k-means++ (FKM_INIT_KMEANS_PP) for problem `problem` into C (k x d), seeded
     * with seed, the CPU backend's centroids. Without it, or when it returns
     * FKM_E_UNSUPPORTED, core runs the CPU backend's over a host view of X. */
    fkm_status (*kmeanspp)(fkm_ctx *ctx, void *state, int64_t problem, uint64_t seed, float *C);
    /* Non-zero when assign implements FKM_PRECISION_EXACT (docs/EXACTNESS.md): labels equal
     * to the exact argmin, counted in ctx->exact_points / exact_rechecked. */
    int exact;
    /* Optional (GPU backends with finalize): *first = the index of the first of the `count`
     * floats at p (device memory) that is NaN or Inf, -1 if none. Lets core validate user
     * centroids given in device memory where they are, so that they reach the backend
     * without a round trip through the host (fkm_init_on_device, lloyd.c). */
    fkm_status (*first_nonfinite)(fkm_ctx *ctx, const float *p, int64_t count, int64_t *first);
} fkm_backend_vtbl;

/* staging.c: a host-readable view of `bytes` at p (p itself, or a copy in *owned, to be
 * freed, when p is device memory of ctx's backend); and a copy to an output that may be
 * device memory. */
fkm_status fkm_host_view(fkm_ctx *ctx, const void *p, size_t bytes, const void **view, void **owned);
fkm_status fkm_copy_out(fkm_ctx *ctx, void *dst, const void *src, size_t bytes);

/* host_memory.c: whether [p, p + len) overlaps a file-backed mapping (0 if unknown). */
int fkm_host_range_file_backed(const void *p, size_t len);

const fkm_backend_vtbl *fkm_cpu_backend(void);
#ifdef FKM_HAVE_CUDA
/* src/cuda: the CUDA backend and the number of usable devices (0 without driver or GPU). */
const fkm_backend_vtbl *fkm_cuda_backend(void);
int fkm_cuda_device_count_impl(void);
fkm_status fkm_cuda_device_info_impl(int index, char *name, size_t cap, int *cc_major, int *cc_minor,
                                     uint64_t *memory_bytes);
#endif

#endif
