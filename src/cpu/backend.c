/* backend.c — the CPU backend's table: per-call state, the data scan, row access, farthest
 * points and transform. The assignment is in assign.c, the update in reduce.c. */
#include "cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void cpu_close(void *state)
{
    cpu_state *st = state;
    if (!st) return;
    free(st->labels);
    free(st->objective);
    free(st->cpack);
    free(st->cbias);
    free(st->cnorm);
    free(st->xnorm);
    free(st->clo);
    free(st->chi);
    free(st->cprev);
    free(st->cmove);
    free(st->order);
    free(st->offsets);
    free(st);
}

static fkm_status cpu_open(fkm_ctx *ctx, const fkm_problem *pb, void **out)
{
    *out = NULL;
    cpu_state *st = calloc(1, sizeof *st);
    if (!st) return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for the CPU backend state");
    st->pb = *pb;
    /* small problems (a predict of a few rows): starting threads and their barriers cost more
     * than the work. Results do not depend on the thread count, so this is safe. */
    const double work = (double)pb->n * (double)pb->d * (double)(pb->k > 0 ? pb->k : 1);
    const double useful = 1.0 + work / 4e6;
    if ((double)st->pb.n_threads > useful) st->pb.n_threads = (int)useful;
    st->kern = fkm_cpu_select_kernel();
    const int64_t nr = st->kern->nr;
    st->npanels = (pb->k + nr - 1) / nr;
    size_t pack_bytes, n_i32, n_f64, n_i64;
    if (!fkm_bytes(st->npanels * nr, pb->d, sizeof(float), &pack_bytes) ||
        !fkm_bytes(pb->n, 1, sizeof(int32_t), &n_i32) || !fkm_bytes(pb->n, 1, sizeof(double), &n_f64) ||
        !fkm_bytes(pb->n, 1, sizeof(int64_t), &n_i64)) {
        cpu_close(st);
        return fkm_fail(ctx, FKM_E_OVERFLOW, "problem too large for this machine's address space");
    }
    st->labels = malloc(n_i32);
    st->objective = malloc(n_f64);
    st->order = malloc(n_i64);
    st->cpack = malloc(pack_bytes);
    st->cbias = malloc((size_t)(st->npanels * nr) * sizeof(float));
    st->offsets = malloc((size_t)(pb->k + 1) * sizeof(int64_t));
    int carry = 0;
    if (pb->precision == FKM_PRECISION_EXACT) {
        st->cnorm = malloc((size_t)pb->k * sizeof(double));
        st->xnorm = malloc(n_f64);
        const char *e = getenv("FLASHKM_EXACT_CARRY");
        carry = pb->metric != FKM_METRIC_COSINE && pb->k > 1 && !(e && strcmp(e, "0") == 0);
        if (carry) {
            st->clo = malloc(n_f64);
            st->chi = malloc(n_f64);
            st->cprev = malloc(pack_bytes); /* >= k x d floats */
            st->cmove = malloc((size_t)pb->k * sizeof(double));
        }
    }
    if (!st->labels || !st->objective || !st->order || !st->cpack || !st->cbias || !st->offsets ||
        (pb->precision == FKM_PRECISION_EXACT && (!st->cnorm || !st->xnorm)) ||
        (carry && (!st->clo || !st->chi || !st->cprev || !st->cmove))) {
        cpu_close(st);
        return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for the CPU backend (n = %lld, k = %lld, d = %lld)",
                        (long long)pb->n, (long long)pb->k, (long long)pb->d);
    }
    *out = st;
    return FKM_OK;
}

/* Rows per chunk of the scan: fixed, so the variance is the same for any thread count. */
#define SCAN_CHUNK 4096

/* Column sums (pass 0) or sums of squared deviations from mean (pass 1) of rows [b, e). */
static int64_t scan_chunk(const fkm_problem *pb, int64_t b, int64_t e, const double *mean,
                          float *row, double *acc)
{
    int64_t bad = -1;
    for (int64_t i = b; i < e; i++) {
        fkm_load_row(pb->X, pb->dtype, pb->ld, i, pb->d, pb->metric == FKM_METRIC_COSINE, row);
        for (int64_t j = 0; j < pb->d; j++) {
            const double v = row[j];
            if (!mean) {
                if (!isfinite(v) && bad < 0) bad = i;
                acc[j] += v;
            } else {
                acc[j] += (v - mean[j]) * (v - mean[j]);
            }
        }
    }
    return bad;
}

static fkm_status cpu_scan(fkm_ctx *ctx, void *state, int64_t *first_nonfinite, double *mean_var)
{
    cpu_state *st = state;
    const fkm_problem *pb = &st->pb;
    const int64_t d = pb->d, nchunks = (pb->n + SCAN_CHUNK - 1) / SCAN_CHUNK;
    double *part = malloc((size_t)(nchunks * d) * sizeof *part);
    double *mean = calloc((size_t)d, sizeof *mean);
    double *var = calloc((size_t)d, sizeof *var);
    int64_t bad = -1;
    int failed = !part || !mean || !var;
    /* pass 0: finiteness and column means; pass 1: variances about those means (two passes
     * keep precision for data with a large common offset) */
    for (int pass = 0; pass < 2 && !failed && bad < 0; pass++) {
        int64_t first_bad = INT64_MAX;
#pragma omp parallel num_threads(pb->n_threads) reduction(| : failed) reduction(min : first_bad)
        {
            float *row = malloc((size_t)d * sizeof *row);
            if (!row) failed = 1;
#pragma omp for schedule(static)
            for (int64_t c = 0; c < nchunks; c++) {
                if (!row) continue;
                double *acc = part + c * d;
                memset(acc, 0, (size_t)d * sizeof *acc);
                const int64_t e = (c + 1) * SCAN_CHUNK < pb->n ? (c + 1) * SCAN_CHUNK : pb->n;
                int64_t b = scan_chunk(pb, c * SCAN_CHUNK, e, pass ? mean : NULL, row, acc);
                if (b >= 0 && b < first_bad) first_bad = b;
            }
            free(row);
        }
        if (first_bad != INT64_MAX) bad = first_bad;
        double *dst = pass ? var : mean;
        for (int64_t c = 0; c < nchunks && !failed; c++)
            for (int64_t j = 0; j < d; j++) dst[j] += part[c * d + j];
        for (int64_t j = 0; j < d; j++) dst[j] /= (double)pb->n;
    }
    double mv = 0.0;
    for (int64_t j = 0; !failed && j < d; j++) mv += var[j];
    free(part), free(mean), free(var);
    if (failed) return fkm_fail(ctx, FKM_E_NOMEM, "out of memory while scanning X");
    *first_nonfinite = bad;
    *mean_var = mv / (double)d;
    return FKM_OK;
}

static fkm_status cpu_fetch_row(fkm_ctx *ctx, void *state, int64_t i, float *row)
{
    (void)ctx;
    cpu_state *st = state;
    fkm_load_row(st->pb.X, st->pb.dtype, st->pb.ld, i, st->pb.d, st->pb.metric == FKM_METRIC_COSINE, row);
    return FKM_OK;
}

/* Heap order for farthest(): a is "smaller" (evicted first) when its objective is lower, or
 * equal with a higher index. */
static int heap_less(const double *obj, int64_t a, int64_t b)
{
    return obj[a] < obj[b] || (obj[a] == obj[b] && a > b);
}

static void sift_down(int64_t *h, int64_t size, int64_t at, const double *obj)
{
    for (;;) {
        int64_t l = 2 * at + 1, r = l + 1, m = at;
        if (l < size && heap_less(obj, h[l], h[m])) m = l;
        if (r < size && heap_less(obj, h[r], h[m])) m = r;
        if (m == at) return;
        int64_t t = h[m];
        h[m] = h[at];
        h[at] = t;
        at = m;
    }
}

static fkm_status cpu_farthest(fkm_ctx *ctx, void *state, int64_t problem, int64_t count, int64_t *idx)
{
    (void)ctx, (void)problem; /* batch == 1 */
    cpu_state *st = state;
    const double *obj = st->objective;
    const int64_t n = st->pb.n;
    if (count > n) count = n;
    /* a min-heap of the `count` largest seen so far */
    int64_t size = 0;
    for (int64_t i = 0; i < n; i++) {
        if (size < count) {
            idx[size++] = i;
            if (size == count)
                for (int64_t a = size / 2 - 1; a >= 0; a--) sift_down(idx, size, a, obj);
        } else if (heap_less(obj, idx[0], i)) {
            idx[0] = i;
            sift_down(idx, size, 0, obj);
        }
    }
    if (size < count)
        for (int64_t a = size / 2 - 1; a >= 0; a--) sift_down(idx, size, a, obj);
    /* pop smallest to the back: largest first */
    for (int64_t end = size - 1; end > 0; end--) {
        int64_t t = idx[0];
        idx[0] = idx[end];
        idx[end] = t;
        sift_down(idx, end, 0, obj);
    }
    return FKM_OK;
}

static fkm_status cpu_get_label(fkm_ctx *ctx, void *state, int64_t i, int32_t *label)
{
    (void)ctx;
    *label = ((cpu_state *)state)->labels[i];
    return FKM_OK;
}

static fkm_status cpu_get_labels(fkm_ctx *ctx, void *state, int32_t *labels)
{
    (void)ctx;
    cpu_state *st = state;
    memcpy(labels, st->labels, (size_t)st->pb.n * sizeof *labels);
    return FKM_OK;
}

static fkm_status cpu_transform(fkm_ctx *ctx, void *state, const float *C, float *dist)
{
    cpu_state *st = state;
    const fkm_problem *pb = &st->pb;
    const int64_t n = pb->n, k = pb->k, d = pb->d;
    int failed = 0;
#pragma omp parallel num_threads(pb->n_threads) reduction(| : failed)
    {
        float *row = malloc((size_t)d * sizeof *row);
        if (!row) failed = 1;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            if (!row) continue;
            fkm_load_row(pb->X, pb->dtype, pb->ld, i, d, pb->metric == FKM_METRIC_COSINE, row);
            for (int64_t c = 0; c < k; c++) {
                const float *cc = C + c * d;
                double acc = 0.0;
                if (pb->metric == FKM_METRIC_L2) {
                    for (int64_t j = 0; j < d; j++) {
                        double t = (double)row[j] - cc[j];
                        acc += t * t;
                    }
                } else {
                    for (int64_t j = 0; j < d; j++) acc += (double)row[j] * cc[j];
                    if (pb->metric == FKM_METRIC_COSINE) acc = 1.0 - acc;
                }
                dist[i * k + c] = (float)acc;
            }
        }
        free(row);
    }
    if (failed) return fkm_fail(ctx, FKM_E_NOMEM, "out of memory in transform");
    return FKM_OK;
}

static const fkm_backend_vtbl cpu_vtbl = {
    .name = "cpu",
    .open = cpu_open,
    .close = cpu_close,
    .scan = cpu_scan,
    .fetch_row = cpu_fetch_row,
    .assign = fkm_cpu_assign,
    .reduce = fkm_cpu_reduce,
    .farthest = cpu_farthest,
    .get_label = cpu_get_label,
    .get_labels = cpu_get_labels,
    .transform = cpu_transform,
    .max_batch = 1,
    .kmeanspp = fkm_cpu_kmeanspp,
    .exact = 1,
};

const fkm_backend_vtbl *fkm_cpu_backend(void)
{
    return &cpu_vtbl;
}
