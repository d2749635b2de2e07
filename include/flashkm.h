/*
 * flashkm.h — exact Lloyd k-means, fast, on CPUs (and GPUs in later releases).
 *
 * This header is the whole public C API and its manual. It is plain C11.
 *
 * Conventions
 * -----------
 *  - Every function that can fail returns an fkm_status. FKM_OK is 0. On failure the
 *    context keeps a one-line message describing what went wrong (fkm_last_error).
 *  - The library never prints, never exits or aborts, and keeps no global mutable state:
 *    two contexts may be used from two threads at once. One context must not be used by
 *    two threads at the same time.
 *  - Sizes and indices are 64-bit (int64_t). Products such as N*D are checked for overflow.
 *  - The caller owns every array passed in or out. Outputs are written only on success;
 *    on failure their contents are unspecified (but no memory is leaked).
 *  - Matrices are row-major: element (i, j) of X is X[i * ld + j] with ld >= D, counted in
 *    elements of X's dtype.
 *
 * Minimal use
 * -----------
 *    fkm_ctx *ctx;
 *    if (fkm_create(&ctx, FKM_BACKEND_AUTO) != FKM_OK) { ... }
 *    fkm_params p = fkm_params_default();
 *    p.k = 1024; p.max_iter = 25;
 *    fkm_result r;
 *    fkm_status s = fkm_fit(ctx, &p, X, FKM_F32, n, d, d, NULL, centroids, labels, &r);
 *    if (s != FKM_OK) fprintf(stderr, "flashkm: %s\n", fkm_last_error(ctx));
 *    fkm_destroy(ctx);
 *
 * Semantics (every backend meets them)
 * ------------------------------------
 *  - Metrics: FKM_METRIC_L2 assigns each point to argmin_k ||x - c_k||^2.
 *    FKM_METRIC_COSINE is spherical k-means: rows are normalised to unit length, centroids
 *    are the normalised weighted means, and the distance is ||x/|x| - c_k||^2 = 2 - 2 cos.
 *    A zero row stays zero (it is equidistant to every unit centroid, so it goes to label 0).
 *    FKM_METRIC_DOT assigns argmax_k x . c_k; centroids are plain weighted means.
 *  - Ties always go to the lowest centroid index.
 *  - "Inertia" is the weighted sum of the per-point objective: ||x - c||^2 for l2, the same on
 *    normalised rows for cosine, and -(x . c) for dot (so lower is better for every metric).
 *    The inertia returned is computed in double precision from each point's stored value and
 *    its assigned f32 centroid. For dot, Lloyd's update (the mean) does not maximise the
 *    inner product, so the inertia need not decrease from one iteration to the next.
 *  - One iteration = an assignment step, then an update step. The labels and inertia returned
 *    belong to the centroids returned: after the last update a final assignment is made
 *    (unless the last update provably left every centroid bitwise unchanged).
 *  - Stopping: after max_iter iterations; or when no label changed in an iteration; or when
 *    the largest squared centroid shift of an iteration is <= tol * mean_j var(X[:, j])
 *    (scikit-learn scales tol by the mean per-feature variance the same way; note that it
 *    compares the *sum* of squared shifts, flashkm the *largest*). tol = 0 runs all
 *    iterations unless labels stop changing. For cosine, the variance is taken over the
 *    normalised rows.
 *  - Empty clusters: FKM_EMPTY_KEEP keeps the old centroid. FKM_EMPTY_RELOCATE moves the
 *    e-th empty cluster (in index order) to the e-th point farthest from its assigned
 *    centroid (ties: lowest point index), removing that point from its old cluster's sum,
 *    as scikit-learn does. Both are deterministic.
 *  - Determinism: the same input, params and seed give bitwise-identical outputs whatever the
 *    number of threads. (Different SIMD levels of the CPU may round differently.)
 *  - Centroid update precision: per-cluster sums are accumulated in double precision in point
 *    index order, then divided and rounded to f32.
 */
#ifndef FLASHKM_H
#define FLASHKM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(FLASHKM_SHARED_BUILD)
#define FKM_API __declspec(dllexport)
#elif defined(__GNUC__)
#define FKM_API __attribute__((visibility("default")))
#else
#define FKM_API
#endif

#define FLASHKM_VERSION_MAJOR 0
#define FLASHKM_VERSION_MINOR 1
#define FLASHKM_VERSION_PATCH 0

/* ------------------------------------------------------------------ status */

typedef enum fkm_status {
    FKM_OK = 0,
    FKM_E_NULL = 1,          /* a required pointer argument was NULL */
    FKM_E_INVALID = 2,       /* an argument is out of range (K = 0, K > N, ld < D, ...) */
    FKM_E_NONFINITE = 3,     /* NaN or Inf in the data, the weights or the centroids */
    FKM_E_DTYPE = 4,         /* unknown or unsupported element type (argument or file) */
    FKM_E_OVERFLOW = 5,      /* a size product does not fit in 64 bits / memory */
    FKM_E_NOMEM = 6,         /* an allocation failed */
    FKM_E_IO = 7,            /* a file could not be opened, read or written */
    FKM_E_FORMAT = 8,        /* a file is malformed: truncated, lying header, bad syntax */
    FKM_E_UNSUPPORTED = 9,   /* the operation or option is not available in this build */
    FKM_E_NO_DEVICE = 10,    /* a GPU backend was asked for but no usable device exists */
    FKM_E_DEVICE = 11,       /* a GPU runtime call failed */
    FKM_E_CANCELLED = 12,    /* the progress callback asked to stop */
    FKM_E_INTERNAL = 13      /* a bug in flashkm: please report it */
} fkm_status;

/* A static string naming the status ("ok", "null pointer", ...). Never NULL. */
FKM_API const char *fkm_status_string(fkm_status status);

/* ------------------------------------------------------------------ enums */

typedef enum fkm_dtype {
    FKM_F32 = 0,   /* IEEE binary32 */
    FKM_F16 = 1,   /* IEEE binary16 */
    FKM_BF16 = 2,  /* bfloat16: the top 16 bits of a binary32 */
    FKM_F64 = 3    /* IEEE binary64 (accepted by the CPU backend, converted to f32 on the fly) */
} fkm_dtype;

/* Bytes per element of a dtype, or 0 for an unknown one. */
FKM_API size_t fkm_dtype_size(fkm_dtype dtype);
/* "f32", "f16", "bf16", "f64", or "unknown". */
FKM_API const char *fkm_dtype_name(fkm_dtype dtype);

typedef enum fkm_metric {
    FKM_METRIC_L2 = 0,
    FKM_METRIC_COSINE = 1,
    FKM_METRIC_DOT = 2
} fkm_metric;

typedef enum fkm_init {
    FKM_INIT_RANDOM = 0,   /* K distinct rows of X, chosen uniformly with params.seed */
    FKM_INIT_USER = 1,     /* params.init_centroids, K x D f32, row-major, copied */
    /* Greedy k-means++ as scikit-learn runs it: the first centre drawn with probability
     * proportional to the weight, then each next one the best (lowest potential) of
     * 2 + floor(ln K) candidates drawn with probability proportional to weight times the
     * squared distance to the nearest centre so far. Distances are squared L2 (on the
     * normalised rows for cosine; on the raw rows for dot). Seeded with params.seed and
     * reproducible: the same centroids for every thread count. On the CUDA backend it runs on
     * the CPU for now (over a host copy of X when X is device memory). */
    FKM_INIT_KMEANS_PP = 2
} fkm_init;

typedef enum fkm_empty {
    FKM_EMPTY_RELOCATE = 0,
    FKM_EMPTY_KEEP = 1
} fkm_empty;

typedef enum fkm_backend {
    FKM_BACKEND_AUTO = 0,  /* the best available: a GPU when there is one, else the CPU */
    FKM_BACKEND_CPU = 1,
    FKM_BACKEND_CUDA = 2   /* FKM_E_UNSUPPORTED in a build without CUDA */
} fkm_backend;

/* ------------------------------------------------------------------ params */

/* How distances are computed for the assignment (the update always sums in double).
 *   FKM_PRECISION_FAST: the fastest path of the backend. On the GPU that is tensor cores:
 *     f16/bf16 inputs with the centroids rounded to the input's type (f32 accumulation),
 *     f32 inputs in TF32. A point whose two nearest centroids are within that rounding of
 *     each other may get the other label than an exact computation would give. On the CPU
 *     it is the same as FKM_PRECISION_F32.
 *   FKM_PRECISION_F32: f32 arithmetic on the stored input values and the f32 centroids, on
 *     every backend (the CPU's only mode; on the GPU an FFMA kernel, slower than FAST).
 *   FKM_PRECISION_EXACT: certified labels (docs/EXACTNESS.md). Every label equals the argmin
 *     over k of the exact (infinitely precise) squared distance between the point's f32 row
 *     and the f32 centroid k, ties to the lowest index; for cosine the row and the centroids
 *     are the normalised f32 rows flashkm compares (each element times 1/sqrt(sum of squares),
 *     both computed in double, the product rounded to f32); for dot the argmax of the exact x . c. The f32
 *     row is the stored value for f32, f16 and bf16 input (exact conversions) and the
 *     nearest f32 for f64 input. Labels are therefore bitwise reproducible on every thread
 *     count and machine. Method: the fast pass also keeps each point's second-best score; a
 *     proven error bound certifies most points, the rest are decided exactly (an fp64 filter
 *     and an exact fixed-point comparison). Centroids are updated as in the other modes (see
 *     "Centroid update precision" above and EXACTNESS.md for the guarantee). CPU backend: every
 *     dtype and metric. CUDA backend: l2, cosine and dot on f32, f16 and bf16 input (the
 *     tensor-core pass, re-decisions on the device and the host); f64 input is
 *     FKM_E_UNSUPPORTED there. */
typedef enum fkm_precision {
    FKM_PRECISION_FAST = 0,
    FKM_PRECISION_F32 = 1,
    FKM_PRECISION_EXACT = 2
} fkm_precision;

/* What the progress callback receives after every iteration. */
typedef struct fkm_iter_info {
    int32_t iter;          /* 1-based iteration number */
    double inertia;        /* inertia of this iteration's assignment (before its update) */
    double max_shift_sq;   /* largest squared centroid move of this iteration's update */
    double rel_shift;      /* max_shift_sq / (mean per-feature variance of X) */
    int64_t n_changed;     /* labels that changed in this assignment (N in iteration 1) */
    int64_t n_empty;       /* clusters left empty by this assignment */
    double seconds;        /* wall time of this iteration */
    double assign_seconds; /* of which the assignment step */
    double update_seconds; /* of which the update step (sums, empty clusters, shift) */
} fkm_iter_info;

/* Called after each iteration; a non-zero return stops the fit with FKM_E_CANCELLED.
 * It must not call back into the same context. */
typedef int (*fkm_progress_fn)(const fkm_iter_info *info, void *user);

typedef struct fkm_params {
    int64_t k;                    /* clusters; required, 1 <= k <= N. Default 8. */
    int32_t max_iter;             /* >= 1. Default 300. */
    double tol;                   /* >= 0, relative to mean variance. Default 1e-4. */
    fkm_init init;                /* Default FKM_INIT_KMEANS_PP. */
    const float *init_centroids;  /* K x D f32 (row-major, ld = D) when init = FKM_INIT_USER. */
    uint64_t seed;                /* Default 0. */
    fkm_metric metric;            /* Default FKM_METRIC_L2. */
    fkm_empty empty;              /* Default FKM_EMPTY_RELOCATE. */
    int32_t n_threads;            /* CPU threads; 0 = the context's (fkm_set_threads). Default 0. */
    fkm_progress_fn progress;     /* Optional; default NULL. */
    void *progress_user;          /* Passed to progress. */
    fkm_precision precision;      /* Default FKM_PRECISION_FAST (see fkm_precision). */
    /* Independent runs (n_init >= 1), run r with seed params.seed + r; the run with the
     * lowest final inertia is returned (ties: the lowest r), exactly as fkm_fit with that
     * seed and n_init = 1 would return it. Must be 1 with FKM_INIT_USER. Default 1. */
    int32_t n_init;
    /* GPU memory budget in bytes for this call (CUDA backend; ignored by the CPU backend):
     * everything the call allocates on the device, workspace (labels, per-point objectives,
     * update and assignment buffers) and the rows of X it keeps there. When X is host memory
     * and does not fit, the rows that fit stay resident (copied once) and the others are
     * streamed from host memory every pass, in fixed-size pieces, with the copy of one piece
     * overlapping the work on another; results are bitwise those of the run with X resident
     * (docs/OUT_OF_CORE.md). 0 = the context's setting (fkm_set_gpu_mem), whose default 0
     * means the device's free memory at the call (less a small reserve). A budget smaller
     * than the workspace, or, when X must be streamed, than the workspace plus two streaming
     * buffers of one piece each, is FKM_E_INVALID (the workspace is measured as it is
     * allocated, so the check comes after that). Device X is used where it is (or copied
     * whole when its rows are misaligned), whatever the budget. Appended last so that
     * earlier fields keep their offsets. Default 0. */
    uint64_t gpu_mem_bytes;
} fkm_params;

/* The defaults documented above. Always start from this: later versions add fields. */
FKM_API fkm_params fkm_params_default(void);

typedef struct fkm_result {
    double inertia;               /* of the returned labels and centroids */
    int32_t n_iter;               /* iterations run (assignment + update pairs) */
    int32_t converged;            /* 1 when stopped by tol or unchanged labels, 0 at max_iter */
    /* inertia of each iteration's assignment, n_iter values; owned by the context and
     * valid until the next call on it. */
    const double *inertia_per_iter;
} fkm_result;

/* ------------------------------------------------------------------ context */

typedef struct fkm_ctx fkm_ctx;

/* Creates a context on a backend. FKM_BACKEND_AUTO never fails for lack of a GPU. On failure
 * *out is NULL and there is no context to hold a message: use fkm_status_string. */
FKM_API fkm_status fkm_create(fkm_ctx **out, fkm_backend backend);
/* Frees everything the context holds. NULL is accepted and ignored. */
FKM_API void fkm_destroy(fkm_ctx *ctx);
/* The message of the last failure on this context ("" if none). Valid until the next call.
 * Accepts NULL (returns a static message). */
FKM_API const char *fkm_last_error(const fkm_ctx *ctx);
/* CPU threads for every operation on this context (0 = OpenMP's default, the initial value).
 * params.n_threads > 0 overrides it for one fit. FKM_E_INVALID if n_threads < 0. */
FKM_API fkm_status fkm_set_threads(fkm_ctx *ctx, int32_t n_threads);
/* The GPU memory budget (bytes) of every call on this context that has no params of its own
 * to say otherwise (fkm_predict, fkm_transform, fkm_score, and fits whose
 * params.gpu_mem_bytes is 0); see fkm_params.gpu_mem_bytes. 0 (the initial value) = the
 * device's free memory. Ignored by the CPU backend. */
FKM_API fkm_status fkm_set_gpu_mem(fkm_ctx *ctx, uint64_t bytes);

/* Where the last call on this context kept X (CUDA backend): `rows` rows in all (over the
 * batch), `resident_rows` of them in device memory for the whole call, the others streamed
 * from host memory on every pass in pieces of at most `piece_rows` rows. `workspace_bytes`
 * is the device memory the call used besides X's rows, `budget_bytes` the budget it ran
 * under, `direct` 1 when streamed pieces were copied straight from the caller's buffer
 * (pinned, or registered for the call), 0 when through pinned staging buffers. When part of
 * X was streamed, copy_seconds and compute_seconds are the device time of the last
 * assignment pass spent copying streamed pieces and computing all pieces (CUDA events; the
 * pass took less than their sum where they overlapped), else 0. All zero before the first
 * call and on the CPU backend. For benchmarks and diagnostics. */
typedef struct fkm_placement {
    int64_t rows;
    int64_t resident_rows;
    int64_t piece_rows;
    uint64_t workspace_bytes;
    uint64_t budget_bytes;
    int32_t pieces;          /* pieces of one pass (resident and streamed) */
    int32_t direct;
    double copy_seconds;
    double compute_seconds;
} fkm_placement;
FKM_API fkm_status fkm_last_placement(const fkm_ctx *ctx, fkm_placement *out);

/* The backend the context runs on (never AUTO) and its name ("cpu", "cuda"). */
FKM_API fkm_backend fkm_ctx_backend(const fkm_ctx *ctx);
FKM_API const char *fkm_backend_name(fkm_backend backend);

/* ------------------------------------------------------------------ operations
 *
 * X: n x d matrix of dtype `dtype`, row-major with leading dimension ld (elements). On the
 * CUDA backend X, weights, centroids and the outputs may be host or device memory (found out
 * with cudaPointerGetAttributes); device inputs are used in place, host inputs are copied to
 * the device once per call. On the CPU backend they must be host memory.
 * Host inputs larger than the GPU memory budget are streamed (fkm_params.gpu_mem_bytes).
 * weights: n non-negative finite floats, or NULL for all ones. Their sum must be > 0.
 * centroids (in or out): k x d f32, row-major, ld = d.
 * labels (out): n int32.
 */

/* Lloyd k-means. centroids_out (k*d floats) is required; labels_out and result may be NULL. */
FKM_API fkm_status fkm_fit(fkm_ctx *ctx, const fkm_params *params,
                           const void *X, fkm_dtype dtype, int64_t n, int64_t d, int64_t ld,
                           const float *weights,
                           float *centroids_out, int32_t *labels_out, fkm_result *result);

/* B independent fits of the same shape in one set of launches (the GPU's batched mode; the
 * CPU backend runs them one after another). Problem b's rows start at X + b * batch_stride
 * elements (batch_stride >= n * ld; n * ld when packed as a (B, N, D) array); its weights at
 * weights + b * n; with init = FKM_INIT_USER its initial centroids at
 * params.init_centroids + b * k * d. Outputs: centroids_out B*k*d, labels_out B*n (may be
 * NULL), results B entries (may be NULL). Each problem stops on its own criteria; its result
 * is the one fkm_fit would give for it alone with the seed params.seed + b. */
FKM_API fkm_status fkm_fit_batch(fkm_ctx *ctx, const fkm_params *params,
                                 const void *X, fkm_dtype dtype, int64_t batch, int64_t n,
                                 int64_t d, int64_t ld, int64_t batch_stride,
                                 const float *weights,
                                 float *centroids_out, int32_t *labels_out, fkm_result *results);

/* k-means++ alone (FKM_INIT_KMEANS_PP with params.k, seed, metric, n_threads): the k initial
 * centroids fkm_fit would start from, into centroids_out (k*d floats). weights may be NULL. */
FKM_API fkm_status fkm_kmeanspp(fkm_ctx *ctx, const fkm_params *params,
                                const void *X, fkm_dtype dtype, int64_t n, int64_t d, int64_t ld,
                                const float *weights, float *centroids_out);

/* Labels of new points against given centroids; inertia_out (may be NULL) receives the
 * inertia (weights taken as ones). */
FKM_API fkm_status fkm_predict(fkm_ctx *ctx, fkm_metric metric,
                               const void *X, fkm_dtype dtype, int64_t n, int64_t d, int64_t ld,
                               const float *centroids, int64_t k,
                               int32_t *labels_out, double *inertia_out);

/* fkm_predict with a chosen precision (fkm_predict is FKM_PRECISION_FAST). With
 * FKM_PRECISION_EXACT the labels are certified (see fkm_precision) and the number of points
 * that needed an exact re-check is reported by fkm_exact_stats. */
FKM_API fkm_status fkm_predict_precision(fkm_ctx *ctx, fkm_metric metric, fkm_precision precision,
                                         const void *X, fkm_dtype dtype, int64_t n, int64_t d, int64_t ld,
                                         const float *centroids, int64_t k, int32_t *labels_out,
                                         double *inertia_out);

/* Certified mode's work in the last call on ctx (fkm_fit, fkm_predict_precision, ...): point
 * assignments made with FKM_PRECISION_EXACT (n per assignment step) and how many of them the
 * error bound could not certify, so that they were re-decided exactly. Either output may be
 * NULL; both are 0 after a call in another mode. */
FKM_API fkm_status fkm_exact_stats(const fkm_ctx *ctx, int64_t *points, int64_t *rechecked);

/* Where the last call's re-checked points (fkm_exact_stats) were decided; pair + filter +
 * host = rechecked. On the CUDA backend: pair, by the device's test between a point's two
 * best centroids once the third is provably out; filter, by the device's double-precision
 * filter over every centroid; host, by the exact re-decision on the host. On the CPU backend
 * every re-checked point is decided on the host (pair = filter = 0). Outputs may be NULL. */
FKM_API fkm_status fkm_exact_stats_stages(const fkm_ctx *ctx, int64_t *pair, int64_t *filter, int64_t *host);

/* fkm_predict for B problems of one shape laid out as for fkm_fit_batch: problem b's rows at
 * X + b * batch_stride elements, its centroids at centroids + b * k * d, its labels at
 * labels_out + b * n, its inertia in inertia_out[b] (inertia_out may be NULL). */
FKM_API fkm_status fkm_predict_batch(fkm_ctx *ctx, fkm_metric metric,
                                     const void *X, fkm_dtype dtype, int64_t batch, int64_t n,
                                     int64_t d, int64_t ld, int64_t batch_stride,
                                     const float *centroids, int64_t k,
                                     int32_t *labels_out, double *inertia_out);

/* Distances of every point to every centroid: dist_out is n x k f32, row-major.
 * l2: ||x - c||^2 (squared); cosine: 1 - cos(x, c); dot: x . c. */
FKM_API fkm_status fkm_transform(fkm_ctx *ctx, fkm_metric metric,
                                 const void *X, fkm_dtype dtype, int64_t n, int64_t d, int64_t ld,
                                 const float *centroids, int64_t k, float *dist_out);

/* Weighted inertia of X against centroids (each point to its nearest centroid). */
FKM_API fkm_status fkm_score(fkm_ctx *ctx, fkm_metric metric,
                             const void *X, fkm_dtype dtype, int64_t n, int64_t d, int64_t ld,
                             const float *weights, const float *centroids, int64_t k,
                             double *inertia_out);

/* ------------------------------------------------------------------ files
 *
 * Readers for .npy (1-D (N,) read as N x 1, 2-D (N, D) or 3-D (B, N, D), C order, little-endian '<f4', '<f2', '<f8',
 * and '<V2', which is how NumPy saves ml_dtypes' bfloat16 and is read as bf16), .fvecs (per
 * row: int32 d, d float32), .fbin (int32 n, int32 d, then n*d float32, as the big-ann
 * benchmarks use) and .csv (numbers separated by commas; a first line that is not numeric is
 * taken as a header and skipped).
 * The format is chosen by the file extension (case-insensitive). Files are checked against
 * their real size: a truncated file or a header that lies about its size is FKM_E_FORMAT, an
 * element type flashkm cannot read is FKM_E_DTYPE, sizes whose product overflows are
 * FKM_E_OVERFLOW, a missing file is FKM_E_IO; a 0-D .npy, one of 4 or more dimensions, or
 * one with a zero dimension is FKM_E_FORMAT.
 */

/* A loaded file. A 3-D .npy of shape (B, N, D) is B problems of N x D packed one after the
 * other (C order): batch = B, rows = B * N, cols = D, so code that treats it as a rows x cols
 * matrix still sees every row, and problem b's rows are rows b * N .. b * N + N - 1 (pass
 * batch_stride = N * D to fkm_fit_batch). Every other file (a 1-D or 2-D .npy and the other
 * formats) has batch = 1. */
typedef struct fkm_matrix {
    void *data;          /* rows x cols elements of dtype, row-major with leading dimension ld */
    fkm_dtype dtype;
    int64_t rows;        /* all rows: batch * (rows of one problem) */
    int64_t cols;
    int64_t batch;       /* B of a 3-D .npy, else 1; rows is a multiple of it (appended last
                          * so that the earlier fields keep their offsets) */
    int64_t ld;          /* elements from one row to the next: cols, except for a mapped
                          * .fvecs (cols + 1: each row keeps its int32 dimension word) */
    void *map_base;      /* fkm_matrix_map: the mapping (NULL when data was read) */
    uint64_t map_len;
} fkm_matrix;

/* Reads a matrix file. On success *out owns its data; release it with fkm_matrix_free. On
 * failure *out is zeroed (fkm_matrix_free on it is harmless). Numbers in .csv are parsed
 * with strtod: a program that sets a locale with a decimal comma reads them wrongly. */
FKM_API fkm_status fkm_matrix_load(fkm_ctx *ctx, const char *path, fkm_matrix *out);
/* Like fkm_matrix_load, but .npy, .fbin and .fvecs files are memory-mapped read-only instead
 * of read: the data is not copied into RAM, pages are read from the file as the fit touches
 * them, so files larger than RAM (or than a process memory limit) work. Every check of
 * fkm_matrix_load is made (for .fvecs every row's dimension word is checked, one pass over
 * the file). Use out->ld as the leading dimension. .csv is read as by fkm_matrix_load. */
FKM_API fkm_status fkm_matrix_map(fkm_ctx *ctx, const char *path, fkm_matrix *out);
/* Frees (or unmaps) the data and zeroes *m. NULL-safe. */
FKM_API void fkm_matrix_free(fkm_matrix *m);

/* Writes a 2-D .npy (rows x cols) of dtype f32/f16/bf16/f64 atomically: a temporary file in
 * the same directory, then rename. On failure no file is left at path. */
FKM_API fkm_status fkm_npy_save_matrix(fkm_ctx *ctx, const char *path, const void *data,
                                       fkm_dtype dtype, int64_t rows, int64_t cols);
/* Writes labels as a 1-D int32 .npy of shape (n,), atomically. */
FKM_API fkm_status fkm_npy_save_labels(fkm_ctx *ctx, const char *path,
                                       const int32_t *labels, int64_t n);
/* Writes a 3-D .npy of shape (batch, rows, cols) of dtype f32/f16/bf16/f64 from batch * rows
 * * cols packed elements (as fkm_fit_batch's centroids_out), atomically like
 * fkm_npy_save_matrix. */
FKM_API fkm_status fkm_npy_save_batch(fkm_ctx *ctx, const char *path, const void *data,
                                      fkm_dtype dtype, int64_t batch, int64_t rows, int64_t cols);
/* Writes batch * n labels (as fkm_fit_batch's labels_out) as a 2-D int32 .npy of shape
 * (batch, n), atomically. */
FKM_API fkm_status fkm_npy_save_labels_batch(fkm_ctx *ctx, const char *path,
                                             const int32_t *labels, int64_t batch, int64_t n);

/* ------------------------------------------------------------------ build facts */

/* "0.1.0" */
FKM_API const char *fkm_version(void);
/* The SIMD level the CPU backend dispatches to on this machine: "avx512", "avx2", "generic". */
FKM_API const char *fkm_cpu_simd_level(void);
/* Threads OpenMP would use by default (1 without OpenMP). */
FKM_API int fkm_cpu_max_threads(void);
/* Number of usable CUDA devices (0 in a build without CUDA or on a machine without GPU). */
FKM_API int fkm_cuda_device_count(void);
/* Facts about CUDA device `index` (0 <= index < fkm_cuda_device_count()): its name (into a
 * buffer of `cap` bytes, truncated), compute capability and memory in bytes. Any output may
 * be NULL. FKM_E_INVALID for a bad index, FKM_E_UNSUPPORTED in a build without CUDA. */
FKM_API fkm_status fkm_cuda_device_info(int index, char *name, size_t cap, int *cc_major, int *cc_minor,
                                        uint64_t *memory_bytes);

#ifdef __cplusplus
}
#endif
#endif /* FLASHKM_H */
