/* kmeanspp.c — greedy k-means++ on the CPU (the init scikit-learn runs; see FKM_INIT_KMEANS_PP
 * in flashkm.h).
 *
 * Per new centre: T = 2 + floor(ln K) candidates are drawn with probability w_i D_i / sum(w D)
 * (D_i: squared distance of point i to its nearest centre so far) by binary search in the
 * prefix sums of w D; one fused pass over X computes every point's distance to the T
 * candidates, stores them, and sums each candidate's potential sum_i w_i min(D_i, d_it); the
 * candidate with the lowest potential becomes the centre, and a second pass over the stored
 * distances (not over X) updates D and rebuilds the prefix sums.
 *
 * Every sum is taken over fixed chunks of points, in point order inside a chunk and chunk
 * order across chunks, in double: the same result for any number of threads.
 *
 * Pruning (core/kpp_prune.h): each point also keeps the index of a centre at computed
 * distance D from it; with the computed distances between the centres and this round's
 * candidates (a k x T table per round), a candidate far enough from that centre provably
 * leaves min(D, d) == D, so the point's distance to it is not needed. A row whose every
 * candidate is proved far is not read at all; the others are gathered and computed as
 * before. Skipped distances are stored as D, so every sum adds the same values in the same
 * order: the outputs are those of the unpruned pass, bit for bit (FLASHKM_KPP_NO_PRUNE=1
 * turns pruning off to compare). */
#include "core/init.h"
#include "core/kpp_prune.h"
#include "cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KPP_CHUNK FKM_KPP_CHUNK
#define KPP_BLOCK 64                 /* rows per call of the distance kernel */
#define KPP_MAX_TRIALS FKM_KPP_LANES /* 2 + floor(ln K) <= 16 up to K ~ 1.2 million; capped */

typedef struct kpp_work {
    const fkm_problem *pb;
    const fkm_cpu_kernel *kern;
    const unsigned char *X;    /* problem's rows */
    const float *w;            /* problem's weights or NULL */
    int64_t n, d, nchunks;
    double *D;                 /* n: squared distance to the nearest centre */
    double *prefix;            /* n: inclusive prefix sums of w D */
    float *dist;               /* n x T: distances to this round's candidates (rows marked fresh) */
    double *part;              /* nchunks x T: per-chunk potentials */
    double *chunk_tot;         /* nchunks */
    int32_t *near;             /* n: a centre at computed distance D (once D is a distance) */
    unsigned char *fresh;      /* n: whether this round computed the point's distances */
    float *cc;                 /* k x FKM_KPP_LANES: computed distances centre - candidate */
    float *ccmin;              /* k: each row of cc folded (fkm_kpp_fold) */
    fkm_kpp_prune prune;
} kpp_work;

static double uniform01(fkm_rng *rng) { return (double)(fkm_rng_next(rng) >> 11) * 0x1p-53; }

/* Rows [i, i + rows) as f32 (normalised for cosine): X itself for f32 rows, else converted
 * into buf; *ldx receives the row stride. */
static const float *rows_of(const kpp_work *kw, int64_t i, int64_t rows, float *buf, int64_t *ldx)
{
    const fkm_problem *pb = kw->pb;
    if (pb->dtype == FKM_F32 && pb->metric != FKM_METRIC_COSINE) {
        *ldx = pb->ld;
        return (const float *)kw->X + i * pb->ld;
    }
    for (int64_t r = 0; r < rows; r++)
        fkm_load_row(kw->X, pb->dtype, pb->ld, i + r, pb->d, pb->metric == FKM_METRIC_COSINE, buf + r * pb->d);
    *ldx = pb->d;
    return buf;
}

/* First index whose inclusive prefix sum reaches target (numpy searchsorted 'left' on the
 * cumulative sum), clipped to n - 1. */
static int64_t search_prefix(const kpp_work *kw, double target)
{
    int64_t lo = 0, hi = kw->n - 1;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (kw->prefix[mid] >= target) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* The rows of block [i0, i0 + rows) whose distance to some candidate is needed (not proved
 * >= D by fkm_kpp_pruned), as offsets into pick; returns their number and adds the unproved
 * (point, candidate) pairs to *needed. */
static int64_t select_rows(const kpp_work *kw, int64_t i0, int64_t rows, int64_t count, int *pick, int64_t *needed)
{
    const size_t es = fkm_dtype_size(kw->pb->dtype), row_bytes = (size_t)kw->d * es;
    int64_t m = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t i = i0 + r;
        const float limit = fkm_kpp_prune_limit(&kw->prune, (float)kw->D[i]);
        int64_t need = count;
        if (!(limit < INFINITY)) {
            /* no centre yet, or pruning off (the table is not even computed) */
        } else if (fkm_kpp_pruned(limit, kw->ccmin[kw->near[i]])) {
            need = 0; /* the common case: every candidate far, one test */
        } else {
            const float *cc = kw->cc + (int64_t)kw->near[i] * FKM_KPP_LANES;
            need = 0;
            for (int64_t t = 0; t < count; t++) need += !fkm_kpp_pruned(limit, cc[t]);
        }
        *needed += need;
        if (!need) continue;
        pick[m++] = (int)r;
        /* the row is read right after this block's selection: start its cache lines now
         * (sparse rows defeat the hardware prefetcher) */
        const char *row = (const char *)kw->X + (size_t)(i * kw->pb->ld) * es;
        for (size_t o = 0; o < row_bytes; o += 64) __builtin_prefetch(row + o);
    }
    return m;
}

/* One pass over X against `count` candidates, given transposed (cT: d x FKM_KPP_LANES, unused
 * lanes zero). With fill_D (the first centre, count = 1) it sets D; otherwise it stores the
 * distances of the rows it reads (marked fresh; for the others every candidate is >= D) and
 * each chunk's potentials. Adds the rows read and the pairs needed to *read and *needed. */
static int trial_pass(const kpp_work *kw, const float *cT, int64_t count, int fill_D, int threads, int64_t *read,
                      int64_t *needed)
{
    int failed = 0;
    int64_t nread = 0, nneed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed) reduction(+ : nread, nneed)
    {
        float *buf = malloc((size_t)(KPP_BLOCK * kw->d) * sizeof *buf);
        float *dt = malloc((size_t)(KPP_BLOCK * FKM_KPP_LANES) * sizeof *dt);
        int pick[KPP_BLOCK];
        if (!buf || !dt) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t ch = 0; ch < kw->nchunks; ch++) {
            if (!buf || !dt) continue;
            double pot[FKM_KPP_LANES] = {0}; /* all lanes, so that the loops below vectorise */
            const int64_t b = ch * KPP_CHUNK, e = b + KPP_CHUNK < kw->n ? b + KPP_CHUNK : kw->n;
            for (int64_t i0 = b; i0 < e; i0 += KPP_BLOCK) {
                const int64_t rows = i0 + KPP_BLOCK < e ? KPP_BLOCK : e - i0;
                const int64_t m = fill_D ? rows : select_rows(kw, i0, rows, count, pick, &nneed);
                int64_t ldx = kw->d;
                const float *x = buf;
                if (m == rows) {
                    x = rows_of(kw, i0, rows, buf, &ldx);
                } else {
                    for (int64_t q = 0; q < m; q++)
                        fkm_load_row(kw->X, kw->pb->dtype, kw->pb->ld, i0 + pick[q], kw->d,
                                     kw->pb->metric == FKM_METRIC_COSINE, buf + q * kw->d);
                }
                if (m > 0) kw->kern->sqdist_many(x, ldx, m, cT, kw->d, dt);
                nread += m;
                for (int64_t r = 0, q = 0; r < rows; r++) {
                    const int64_t i = i0 + r;
                    const int fresh = m == rows || (q < m && pick[q] == r);
                    const float *di = dt + q * FKM_KPP_LANES;
                    q += fresh;
                    if (fill_D) {
                        kw->D[i] = di[0];
                        kw->near[i] = 0;
                        continue;
                    }
                    const double wi = kw->w ? kw->w[i] : 1.0, Di = kw->D[i];
                    kw->fresh[i] = (unsigned char)fresh;
                    if (!fresh) { /* min(D, d_t) == D for every t: the same sums */
                        const double v = wi * Di;
#pragma GCC unroll 16
                        for (int t = 0; t < FKM_KPP_LANES; t++) pot[t] += v;
                        continue;
                    }
                    memcpy(kw->dist + i * count, di, (size_t)count * sizeof *di);
                    /* lanes past count add garbage that is never read; no NaN: distances */
#pragma GCC unroll 16
                    for (int t = 0; t < FKM_KPP_LANES; t++) {
                        const double v = di[t];
                        pot[t] += wi * (v < Di ? v : Di);
                    }
                }
            }
            if (!fill_D)
#pragma GCC unroll 16
                for (int t = 0; t < FKM_KPP_LANES; t++)
                    if (t < count) kw->part[ch * count + t] = pot[t];
        }
        free(buf);
        free(dt);
    }
    *read += nread;
    *needed += nneed;
    return failed;
}

/* The computed distances of centres 0..c-1 to the candidates (cT), rows of kw->cc: the same
 * f32 chains as the pass, so the error model of kpp_prune.h covers them. */
static void centre_table(const kpp_work *kw, const float *C, int64_t c, const float *cT, int64_t count, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static) if (c * kw->d >= 65536)
    for (int64_t a0 = 0; a0 < c; a0 += KPP_BLOCK) {
        const int64_t rows = a0 + KPP_BLOCK < c ? KPP_BLOCK : c - a0;
        float *cc = kw->cc + a0 * FKM_KPP_LANES;
        kw->kern->sqdist_many(C + a0 * kw->d, kw->d, rows, cT, kw->d, cc);
        for (int64_t r = 0; r < rows; r++) {
            float m = INFINITY;
            for (int64_t t = 0; t < count; t++) m = fkm_kpp_fold(m, cc[r * FKM_KPP_LANES + t]);
            kw->ccmin[a0 + r] = m;
        }
    }
}

/* Candidate rows (count x d) transposed into the kernel's layout, unused lanes zero. */
static void transpose_candidates(const float *cands, int64_t count, int64_t d, float *cT)
{
    memset(cT, 0, (size_t)(d * FKM_KPP_LANES) * sizeof *cT);
    for (int64_t t = 0; t < count; t++)
        for (int64_t j = 0; j < d; j++) cT[j * FKM_KPP_LANES + t] = cands[t * d + j];
}

/* D = min(D, dist[:, best]) (best < 0: keep D), the nearest centre becoming `centre` where D
 * decreases, and the prefix sums of w D, chunk by chunk; returns the total potential. */
static double commit_pass(const kpp_work *kw, int64_t count, int64_t best, int64_t centre, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t ch = 0; ch < kw->nchunks; ch++) {
        const int64_t b = ch * KPP_CHUNK, e = b + KPP_CHUNK < kw->n ? b + KPP_CHUNK : kw->n;
        double run = 0.0;
        for (int64_t i = b; i < e; i++) {
            if (best >= 0 && kw->fresh[i]) {
                /* only a strictly smaller distance moves the centre: D stays its computed distance */
                const double v = kw->dist[i * count + best];
                if (v < kw->D[i]) kw->D[i] = v, kw->near[i] = (int32_t)centre;
            }
            run += (kw->w ? kw->w[i] : 1.0) * kw->D[i];
            kw->prefix[i] = run;
        }
        kw->chunk_tot[ch] = run;
    }
    double offset = 0.0;
    for (int64_t ch = 0; ch < kw->nchunks; ch++) {
        const double here = offset;
        offset += kw->chunk_tot[ch];
        kw->chunk_tot[ch] = here; /* now the chunk's offset */
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t ch = 1; ch < kw->nchunks; ch++) {
        const int64_t b = ch * KPP_CHUNK, e = b + KPP_CHUNK < kw->n ? b + KPP_CHUNK : kw->n;
        for (int64_t i = b; i < e; i++) kw->prefix[i] += kw->chunk_tot[ch];
    }
    return offset;
}

fkm_status fkm_cpu_kmeanspp(fkm_ctx *ctx, void *state, int64_t problem, uint64_t seed, float *C)
{
    cpu_state *st = state;
    const fkm_problem *pb = &st->pb;
    const int64_t n = pb->n, d = pb->d, k = pb->k;
    int64_t trials = 2 + (int64_t)floor(log((double)k));
    if (trials > KPP_MAX_TRIALS) trials = KPP_MAX_TRIALS;
    kpp_work kw = {pb, st->kern, (const unsigned char *)pb->X + (size_t)(problem * pb->batch_stride) *
                                                                    fkm_dtype_size(pb->dtype),
                   pb->weights ? pb->weights + problem * n : NULL, n, d, (n + KPP_CHUNK - 1) / KPP_CHUNK,
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, fkm_kpp_prune_make(d, fkm_kpp_prune_wanted())};
    size_t dist_bytes;
    if (!fkm_bytes(n, trials, sizeof(float), &dist_bytes))
        return fkm_fail(ctx, FKM_E_OVERFLOW, "k-means++: n x trials overflows");
    kw.D = malloc((size_t)n * sizeof *kw.D);
    kw.prefix = malloc((size_t)n * sizeof *kw.prefix);
    kw.dist = malloc(dist_bytes);
    kw.part = malloc((size_t)(kw.nchunks * trials) * sizeof *kw.part);
    kw.chunk_tot = malloc((size_t)kw.nchunks * sizeof *kw.chunk_tot);
    kw.near = malloc((size_t)n * sizeof *kw.near);
    kw.fresh = malloc((size_t)n);
    kw.cc = malloc((size_t)(k * FKM_KPP_LANES) * sizeof *kw.cc);
    kw.ccmin = malloc((size_t)k * sizeof *kw.ccmin);
    float *cands = malloc((size_t)(trials * d) * sizeof *cands);
    float *cT = malloc((size_t)(d * FKM_KPP_LANES) * sizeof *cT);
    int64_t *ids = malloc((size_t)trials * sizeof *ids);
    fkm_status s = FKM_OK;
    if (!kw.D || !kw.prefix || !kw.dist || !kw.part || !kw.chunk_tot || !kw.near || !kw.fresh || !kw.cc || !kw.ccmin ||
        !cands || !cT || !ids) {
        s = fkm_fail(ctx, FKM_E_NOMEM, "out of memory for k-means++ (n = %lld)", (long long)n);
        goto out;
    }
    fkm_rng rng = {seed};
    const int threads = pb->n_threads;
    fkm_kpp_counts *cnt = &ctx->kpp;

    /* first centre: drawn with probability proportional to the weight (D = 1 for everyone
     * makes the prefix sums those of the weights) */
    for (int64_t i = 0; i < n; i++) kw.D[i] = 1.0;
    const double total_w = commit_pass(&kw, 1, -1, 0, threads);
    int64_t first = search_prefix(&kw, uniform01(&rng) * total_w);
    fkm_load_row(kw.X, pb->dtype, pb->ld, first, d, pb->metric == FKM_METRIC_COSINE, C);
    transpose_candidates(C, 1, d, cT);
    cnt->points += n, cnt->pairs += n, cnt->pairs_needed += n;
    if (trial_pass(&kw, cT, 1, 1, threads, &cnt->points_read, &cnt->pairs_needed)) goto nomem;
    double pot = commit_pass(&kw, 1, -1, 0, threads);

    for (int64_t c = 1; c < k; c++) {
        for (int64_t t = 0; t < trials; t++) {
            ids[t] = search_prefix(&kw, uniform01(&rng) * pot);
            fkm_load_row(kw.X, pb->dtype, pb->ld, ids[t], d, pb->metric == FKM_METRIC_COSINE, cands + t * d);
        }
        transpose_candidates(cands, trials, d, cT);
        if (kw.prune.factor > 0.0) centre_table(&kw, C, c, cT, trials, threads);
        cnt->points += n, cnt->pairs += n * trials;
        if (trial_pass(&kw, cT, trials, 0, threads, &cnt->points_read, &cnt->pairs_needed)) goto nomem;
        int64_t best = 0;
        double best_pot = INFINITY;
        for (int64_t t = 0; t < trials; t++) {
            double p = 0.0;
            for (int64_t ch = 0; ch < kw.nchunks; ch++) p += kw.part[ch * trials + t];
            if (p < best_pot) best_pot = p, best = t; /* ties: the first candidate */
        }
        memcpy(C + c * d, cands + best * d, (size_t)d * sizeof *C);
        pot = commit_pass(&kw, trials, best, c, threads);
    }
    goto out;
nomem:
    s = fkm_fail(ctx, FKM_E_NOMEM, "out of memory for k-means++ row buffers");
out:
    free(kw.D), free(kw.prefix), free(kw.dist), free(kw.part), free(kw.chunk_tot);
    free(kw.near), free(kw.fresh), free(kw.cc), free(kw.ccmin);
    free(cands), free(cT), free(ids);
    return s;
}
