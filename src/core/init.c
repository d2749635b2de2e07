/* init.c — initial centroids: K distinct random rows (seeded), or the user's. */
#include "init.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t fkm_rng_next(fkm_rng *rng)
{
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t fkm_rng_below(fkm_rng *rng, uint64_t bound)
{
    /* reject the top partial copy of [0, bound) so every value is equally likely */
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do r = fkm_rng_next(rng);
    while (r >= limit);
    return r % bound;
}

/* Open-addressing set of int64 keys (>= 0), capacity a power of two. */
typedef struct idx_set {
    int64_t *slot;
    uint64_t mask;
} idx_set;

static int set_insert(idx_set *s, int64_t key)
{
    uint64_t h = ((uint64_t)key * 0x9e3779b97f4a7c15ull) & s->mask;
    while (s->slot[h] >= 0) {
        if (s->slot[h] == key) return 0;
        h = (h + 1) & s->mask;
    }
    s->slot[h] = key;
    return 1;
}

fkm_status fkm_sample_distinct(fkm_ctx *ctx, uint64_t seed, int64_t n, int64_t k, int64_t *idx)
{
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)k) cap <<= 1;
    idx_set s = {malloc(cap * sizeof(int64_t)), cap - 1};
    if (!s.slot) return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for initial sampling");
    memset(s.slot, 0xff, cap * sizeof(int64_t)); /* all -1 */
    fkm_rng rng = {seed};
    /* Floyd: for j in [n-k, n): t uniform in [0, j]; take t unless taken, else j */
    int64_t m = 0;
    for (int64_t j = n - k; j < n; j++) {
        int64_t t = (int64_t)fkm_rng_below(&rng, (uint64_t)j + 1);
        if (!set_insert(&s, t)) {
            t = j;
            set_insert(&s, t);
        }
        idx[m++] = t;
    }
    free(s.slot);
    return FKM_OK;
}

void fkm_normalise_rows(float *C, int64_t k, int64_t d)
{
    for (int64_t c = 0; c < k; c++) {
        float *row = C + c * d;
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) ss += (double)row[j] * row[j];
        if (ss > 0.0) {
            double inv = 1.0 / sqrt(ss);
            for (int64_t j = 0; j < d; j++) row[j] = (float)(row[j] * inv);
        }
    }
}

/* k-means++ for a backend without its own: the CPU backend's over a host view of the
 * problem's rows (a copy when they are device memory). */
static fkm_status kmeanspp_on_host(fkm_ctx *ctx, const fkm_problem *pb, int64_t problem, uint64_t seed, float *C)
{
    const size_t es = fkm_dtype_size(pb->dtype);
    const void *X = (const char *)pb->X + (size_t)(problem * pb->batch_stride) * es;
    void *copy = NULL;
    fkm_status s = FKM_OK;
    if (ctx->ops->is_device && ctx->ops->is_device(X)) {
        const size_t bytes = (size_t)((pb->n - 1) * pb->ld + pb->d) * es;
        if (!(copy = malloc(bytes)))
            return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the k-means++ copy of X (%zu bytes)", bytes);
        if ((s = ctx->ops->copy(ctx, copy, X, bytes)) != FKM_OK) {
            free(copy);
            return s;
        }
        X = copy;
    }
    fkm_problem host = *pb;
    host.X = X;
    host.weights = pb->weights ? pb->weights + problem * pb->n : NULL;
    host.batch = 1;
    host.batch_stride = pb->n * pb->ld;
    const fkm_backend_vtbl *cpu = fkm_cpu_backend();
    void *st = NULL;
    if ((s = cpu->open(ctx, &host, &st)) == FKM_OK) s = cpu->kmeanspp(ctx, st, 0, seed, C);
    if (st) cpu->close(st);
    free(copy);
    return s;
}

fkm_status fkm_init_centroids(fkm_ctx *ctx, const fkm_params *params, const fkm_problem *pb,
                              void *state, int64_t problem, float *C)
{
    const int64_t k = pb->k, d = pb->d;
    if (params->init == FKM_INIT_KMEANS_PP) {
        const uint64_t seed = params->seed + (uint64_t)problem;
        /* a backend's k-means++ reads X where the backend keeps it: with part of X streamed
         * it would need passes of its own, so the host runs it over the caller's X instead;
         * FKM_E_UNSUPPORTED from the op: not for this problem either */
        if (ctx->ops->kmeanspp && !fkm_x_streamed(ctx)) {
            const fkm_status s = ctx->ops->kmeanspp(ctx, state, problem, seed, C);
            if (s != FKM_E_UNSUPPORTED) return s;
            fkm_clear_error(ctx);
        }
        return kmeanspp_on_host(ctx, pb, problem, seed, C);
    }
    if (params->init == FKM_INIT_USER) {
        memcpy(C, params->init_centroids + problem * k * d, (size_t)(k * d) * sizeof *C);
        if (pb->metric == FKM_METRIC_COSINE) fkm_normalise_rows(C, k, d);
        return FKM_OK;
    }
    int64_t *idx = malloc((size_t)k * sizeof *idx);
    if (!idx) return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for initial indices");
    fkm_status s = fkm_sample_distinct(ctx, params->seed + (uint64_t)problem, pb->n, k, idx);
    for (int64_t c = 0; c < k && s == FKM_OK; c++)
        s = ctx->ops->fetch_row(ctx, state, problem * pb->n + idx[c], C + c * d);
    free(idx);
    return s;
}
