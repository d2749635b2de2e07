/* test_cuda.c — what only the CUDA backend has: the tensor-core assignment (f16/bf16 inputs,
 * centroids rounded to the input type) checked point by point against an fp64 argmin, with
 * every disagreement required to be a near-tie within the stated rounding bound and counted;
 * the exact f32 path required to agree wherever the f32 bound decides; device pointers used in
 * place giving bitwise the host-pointer results (initial centroids and outputs in host, device
 * or pinned memory, batched and single, with relocation); batched fits equal to single fits; repeated
 * fits bitwise equal. Shapes cover k = 1, k = n, d not a multiple of 8 or 16, n not a multiple
 * of any tile, and the split-D kernel (d > 256); the ping-pong wgmma kernel
 * (FLASHKM_WGMMA_OVERLAP=2) and its persistent variant (=3) bitwise equal to the single-set one
 * (=0).
 * Skips (exit 77) without a GPU. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "common.h"
#include "core/internal.h" /* ctx->gpu_assign_path: which kernel a fit ran */

#include <cuda_runtime_api.h>
#include <math.h>
#include <string.h>

static int small_mode(void) { return getenv("FLASHKM_TEST_SMALL") != NULL; }

/* fp64 score of point x against centroid c as the assignment defines it (lower is better):
 * l2 ||x - c||^2, cosine -x.c / ||x|| (c unit), dot -x.c. */
static double ref_score(const double *x, const float *c, int64_t d, fkm_metric m)
{
    double acc = 0.0, xx = 0.0;
    for (int64_t j = 0; j < d; j++) {
        if (m == FKM_METRIC_L2) acc += (x[j] - c[j]) * (x[j] - c[j]);
        else acc += x[j] * c[j];
        xx += x[j] * x[j];
    }
    if (m == FKM_METRIC_L2) return acc;
    if (m == FKM_METRIC_COSINE) return xx > 0 ? -acc / sqrt(xx) : 0.0;
    return -acc;
}

static double norm2f(const float *c, int64_t d)
{
    double s = 0.0;
    for (int64_t j = 0; j < d; j++) s += (double)c[j] * c[j];
    return sqrt(s);
}

typedef struct shape {
    int64_t n, d, k;
} shape;

/* One predict on the GPU against fp64 argmin. Returns mismatches; fails a CHECK for any
 * mismatch whose score gap exceeds the rounding bound of the path taken. */
static void check_predict(fkm_ctx *ctx, fkm_dtype dt, fkm_metric m, shape sh, uint64_t seed)
{
    const int64_t n = sh.n, d = sh.d, k = sh.k;
    double *X = tc_blobs(seed, n, d, (int)(k < 50 ? k : 50), 4.0, 0.0);
    void *Xs = tc_store(X, n, d, d, dt);
    float *C = tc_pick_rows(X, n, d, k, seed + 1);
    if (m == FKM_METRIC_COSINE) /* the library normalises centroids for cosine; do it alike */
        for (int64_t c = 0; c < k; c++) {
            const double s = norm2f(C + c * d, d);
            for (int64_t j = 0; j < d; j++) C[c * d + j] = (float)(C[c * d + j] / s);
        }
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    fkm_status s = fkm_predict(ctx, m, Xs, dt, n, d, d, C, k, labels, NULL);
    CHECK(s == FKM_OK, "predict %s: %s", fkm_dtype_name(dt), fkm_last_error(ctx));
    /* rounding of centroids (and, for f32 data, nothing else) to the tensor-core type */
    /* f32 data takes TF32 (x and c rounded, 2^-11 each) */
    const double u_t = dt == FKM_F16 ? 0x1p-11 : dt == FKM_BF16 ? 0x1p-8 : 0x1p-10;
    int64_t mism = 0, bad = 0;
    double worst = 0.0;
    for (int64_t i = 0; s == FKM_OK && i < n; i++) {
        const double *x = X + i * d;
        int64_t best = 0;
        double bs = INFINITY;
        for (int64_t c = 0; c < k; c++) {
            const double sc = ref_score(x, C + c * d, d, m);
            if (sc < bs) bs = sc, best = c;
        }
        if (labels[i] == best) continue;
        mism++;
        if (labels[i] < 0 || labels[i] >= k) {
            bad++;
            continue;
        }
        const double gap = ref_score(x, C + (int64_t)labels[i] * d, d, m) - bs;
        double xn = 0.0;
        for (int64_t j = 0; j < d; j++) xn += x[j] * x[j];
        xn = sqrt(xn);
        if (m == FKM_METRIC_COSINE) xn = 1.0; /* scores are relative to the unit point */
        const double cn = fmax(norm2f(C + (int64_t)labels[i] * d, d), norm2f(C + best * d, d));
        /* both scores carry: centroid rounding (|x.(c - c_t)| <= u_t ||x|| ||c||, twice for
         * l2, and ||c_t||^2 vs ||c||^2), and f32 accumulation over d terms */
        const double bound = 4.0 * u_t * (xn * cn + cn * cn) + 4.0 * (double)(d + 4) * 0x1p-24 * (xn * xn + cn * cn);
        if (gap > bound) bad++;
        if (gap / (bound > 0 ? bound : 1) > worst) worst = gap / (bound > 0 ? bound : 1);
    }
    CHECK(bad == 0, "%s metric %d n=%lld d=%lld k=%lld: %lld labels differ by more than the rounding bound",
          fkm_dtype_name(dt), (int)m, (long long)n, (long long)d, (long long)k, (long long)bad);
    printf("predict %-4s metric %d n=%-5lld d=%-4lld k=%-5lld: %lld of %lld labels differ from fp64 argmin "
           "(all near-ties: worst gap %.2f of bound)\n",
           fkm_dtype_name(dt), (int)m, (long long)n, (long long)d, (long long)k, (long long)mism, (long long)n, worst);
    free(X), free(Xs), free(C), free(labels);
}

/* Device pointers in place (X, init centroids, outputs) give bitwise the host-pointer fit;
 * a second fit gives bitwise the first. */
static void check_device_pointers(fkm_ctx *ctx, fkm_dtype dt, int64_t n, int64_t d, int64_t k)
{
    double *X = tc_blobs(99, n, d, 12, 4.0, 0.0);
    void *Xs = tc_store(X, n, d, d, dt);
    float *init = tc_pick_rows(X, n, d, k, 5);
    const size_t xb = (size_t)(n * d) * (dt == FKM_F32 ? 4 : 2), cb = (size_t)(k * d) * sizeof(float);
    fkm_params p = fkm_params_default();
    p.k = k;
    p.max_iter = 15;
    p.tol = 0.0;
    p.init = FKM_INIT_USER;
    p.init_centroids = init;
    float *C1 = malloc(cb), *C2 = malloc(cb), *C3 = malloc(cb);
    int32_t *L1 = malloc((size_t)n * 4), *L2 = malloc((size_t)n * 4), *L3 = malloc((size_t)n * 4);
    fkm_result r1, r2, r3;
    CHECK(fkm_fit(ctx, &p, Xs, dt, n, d, d, NULL, C1, L1, &r1) == FKM_OK, "host fit: %s", fkm_last_error(ctx));
    CHECK(fkm_fit(ctx, &p, Xs, dt, n, d, d, NULL, C3, L3, &r3) == FKM_OK, "host fit again: %s", fkm_last_error(ctx));
    void *dX = NULL, *dInit = NULL, *dC = NULL, *dL = NULL;
    CHECK(cudaMalloc(&dX, xb) == cudaSuccess && cudaMalloc(&dInit, cb) == cudaSuccess &&
              cudaMalloc(&dC, cb) == cudaSuccess && cudaMalloc(&dL, (size_t)n * 4) == cudaSuccess,
          "cudaMalloc");
    cudaMemcpy(dX, Xs, xb, cudaMemcpyHostToDevice);
    cudaMemcpy(dInit, init, cb, cudaMemcpyHostToDevice);
    p.init_centroids = dInit;
    CHECK(fkm_fit(ctx, &p, dX, dt, n, d, d, NULL, dC, dL, &r2) == FKM_OK, "device fit: %s", fkm_last_error(ctx));
    cudaMemcpy(C2, dC, cb, cudaMemcpyDeviceToHost);
    cudaMemcpy(L2, dL, (size_t)n * 4, cudaMemcpyDeviceToHost);
    CHECK(memcmp(C1, C2, cb) == 0 && memcmp(L1, L2, (size_t)n * 4) == 0 && r1.n_iter == r2.n_iter &&
              memcmp(&r1.inertia, &r2.inertia, sizeof(double)) == 0,
          "%s: device pointers give a different fit than host pointers", fkm_dtype_name(dt));
    CHECK(memcmp(C1, C3, cb) == 0 && memcmp(L1, L3, (size_t)n * 4) == 0 &&
              memcmp(&r1.inertia, &r3.inertia, sizeof(double)) == 0,
          "%s: two identical fits differ", fkm_dtype_name(dt));
    printf("device pointers %-4s n=%lld d=%lld k=%lld: bitwise equal to host pointers and to a rerun (%d iterations)\n",
           fkm_dtype_name(dt), (long long)n, (long long)d, (long long)k, r1.n_iter);
    cudaFree(dX), cudaFree(dInit), cudaFree(dC), cudaFree(dL);
    free(X), free(Xs), free(init), free(C1), free(C2), free(C3), free(L1), free(L2), free(L3);
}

/* Where check_device_io keeps the initial centroids and the outputs of a fit. */
enum { IO_HOST, IO_DEVICE, IO_PINNED };

static void *io_alloc(int where, size_t bytes)
{
    void *p = NULL;
    if (where == IO_HOST) return malloc(bytes);
    cudaError_t e = where == IO_DEVICE ? cudaMalloc(&p, bytes) : cudaMallocHost(&p, bytes);
    CHECK(e == cudaSuccess, "io_alloc(%d, %zu): %s", where, bytes, cudaGetErrorString(e));
    return p;
}

static void io_free(int where, void *p)
{
    if (where == IO_HOST) free(p);
    else if (where == IO_DEVICE) cudaFree(p);
    else cudaFreeHost(p);
}

/* fkm_fit_batch (batch > 1: one batched loop; batch == 1: fkm_fit) with the initial centroids
 * in `init_at` and both outputs in `out_at`; host copies of the outputs into C, L. */
static fkm_status fit_io(fkm_ctx *ctx, const fkm_params *p0, const void *X, int64_t B, int64_t n, int64_t d,
                         const float *init, int init_at, int out_at, float *C, int32_t *L, fkm_result *r)
{
    const size_t cb = (size_t)(B * p0->k * d) * sizeof(float), lb = (size_t)(B * n) * sizeof(int32_t);
    fkm_params p = *p0;
    float *init_x = NULL, *Cx = io_alloc(out_at, cb);
    int32_t *Lx = io_alloc(out_at, lb);
    if (init) {
        init_x = io_alloc(init_at, cb);
        cudaMemcpy(init_x, init, cb, cudaMemcpyDefault);
        p.init_centroids = init_x;
    }
    const fkm_status s = fkm_fit_batch(ctx, &p, X, FKM_F16, B, n, d, d, n * d, NULL, Cx, Lx, r);
    cudaMemcpy(C, Cx, cb, cudaMemcpyDefault);
    cudaMemcpy(L, Lx, lb, cudaMemcpyDefault);
    if (init) io_free(init_at, init_x);
    io_free(out_at, Cx), io_free(out_at, Lx);
    return s;
}

/* Initial centroids for B problems of n rows stacked in X: k rows of each problem b picked
 * with seed seed0 + b (tc_pick_rows), B x k x d floats (free with free). */
static float *batch_init(const double *X, int64_t B, int64_t n, int64_t d, int64_t k, uint64_t seed0)
{
    float *init = malloc((size_t)(B * k * d) * sizeof(float));
    for (int64_t b = 0; init && b < B; b++) {
        float *r = tc_pick_rows(X + b * n * d, n, d, k, seed0 + (uint64_t)b);
        memcpy(init + b * k * d, r, (size_t)(k * d) * sizeof(float));
        free(r);
    }
    return init;
}

/* Initial centroids (user: host, device or pinned memory) and outputs (the same three) in
 * every combination give bitwise the all-host fit, batched (B = 3) and single (B = 1), for
 * each metric (cosine's user centroids are normalised on the host: the device ones go through
 * a host copy), with initial centroids that leave clusters empty (the relocation's host path
 * runs in the first iteration, the device centroids fetched to the host) and without, and
 * with k-means++ (outputs only). A NaN in device centroids is reported as in host ones. */
static void check_device_io(fkm_ctx *ctx)
{
    const int64_t n = 2003, d = 24, k = 19, Bmax = 3;
    double *X = tc_blobs(71, Bmax * n, d, 11, 4.0, 0.0);
    void *Xs = tc_store(X, Bmax * n, d, d, FKM_F16);
    float *init = batch_init(X, Bmax, n, d, k, 7);
    float *empt = malloc((size_t)(Bmax * k * d) * sizeof(float)); /* rows 1, 2 copies of row 0 */
    memcpy(empt, init, (size_t)(Bmax * k * d) * sizeof(float));
    for (int64_t b = 0; b < Bmax; b++)
        for (int64_t j = 0; j < d; j++)
            empt[(b * k + 1) * d + j] = empt[(b * k + 2) * d + j] = empt[b * k * d + j];
    const size_t cb = (size_t)(Bmax * k * d) * sizeof(float), lb = (size_t)(Bmax * n) * sizeof(int32_t);
    float *C0 = malloc(cb), *C1 = malloc(cb);
    int32_t *L0 = malloc(lb), *L1 = malloc(lb);
    static const fkm_metric metrics[] = {FKM_METRIC_L2, FKM_METRIC_COSINE, FKM_METRIC_DOT};
    static const char *const where[] = {"host", "device", "pinned"};
    static const int64_t batches[] = {3, 1};
    int cases = 0;
    for (int bi = 0; bi < 2; bi++)
        for (int m = 0; m < 3; m++)
            for (int ini = 0; ini < 3; ini++) { /* user centroids, with empties, k-means++ */
                const int64_t B = batches[bi];
                fkm_params p = fkm_params_default();
                p.k = k;
                p.max_iter = 12;
                p.tol = 0.0;
                p.metric = metrics[m];
                p.init = ini < 2 ? FKM_INIT_USER : FKM_INIT_KMEANS_PP;
                const float *in = ini == 0 ? init : ini == 1 ? empt : NULL;
                if (small_mode() && m == 2) continue; /* dot: l2's path (the sanitizers are slow) */
                fkm_result r0[3], r1[3];
                double hist0[3][12]; /* r0's histories live in the context until the next fit */
                CHECK(fit_io(ctx, &p, Xs, B, n, d, in, IO_HOST, IO_HOST, C0, L0, r0) == FKM_OK, "host fit: %s",
                      fkm_last_error(ctx));
                for (int64_t b = 0; b < B; b++)
                    memcpy(hist0[b], r0[b].inertia_per_iter, (size_t)r0[b].n_iter * sizeof(double));
                for (int ia = 0; ia < 3; ia++)
                    for (int oa = 0; oa < 3; oa++) {
                        if ((ia == IO_HOST && oa == IO_HOST) || (!in && ia != IO_HOST)) continue;
                        CHECK(fit_io(ctx, &p, Xs, B, n, d, in, ia, oa, C1, L1, r1) == FKM_OK, "fit: %s",
                              fkm_last_error(ctx));
                        int same = memcmp(C0, C1, (size_t)(B * k * d) * sizeof(float)) == 0 &&
                                   memcmp(L0, L1, (size_t)(B * n) * sizeof(int32_t)) == 0;
                        for (int64_t b = 0; b < B; b++)
                            same = same && r0[b].n_iter == r1[b].n_iter && r0[b].converged == r1[b].converged &&
                                   memcmp(&r0[b].inertia, &r1[b].inertia, sizeof(double)) == 0 &&
                                   memcmp(hist0[b], r1[b].inertia_per_iter,
                                          (size_t)r0[b].n_iter * sizeof(double)) == 0;
                        CHECK(same, "B=%lld metric %d init %d: init in %s, outputs in %s differ from all-host",
                              (long long)B, m, ini, where[ia], where[oa]);
                        cases++;
                    }
            }
    /* a NaN in the initial centroids: the same status and message wherever they are */
    char msg_host[512];
    for (int64_t B = 1; B <= Bmax; B += Bmax - 1) {
        float *bad = malloc(cb);
        memcpy(bad, init, cb);
        bad[(B * k - 1) * d + 5] = NAN; /* the last problem's last centroid */
        bad[(B * k - 1) * d + 7] = INFINITY;
        fkm_params p = fkm_params_default();
        p.k = k;
        p.init = FKM_INIT_USER;
        fkm_result r[3];
        const fkm_status sh = fit_io(ctx, &p, Xs, B, n, d, bad, IO_HOST, IO_HOST, C1, L1, r);
        snprintf(msg_host, sizeof msg_host, "%s", fkm_last_error(ctx));
        const fkm_status sd = fit_io(ctx, &p, Xs, B, n, d, bad, IO_DEVICE, IO_DEVICE, C1, L1, r);
        CHECK(sh == FKM_E_NONFINITE && sd == sh && strcmp(msg_host, fkm_last_error(ctx)) == 0,
              "B=%lld NaN in init: host %s '%s', device %s '%s'", (long long)B, fkm_status_string(sh), msg_host,
              fkm_status_string(sd), fkm_last_error(ctx));
        free(bad);
    }
    printf("device/pinned init and outputs: %d fits bitwise equal to all-host ones (B = 3 and 1, l2/cosine/dot, "
           "relocation, k-means++); NaN in device init: '%s'\n", cases, msg_host);
    free(X), free(Xs), free(init), free(empt), free(C0), free(C1), free(L0), free(L1);
}

/* Compute capability 9.0: where the wgmma kernels run (sm_90a code of this build). */
static int device_is_sm90(void)
{
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
        return 0;
    return major == 9 && minor == 0;
}

/* One fit with FLASHKM_WGMMA_OVERLAP set to `overlap` (NULL: unset); the variable is read when
 * the assignment workspace is made, i.e. per call. */
static void fit_with_overlap(fkm_ctx *ctx, const char *overlap, const fkm_params *p, const void *Xs, fkm_dtype dt,
                             int64_t batch, int64_t n, int64_t d, float *C, int32_t *L, fkm_result *r,
                             int64_t *rechecked)
{
    ctx->gpu_assign_path = NULL;
    if (overlap) setenv("FLASHKM_WGMMA_OVERLAP", overlap, 1);
    else unsetenv("FLASHKM_WGMMA_OVERLAP");
    const fkm_status s = batch == 1 ? fkm_fit(ctx, p, Xs, dt, n, d, d, NULL, C, L, r)
                                    : fkm_fit_batch(ctx, p, Xs, dt, batch, n, d, d, n * d, NULL, C, L, r);
    CHECK(s == FKM_OK, "fit (FLASHKM_WGMMA_OVERLAP=%s): %s", overlap ? overlap : "unset", fkm_last_error(ctx));
    /* on Hopper the override must have chosen its kernel (every shape of check_wgmma_overlap
     * has k > 64 and rows that stay resident), else the comparisons below compare a kernel
     * with itself */
    if (s == FKM_OK && overlap && device_is_sm90()) {
        const char *want = strcmp(overlap, "2") == 0   ? "wgmma-pingpong"
                           : strcmp(overlap, "3") == 0 ? "wgmma-pingpong-persistent"
                                                       : "wgmma";
        CHECK(ctx->gpu_assign_path && strcmp(ctx->gpu_assign_path, want) == 0,
              "FLASHKM_WGMMA_OVERLAP=%s ran the %s kernel, not %s", overlap,
              ctx->gpu_assign_path ? ctx->gpu_assign_path : "(none)", want);
    }
    *rechecked = 0;
    fkm_exact_stats(ctx, NULL, rechecked);
}

/* The ping-pong wgmma kernel (=2: two consumer warpgroups taking turns, a producer warp,
 * 256-point blocks) and its persistent variant (=3: blocks walking row blocks) give the single-set kernel's bits (sm_90 only;
 * elsewhere all runs take the same kernel): labels, centroids, iteration counts, and in exact
 * mode (their top-3 instantiations) the same points re-checked. Shapes: one, an even and an
 * odd number of 128-centroid tiles, n not a multiple of 128 or 256, d from one to four D
 * chunks (for =2, rings of 8 stages and, at four chunks, of 5: shallower than two tiles; for
 * =3, two X buffers up to 256-byte rows, one above), a batch, K = 1000 (8 tiles: the ring
 * wraps several times), and (not with FLASHKM_TEST_SMALL) more row blocks than SMs (132 x 256
 * x 2 + 77 rows; a batch of 3 x 79 row blocks). =3 runs twice: on its own grid, and with
 * FLASHKM_PP_MAX_BLOCKS=3 (three blocks), so that every shape, small ones included, walks
 * several row blocks per block, across problems in a batch. */
static void check_wgmma_overlap(fkm_ctx *ctx)
{
    typedef struct {
        fkm_dtype dt;
        int64_t batch, n, d, k;
        fkm_precision prec;
        int big; /* left out with FLASHKM_TEST_SMALL (sanitizer runs) */
    } ov_case;
    static const ov_case cases[] = {
        {FKM_F16, 1, 3001, 128, 256, FKM_PRECISION_FAST, 0},   {FKM_F16, 1, 2777, 100, 300, FKM_PRECISION_FAST, 0},
        {FKM_BF16, 1, 2049, 256, 129, FKM_PRECISION_FAST, 0},  {FKM_F32, 1, 1999, 128, 200, FKM_PRECISION_FAST, 0},
        {FKM_F32, 1, 1500, 17, 257, FKM_PRECISION_FAST, 0},    {FKM_F16, 3, 1501, 64, 200, FKM_PRECISION_FAST, 0},
        {FKM_F16, 1, 3001, 128, 300, FKM_PRECISION_EXACT, 0},  {FKM_F32, 1, 1999, 96, 256, FKM_PRECISION_EXACT, 0},
        {FKM_BF16, 2, 1100, 192, 131, FKM_PRECISION_EXACT, 0}, {FKM_F16, 1, 1000, 64, 100, FKM_PRECISION_FAST, 0},
        {FKM_F16, 1, 1100, 128, 1000, FKM_PRECISION_FAST, 0},  {FKM_BF16, 1, 1030, 64, 1000, FKM_PRECISION_EXACT, 0},
        {FKM_F16, 1, 40001, 128, 1000, FKM_PRECISION_FAST, 1}, {FKM_BF16, 1, 40001, 64, 300, FKM_PRECISION_EXACT, 1},
        {FKM_F16, 2, 20011, 256, 200, FKM_PRECISION_FAST, 1},  {FKM_F16, 1, 67661, 128, 200, FKM_PRECISION_FAST, 1},
        {FKM_F32, 1, 67661, 128, 256, FKM_PRECISION_EXACT, 1}, {FKM_BF16, 3, 20011, 64, 300, FKM_PRECISION_FAST, 1},
    };
    const char *outer = getenv("FLASHKM_WGMMA_OVERLAP");
    char *outer_copy = outer ? strdup(outer) : NULL;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const ov_case c = cases[i];
        if (c.big && small_mode()) continue;
        const int64_t rows = c.batch * c.n;
        double *X = tc_blobs(70 + i, rows, c.d, 40, 4.0, 0.0);
        void *Xs = tc_store(X, rows, c.d, c.d, c.dt);
        float *init = batch_init(X, c.batch, c.n, c.d, c.k, 90 + (uint64_t)i);
        fkm_params p = fkm_params_default();
        p.k = c.k;
        p.max_iter = 6;
        p.tol = 0.0;
        p.init = FKM_INIT_USER;
        p.init_centroids = init;
        p.precision = c.prec;
        const size_t cb = (size_t)(c.batch * c.k * c.d) * sizeof(float), lb = (size_t)rows * sizeof(int32_t);
        float *C0 = malloc(cb), *C1 = malloc(cb);
        int32_t *L0 = malloc(lb), *L1 = malloc(lb);
        fkm_result r0[3], r1[3];
        int64_t re0 = 0, re1 = 0;
        fit_with_overlap(ctx, "0", &p, Xs, c.dt, c.batch, c.n, c.d, C0, L0, r0, &re0);
        /* =2: the ping-pong kernel; =3: the persistent one, on its own grid and on three
         * blocks (FLASHKM_PP_MAX_BLOCKS) */
        static const char *const variants[] = {"2", "3", "3"};
        static const char *const max_blocks[] = {NULL, NULL, "3"};
        for (int v = 0; v < 3; v++) {
            memset(L1, 0xff, lb), memset(C1, 0xff, cb); /* nothing left over from the previous variant */
            if (max_blocks[v]) setenv("FLASHKM_PP_MAX_BLOCKS", max_blocks[v], 1);
            fit_with_overlap(ctx, variants[v], &p, Xs, c.dt, c.batch, c.n, c.d, C1, L1, r1, &re1);
            unsetenv("FLASHKM_PP_MAX_BLOCKS");
            int same_iters = 1;
            for (int64_t b = 0; b < c.batch; b++) same_iters &= r0[b].n_iter == r1[b].n_iter;
            CHECK(memcmp(L0, L1, lb) == 0 && memcmp(C0, C1, cb) == 0 && same_iters && re0 == re1,
                  "%s B=%lld n=%lld d=%lld k=%lld %s: FLASHKM_WGMMA_OVERLAP=%s%s differs from =0 (single-set kernel)",
                  fkm_dtype_name(c.dt), (long long)c.batch, (long long)c.n, (long long)c.d, (long long)c.k,
                  c.prec == FKM_PRECISION_EXACT ? "exact" : "fast", variants[v],
                  max_blocks[v] ? " (3 blocks)" : "");
            printf("wgmma overlap=%s%s %-4s B=%lld n=%lld d=%lld k=%lld %s: bitwise equal to the single-set kernel "
                   "(%lld re-checked)\n",
                   variants[v], max_blocks[v] ? " (3 blocks)" : "", fkm_dtype_name(c.dt), (long long)c.batch,
                   (long long)c.n, (long long)c.d, (long long)c.k, c.prec == FKM_PRECISION_EXACT ? "exact" : "fast",
                   (long long)re0);
        }
        free(X), free(Xs), free(init), free(C0), free(C1), free(L0), free(L1);
    }
    if (outer_copy) setenv("FLASHKM_WGMMA_OVERLAP", outer_copy, 1);
    else unsetenv("FLASHKM_WGMMA_OVERLAP");
    free(outer_copy);
}

/* fkm_fit_batch equals B separate fits. */
static void check_batch(fkm_ctx *ctx)
{
    const int64_t B = 3, n = 1501, d = 24, k = 17;
    double *X = tc_blobs(31, B * n, d, 10, 4.0, 0.0);
    void *Xs = tc_store(X, B * n, d, d, FKM_F16);
    float *init = batch_init(X, B, n, d, k, 40);
    fkm_params p = fkm_params_default();
    p.k = k;
    p.max_iter = 20;
    p.init = FKM_INIT_USER;
    p.init_centroids = init;
    float *Cb = malloc((size_t)(B * k * d) * sizeof(float)), *C1 = malloc((size_t)(k * d) * sizeof(float));
    int32_t *Lb = malloc((size_t)(B * n) * 4), *L1 = malloc((size_t)n * 4);
    fkm_result rb[3], r1;
    CHECK(fkm_fit_batch(ctx, &p, Xs, FKM_F16, B, n, d, d, n * d, NULL, Cb, Lb, rb) == FKM_OK, "batch: %s",
          fkm_last_error(ctx));
    for (int64_t b = 0; b < B; b++) {
        p.init_centroids = init + b * k * d;
        CHECK(fkm_fit(ctx, &p, (const uint16_t *)Xs + b * n * d, FKM_F16, n, d, d, NULL, C1, L1, &r1) == FKM_OK,
              "single: %s", fkm_last_error(ctx));
        CHECK(memcmp(C1, Cb + b * k * d, (size_t)(k * d) * 4) == 0 && memcmp(L1, Lb + b * n, (size_t)n * 4) == 0 &&
                  r1.n_iter == rb[b].n_iter,
              "batch problem %lld differs from its single fit", (long long)b);
    }
    printf("batch of %lld: each problem bitwise equal to its single fit\n", (long long)B);
    free(X), free(Xs), free(init), free(Cb), free(C1), free(Lb), free(L1);
}

/* transform and score on the GPU equal the CPU backend's (the same f32/double arithmetic
 * per pair; only the order of the inertia sum differs). */
static void check_transform_score(fkm_ctx *ctx)
{
    const int64_t n = 777, d = 19, k = 23;
    fkm_ctx *cpu = NULL;
    CHECK(fkm_create(&cpu, FKM_BACKEND_CPU) == FKM_OK, "create cpu");
    double *Xd = tc_blobs(61, n, d, 9, 4.0, 0.0);
    void *X = tc_store(Xd, n, d, d, FKM_F16);
    float *C = tc_pick_rows(Xd, n, d, k, 2);
    float *g = malloc((size_t)(n * k) * sizeof *g), *c = malloc((size_t)(n * k) * sizeof *c);
    static const fkm_metric metrics[] = {FKM_METRIC_L2, FKM_METRIC_COSINE, FKM_METRIC_DOT};
    for (int m = 0; m < 3; m++) {
        CHECK(fkm_transform(ctx, metrics[m], X, FKM_F16, n, d, d, C, k, g) == FKM_OK, "gpu transform: %s",
              fkm_last_error(ctx));
        CHECK(fkm_transform(cpu, metrics[m], X, FKM_F16, n, d, d, C, k, c) == FKM_OK, "cpu transform");
        double worst = 0.0;
        for (int64_t i = 0; i < n * k; i++) worst = fmax(worst, fabs((double)g[i] - c[i]) / (1.0 + fabs((double)c[i])));
        CHECK(worst <= 1e-6, "metric %d: transform differs from the CPU's by %.3g (relative)", m, worst);
        double sg = 0.0, sc = 0.0;
        CHECK(fkm_score(ctx, metrics[m], X, FKM_F16, n, d, d, NULL, C, k, &sg) == FKM_OK, "gpu score: %s",
              fkm_last_error(ctx));
        CHECK(fkm_score(cpu, metrics[m], X, FKM_F16, n, d, d, NULL, C, k, &sc) == FKM_OK, "cpu score");
        /* labels come from the tensor cores: a near-tie point may pick the other centroid, whose
         * objective is within the rounding bound of its own */
        CHECK(fabs(sg - sc) <= 1e-6 * fabs(sc) + 1e-9, "metric %d: score %.17g vs CPU %.17g", m, sg, sc);
    }
    printf("transform and score: equal to the CPU backend for l2, cosine, dot\n");
    free(Xd), free(X), free(C), free(g), free(c);
    fkm_destroy(cpu);
}

/* Out of device memory: a status and a message naming the file and line, no crash, and the
 * context works again once memory is back. The memory is taken by the test itself. */
static void check_out_of_memory(fkm_ctx *ctx)
{
    const int64_t n = 1 << 21, d = 64, k = 16; /* a 256 MB device copy of X */
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return;
    void *hog = NULL;
    size_t take = free_b > ((size_t)96 << 20) ? free_b - ((size_t)96 << 20) : 0;
    while (take > 0 && cudaMalloc(&hog, take) != cudaSuccess) {
        (void)cudaGetLastError();
        take -= (size_t)64 << 20;
    }
    uint16_t *X = calloc((size_t)(n * d), sizeof *X);
    float *C = malloc((size_t)(k * d) * sizeof *C);
    for (int64_t i = 0; i < n * d; i++) X[i] = (uint16_t)(0x3c00 + (i * 7919 % 1024)); /* f16 in [1, 2) */
    fkm_params p = fkm_params_default();
    p.k = k;
    p.max_iter = 2;
    fkm_status s = fkm_fit(ctx, &p, X, FKM_F16, n, d, d, NULL, C, NULL, NULL);
    CHECK(s == FKM_E_NOMEM && strstr(fkm_last_error(ctx), "cuda/") != NULL,
          "out of device memory: status %s, message '%s'", fkm_status_string(s), fkm_last_error(ctx));
    printf("out of device memory -> %s: %s\n", fkm_status_string(s), fkm_last_error(ctx));
    cudaFree(hog);
    s = fkm_fit(ctx, &p, X, FKM_F16, n, d, d, NULL, C, NULL, NULL);
    CHECK(s == FKM_OK, "fit after memory came back: %s", fkm_last_error(ctx));
    free(X), free(C);
}

int main(void)
{
    fkm_ctx *ctx = tc_create_backend(FKM_BACKEND_CUDA); /* exits 77 without a GPU */
    /* k <= 64 takes the mma.sync kernel, k > 64 wgmma on sm_90 (resident X for d <= 256,
     * split-D above), mma.sync elsewhere */
    static const shape shapes[] = {{1037, 8, 1},    {1037, 13, 37},   {1037, 64, 200}, {2000, 128, 1000},
                                   {777, 300, 50},  {1000, 1024, 64}, {300, 16, 300},  {900, 300, 130},
                                   {600, 1024, 200}};
    static const fkm_dtype dtypes[] = {FKM_F16, FKM_BF16, FKM_F32};
    static const fkm_metric metrics[] = {FKM_METRIC_L2, FKM_METRIC_COSINE, FKM_METRIC_DOT};
    const size_t nshapes = small_mode() ? 3 : sizeof shapes / sizeof *shapes;
    for (size_t a = 0; a < sizeof dtypes / sizeof *dtypes; a++)
        for (size_t m = 0; m < sizeof metrics / sizeof *metrics; m++)
            for (size_t i = 0; i < nshapes; i++)
                if (m == 0 || i < 3) check_predict(ctx, dtypes[a], metrics[m], shapes[i], 100 + i * 7 + m);
    check_device_pointers(ctx, FKM_F16, 4099, 64, 50);
    check_device_pointers(ctx, FKM_BF16, 3001, 40, 33);
    check_device_pointers(ctx, FKM_F32, 2003, 13, 20);
    check_batch(ctx);
    check_device_io(ctx);
    check_wgmma_overlap(ctx);
    check_transform_score(ctx);
    if (!small_mode()) check_out_of_memory(ctx); /* the sanitizers' own allocations would skew it */
    fkm_destroy(ctx);
    return tc_finish("test_cuda");
}
