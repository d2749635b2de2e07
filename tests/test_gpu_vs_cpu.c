/* test_gpu_vs_cpu.c — the parts of a complete k-means give the same answer on the GPU as on
 * the CPU (issue 5): the relocate empty-cluster policy (same clusters emptied, same points
 * chosen to refill them), sample weights (and integer weights equal to repeated rows on the
 * GPU), and n_init (the same run kept). The GPU runs with FKM_PRECISION_F32, its exact f32
 * assignment, so that on tie-free data its labels must equal the CPU's; centroids are sums in
 * double in a different order on each backend, rounded to f32, so they may differ in the last
 * bit: they must agree to a few f32 ulps and the labels exactly. Skips (exit 77) without a GPU. */
#include "common.h"

#include <math.h>
#include <string.h>

typedef struct run {
    float *C;
    int32_t *labels;
    fkm_result r;
} run;

static void run_free(run *o) { free(o->C), free(o->labels); }

static int fit(fkm_ctx *ctx, const fkm_params *p, const void *X, fkm_dtype dt, int64_t n, int64_t d,
               const float *w, run *o, const char *what)
{
    o->C = malloc((size_t)(p->k * d) * sizeof *o->C);
    o->labels = malloc((size_t)n * sizeof *o->labels);
    const fkm_status s = fkm_fit(ctx, p, X, dt, n, d, d, w, o->C, o->labels, &o->r);
    CHECK(s == FKM_OK, "%s: fit: %s", what, fkm_last_error(ctx));
    return s == FKM_OK;
}

/* Labels equal, n_iter equal, centroids within 4 f32 ulps of their magnitude (plus an absolute
 * term for coordinates near 0), inertia within 1e-9 relative. */
static void check_same(const run *g, const run *c, int64_t n, int64_t k, int64_t d, const char *what)
{
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
        if (g->labels[i] != c->labels[i] && bad++ == 0) first = i;
    CHECK(bad == 0, "%s: %lld labels differ from the CPU's (first at %lld: %d vs %d)", what, (long long)bad,
          (long long)first, first >= 0 ? g->labels[first] : 0, first >= 0 ? c->labels[first] : 0);
    CHECK(g->r.n_iter == c->r.n_iter, "%s: n_iter %d on the GPU, %d on the CPU", what, g->r.n_iter, c->r.n_iter);
    double worst = 0.0;
    for (int64_t i = 0; i < k * d; i++) {
        const double tol = 4.0 * 0x1p-24 * fabs((double)c->C[i]) + 1e-6;
        worst = fmax(worst, fabs((double)g->C[i] - c->C[i]) / tol);
    }
    CHECK(worst <= 1.0, "%s: centroids differ from the CPU's by %.3g of the tolerance", what, worst);
    CHECK(fabs(g->r.inertia - c->r.inertia) <= 1e-9 * fabs(c->r.inertia), "%s: inertia %.17g vs CPU %.17g", what,
          g->r.inertia, c->r.inertia);
}

/* Initial centroids that leave clusters empty: a few copies of one row (all but the first copy
 * get no point: ties go to the lowest index) and a few far away from every point. */
static float *init_with_empties(const double *X, int64_t n, int64_t d, int64_t k, int *n_empty)
{
    float *C = tc_pick_rows(X, n, d, k, 5);
    for (int64_t j = 0; j < d; j++) {
        C[1 * d + j] = C[0 * d + j];
        C[2 * d + j] = C[0 * d + j];
        C[(k - 1) * d + j] = 1e4f;
        C[(k - 2) * d + j] = -1e4f;
    }
    *n_empty = 4;
    return C;
}

static void check_relocate(fkm_ctx *gpu, fkm_ctx *cpu, fkm_dtype dt, int64_t n, int64_t d, int64_t k)
{
    double *Xd = tc_blobs(300 + (uint64_t)d, n, d, 12, 6.0, 0.0);
    void *X = tc_store(Xd, n, d, d, dt);
    int n_empty = 0;
    float *C0 = init_with_empties(Xd, n, d, k, &n_empty);
    fkm_params p = fkm_params_default();
    p.k = k;
    p.init = FKM_INIT_USER;
    p.init_centroids = C0;
    p.max_iter = 20;
    p.empty = FKM_EMPTY_RELOCATE;
    p.precision = FKM_PRECISION_F32;
    run g, c;
    char what[96];
    snprintf(what, sizeof what, "relocate %s n=%lld d=%lld k=%lld", fkm_dtype_name(dt), (long long)n, (long long)d,
             (long long)k);
    if (fit(gpu, &p, X, dt, n, d, NULL, &g, what) & fit(cpu, &p, X, dt, n, d, NULL, &c, what)) {
        check_same(&g, &c, n, k, d, what);
        /* the relocation really happened: no cluster is empty at the end */
        int32_t *count = calloc((size_t)k, sizeof *count);
        for (int64_t i = 0; i < n; i++) count[c.labels[i]]++;
        int64_t empty_end = 0;
        for (int64_t j = 0; j < k; j++) empty_end += count[j] == 0;
        CHECK(empty_end == 0, "%s: %lld clusters still empty on the CPU (the test lost its point)", what,
              (long long)empty_end);
        free(count);
    }
    run_free(&g), run_free(&c);
    free(Xd), free(X), free(C0);
}

/* Weighted fit: GPU == CPU; integer weights on the GPU == repeated rows on the GPU. */
static void check_weights(fkm_ctx *gpu, fkm_ctx *cpu)
{
    const int64_t n = 3001, d = 24, k = 17;
    double *Xd = tc_blobs(77, n, d, 9, 5.0, 0.0);
    void *X = tc_store(Xd, n, d, d, FKM_F32);
    float *w = malloc((size_t)n * sizeof *w);
    int64_t nrep = 0;
    for (int64_t i = 0; i < n; i++) {
        w[i] = (float)(1 + i % 3);
        nrep += 1 + i % 3;
    }
    float *Xrep = malloc((size_t)(nrep * d) * sizeof *Xrep);
    int64_t *orig = malloc((size_t)nrep * sizeof *orig);
    for (int64_t i = 0, r = 0; i < n; i++)
        for (int t = 0; t < 1 + i % 3; t++, r++) {
            memcpy(Xrep + r * d, (const float *)X + i * d, (size_t)d * sizeof(float));
            orig[r] = i;
        }
    float *C0 = tc_pick_rows(Xd, n, d, k, 9);
    fkm_params p = fkm_params_default();
    p.k = k;
    p.init = FKM_INIT_USER;
    p.init_centroids = C0;
    p.max_iter = 30;
    p.precision = FKM_PRECISION_F32;
    run g, c, rep;
    if (fit(gpu, &p, X, FKM_F32, n, d, w, &g, "weights gpu") & fit(cpu, &p, X, FKM_F32, n, d, w, &c, "weights cpu")) {
        check_same(&g, &c, n, k, d, "weighted fit");
        if (fit(gpu, &p, Xrep, FKM_F32, nrep, d, NULL, &rep, "repeated rows gpu")) {
            int64_t bad = 0;
            for (int64_t r = 0; r < nrep; r++) bad += rep.labels[r] != g.labels[orig[r]];
            CHECK(bad == 0, "GPU: %lld labels of repeated rows differ from the weighted fit's", (long long)bad);
            double worst = 0.0;
            for (int64_t i = 0; i < k * d; i++) worst = fmax(worst, fabs((double)rep.C[i] - g.C[i]));
            CHECK(worst <= 1e-5, "GPU: integer weights vs repeated rows: centroids differ by %.3g", worst);
            run_free(&rep);
        }
    }
    run_free(&g), run_free(&c);
    free(Xd), free(X), free(w), free(Xrep), free(orig), free(C0);
}

/* n_init = 4 with random init: the same run kept on both backends (random rows are chosen on
 * the host from the seed, so the starts are equal), and it is the lowest-inertia one. */
static void check_n_init(fkm_ctx *gpu, fkm_ctx *cpu)
{
    const int64_t n = 4000, d = 16, k = 25;
    double *Xd = tc_blobs(91, n, d, 30, 5.0, 0.0);
    void *X = tc_store(Xd, n, d, d, FKM_F32);
    fkm_params p = fkm_params_default();
    p.k = k;
    p.init = FKM_INIT_RANDOM;
    p.seed = 40;
    p.max_iter = 50;
    p.precision = FKM_PRECISION_F32;
    double best = INFINITY;
    for (int r = 0; r < 4; r++) {
        fkm_params q = p;
        q.seed = p.seed + (uint64_t)r;
        run one;
        if (fit(gpu, &q, X, FKM_F32, n, d, NULL, &one, "single run")) best = fmin(best, one.r.inertia);
        run_free(&one);
    }
    p.n_init = 4;
    run g, c;
    if (fit(gpu, &p, X, FKM_F32, n, d, NULL, &g, "n_init gpu") & fit(cpu, &p, X, FKM_F32, n, d, NULL, &c, "n_init cpu")) {
        check_same(&g, &c, n, k, d, "n_init = 4");
        CHECK(g.r.inertia == best, "GPU n_init = 4: inertia %.17g, best single run %.17g", g.r.inertia, best);
    }
    run_free(&g), run_free(&c);
    free(Xd), free(X);
}

int main(void)
{
    fkm_ctx *gpu = tc_create_backend(FKM_BACKEND_CUDA); /* exits 77 without a GPU */
    fkm_ctx *cpu = tc_create_backend(FKM_BACKEND_CPU);
    check_relocate(gpu, cpu, FKM_F32, 2500, 16, 40);
    check_relocate(gpu, cpu, FKM_F16, 3001, 13, 70);
    check_relocate(gpu, cpu, FKM_BF16, 1999, 40, 33);
    printf("relocate: GPU equals CPU (labels, n_iter; centroids within 4 ulps)\n");
    check_weights(gpu, cpu);
    printf("weights: GPU equals CPU; integer weights equal repeated rows on the GPU\n");
    check_n_init(gpu, cpu);
    printf("n_init: GPU keeps the same run as the CPU, the lowest inertia\n");
    fkm_destroy(gpu);
    fkm_destroy(cpu);
    return tc_finish("test_gpu_vs_cpu");
}
