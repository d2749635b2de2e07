/* reduce.c — the CPU update ("sort-inverse"): points are grouped by label with a stable
 * counting sort, then each cluster's points are summed in increasing point index, in fixed
 * chunks whose partials are combined in chunk order. Nothing depends on the thread count, so
 * sums are bitwise identical for any number of threads, and no atomics are needed. The same
 * pass computes each point's exact objective (double precision) against its centroid. */
#include "cpu.h"

#include <stdlib.h>
#include <string.h>

/* Stable counting sort of point ids by label into st->order; st->offsets[k] = first slot.
 * Points are split into one contiguous range per thread: each range counts its labels, the
 * counts are laid out label-major then range-major, and each range scatters its points in
 * order. A stable sort has exactly one result, so the thread count cannot change it. */
static fkm_status sort_by_label(fkm_ctx *ctx, cpu_state *st)
{
    const int64_t n = st->pb.n, k = st->pb.k;
    int64_t ranges = st->pb.n_threads;
    if (ranges > n / 4096 + 1) ranges = n / 4096 + 1;
    int64_t *pos = calloc((size_t)(ranges * k), sizeof *pos);
    if (!pos) return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for the label sort");
    const int32_t *labels = st->labels;
#pragma omp parallel for num_threads(st->pb.n_threads) schedule(static)
    for (int64_t r = 0; r < ranges; r++) {
        int64_t *h = pos + r * k;
        for (int64_t i = n * r / ranges; i < n * (r + 1) / ranges; i++) h[labels[i]]++;
    }
    int64_t running = 0;
    for (int64_t c = 0; c < k; c++) {
        st->offsets[c] = running;
        for (int64_t r = 0; r < ranges; r++) {
            const int64_t cnt = pos[r * k + c];
            pos[r * k + c] = running;
            running += cnt;
        }
    }
    st->offsets[k] = running;
#pragma omp parallel for num_threads(st->pb.n_threads) schedule(static)
    for (int64_t r = 0; r < ranges; r++) {
        int64_t *cursor = pos + r * k;
        for (int64_t i = n * r / ranges; i < n * (r + 1) / ranges; i++) st->order[cursor[labels[i]]++] = i;
    }
    free(pos);
    return FKM_OK;
}

#define PREFETCH_AHEAD 8

static void prefetch_row(const fkm_problem *pb, int64_t i)
{
    const size_t bytes = (size_t)pb->d * fkm_dtype_size(pb->dtype);
    const char *p = (const char *)pb->X + (size_t)(i * pb->ld) * fkm_dtype_size(pb->dtype);
    for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
}

typedef struct work_item {
    int64_t cluster;
    int64_t begin, end;   /* slots in order[] */
} work_item;

fkm_status fkm_cpu_reduce(fkm_ctx *ctx, void *state, const float *C, fkm_partials *out)
{
    cpu_state *st = state;
    const fkm_problem *pb = &st->pb;
    const int64_t k = pb->k, d = pb->d;
    const int normalise = pb->metric == FKM_METRIC_COSINE;
    const int want_sums = out->sums != NULL;
    const int direct = !fkm_cpu_needs_copy(pb); /* f32 rows are read in place */

    fkm_status status = sort_by_label(ctx, st);
    if (status != FKM_OK) return status;

    int64_t nitems = 0;
    for (int64_t c = 0; c < k; c++) {
        int64_t cnt = st->offsets[c + 1] - st->offsets[c];
        nitems += (cnt + FKM_CPU_REDUCE_CHUNK - 1) / FKM_CPU_REDUCE_CHUNK;
    }
    work_item *items = malloc((size_t)(nitems ? nitems : 1) * sizeof *items);
    double *part = want_sums ? calloc((size_t)(nitems ? nitems : 1) * (size_t)d, sizeof *part) : NULL;
    double *part_w = calloc((size_t)(nitems ? nitems : 1), sizeof *part_w);
    double *part_obj = calloc((size_t)(nitems ? nitems : 1), sizeof *part_obj);
    if (!items || (want_sums && !part) || !part_w || !part_obj) {
        free(items), free(part), free(part_w), free(part_obj);
        return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for the update's partial sums");
    }
    for (int64_t c = 0, it = 0; c < k; c++)
        for (int64_t b = st->offsets[c]; b < st->offsets[c + 1]; b += FKM_CPU_REDUCE_CHUNK) {
            int64_t e = b + FKM_CPU_REDUCE_CHUNK;
            items[it++] = (work_item){c, b, e < st->offsets[c + 1] ? e : st->offsets[c + 1]};
        }

    int failed = 0;
#pragma omp parallel num_threads(pb->n_threads) reduction(| : failed)
    {
        float *row = malloc((size_t)d * sizeof *row);
        if (!row) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < nitems; it++) {
            if (failed) continue;
            const work_item w = items[it];
            const float *c = C + w.cluster * d;
            double *acc = want_sums ? part + it * d : NULL;
            double wsum = 0.0, obj = 0.0;
            for (int64_t s = w.begin; s < w.end; s++) {
                const int64_t i = st->order[s];
                const double wi = pb->weights ? pb->weights[i] : 1.0;
                /* rows are visited in label order, i.e. scattered in memory: fetch ahead */
                if (s + PREFETCH_AHEAD < w.end) prefetch_row(pb, st->order[s + PREFETCH_AHEAD]);
                const float *x = row;
                if (direct) x = (const float *)pb->X + i * pb->ld;
                else fkm_load_row(pb->X, pb->dtype, pb->ld, i, d, normalise, row);
                const double o = st->kern->accumulate(x, c, d, pb->metric == FKM_METRIC_DOT, wi, acc);
                st->objective[i] = o;
                obj += wi * o;
                wsum += wi;
            }
            part_w[it] = wsum;
            part_obj[it] = obj;
        }
        free(row);
    }
    if (failed) {
        free(items), free(part), free(part_w), free(part_obj);
        return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for the update's row buffers");
    }

    /* fixed-order combine: clusters in index order, chunks in point order */
    if (want_sums) memset(out->sums, 0, (size_t)(k * d) * sizeof *out->sums);
    if (out->weight) memset(out->weight, 0, (size_t)k * sizeof *out->weight);
    double total = 0.0;
    for (int64_t it = 0; it < nitems; it++) {
        const int64_t c = items[it].cluster;
        if (want_sums)
            for (int64_t j = 0; j < d; j++) out->sums[c * d + j] += part[it * d + j];
        if (out->weight) out->weight[c] += part_w[it];
        total += part_obj[it];
    }
    out->objective[0] = total;
    free(items), free(part), free(part_w), free(part_obj);
    return FKM_OK;
}
