/* test_determinism.c — the same input, params and seed give bitwise-identical centroids,
 * labels, inertia and per-iteration inertia for 1, 2, 3 and 16 threads, for every dtype and
 * metric, on a problem large enough that the work is split across threads many ways (and
 * with weights and empty clusters). Also repeats a run to catch uninitialised state. */
#include "common.h"

#include <string.h>

typedef struct run_out {
    float *C;
    int32_t *labels;
    fkm_result r;
    double hist[64];
} run_out;

static void run(fkm_ctx *ctx, const void *X, fkm_dtype dt, int64_t n, int64_t d, const float *w,
                fkm_metric metric, int threads, run_out *o)
{
    fkm_params p = fkm_params_default();
    p.k = 70;
    p.max_iter = 12;
    p.tol = 0.0;
    p.seed = 42;
    p.metric = metric;
    p.n_threads = threads;
    p.precision = tc_precision();
    o->C = malloc((size_t)(p.k * d) * sizeof *o->C);
    o->labels = malloc((size_t)n * sizeof *o->labels);
    fkm_status s = fkm_fit(ctx, &p, X, dt, n, d, d, w, o->C, o->labels, &o->r);
    CHECK(s == FKM_OK, "fit with %d threads: %s", threads, fkm_last_error(ctx));
    memcpy(o->hist, o->r.inertia_per_iter, (size_t)o->r.n_iter * sizeof(double));
}

static int same(const run_out *a, const run_out *b, int64_t n, int64_t kd)
{
    return memcmp(a->C, b->C, (size_t)kd * sizeof(float)) == 0 &&
           memcmp(a->labels, b->labels, (size_t)n * sizeof(int32_t)) == 0 &&
           memcmp(&a->r.inertia, &b->r.inertia, sizeof(double)) == 0 && a->r.n_iter == b->r.n_iter &&
           memcmp(a->hist, b->hist, (size_t)a->r.n_iter * sizeof(double)) == 0;
}

int main(void)
{
    /* prime n: no block or chunk divides it. FLASHKM_TEST_SMALL (the GPU sanitizer runs):
     * fewer points and repetitions, same code paths */
    const int small = getenv("FLASHKM_TEST_SMALL") != NULL;
    const int64_t n = small ? 3001 : 20011, d = 19;
    static const fkm_dtype dtypes[] = {FKM_F32, FKM_F16, FKM_BF16};
    static const fkm_metric metrics[] = {FKM_METRIC_L2, FKM_METRIC_COSINE, FKM_METRIC_DOT};
    static const int threads_all[] = {1, 2, 3, 16};
    const int *threads = threads_all;
    fkm_ctx *ctx = tc_create();
    const size_t n_threads = small ? 2 : sizeof threads_all / sizeof *threads_all;
    /* FLASHKM_TEST_SANITIZE (gpu-check's compute-sanitizer runs, GPU): one repeat, f32 and
     * f16 only (the GPU ignores the thread count; test_cuda covers bf16), so that racecheck
     * can finish */
    const int sanitize = getenv("FLASHKM_TEST_SANITIZE") != NULL && fkm_ctx_backend(ctx) == FKM_BACKEND_CUDA;
    float *w = malloc((size_t)n * sizeof *w);
    tc_rng rng = {7};
    for (int64_t i = 0; i < n; i++) w[i] = (float)(0.5 + tc_uniform(&rng));
    for (size_t a = 0; a < (sanitize ? 2 : sizeof dtypes / sizeof *dtypes); a++) {
        double *Xd = tc_blobs(100 + a, n, d, 40, 4.0, 0.0);
        void *X = tc_store(Xd, n, d, d, dtypes[a]);
        for (size_t m = 0; m < sizeof metrics / sizeof *metrics; m++) {
            const float *wt = (m == 1) ? w : NULL; /* weights on one metric per dtype */
            run_out base;
            run(ctx, X, dtypes[a], n, d, wt, metrics[m], 1, &base);
            for (size_t t = 0; t < (sanitize ? 1 : n_threads); t++) {
                run_out o;
                run(ctx, X, dtypes[a], n, d, wt, metrics[m], threads[t], &o);
                CHECK(same(&base, &o, n, 70 * d), "%s metric %d: %d threads differ from 1 thread",
                      fkm_dtype_name(dtypes[a]), (int)metrics[m], threads[t]);
                free(o.C), free(o.labels);
            }
            printf("%-5s metric %d: n_iter %d inertia %.17g identical for every thread count tried\n",
                   fkm_dtype_name(dtypes[a]), (int)metrics[m], base.r.n_iter, base.r.inertia);
            free(base.C), free(base.labels);
        }
        free(Xd), free(X);
    }
    free(w);
    fkm_destroy(ctx);
    return tc_finish("test_determinism");
}
